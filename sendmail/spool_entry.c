/*++
 * NAME
 *	spool_entry 3
 * SUMMARY
 *	the on-disk format of one queue entry and of its state file
 * SYNOPSIS
 *	#include "spool_entry.h"
 * DESCRIPTION
 *	See spool_entry.h. The writers and the readers of both files live
 *	here side by side so that a change of one shows in the other.
 * DIAGNOSTICS
 *	spool_entry_parse() returns -1 for anything malformed; the caller
 *	decides (spool_deliver.c moves such an entry to failed/).
 *--*/

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool_entry.h"

/* spool_entry_init - empty entry */

void spool_entry_init(struct spool_entry *e)
{
	memset(e, 0, sizeof(*e));
	envelope_init(&e->env);
}

/* spool_entry_free - release everything */

void spool_entry_free(struct spool_entry *e)
{
	envelope_free(&e->env);
	free(e->first_error);
	free(e->last_error);
	strlist_free(&e->done);
	spool_entry_init(e);
}

/* put_escaped - append s with controls, space, % and DEL as %XX */

static void put_escaped(struct buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c == '%' || c == 0x7f)
			buf_printf(out, "%%%02X", c);
		else
			buf_putc(out, c);
	}
}

/* put_field - one "key value" line */

static void put_field(struct buf *out, const char *key, const char *value)
{
	buf_puts(out, key);
	buf_putc(out, ' ');
	put_escaped(out, value);
	buf_putc(out, '\n');
}

/* unescape - decode %XX in [p, p+n) into a new string; NULL when malformed */

static char *unescape(const char *p, size_t n)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%') {
			int hi, lo;

			if (i + 2 >= n) {
				buf_free(&b);
				return 0;
			}
			hi = util_hex_value(p[i + 1]);
			lo = util_hex_value(p[i + 2]);
			/* No NUL: the value becomes a C string. */
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				buf_free(&b);
				return 0;
			}
			buf_putc(&b, hi * 16 + lo);
			i += 2;
		} else if (p[i] == 0) {
			buf_free(&b);
			return 0;
		} else {
			buf_putc(&b, p[i]);
		}
	}
	if (b.data == 0)
		return util_strdup("");
	return buf_steal(&b);
}

/* parse_ull - a decimal number filling the whole string */

static int parse_ull(const char *s, unsigned long long *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno || *end) ? -1 : 0;
}

/* parse_double - a finite number filling the whole string */

static int parse_double(const char *s, double *v)
{
	char *end;

	*v = strtod(s, &end);
	return (end == s || *end || !isfinite(*v)) ? -1 : 0;
}

/* spool_entry_format - the envelope text of q/ID, empty line included */

void spool_entry_format(struct buf *out, const struct spool_entry *e)
{
	const struct envelope *env = &e->env;

	buf_puts(out, SPOOL_ENTRY_MAGIC "\n");
	buf_printf(out, "created %.6f\n", e->created);
	put_field(out, "sender", env->sender ? env->sender : "");
	for (size_t i = 0; i < env->rcpts.n; i++)
		put_field(out, "rcpt", env->rcpts.v[i]);
	if (env->dsn_notify)
		put_field(out, "notify", env->dsn_notify);
	if (env->dsn_ret)
		put_field(out, "ret", env->dsn_ret);
	if (env->dsn_envid)
		put_field(out, "envid", env->dsn_envid);
	buf_printf(out, "smtputf8 %d\n8bit %d\nnul %d\nlongest %llu\n", env->smtputf8 ? 1 : 0,
		   e->has_8bit ? 1 : 0, e->has_nul ? 1 : 0, e->longest);
	if (e->first_error && *e->first_error)
		put_field(out, "error", e->first_error);
	buf_printf(out, "header %llu\nbody %llu\n\n", e->header_len, e->body_len);
}

/* set_string - a string field: the envelope ones go into SMTP commands */

static int set_string(struct spool_entry *e, const char *key, char *val)
{
	char **slot;

	if (strcmp(key, "sender") == 0)
		slot = &e->env.sender;
	else if (strcmp(key, "notify") == 0)
		slot = &e->env.dsn_notify;
	else if (strcmp(key, "ret") == 0)
		slot = &e->env.dsn_ret;
	else if (strcmp(key, "envid") == 0)
		slot = &e->env.dsn_envid;
	else if (strcmp(key, "error") == 0)
		slot = &e->first_error;
	else
		return 1; /* not a string field */
	if (slot != &e->first_error &&
	    (util_has_control(val) || strlen(val) > SPOOL_ENTRY_ADDRESS_MAX)) {
		free(val);
		return -1;
	}
	free(*slot);
	*slot = val;
	return 0;
}

/* spool_entry_parse - read the envelope text of q/ID; -1 when malformed */

