#ifndef RELAYSHIM_SHIM_SPARE_H
#define RELAYSHIM_SHIM_SPARE_H

/*++
 * NAME
 *	shim_spare 3h
 * SUMMARY
 *	a spare -bs helper started ahead of time by the LD_PRELOAD shim
 * SYNOPSIS
 *	#include "shim_spare.h"
 *
 *	int	shim_spare_requested(void);
 *	int	shim_spare_begin(struct error *err);
 *	void	shim_spare_serve(const char *const *files,
 *			int (*serve)(int conn, void *arg), void *arg);
 *	void	shim_spare_ready(void);
 * DESCRIPTION
 *	See shim_spare.c. In -bs mode, main() calls shim_spare_begin()
 *	first, then loads the configuration, then shim_spare_serve() with
 *	the files the configuration came from (NULL-terminated) and the
 *	-bs server for one connection, which calls shim_spare_ready() at
 *	QUIT.
 *--*/

struct error;

int shim_spare_requested(void);
int shim_spare_begin(struct error *err);
void shim_spare_serve(const char *const *files, int (*serve)(int conn, void *arg), void *arg);
void shim_spare_ready(void);

#endif
