#ifndef RELAYSHIM_BUF_H
#define RELAYSHIM_BUF_H

/*++
 * NAME
 *	buf 3h
 * SUMMARY
 *	the one length-checked byte buffer
 * SYNOPSIS
 *	#include "buf.h"
 *
 *	struct buf { char *data; size_t len; size_t cap; };
 *	#define BUF_INIT { 0 }
 *
 *	void	buf_reserve(struct buf *b, size_t extra);
 *	void	buf_append(struct buf *b, const void *p, size_t n);
 *	void	buf_puts(struct buf *b, const char *s);
 *	void	buf_putc(struct buf *b, int c);
 *	void	buf_printf(struct buf *b, const char *fmt, ...);
 *	void	buf_vprintf(struct buf *b, const char *fmt, va_list ap);
 *	void	buf_reset(struct buf *b);
 *	void	buf_truncate(struct buf *b, size_t len);
 *	void	buf_consume(struct buf *b, size_t n);
 *	const char *buf_cstr(struct buf *b);
 *	char	*buf_steal(struct buf *b);
 *	void	buf_free(struct buf *b);
 *	void	buf_put_sanitized(struct buf *b, const char *s, size_t n);
 * DESCRIPTION
 *	Every byte sequence we did not write ourselves (message lines, headers,
 *	SMTP replies, config values) lives in a struct buf. All size arithmetic
 *	is checked here, in buf_reserve(); callers never compute capacities.
 *
 *	The data is always NUL-terminated one byte past len (when data is not
 *	NULL), so buf_cstr() is free; embedded NULs are allowed and len counts
 *	them. A zero-initialised struct buf is a valid empty buffer.
 *
 *	buf_consume() drops n bytes from the front. buf_steal() hands the
 *	allocation to the caller (free() it) and leaves the buffer empty.
 *
 *	buf_put_sanitized() appends n bytes of untrusted text (a server reply,
 *	a user argument) with every control byte shown as \xNN, so it can
 *	never break a log line or smuggle a terminal escape.
 * DIAGNOSTICS
 *	Allocation failure or size overflow is fatal (util_oom(): exit 71 with
 *	one line), as in Postfix: there is no sensible recovery inside a
 *	sendmail invocation, and the caller's message is still with the caller.
 *--*/

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT                                                                                   \
	{                                                                                          \
		0                                                                                  \
	}

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, int c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_reset(struct buf *b);
void buf_truncate(struct buf *b, size_t len);
void buf_consume(struct buf *b, size_t n);
const char *buf_cstr(struct buf *b);
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);
void buf_put_sanitized(struct buf *b, const char *s, size_t n);

#endif