int spool_entry_parse(const char *p, size_t n, struct spool_entry *e)
{
	const char *start = p, *end = p + n;
	int seen_header = 0, seen_body = 0, seen_created = 0;
	size_t magic = sizeof(SPOOL_ENTRY_MAGIC) - 1;

	if (n < magic + 1 || memcmp(p, SPOOL_ENTRY_MAGIC "\n", magic + 1) != 0)
		return -1;
	p += magic + 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp;
		char key[16];
		char *val;
		unsigned long long num = 0;
		size_t klen;
		int rc;

		if (nl == 0)
			return -1;
		if (nl == p) { /* the empty line ends the envelope */
			e->data_off = (unsigned long long)(nl + 1 - start);
			break;
		}
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == 0 || (klen = (size_t)(sp - p)) >= sizeof(key) || memchr(p, 0, klen))
			return -1;
		memcpy(key, p, klen);
		key[klen] = 0;
		if ((val = unescape(sp + 1, (size_t)(nl - sp - 1))) == 0)
			return -1;
		p = nl + 1;
		if (strcmp(key, "rcpt") == 0) {
			/* Beyond the limit the format was never written by us;
			 * and a huge list must not cost quadratic time later. */
			if (util_has_control(val) || *val == 0 ||
			    strlen(val) > SPOOL_ENTRY_ADDRESS_MAX ||
			    e->env.rcpts.n >= SPOOL_ENTRY_RCPT_MAX) {
				free(val);
				return -1;
			}
			strlist_add_nodup(&e->env.rcpts, val);
			continue;
		}
		if ((rc = set_string(e, key, val)) < 0)
			return -1;
		if (rc == 0)
			continue;
		if (strcmp(key, "created") == 0) {
			int bad = parse_double(val, &e->created);

			free(val);
			if (bad)
				return -1;
			seen_created = 1;
			continue;
		}
		if (parse_ull(val, &num) != 0) {
			free(val);
			return -1;
		}
		free(val);
		if (strcmp(key, "smtputf8") == 0)
			e->env.smtputf8 = num != 0;
		else if (strcmp(key, "8bit") == 0)
			e->has_8bit = num != 0;
		else if (strcmp(key, "nul") == 0)
			e->has_nul = num != 0;
		else if (strcmp(key, "longest") == 0)
			e->longest = num;
		else if (strcmp(key, "header") == 0)
			e->header_len = num, seen_header = 1;
		else if (strcmp(key, "body") == 0)
			e->body_len = num, seen_body = 1;
	}
	if (e->data_off == 0 || !seen_header || !seen_body || e->env.sender == 0 || !seen_created ||
	    e->env.rcpts.n == 0 || e->header_len > SPOOL_ENTRY_HEADER_MAX ||
	    e->body_len > (unsigned long long)INT64_MAX - e->header_len - e->data_off - 2)
		return -1;
	return 0;
}

/* spool_state_format - the text of q/ID.st */

void spool_state_format(struct buf *out, const struct spool_entry *e)
{
	buf_puts(out, SPOOL_STATE_MAGIC "\n");
	buf_printf(out, "attempts %u\nlast_try %.6f\nnext_try %.6f\n", e->attempts, e->last_try,
		   e->next_try);
	if (e->last_error)
		put_field(out, "error", e->last_error);
	for (size_t i = 0; i < e->done.n; i++)
		put_field(out, "done", e->done.v[i]);
}

/* spool_state_parse - read q/ID.st; unknown or malformed lines are ignored (advisory) */

void spool_state_parse(const char *p, size_t n, struct spool_entry *e)
{
	const char *end = p + n;
	size_t magic = sizeof(SPOOL_STATE_MAGIC) - 1;

	if (n < magic + 1 || memcmp(p, SPOOL_STATE_MAGIC "\n", magic + 1) != 0)
		return;
	p += magic + 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp;
		char *val;
		double d;

		if (nl == 0)
			break;
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == 0 || (val = unescape(sp + 1, (size_t)(nl - sp - 1))) == 0) {
			p = nl + 1;
			continue;
		}
#define KEY_IS(k) ((size_t)(sp - p) == sizeof(k) - 1 && memcmp(p, k, sizeof(k) - 1) == 0)
		if (KEY_IS("attempts") && parse_double(val, &d) == 0 && d >= 0 && d < 1e9)
			e->attempts = (unsigned)d;
		else if (KEY_IS("last_try") && parse_double(val, &d) == 0)
			e->last_try = d;
		else if (KEY_IS("next_try") && parse_double(val, &d) == 0)
			e->next_try = d;
		else if (KEY_IS("error")) {
			free(e->last_error);
			e->last_error = val;
			val = 0;
		} else if (KEY_IS("done") && e->done.n < SPOOL_ENTRY_RCPT_MAX) {
			strlist_add_nodup(&e->done, val);
			val = 0;
		}
#undef KEY_IS
		free(val);
		p = nl + 1;
	}
}
