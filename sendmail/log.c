/*++
 * NAME
 *	log 3
 * SUMMARY
 *	container-friendly logging: targets, plain or JSON, anonymised addresses
 * SYNOPSIS
 *	See log.h.
 * DESCRIPTION
 *	Every line is built completely in memory and handed to each target
 *	with one write(2), so lines from concurrent sendmail processes
 *	appending to the same file or pipe (/proc/1/fd/1) do not interleave.
 *
 *	Anonymisation follows boky/postfix's email-anonymizer.py (the code,
 *	not the README where they differ): smart keeps the first and last
 *	character of the local part around ONE mask (quotes of a quoted local
 *	part kept), masks every character of the domain but the TLD, and
 *	masks address literals; paranoid keeps only the TLD; hash replaces
 *	the address by HMAC-SHA256(salt, address) in hex. Lengths count
 *	characters (UTF-8 code points), as Python does. Its two bugs are not
 *	copied: "on" works, and several "&"-separated options work. Where
 *	boky matches addresses in free text with a regular expression, we
 *	match the same shapes but also end a local part at "(),;:=>" and a
 *	domain at "," so that "from=a@b" and "a@b, c@d" come out right.
 *	hash lowercases ASCII only when case_sensitive is false.
 * DIAGNOSTICS
 *	Logging never fails the caller: a target that cannot be opened is
 *	replaced by stderr with one warning; write errors are ignored.
 *--*/

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>


#include "buf.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/* ---------------------------------------------------------------- */
/* Anonymizer                                                       */
/* ---------------------------------------------------------------- */

enum anon_kind { ANON_NOOP, ANON_SMART, ANON_PARANOID, ANON_HASH };

struct anonymizer {
	enum anon_kind kind;
	char *mask;	 /* smart, paranoid: mask_symbol */
	struct buf salt; /* hash */
	char *prefix;
	char *suffix;
	int case_sensitive;
	int short_sha;
	int split;
};

/* anonymizer_free - release an anonymizer (NULL is fine) */

void anonymizer_free(struct anonymizer *an)
{
	if (an == 0)
		return;
	free(an->mask);
	if (an->salt.data)
		memset(an->salt.data, 0, an->salt.len);
	buf_free(&an->salt);
	free(an->prefix);
	free(an->suffix);
	free(an);
}

/* url_decode - application/x-www-form-urlencoded value, as Python's parse_qs */

static void url_decode(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			buf_putc(out, ' ');
		} else if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
			   isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], 0};

			buf_putc(out, (int)strtol(hex, 0, 16));
			i += 2;
		} else {
			buf_putc(out, s[i]);
		}
	}
}

/* truthy - boky's is_truthy(): y/yes/t/true/1, n/no/f/false/0; -1 otherwise */

