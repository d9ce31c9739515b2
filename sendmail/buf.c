/*++
 * NAME
 *	buf 3
 * SUMMARY
 *	the one length-checked byte buffer
 * DESCRIPTION
 *	See buf.h. Growth is geometric; the only place that adds sizes is
 *	buf_reserve(), which checks for overflow.
 *--*/

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

/* buf_reserve - make room for extra more bytes plus the terminating NUL */

void buf_reserve(struct buf *b, size_t extra)
{
	size_t need;
	size_t cap;

	if (extra > SIZE_MAX - b->len - 1)
		util_oom();
	need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	b->data = util_realloc(b->data, cap);
	b->cap = cap;
}

/* buf_append - append n bytes */

void buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

/* buf_puts - append a C string */

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

/* buf_putc - append one byte */

void buf_putc(struct buf *b, int c)
{
	buf_reserve(b, 1);
	b->data[b->len++] = (char)c;
	b->data[b->len] = 0;
}

/* buf_vprintf - append formatted text */

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	buf_reserve(b, 64);
	va_copy(ap2, ap);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		util_panic("buf_vprintf: bad format \"%s\"", fmt);
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

/* buf_printf - append formatted text */

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/* buf_reset - empty the buffer, keep the allocation */

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

/* buf_truncate - shorten to len bytes */

void buf_truncate(struct buf *b, size_t len)
{
	if (len > b->len)
		util_panic("buf_truncate: %zu > %zu", len, b->len);
	b->len = len;
	if (b->data)
		b->data[len] = 0;
}

/* buf_consume - drop n bytes from the front */

void buf_consume(struct buf *b, size_t n)
{
	if (n > b->len)
		util_panic("buf_consume: %zu > %zu", n, b->len);
	if (b->data == 0) /* zero-initialised: nothing to move */
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = 0;
}

/* buf_cstr - the contents as a C string (never NULL) */

const char *buf_cstr(struct buf *b)
{
	return b->data ? b->data : "";
}

/* buf_steal - hand the allocation over to the caller */

char *buf_steal(struct buf *b)
{
	char *p = b->data ? b->data : util_strdup("");

	b->data = 0;
	b->len = b->cap = 0;
	return p;
}

/* buf_free - release the allocation */

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = 0;
	b->len = b->cap = 0;
}

/* buf_put_sanitized - append untrusted text with control bytes escaped */

void buf_put_sanitized(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_putc(b, c);
	}
}
