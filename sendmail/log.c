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
 *	Addresses are masked by anonymize.c (semantics there).
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

#include "anonymize.h"
#include "buf.h"
#include "log.h"
#include "util.h"

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
	char host[256]; /* JSON "host": the pod name in Kubernetes */
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
			/* No stat, no seek: /proc/1/fd/1 may be a pipe or a tty.
			 * O_NONBLOCK: opening a FIFO (a container's log relay)
			 * that has no reader would block the delivery forever;
			 * it fails with ENXIO instead. Writes block as usual. */
			int fd = open(
			    word, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
			    0640);

			if (fd >= 0) {
				int fl = fcntl(fd, F_GETFL);

				if (fl != -1)
					(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
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