static int truthy(const char *v)
{
	static const char *yes[] = {"y", "yes", "t", "true", "1"};
	static const char *no[] = {"n", "no", "f", "false", "0"};

	for (size_t i = 0; i < 5; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

#define ANON_VALUES "use smart, paranoid, hash?salt=SECRET, noop, or 0 for off"

/* anonymizer_parse - "smart", "paranoid?mask_symbol=#", "hash?salt=x&split=1", ... */

int anonymizer_parse(const char *spec, struct anonymizer **out, struct buf *why)
{
	const char *q = strchr(spec, '?');
	size_t namelen = q ? (size_t)(q - spec) : strlen(spec);
	char name[16];
	struct anonymizer *an;
	int have_salt = 0;

	*out = 0;
	while (namelen && isspace((unsigned char)spec[namelen - 1]))
		namelen--;
	while (namelen && isspace((unsigned char)*spec))
		spec++, namelen--;
	if (namelen >= sizeof(name)) {
		buf_puts(why, ANON_VALUES);
		return -1;
	}
	memcpy(name, spec, namelen);
	name[namelen] = 0;
	if (q == 0 && (namelen == 0 || strcmp(name, "0") == 0 || strcasecmp(name, "no") == 0 ||
		       strcasecmp(name, "false") == 0 || strcasecmp(name, "off") == 0))
		return 0;

	an = util_calloc(1, sizeof(*an));
	an->mask = util_strdup("*");
	an->prefix = util_strdup("");
	an->suffix = util_strdup("");
	an->case_sensitive = 1;
	if (strcasecmp(name, "smart") == 0 || strcasecmp(name, "default") == 0 ||
	    strcasecmp(name, "true") == 0 || strcasecmp(name, "yes") == 0 ||
	    strcasecmp(name, "y") == 0 || strcmp(name, "1") == 0 || strcasecmp(name, "on") == 0)
		an->kind = ANON_SMART;
	else if (strcasecmp(name, "paranoid") == 0)
		an->kind = ANON_PARANOID;
	else if (strcasecmp(name, "hash") == 0)
		an->kind = ANON_HASH;
	else if (strcasecmp(name, "noop") == 0)
		an->kind = ANON_NOOP;
	else {
		buf_puts(why, ANON_VALUES);
		goto fail;
	}

	/* Options: parse_qs(strict_parsing=True, keep_blank_values=True). */
	for (const char *p = q ? q + 1 : 0; p && *p != 0;) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		struct buf key = BUF_INIT, val = BUF_INIT;
		int bad = 0;

		if (eq == 0) {
			buf_puts(
			    why,
			    "options are name=value pairs joined by &, e.g. hash?salt=x&split=yes");
			goto fail;
		}
		url_decode(&key, p, (size_t)(eq - p));
		url_decode(&val, eq + 1, (size_t)(p + len - eq - 1));
		if ((an->kind == ANON_SMART || an->kind == ANON_PARANOID) &&
		    strcmp(buf_cstr(&key), "mask_symbol") == 0) {
			if (val.len) {
				free(an->mask);
				an->mask = util_strdup(buf_cstr(&val));
			}
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "salt") == 0) {
			buf_reset(&an->salt);
			buf_append(&an->salt, val.data ? val.data : "", val.len);
			have_salt = val.len > 0;
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "prefix") == 0) {
			free(an->prefix);
			an->prefix = util_strdup(buf_cstr(&val));
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "suffix") == 0) {
			free(an->suffix);
			an->suffix = util_strdup(buf_cstr(&val));
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "case_sensitive") == 0) {
			bad = (an->case_sensitive = truthy(buf_cstr(&val))) < 0;
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "short_sha") == 0) {
			bad = (an->short_sha = truthy(buf_cstr(&val))) < 0;
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "split") == 0) {
			bad = (an->split = truthy(buf_cstr(&val))) < 0;
		} else {
			buf_reset(why);
			buf_put_sanitized(why, buf_cstr(&key), key.len > 40 ? 40 : key.len);
			buf_puts(why, an->kind == ANON_HASH
					  ? ": unknown option (hash takes salt, prefix, suffix, "
					    "case_sensitive, short_sha, split)"
					  : ": unknown option (smart and paranoid take "
					    "mask_symbol; noop takes none)");
			bad = 2;
		}
		if (bad == 1)
			buf_printf(why, "%s: use yes or no", buf_cstr(&key));
		buf_free(&key);
		buf_free(&val);
		if (bad)
			goto fail;
		p += len;
		if (*p == '&') {
			p++;
			if (*p == 0) {
				buf_puts(why, "options end with &: remove it");
				goto fail;
			}
		}
	}
	if (an->kind == ANON_HASH && !have_salt) {
		buf_puts(why, "hash needs a salt: hash?salt=SECRET");
		goto fail;
	}
	*out = an;
	return 0;

fail:
	anonymizer_free(an);
	return -1;
}

/* u8_count - number of UTF-8 code points (bytes that are not continuation bytes) */

static size_t u8_count(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			c++;
	return c;
}

/* u8_head - byte length of the first k code points */

static size_t u8_head(const char *s, size_t n, size_t k)
{
	size_t i = 0;

	while (i < n && k > 0) {
		i++;
		while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80)
			i++;
		k--;
	}
	return i;
}

