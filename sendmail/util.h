#ifndef RELAYSHIM_UTIL_H
#define RELAYSHIM_UTIL_H

/*++
 * NAME
 *	util 3h
 * SUMMARY
 *	allocation, panics, string lists, and the error record
 * SYNOPSIS
 *	#include "util.h"
 *
 *	void	*util_malloc(size_t n);
 *	void	*util_calloc(size_t n, size_t size);
 *	void	*util_realloc(void *p, size_t n);
 *	char	*util_strdup(const char *s);
 *	char	*util_strndup(const char *s, size_t n);
 *	void	util_oom(void);
 *	void	util_panic(const char *fmt, ...);
 *
 *	struct strlist { char **v; size_t n; size_t cap; };
 *	void	strlist_add(struct strlist *l, const char *s);
 *	void	strlist_add_nodup(struct strlist *l, char *s);
 *	int	strlist_contains_ci(const struct strlist *l, const char *s);
 *	void	strlist_free(struct strlist *l);
 *
 *	struct error { int status; int temporary; char text[1024]; };
 *	int	error_set(struct error *err, int status, const char *fmt, ...);
 *	void	error_clear(struct error *err);
 *	const char *util_next_item(const char **p, size_t *n);
 *	int	util_hex_value(int c);
 *	int	util_has_control(const char *s);
 *	int	util_write_all(int fd, const void *p, size_t n);
 *	int	util_dl_open(const char *lib, int flags, const char *const *names,
 *			void *const *slots, size_t n, char *why, size_t whysize);
 * DESCRIPTION
 *	util_malloc() and friends never return NULL: out of memory calls
 *	util_oom(), which prints one line and exits 71 (EX_OSERR).
 *	util_panic() is for programmer errors (impossible states): it prints
 *	"relayshim: panic: ..." and aborts.
 *
 *	A struct strlist is a growable array of owned C strings; v[n] is
 *	always NULL so v can be passed where a NULL-terminated vector is
 *	expected. strlist_add() copies s; strlist_add_nodup() takes ownership.
 *
 *	struct error carries a failure from deep inside a module up to main()
 *	or the -bs loop, which alone decide what to print and which exit
 *	status follows. status is a sysexits.h code (0 = no error);
 *	temporary is non-zero when a later retry may succeed (the queue uses
 *	it). text is one line, without a trailing newline, that says what
 *	happened and what to do. error_set() returns status, so a function
 *	can `return error_set(err, EX_USAGE, "...")`.
 *
 *	util_next_item() walks a list separated by commas, spaces or tabs
 *	(log targets, relays, endpoints): it returns the next item and its
 *	length in *n, with *p moved past it, or NULL at the end.
 *
 *	util_hex_value() is the value of one hex digit, or -1.
 *
 *	util_has_control() is non-zero when s holds a C0 control byte or DEL
 *	(CR and LF among them), which would split a line of a protocol, a
 *	spool entry or a log.
 *
 *	util_write_all() writes n bytes, retrying short writes and EINTR;
 *	0, or -1 with errno.
 *
 *	util_dl_open() opens the shared library lib with dlopen() flags and
 *	stores the address of each symbol names[i] into the function pointer
 *	variable at slots[i] (POSIX's "*(void **)&fp = dlsym()" idiom), so
 *	OpenSSL and Cyrus SASL cost nothing at start-up when they are not
 *	used. Returns 0, or -1 with the reason (the library, or the first
 *	missing symbol) in why.
 *--*/

#include <stddef.h>

void *util_malloc(size_t n);
void *util_calloc(size_t n, size_t size);
void *util_realloc(void *p, size_t n);
char *util_strdup(const char *s);
char *util_strndup(const char *s, size_t n);
void util_oom(void) __attribute__((noreturn));
void util_panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

struct strlist {
	char **v;
	size_t n;
	size_t cap;
};

#define STRLIST_INIT                                                                               \
	{                                                                                          \
		0                                                                                  \
	}

void strlist_add(struct strlist *l, const char *s);
void strlist_add_nodup(struct strlist *l, char *s);
int strlist_contains_ci(const struct strlist *l, const char *s);
void strlist_free(struct strlist *l);

struct error {
	int status;
	int temporary;
	char text[1024];
};

int error_set(struct error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void error_clear(struct error *err);
const char *util_next_item(const char **p, size_t *n);
int util_hex_value(int c);
int util_has_control(const char *s);
int util_write_all(int fd, const void *p, size_t n);
int util_dl_open(const char *lib, int flags, const char *const *names, void *const *slots, size_t n,
		 char *why, size_t whysize);

#endif
