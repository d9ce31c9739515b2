#ifndef RELAYSHIM_SHIM_H
#define RELAYSHIM_SHIM_H

/*++
 * NAME
 *	shim 3h
 * SUMMARY
 *	internal interface of librelayshim.so (nothing here is exported)
 * SYNOPSIS
 *	#include "shim.h"
 *
 *	extern struct shim_config shim;
 *	void	shim_ensure_init(void);
 *
 *	config.c:	shim_init_once(), shim_log(), shim_close(), shim_move_up()
 *	spawn.c:	shim_spawn(), shim_reap(), shim_is_reaper(),
 *			shim_warn_reaper(), shim_reap_orphans(),
 *			shim_read_helper_pid(), shim_remember_orphan()
 *	spare.c:	shim_spare_offer(), shim_spare_confirm(),
 *			shim_spare_start()
 *	relayshim.c:	connect(), the only exported symbol
 * DESCRIPTION
 *	The library is built with -fvisibility=hidden: these functions are
 *	shared between its files only. The layout: relayshim.c has the
 *	fast path (matching) and the redirection of one connect();
 *	config.c reads the configuration once; spawn.c starts and reaps
 *	helpers; spare.c keeps a helper started ahead of time.
 *
 *	shim_ensure_init() is on the fast path of every connect(): one
 *	atomic load once the configuration is ready.
 *--*/

#include <spawn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Internal to the library: lets the compiler reach these without the GOT. */
#pragma GCC visibility push(hidden)

#define SHIM_MAX_TARGETS 32
#define SHIM_ENV_MARK "RELAYSHIM_SHIM_ACCEPT"

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*addclosefrom_fn)(posix_spawn_file_actions_t *, int);

/* One intercepted endpoint; addresses and port in network byte order. */
struct shim_target {
	int v6;	       /* [::1] */
	int whole_net; /* 127.0.0.1 stands for all of 127.0.0.0/8 */
	uint32_t v4;
	uint16_t port;
};

/* Written once by shim_init_once(), read-only afterwards. */
struct shim_config {
	connect_fn real_connect;
	addclosefrom_fn addclosefrom; /* glibc >= 2.34, looked up at run time */
	int disabled;
	size_t ntargets;
	struct shim_target targets[SHIM_MAX_TARGETS];
	char *sendmail;
	char comm[16];	      /* the helper's /proc comm: basename, 15 bytes */
	char **envp;	      /* RELAYSHIM_SHIM_ACCEPT=1: detach by forking */
	char **envp_detached; /* RELAYSHIM_SHIM_ACCEPT=2: orphaned at birth */
	char **envp_spare;    /* RELAYSHIM_SHIM_ACCEPT=3: a spare helper (spare.c) */
	int spare_off;	      /* RELAYSHIM_SPARE=0 */
	int posix_only;	      /* RELAYSHIM_SPAWN=posix (tests, debugging) */
};

extern struct shim_config shim;
/* 0 = not initialised, 1 = being initialised, 2 = ready. */
extern int shim_state;

/* config.c */
void shim_init_once(void);
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void shim_close(int *fd);
int shim_move_up(int fd);

/* spawn.c */
int shim_spawn(int lfd, int ctl, pid_t *middle, pid_t *helper);
int shim_spawn_spare(int sock, pid_t *helper);
void shim_reap(pid_t pid);
int shim_is_reaper(void);
void shim_warn_reaper(void);
void shim_reap_orphans(void);
pid_t shim_read_helper_pid(int ctl);
void shim_remember_orphan(pid_t pid);

/* spare.c */
int shim_spare_offer(int lfd, int ctl);
int shim_spare_confirm(void);
void shim_spare_start(void);

/* shim_ensure_init - the configuration, read exactly once, from any thread */

static inline void shim_ensure_init(void)
{
	if (__atomic_load_n(&shim_state, __ATOMIC_ACQUIRE) != 2)
		shim_init_once();
}

#pragma GCC visibility pop

#endif