/* u8_tail - byte offset where the last k code points start */

static size_t u8_tail(const char *s, size_t n, size_t k)
{
	size_t i = n;

	while (i > 0 && k > 0) {
		i--;
		while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
			i--;
		k--;
	}
	return i;
}

static void put_masks(struct buf *out, const char *mask, size_t n)
{
	while (n--)
		buf_puts(out, mask);
}

/* mask_local - SmartFilter.mask_local / ParanoidFilter.mask_local */

static void mask_local(const struct anonymizer *an, struct buf *out, const char *s, size_t n)
{
	size_t k = 1;

	if (an->kind == ANON_PARANOID) {
		buf_puts(out, an->mask);
		return;
	}
	if (n > 0 && s[0] == '"' && s[n - 1] == '"')
		k = 2; /* keep the quotes: "m*t" */
	buf_append(out, s, u8_head(s, n, k));
	buf_puts(out, an->mask);
	buf_append(out, s + u8_tail(s, n, k), n - u8_tail(s, n, k));
}

/* mask_domain - SmartFilter.mask_domain / ParanoidFilter.mask_domain */

static void mask_domain(const struct anonymizer *an, struct buf *out, const char *s, size_t n)
{
	const char *dot;

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		const char *colon = memchr(s + 1, ':', n - 2);

		if (colon) {
			/* "[IPv6:" + masks for the rest but the "]" */
			buf_append(out, s, (size_t)(colon - s) + 1);
			if (an->kind == ANON_PARANOID)
				buf_puts(out, "*");
			else
				put_masks(out, an->mask,
					  u8_count(colon + 1, (size_t)(s + n - colon - 1)) - 1);
			buf_putc(out, ']');
		} else if (an->kind == ANON_PARANOID) {
			buf_puts(out, "[*]");
		} else {
			buf_printf(out, "[%s.%s.%s.%s]", an->mask, an->mask, an->mask, an->mask);
		}
		return;
	}
	dot = memrchr(s, '.', n);
	if (dot) {
		if (an->kind == ANON_PARANOID)
			buf_puts(out, an->mask);
		else
			put_masks(out, an->mask, u8_count(s, (size_t)(dot - s)));
		buf_append(out, dot, (size_t)(s + n - dot));
	} else if (an->kind == ANON_PARANOID) {
		buf_puts(out, an->mask);
	} else {
		put_masks(out, an->mask, u8_count(s, n));
	}
}

/* hmac_hex - HMAC-SHA256(salt, s) as lower-case hex, cut to 8 with short_sha */

static void hmac_hex(const struct anonymizer *an, struct buf *out, const char *s, size_t n)
{
	unsigned char md[32];
	unsigned int mdlen = sizeof(md);
	struct error err;

	/* Through tls.c, which loads libcrypto only when first needed: linking it here
	 * would cost every sendmail run ~1.3 ms of start-up. */
	error_clear(&err);
	if (tls_hmac_sha256(an->salt.data, an->salt.len, s, n, md, &err) != 0) {
		/* Never fall back to the clear address. */
		buf_puts(out, "(unhashable)");
		return;
	}
	if (an->short_sha)
		mdlen = 4;
	for (unsigned int i = 0; i < mdlen; i++)
		buf_printf(out, "%02x", md[i]);
}

/* anonymize_address - one address, masked per the anonymizer */

void anonymize_address(const struct anonymizer *an, struct buf *out, const char *addr, size_t len)
{
	const char *at = len ? memrchr(addr, '@', len) : 0;

	if (an == 0 || an->kind == ANON_NOOP || at == 0) {
		buf_append(out, addr, len);
		return;
	}
	if (an->kind == ANON_HASH) {
		struct buf a = BUF_INIT;

		buf_append(&a, addr, len);
		if (!an->case_sensitive)
			for (size_t i = 0; i < a.len; i++)
				a.data[i] = (char)tolower((unsigned char)a.data[i]);
		buf_puts(out, an->prefix);
		if (an->split) {
			size_t l = (size_t)(at - addr);

			hmac_hex(an, out, a.data, l);
			buf_putc(out, '@');
			hmac_hex(an, out, a.data + l + 1, a.len - l - 1);
		} else {
			hmac_hex(an, out, a.data, a.len);
		}
		buf_puts(out, an->suffix);
		buf_free(&a);
		return;
	}
	mask_local(an, out, addr, (size_t)(at - addr));
	buf_putc(out, '@');
	if (addr + len > at + 1)
		mask_domain(an, out, at + 1, (size_t)(addr + len - at - 1));
}

