/*++
 * NAME
 *	util 3
 * SUMMARY
 *	allocation, panics, string lists, and the error record
 * DESCRIPTION
 *	See util.h.
 *--*/

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "util.h"

/* util_oom - out of memory: one line, exit 71 */

void util_oom(void)
{
	static const char msg[] = "sendmail: out of memory\n";

	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(EX_OSERR);
}

/* util_panic - programmer error: report and abort */

void util_panic(const char *fmt, ...)
{
	va_list ap;

	fputs("sendmail: panic: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* util_malloc - malloc that never fails */

void *util_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == 0)
		util_oom();
	return p;
}

/* util_calloc - calloc that never fails */

void *util_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == 0)
		util_oom();
	return p;
}

/* util_realloc - realloc that never fails */

void *util_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == 0)
		util_oom();
	return p;
}

/* util_strdup - strdup that never fails */

char *util_strdup(const char *s)
{
	return util_strndup(s, strlen(s));
}

/* util_strndup - copy at most n bytes, NUL-terminated */

char *util_strndup(const char *s, size_t n)
{
	char *p;

	n = strnlen(s, n);
	p = util_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

/* strlist_add_nodup - append s, taking ownership */

void strlist_add_nodup(struct strlist *l, char *s)
{
	if (l->n + 1 >= l->cap) {
		if (l->cap > ((size_t)-1) / 2 / sizeof(char *))
			util_oom();
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = util_realloc(l->v, l->cap * sizeof(char *));
	}
	l->v[l->n++] = s;
	l->v[l->n] = 0;
}

/* strlist_add - append a copy of s */

void strlist_add(struct strlist *l, const char *s)
{
	strlist_add_nodup(l, util_strdup(s));
}

/* strlist_contains_ci - case-insensitive membership */

int strlist_contains_ci(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

/* strlist_free - release all strings and the vector */

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = 0;
	l->n = l->cap = 0;
}

/* error_set - record a failure; returns status */

int error_set(struct error *err, int status, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return status;
}

/* error_clear - no error */

void error_clear(struct error *err)
{
	err->status = 0;
	err->temporary = 0;
	err->text[0] = 0;
}

/* util_next_item - next item of a comma/space separated list, or NULL */

const char *util_next_item(const char **p, size_t *n)
{
	const char *item = *p + strspn(*p, ", \t");

	*n = strcspn(item, ", \t");
	*p = item + *n;
	return *n ? item : 0;
}

/* util_has_control - a C0 control byte or DEL in s */

int util_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* util_hex_value - one hex digit, or -1 */

int util_hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* util_dl_open - load a library and resolve a table of symbols */

int util_dl_open(const char *lib, int flags, const char *const *names, void *const *slots, size_t n,
		 char *why, size_t whysize)
{
	void *h = dlopen(lib, flags);

	if (h == 0) {
		snprintf(why, whysize, "cannot load %s: %s", lib, dlerror());
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		void *sym = dlsym(h, names[i]);

		if (sym == 0) {
			snprintf(why, whysize, "%s lacks %s", lib, names[i]);
			return -1;
		}
		*(void **)slots[i] = sym;
	}
	return 0;
}

/* util_write_all - the whole buffer, or -1 with errno */

int util_write_all(int fd, const void *p, size_t n)
{
	const char *cp = p;

	while (n > 0) {
		ssize_t w = write(fd, cp, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			/* No progress and no error: never spin on it. */
			errno = EIO;
			return -1;
		}
		cp += w;
		n -= (size_t)w;
	}
	return 0;
}