/* is_message_id - the token is the value of "message-id=" (Postfix cleanup lines) */

static int is_message_id(const char *text, size_t start)
{
	static const char tag[] = "message-id";
	size_t pos = start;

	while (pos > 0 && strchr("{<[\"'", text[pos - 1]))
		pos--;
	if (pos == 0 || text[pos - 1] != '=')
		return 0;
	pos--;
	return pos >= sizeof(tag) - 1 &&
	       strncasecmp(text + pos - (sizeof(tag) - 1), tag, sizeof(tag) - 1) == 0;
}

/* literal_domain - length of "[1.2.3.4]" or "[tag:...]" at s, 0 if none */

static size_t literal_domain(const char *s, size_t n)
{
	const char *close = memchr(s, ']', n);
	size_t i = 1, len;
	int dots = 0, digits = 0;

	if (close == 0)
		return 0;
	len = (size_t)(close - s) + 1;
	while (i < len - 1 && isalnum((unsigned char)s[i]))
		i++;
	if (i > 1 && s[i] == ':' && i + 1 < len - 1)
		return len; /* [IPv6:...] and other tagged literals */
	for (i = 1; i < len - 1; i++) {
		if (isdigit((unsigned char)s[i]))
			digits++;
		else if (s[i] == '.' && digits && dots < 3)
			dots++, digits = 0;
		else
			return 0;
	}
	return dots == 3 && digits ? len : 0;
}

/* anonymize_text - copy text, masking every address-shaped token */

void anonymize_text(const struct anonymizer *an, struct buf *out, const char *text, size_t len)
{
	size_t copied = 0;

	if (an == 0 || an->kind == ANON_NOOP) {
		buf_append(out, text, len);
		return;
	}
	for (size_t p = 0; p < len; p++) {
		size_t start, end;

		if (text[p] != '@')
			continue;
		/* local part */
		if (p > copied && text[p - 1] == '"') {
			size_t q = p - 1;

			while (q > copied && text[q - 1] != '"')
				q--;
			if (q == copied)
				continue;
			start = q - 1;
		} else {
			start = p;
			while (start > copied && !strchr(" \t\"[]<>(),;:=", text[start - 1]))
				start--;
			if (start == p)
				continue;
		}
		/* domain */
		if (p + 1 < len && text[p + 1] == '[') {
			size_t lit = literal_domain(text + p + 1, len - p - 1);

			if (lit == 0)
				continue;
			end = p + 1 + lit;
		} else {
			end = p + 1;
			while (end < len && !strchr(" \t{}():;>,", text[end]))
				end++;
			if (end == p + 1)
				continue;
		}
		if (is_message_id(text, start)) {
			p = end - 1;
			continue;
		}
		buf_append(out, text + copied, start - copied);
		anonymize_address(an, out, text + start, end - start);
		copied = end;
		p = end - 1;
	}
	buf_append(out, text + copied, len - copied);
}

/* ---------------------------------------------------------------- */
/* JSON                                                             */
/* ---------------------------------------------------------------- */

/* utf8_seq - length of the valid UTF-8 sequence at s (RFC 3629), 0 if invalid */

static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* log_json_string - s as a JSON string literal */

void log_json_string(struct buf *out, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	buf_putc(out, '"');
	for (size_t i = 0; i < len;) {
		unsigned char c = u[i];
		size_t n;

		if (c == '"' || c == '\\') {
			buf_putc(out, '\\');
			buf_putc(out, c);
			i++;
		} else if (c == '\n') {
			buf_puts(out, "\\n"), i++;
		} else if (c == '\r') {
			buf_puts(out, "\\r"), i++;
		} else if (c == '\t') {
			buf_puts(out, "\\t"), i++;
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(out, "\\u%04x", c), i++;
		} else if ((n = utf8_seq(u + i, len - i)) == 0) {
			buf_puts(out, "\\ufffd"), i++;
		} else {
			buf_append(out, s + i, n);
			i += n;
		}
	}
	buf_putc(out, '"');
}

static void json_string_or_null(struct buf *out, const char *s)
{
	if (s)
		log_json_string(out, s, strlen(s));
	else
		buf_puts(out, "null");
}

/* ---------------------------------------------------------------- */
/* Targets and state                                                */
/* ---------------------------------------------------------------- */

enum target_kind { TARGET_FD, TARGET_FILE, TARGET_SYSLOG };

struct target {
	enum target_kind kind;
	int fd;
};

#define MAX_TARGETS 8

static struct {
	enum log_level level;
	enum log_format format;
	struct target targets[MAX_TARGETS];
	size_t ntargets;
	struct anonymizer *an;
	int syslog_open;
	void (*clock)(struct timespec *ts);
	char host[256];			/* JSON "host": the pod name in Kubernetes */
} L = {LOG_LEVEL_INFO, LOG_FORMAT_PLAIN, {{TARGET_FD, 2}}, 1, 0, 0, 0, ""};

static const char *level_name[] = {"debug", "info", "warning", "error"};

/* log_set_clock - inject a clock (tests); NULL = real time */

void log_set_clock(void (*now)(struct timespec *ts))
{
	L.clock = now;
}

/* log_close - close files and syslog; back to stderr, plain, info */

void log_close(void)
{
	for (size_t i = 0; i < L.ntargets; i++)
		if (L.targets[i].kind == TARGET_FILE)
			close(L.targets[i].fd);
	if (L.syslog_open)
		closelog();
	anonymizer_free(L.an);
	L.an = 0;
	L.syslog_open = 0;
	L.level = LOG_LEVEL_INFO;
	L.format = LOG_FORMAT_PLAIN;
	L.targets[0].kind = TARGET_FD;
	L.targets[0].fd = 2;
	L.ntargets = 1;
}

static void add_target(enum target_kind kind, int fd)
{
	for (size_t i = 0; i < L.ntargets; i++)
		if (L.targets[i].kind == kind && (kind == TARGET_SYSLOG || L.targets[i].fd == fd))
			return;
	if (L.ntargets == MAX_TARGETS) {
		if (kind == TARGET_FILE)
			close(fd);
		return;
	}
	L.targets[L.ntargets].kind = kind;
	L.targets[L.ntargets].fd = fd;
	L.ntargets++;
}

/* log_setup - open the targets of [log] target; level, format, anonymizer */

void log_setup(const struct config *cfg)
{
	const char *p = cfg->log_target ? cfg->log_target : "stderr";
	struct buf why = BUF_INIT;
	struct buf failed = BUF_INIT;

	log_close();
	L.ntargets = 0;
	L.level = cfg->log_level;
	L.format = cfg->log_format;
	if (gethostname(L.host, sizeof(L.host) - 1) != 0)
		L.host[0] = 0;
	L.host[sizeof(L.host) - 1] = 0;
	if (cfg->log_anonymize && anonymizer_parse(cfg->log_anonymize, &L.an, &why) != 0)
		L.an = 0; /* config.c has validated it; be safe anyway */
	for (;;) {
		size_t n;
		const char *item = util_next_item(&p, &n);
		char *word;

		if (item == 0)
			break;
		word = util_strndup(item, n);
		if (strcmp(word, "stderr") == 0) {
			add_target(TARGET_FD, 2);
		} else if (strcmp(word, "stdout") == 0) {
			add_target(TARGET_FD, 1);
		} else if (strcmp(word, "syslog") == 0) {
			if (!L.syslog_open)
				openlog("relayshim", LOG_PID, LOG_MAIL);
			L.syslog_open = 1;
			add_target(TARGET_SYSLOG, -1);
		} else if (strcmp(word, "none") == 0) {
			/* nothing */
		} else {
			/* No stat, no seek: /proc/1/fd/1 may be a pipe or a tty. */
			int fd =
			    open(word, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

			if (fd >= 0) {
				add_target(TARGET_FILE, fd);
			} else {
				buf_printf(&failed, "%s%s: %s", failed.len ? "; " : "", word,
					   strerror(errno));
				add_target(TARGET_FD, 2);
			}
		}
		free(word);
	}
	buf_free(&why);
	if (failed.len)
		log_msg(LOG_LEVEL_WARNING, "cannot open log file %s; logging to stderr instead",
			failed.data);
	buf_free(&failed);
}

/* timestamp - RFC 3339 UTC with milliseconds */

static void timestamp(struct buf *out)
{
	struct timespec ts;
	struct tm tm;
	char tmp[32];

	if (L.clock)
		L.clock(&ts);
	else
		clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
	buf_printf(out, "%s.%03ldZ", tmp, ts.tv_nsec / 1000000);
}

/* emit - hand one finished line to every target */

static void emit(enum log_level level, const struct buf *plain, const struct buf *json,
		 int skip_stderr)
{
	static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
	struct buf line = BUF_INIT;
	const struct buf *body = L.format == LOG_FORMAT_JSON ? json : plain;

	for (size_t i = 0; i < L.ntargets; i++) {
		const struct target *t = &L.targets[i];

		if (t->kind == TARGET_SYSLOG) {
			syslog(prio[level], "%s", body->data);
			continue;
		}
		if (skip_stderr && t->kind == TARGET_FD && t->fd == 2)
			continue;
		buf_reset(&line);
		if (L.format == LOG_FORMAT_PLAIN) {
			if (t->kind == TARGET_FILE) {
				timestamp(&line);
				buf_putc(&line, ' ');
			}
			buf_printf(&line, "relayshim[%ld]: ", (long)getpid());
		}
		buf_append(&line, body->data, body->len);
		buf_putc(&line, '\n');
		/* Errors are ignored: logging never fails the caller. */
		(void)util_write_all(t->fd, line.data, line.len);
	}
	buf_free(&line);
}

/* json_open - '{"time":"...","level":"...","host":"...","uid":N' */

static void json_open(struct buf *j, enum log_level level, unsigned long uid)
{
	buf_puts(j, "{\"time\":\"");
	timestamp(j);
	buf_printf(j, "\",\"level\":\"%s\",\"host\":", level_name[level]);
	/* Aggregated logs of many pods must say which one wrote the line. */
	log_json_string(j, L.host, strlen(L.host));
	buf_printf(j, ",\"uid\":%lu", uid);
}

/* log_msg - one line at level */

void log_msg(enum log_level level, const char *fmt, ...)
{
	struct buf raw = BUF_INIT, anon = BUF_INIT, plain = BUF_INIT, json = BUF_INIT;
	va_list ap;

	if ((unsigned)level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	if (level < L.level || L.ntargets == 0)
		return;
	va_start(ap, fmt);
	buf_vprintf(&raw, fmt, ap);
	va_end(ap);
	anonymize_text(L.an, &anon, raw.data ? raw.data : "", raw.len);
	if (L.format == LOG_FORMAT_PLAIN) {
		if (level != LOG_LEVEL_INFO)
			buf_printf(&plain, "%s: ", level_name[level]);
		buf_put_sanitized(&plain, anon.data ? anon.data : "", anon.len);
	} else {
		json_open(&json, level, (unsigned long)getuid());
		buf_puts(&json, ",\"message\":");
		log_json_string(&json, anon.data ? anon.data : "", anon.len);
		buf_putc(&json, '}');
	}
	emit(level, &plain, &json, 0);
	buf_free(&raw);
	buf_free(&anon);
	buf_free(&plain);
	buf_free(&json);
}

/* delay_value - finite, non-negative seconds */

static double delay_value(double d)
{
	return isfinite(d) && d > 0 ? d : 0;
}

/* log_delivery - the one line per message */

void log_delivery(const struct log_record *rec)
{
	struct buf plain = BUF_INIT, json = BUF_INIT, a = BUF_INIT;
	enum log_level level =
	    (unsigned)rec->level > LOG_LEVEL_ERROR ? LOG_LEVEL_ERROR : rec->level;
	const char *from = rec->from ? rec->from : "";
	size_t nto = rec->to ? rec->to->n : 0;

	if (level < L.level || L.ntargets == 0)
		return;
	if (L.format == LOG_FORMAT_PLAIN) {
		buf_put_sanitized(&plain, rec->queue_id ? rec->queue_id : "NOQUEUE",
			      strlen(rec->queue_id ? rec->queue_id : "NOQUEUE"));
		buf_puts(&plain, ": from=<");
		anonymize_address(L.an, &a, from, strlen(from));
		buf_put_sanitized(&plain, a.data ? a.data : "", a.len);
		buf_puts(&plain, ">, to=");
		for (size_t i = 0; i < nto; i++) {
			buf_reset(&a);
			anonymize_address(L.an, &a, rec->to->v[i], strlen(rec->to->v[i]));
			buf_puts(&plain, i ? ",<" : "<");
			buf_put_sanitized(&plain, a.data ? a.data : "", a.len);
			buf_putc(&plain, '>');
		}
		buf_puts(&plain, ", relay=");
		buf_put_sanitized(&plain, rec->relay ? rec->relay : "none",
			      strlen(rec->relay ? rec->relay : "none"));
		buf_printf(&plain, ", delay=%.2f, size=%llu", delay_value(rec->delay), rec->size);
		if (rec->dsn) {
			buf_puts(&plain, ", dsn=");
			buf_put_sanitized(&plain, rec->dsn, strlen(rec->dsn));
		}
		buf_puts(&plain, ", status=");
		buf_put_sanitized(&plain, rec->status ? rec->status : "unknown",
			      strlen(rec->status ? rec->status : "unknown"));
		if (rec->text && *rec->text) {
			buf_reset(&a);
			anonymize_text(L.an, &a, rec->text, strlen(rec->text));
			buf_puts(&plain, " (");
			buf_put_sanitized(&plain, a.data, a.len);
			buf_putc(&plain, ')');
		}
	} else {
		json_open(&json, level, rec->has_uid ? rec->uid : (unsigned long)getuid());
		buf_puts(&json, ",\"queue_id\":");
		json_string_or_null(&json, rec->queue_id);
		buf_puts(&json, ",\"from\":");
		anonymize_address(L.an, &a, from, strlen(from));
		log_json_string(&json, a.data ? a.data : "", a.len);
		buf_puts(&json, ",\"to\":[");
		for (size_t i = 0; i < nto; i++) {
			buf_reset(&a);
			anonymize_address(L.an, &a, rec->to->v[i], strlen(rec->to->v[i]));
			if (i)
				buf_putc(&json, ',');
			log_json_string(&json, a.data ? a.data : "", a.len);
		}
		buf_puts(&json, "],\"relay\":");
		json_string_or_null(&json, rec->relay);
		buf_puts(&json, ",\"status\":");
		json_string_or_null(&json, rec->status);
		buf_puts(&json, ",\"dsn\":");
		json_string_or_null(&json, rec->dsn);
		buf_printf(&json,
			   ",\"delay\":%.3f,\"size\":%llu,\"message\":", delay_value(rec->delay),
			   rec->size);
		buf_reset(&a);
		if (rec->text)
			anonymize_text(L.an, &a, rec->text, strlen(rec->text));
		log_json_string(&json, a.data ? a.data : "", a.len);
		buf_putc(&json, '}');
	}
	emit(level, &plain, &json, rec->skip_stderr);
	buf_free(&plain);
	buf_free(&json);
	buf_free(&a);
}
