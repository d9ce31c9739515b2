/*++
 * NAME
 *	smtpd 3
 * SUMMARY
 *	the -bs ESMTP server and the -bd loopback daemon
 * SYNOPSIS
 *	#include "smtpd.h"
 * DESCRIPTION
 *	See smtpd.h for the contract and the protocol decisions. The clients
 *	this must serve, and what each of them does: Symfony/Laravel/Nextcloud run "sendmail -bs",
 *say HELO, send several transactions without RSET and NOOP after idling; Python smtplib and Django
 *use lower-case verbs and "size="; nodemailer and swaks --pipeline send MAIL, RCPT and DATA in one
 *write, and nodemailer closes after the final 250 without QUIT; curl sends an odd EHLO argument,
 *bare LFs and no headers.
 *
 *	Input is read in large chunks into one buffer and cut into lines
 *	there, so pipelined commands cost one read(2). Replies collect in an
 *	output buffer that is written only before we would block for input
 *	(or when it grows large), so a pipelined MAIL/RCPT/DATA group gets
 *	its replies in one write - the RFC 2920 server side.
 * DIAGNOSTICS
 *	See smtpd.h. Session ends are logged at debug level, I/O failures
 *	at warning level by the caller.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"
#include "input.h"
#include "log.h"
#include "smtpd.h"

#define READ_CHUNK (64 * 1024)
#define OUT_FLUSH_BYTES (16 * 1024)
#define OUT_WRITE_CHUNK 4096
#define DEFAULT_INTERCEPT "127.0.0.1:25 [::1]:25"

/* Why a session ended. */
enum smtpd_end {
	END_NONE,
	END_QUIT,
	END_EOF,
	END_TIMEOUT,
	END_ERRORS,
	END_JUNK,
	END_IOERR,
};

struct smtpd {
	int in_fd;
	int out_fd;
	const struct config *cfg;
	const struct smtpd_limits *lim;
	const struct smtpd_ops *ops;
	void *ctx;
	struct error *err;

	struct buf in; /* unread client bytes start at in_pos */
	size_t in_pos;
	int discarding; /* inside an over-long line */
	int discard_cr; /* the discarded part ended in CR */
	int line_crlf;	/* the last line from in_line() ended in CRLF, not a bare LF */
	struct buf out; /* replies not yet written */
	struct buf cmd; /* the current command line, NUL-terminated */
	enum smtpd_end end;

	char host[256]; /* our name in the greeting and EHLO */
	int dsn;	/* DSN advertised in the last EHLO */
	int dsn_early;	/* has_dsn's answer, asked right after the greeting; -1 none */
	int authenticated;
	unsigned errors;
	unsigned junk;		    /* commands since the greeting or the end of the last DATA */
	unsigned long long idle_ms; /* time spent waiting for the client since then */
	int in_data;		    /* reading message data: every byte is progress */

	int in_mail; /* MAIL accepted, transaction open */
	struct envelope env;
};

/* smtpd_limits_default - the documented bounds */

void smtpd_limits_default(struct smtpd_limits *lim)
{
	lim->line_max = SMTPD_LINE_MAX;
	lim->data_line_max = SMTPD_DATA_LINE_MAX;
	lim->rcpt_max = SMTPD_RCPT_MAX;
	lim->errors_max = SMTPD_ERRORS_MAX;
	lim->idle_timeout_ms = SMTPD_IDLE_TIMEOUT * 1000;
	lim->daemon_children = SMTPD_DAEMON_CHILDREN;
	lim->daemon_client_children = SMTPD_DAEMON_CLIENT_CHILDREN;
	lim->junk_max = SMTPD_JUNK_MAX;
	lim->drain_ms = SMTPD_DRAIN_SECONDS * 1000;
}

/* ------------------------------------------------------------------ */
/* Pure parsing helpers (no I/O: unit tests and fuzzers call them).    */
/* ------------------------------------------------------------------ */

/* smtpd_parse_path - "FROM:<addr> params" or "TO:<addr> params" */

int smtpd_parse_path(const char *arg, const char *keyword, struct buf *addr, const char **params)
{
	size_t klen = strlen(keyword);
	const char *p;
	int quoted = 0;

	buf_reset(addr);
	if (strncasecmp(arg, keyword, klen) != 0)
		return -1;
	p = arg + klen;
	/* "MAIL FROM: <a>": broken clients put a space there; Postfix allows it. */
	while (*p == ' ')
		p++;
	if (*p != '<') {
		/* Unbracketed address, as old clients send it. */
		while (*p && *p != ' ')
			buf_putc(addr, *p++);
		if (addr->len == 0)
			return -1;
	} else {
		p++;
		/* RFC 5321 4.1.1.3: a source route "@a,@b:" must be accepted and ignored. */
		if (*p == '@') {
			const char *colon = strchr(p, ':');
			const char *close = strchr(p, '>');

			if (colon == 0 || (close != 0 && close < colon))
				return -1;
			p = colon + 1;
		}
		for (;; p++) {
			if (*p == 0)
				return -1;
			if (quoted) {
				if (*p == '\\' && p[1] != 0)
					buf_putc(addr, *p++);
				else if (*p == '"')
					quoted = 0;
			} else if (*p == '"') {
				quoted = 1;
			} else if (*p == '>') {
				break;
			} else if (*p == '<' || *p == ' ') {
				return -1;
			}
			buf_putc(addr, *p);
		}
		p++;
		if (*p != 0 && *p != ' ')
			return -1;
	}
	for (size_t i = 0; i < addr->len; i++) {
		unsigned char c = (unsigned char)addr->data[i];

		if (c < 0x20 || c == 0x7f)
			return -1;
	}
	while (*p == ' ')
		p++;
	*params = p;
	return 0;
}

/* smtpd_xtext_decode - RFC 3461 section 4 xtext */

int smtpd_xtext_decode(const char *in, size_t len, struct buf *out)
{
	buf_reset(out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '+') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = util_hex_value(in[i + 1]);
			lo = util_hex_value(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			/* A control byte in an ENVID could only be an attack on a log line. */
			if (c < 0x20 || c == 0x7f)
				return -1;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
		buf_putc(out, c);
	}
	return 0;
}

/* reply_code_ok - a 2xx, 4xx or 5xx code at the start of a reply line */

static int reply_code_ok(const char *p, size_t len)
{
	if (len < 3 || (p[0] != '2' && p[0] != '4' && p[0] != '5'))
		return 0;
	if (p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
		return 0;
	return len == 3 || p[3] == ' ' || p[3] == '-';
}

/* has_enhanced_code - "c.x.y " (RFC 3463) of class c at the start of text */

static int has_enhanced_code(const char *p, size_t len, char cls)
{
	size_t i = 0;

	if (len < 5 || p[0] != cls || p[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;

		while (i < len && p[i] >= '0' && p[i] <= '9' && i - start < 3)
			i++;
		if (i == start)
			return 0;
		if (part == 0) {
			if (i >= len || p[i] != '.')
				return 0;
			i++;
		}
	}
	return i == len || p[i] == ' ';
}

/* next_reply_line - the next non-empty line of a reply, CR and LF cut */

static int next_reply_line(const char **pos, const char *end, const char **line, size_t *len)
{
	while (*pos < end) {
		const char *start = *pos;
		const char *nl = memchr(start, '\n', (size_t)(end - start));
		const char *stop = nl ? nl : end;

		*pos = nl ? nl + 1 : end;
		while (stop > start && stop[-1] == '\r')
			stop--;
		if (stop > start) {
			*line = start;
			*len = (size_t)(stop - start);
			return 1;
		}
	}
	return 0;
}

/* smtpd_format_reply - a deliver() reply made well-formed for our client */

void smtpd_format_reply(const char *reply, size_t len, struct buf *out)
{
	const char *end = reply + len;
	const char *pos = reply;
	const char *line;
	const char *first = 0;
	size_t line_len, first_len = 0;
	char code[4];

	/* The first non-empty line decides the code; without one: never a 250. */
	if (next_reply_line(&pos, end, &first, &first_len) == 0 ||
	    !reply_code_ok(first, first_len)) {
		buf_puts(out,
			 "451 4.3.0 Error: the delivery gave no valid reply; try again later\r\n");
		return;
	}
	memcpy(code, first, 3);
	code[3] = 0;
	pos = reply;
	if (next_reply_line(&pos, end, &line, &line_len) == 0)
		util_panic("smtpd_format_reply: reply vanished");
	for (;;) {
		const char *next_line;
		size_t next_len;
		int more = next_reply_line(&pos, end, &next_line, &next_len);
		const char *text = line;
		size_t text_len = line_len;

		/* Strip the line's own code (any code: ours rules), keep the text. */
		if (reply_code_ok(line, line_len)) {
			text += 3;
			text_len -= 3;
			if (text_len > 0) {
				text++;
				text_len--;
			}
		}
		buf_printf(out, "%s%c", code, more ? '-' : ' ');
		if (!has_enhanced_code(text, text_len, code[0]))
			buf_printf(out, "%c.0.0%s", code[0], text_len ? " " : "");
		buf_put_sanitized(out, text, text_len);
		buf_puts(out, "\r\n");
		if (!more)
			break;
		line = next_line;
		line_len = next_len;
	}
}

/* ------------------------------------------------------------------ */
/* Client I/O: buffered replies, buffered line reader.                 */
/* ------------------------------------------------------------------ */

/* now_ms - monotonic milliseconds */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* made_progress - a message was carried: the idle budget starts again */

static void made_progress(struct smtpd *s)
{
	s->junk = 0;
	s->idle_ms = 0;
}

/* read_wait_ms - how long in_fill may wait for the client */

static int read_wait_ms(const struct smtpd *s)
{
	/*
	 * Inside DATA every byte counts (a large message over a slow link).
	 * Between messages the waits for the client add up from the greeting
	 * or the last DATA, whatever commands came in between: NOOP or RSET
	 * every minute must not hold a session - and its -bd slot - forever.
	 * Our own time (EHLO asking the relay, a delivery) is not counted.
	 */
	if (s->in_data)
		return (int)s->lim->idle_timeout_ms;
	if (s->idle_ms >= s->lim->idle_timeout_ms)
		return 0;
	return (int)(s->lim->idle_timeout_ms - s->idle_ms);
}

/* io_failed - classify a read/write failure: a vanished client is an EOF */

static void io_failed(struct smtpd *s, const char *what, int errnum)
{
	if (errnum == EPIPE || errnum == ECONNRESET) {
		s->end = END_EOF;
		return;
	}
	s->end = END_IOERR;
	error_set(s->err, EX_IOERR, "-bs session: cannot %s the client: %s", what,
		  strerror(errnum));
}

/* out_flush - write every pending reply */

static void out_flush(struct smtpd *s)
{
	size_t off = 0;

	while (off < s->out.len) {
		struct pollfd pfd = {.fd = s->out_fd, .events = POLLOUT};
		size_t chunk = s->out.len - off;
		ssize_t n;

		/*
		 * A client that sends commands but never reads the replies would
		 * block a plain write() forever once the pipe or socket buffer is
		 * full. Wait for room with the idle timeout instead, and write at
		 * most OUT_WRITE_CHUNK: after POLLOUT that much never blocks.
		 */
		do
			n = poll(&pfd, 1, (int)s->lim->idle_timeout_ms);
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			s->end = END_TIMEOUT;
			break;
		}
		if (chunk > OUT_WRITE_CHUNK)
			chunk = OUT_WRITE_CHUNK;
		n = write(s->out_fd, s->out.data + off, chunk);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		io_failed(s, "write to", errno);
		break;
	}
	buf_reset(&s->out);
}

/* reply - queue one reply line (CRLF added) */

static void reply(struct smtpd *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply(struct smtpd *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_puts(&s->out, "\r\n");
	if (s->out.len >= OUT_FLUSH_BYTES)
		out_flush(s);
}

/* reply_error - queue an error reply and count it; too many end the session */

static void reply_error(struct smtpd *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reply_error(struct smtpd *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_puts(&s->out, "\r\n");
	/* Postfix smtpd_hard_error_limit: a client that only errs is stuck or hostile. */
	if (++s->errors >= s->lim->errors_max && s->end == END_NONE) {
		reply(s, "421 4.7.0 %s Error: too many errors", s->host);
		s->end = END_ERRORS;
	}
}

/* count_junk - one more command that carries no mail; too many end the session */

static void count_junk(struct smtpd *s)
{
	/* Postfix smtpd_junk_command_limit: NOOP, RSET, VRFY... loops hold a slot for nothing. */
	if (s->lim->junk_max && ++s->junk > s->lim->junk_max && s->end == END_NONE) {
		reply(s, "421 4.7.0 %s Error: too many commands without a message", s->host);
		s->end = END_JUNK;
	}
}

/* in_fill - read more client bytes; flushes replies before blocking */

static int in_fill(struct smtpd *s)
{
	struct pollfd pfd = {.fd = s->in_fd, .events = POLLIN};
	long long waited;
	ssize_t n;
	int ready;

	if (s->out.len > 0)
		out_flush(s);
	if (s->end != END_NONE && s->end != END_QUIT)
		return -1;
	/* Keep the unread tail at the front so the buffer does not creep. */
	if (s->in_pos > 0) {
		buf_consume(&s->in, s->in_pos);
		s->in_pos = 0;
	}
	waited = now_ms();
	do
		ready = poll(&pfd, 1, read_wait_ms(s));
	while (ready < 0 && errno == EINTR);
	if (!s->in_data)
		s->idle_ms += (unsigned long long)(now_ms() - waited);
	if (ready == 0) {
		/* RFC 5321 4.5.3.2.7: the server may close an idle session, with 421. */
		reply(s, "421 4.4.2 %s Error: timeout exceeded", s->host);
		s->end = END_TIMEOUT;
		out_flush(s);
		return -1;
	}
	buf_reserve(&s->in, READ_CHUNK);
	do
		n = read(s->in_fd, s->in.data + s->in.len, READ_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		io_failed(s, "read from", errno);
		return -1;
	}
	if (n == 0) {
		s->end = END_EOF;
		return -1;
	}
	s->in.len += (size_t)n;
	s->in.data[s->in.len] = 0;
	return 0;
}

/* in_line - the next line without its LF and the one CR before it */

static int in_line(struct smtpd *s, size_t max, const char **line, size_t *len, int *too_long)
{
	*too_long = 0;
	for (;;) {
		const char *start = s->in.data ? s->in.data + s->in_pos : ""; /* NULL + 0 is UB */
		size_t avail = s->in.len - s->in_pos;
		const char *nl = avail ? memchr(start, '\n', avail) : 0;

		if (nl != 0) {
			size_t n = (size_t)(nl - start);

			s->in_pos += n + 1;
			/* An over-long line's CR may have gone with the discarded part. */
			s->line_crlf =
			    n > 0 ? start[n - 1] == '\r' : s->discarding && s->discard_cr;
			if (n > 0 && start[n - 1] == '\r')
				n--;
			if (s->discarding || n > max) {
				s->discarding = 0;
				*too_long = 1;
				*line = "";
				*len = 0;
				return 1;
			}
			*line = start;
			*len = n;
			return 1;
		}
		/* No LF within the limit: drop what we have, remember to reject the line. */
		if (avail > max + 1) {
			s->in_pos = s->in.len;
			s->discarding = 1;
			s->discard_cr = start[avail - 1] == '\r';
		}
		if (in_fill(s) < 0)
			return 0;
	}
}

/* ------------------------------------------------------------------ */
/* Commands.                                                           */
/* ------------------------------------------------------------------ */

/* txn_reset - forget the current transaction */

static void txn_reset(struct smtpd *s)
{
	envelope_free(&s->env);
	s->in_mail = 0;
}

/* cmd_helo - HELO: no extensions */

static void cmd_helo(struct smtpd *s, char *arg)
{
	(void)arg; /* any argument, or none: see smtpd.h */
	txn_reset(s);
	reply(s, "250 %s", s->host);
}

/* cmd_ehlo - EHLO: the extensions we implement */

static void cmd_ehlo(struct smtpd *s, char *arg)
{
	const char *ext[12];
	char size[48];
	size_t n = 0;

	(void)arg; /* curl sends its upload file name here */
	txn_reset(s);
	if (s->dsn_early >= 0)
		s->dsn = s->dsn_early; /* asked after the greeting (smtpd_serve_limits) */
	else
		s->dsn = s->ops->has_dsn ? s->ops->has_dsn(s->ctx) != 0 : 0;
	s->dsn_early = -1;
	ext[n++] = s->host;
	ext[n++] = "PIPELINING";
	if (s->cfg->max_size) {
		snprintf(size, sizeof(size), "SIZE %llu", s->cfg->max_size);
		ext[n++] = size;
	} else {
		ext[n++] = "SIZE";
	}
	ext[n++] = "8BITMIME";
	ext[n++] = "SMTPUTF8";
	ext[n++] = "ENHANCEDSTATUSCODES";
	if (s->dsn)
		ext[n++] = "DSN";
	if (s->cfg->smtpd_auth == SMTPD_AUTH_ACCEPT) {
		ext[n++] = "AUTH PLAIN LOGIN";
		/* Outlook-era clients look for the pre-RFC 2554 form. */
		ext[n++] = "AUTH=PLAIN LOGIN";
	}
	for (size_t i = 0; i < n; i++)
		reply(s, "250%c%s", i + 1 < n ? '-' : ' ', ext[i]);
}

/* notify_ok - NEVER, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1) */

static int notify_ok(const char *v)
{
	const char *p = v;

	if (strcasecmp(v, "NEVER") == 0)
		return 1;
	while (*p) {
		size_t n = strcspn(p, ",");

		if (!((n == 7 && strncasecmp(p, "SUCCESS", 7) == 0) ||
		      (n == 7 && strncasecmp(p, "FAILURE", 7) == 0) ||
		      (n == 5 && strncasecmp(p, "DELAY", 5) == 0)))
			return 0;
		p += n;
		if (*p == ',')
			p++;
	}
	return p != v;
}

/* lower_dup - a lower-case copy ("FAILURE,DELAY" -> "failure,delay", the -N form) */

static char *lower_dup(const char *v)
{
	char *copy = util_strdup(v);

	for (char *p = copy; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return copy;
}

/* any_8bit - a byte >= 0x80 in s */

static int any_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* cmd_mail - MAIL FROM:<sender> [SIZE=n] [BODY=..] [SMTPUTF8] [RET=..] [ENVID=..] [AUTH=..] */

static void cmd_mail(struct smtpd *s, char *arg)
{
	struct buf addr = BUF_INIT;
	struct buf value = BUF_INIT;
	const char *params;
	char *save = 0;
	char *tok;
	char *ret = 0, *envid = 0;
	int smtputf8 = 0;

	if (s->in_mail) {
		reply_error(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (smtpd_parse_path(arg, "FROM:", &addr, &params) < 0) {
		reply_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		goto out;
	}
	for (tok = strtok_r((char *)params, " ", &save); tok; tok = strtok_r(0, " ", &save)) {
		char *eq = strchr(tok, '=');
		const char *val = eq ? eq + 1 : "";

		if (eq)
			*eq = 0;
		if (strcasecmp(tok, "SIZE") == 0) {
			char *end;
			unsigned long long size;

			errno = 0;
			size = strtoull(val, &end, 10);
			if (*val < '0' || *val > '9' || *end != 0 || errno) {
				reply_error(s, "501 5.5.4 Bad SIZE parameter syntax");
				goto out;
			}
			if (s->cfg->max_size && size > s->cfg->max_size) {
				reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
				goto out;
			}
		} else if (strcasecmp(tok, "BODY") == 0) {
			/* The message is 8-bit clean either way; input.c notes has_8bit. */
			if (strcasecmp(val, "7BIT") != 0 && strcasecmp(val, "8BITMIME") != 0) {
				reply_error(s, "501 5.5.4 Bad BODY parameter syntax");
				goto out;
			}
		} else if (strcasecmp(tok, "SMTPUTF8") == 0 && eq == 0) {
			smtputf8 = 1;
		} else if (strcasecmp(tok, "RET") == 0) {
			if (strcasecmp(val, "FULL") != 0 && strcasecmp(val, "HDRS") != 0) {
				reply_error(s, "501 5.5.4 Bad RET parameter syntax");
				goto out;
			}
			free(ret);
			ret = lower_dup(val);
		} else if (strcasecmp(tok, "ENVID") == 0) {
			if (smtpd_xtext_decode(val, strlen(val), &value) < 0 || value.len == 0 ||
			    value.len > 100) {
				reply_error(s, "501 5.5.4 Bad ENVID parameter syntax");
				goto out;
			}
			free(envid);
			envid = util_strdup(buf_cstr(&value));
		} else if (strcasecmp(tok, "AUTH") == 0) {
			/* RFC 4954 5: the submitter's identity; we trust nobody's, ignore it. */
		} else {
			reply_error(s, "555 5.5.4 Unsupported option: %.100s", tok);
			goto out;
		}
	}
	s->env.sender = buf_steal(&addr);
	s->env.dsn_ret = ret;
	s->env.dsn_envid = envid;
	ret = envid = 0;
	s->env.smtputf8 = smtputf8 || any_8bit(s->env.sender);
	s->in_mail = 1;
	reply(s, "250 2.1.0 Ok");
out:
	free(ret);
	free(envid);
	buf_free(&addr);
	buf_free(&value);
}

/* cmd_rcpt - RCPT TO:<recipient> [NOTIFY=..] [ORCPT=..] */

static void cmd_rcpt(struct smtpd *s, char *arg)
{
	struct buf addr = BUF_INIT;
	const char *params;
	const char *notify = 0;
	char *save = 0;
	char *tok;

	if (!s->in_mail) {
		reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (smtpd_parse_path(arg, "TO:", &addr, &params) < 0) {
		reply_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		goto out;
	}
	if (addr.len == 0) {
		reply_error(s, "501 5.1.3 Bad recipient address syntax");
		goto out;
	}
	if (s->env.rcpts.n >= s->lim->rcpt_max) {
		/* Not a client error: RFC 5321 4.5.3.1.10 expects the rest in a new transaction. */
		reply(s, "452 4.5.3 Error: too many recipients (at most %zu per message)",
		      s->lim->rcpt_max);
		count_junk(s);
		goto out;
	}
	for (tok = strtok_r((char *)params, " ", &save); tok; tok = strtok_r(0, " ", &save)) {
		char *eq = strchr(tok, '=');
		const char *val = eq ? eq + 1 : "";

		if (eq)
			*eq = 0;
		if (strcasecmp(tok, "NOTIFY") == 0) {
			if (!notify_ok(val)) {
				reply_error(s, "501 5.5.4 Bad NOTIFY parameter syntax");
				goto out;
			}
			notify = val;
		} else if (strcasecmp(tok, "ORCPT") == 0) {
			/* Dropped: struct envelope has no per-recipient ORCPT (smtpd.h). */
		} else {
			reply_error(s, "555 5.5.4 Unsupported option: %.100s", tok);
			goto out;
		}
	}
	/* One NOTIFY per message (struct envelope): the first RCPT that names one sets it. */
	if (notify && s->env.dsn_notify == 0)
		s->env.dsn_notify = lower_dup(notify);
	if (any_8bit(buf_cstr(&addr)))
		s->env.smtputf8 = 1;
	strlist_add_nodup(&s->env.rcpts, buf_steal(&addr));
	reply(s, "250 2.1.5 Ok");
out:
	buf_free(&addr);
}

/* read_data - the message after 354, up to the line "."; then deliver it */

static void read_data(struct smtpd *s)
{
	struct message msg;
	struct msgbuild mb;
	struct error build_err;
	struct buf answer = BUF_INIT;
	unsigned long long size = 0;
	int too_big = 0, too_long = 0, failed = 0;
	const char *line;
	size_t len;
	int long_line;
	int prev_crlf = s->line_crlf;
	size_t start;
	int rc;

	message_init(&msg);
	msgbuild_init(&mb, &msg);
	mb.keep_from_line = 1;
	error_clear(&build_err);
	s->in_data = 1;
	for (;;) {
		if (!in_line(s, s->lim->data_line_max, &line, &len, &long_line)) {
			/* The client left (or idled out) before the final dot: deliver nothing. */
			s->in_data = 0;
			msgbuild_abort(&mb);
			txn_reset(s);
			return;
		}
		if (long_line) {
			too_long = 1;
			prev_crlf = s->line_crlf;
			continue;
		}
		/*
		 * Only <CR><LF>.<CR><LF> ends the data (see smtpd.h on smuggling):
		 * prev_crlf is the ending of the line before, the DATA command's for
		 * the first line. Any other "." line is content and stays a dot,
		 * which the SMTP client stuffs again on the way to the relay.
		 */
		if (len == 1 && line[0] == '.') {
			if (prev_crlf && s->line_crlf)
				break;
		} else if (len > 0 && line[0] == '.') {
			line++;
			len--;
		}
		prev_crlf = s->line_crlf;
		size += len + 2;
		if (s->cfg->max_size && size > s->cfg->max_size)
			too_big = 1;
		/* Past a failure keep reading to the dot, but store nothing more. */
		if (too_big || too_long || failed)
			continue;
		if (msgbuild_line(&mb, line, len, &build_err) != 0)
			failed = 1;
	}
	s->in_data = 0;
	if (!too_big && !too_long && !failed && msgbuild_finish(&mb, &build_err) != 0)
		failed = 1;
	if (too_big || too_long || failed) {
		msgbuild_abort(&mb);
		if (too_big)
			reply(s, "552 5.3.4 Error: message file too big (limit %llu bytes)",
			      s->cfg->max_size);
		else if (too_long)
			reply(s, "554 5.6.0 Error: a message line is longer than %zu bytes",
			      s->lim->data_line_max);
		else {
			log_msg(LOG_LEVEL_WARNING, "-bs: %s", build_err.text);
			reply(
			    s,
			    "451 4.3.0 Error: local problem storing the message; try again later");
		}
		made_progress(s);
		txn_reset(s);
		return;
	}
	rc = s->ops->deliver(s->ctx, &s->env, &msg, &answer);
	start = s->out.len;
	/* Only a 250 from a deliver that succeeded may tell the client the mail is safe. */
	if (rc != 0 && (answer.len == 0 || answer.data[0] == '2')) {
		buf_reset(&answer);
		buf_puts(&answer, "451 4.3.0 Error: delivery failed; try again later");
	}
	smtpd_format_reply(answer.data ? answer.data : "", answer.len, &s->out);
	log_msg(LOG_LEVEL_DEBUG, "-bs: message from <%s> for %zu recipient(s): %.3s", s->env.sender,
		s->env.rcpts.n, s->out.data + start);
	buf_free(&answer);
	message_free(&msg);
	/* After the delivery: a slow relay must not eat the client's budget. */
	made_progress(s);
	txn_reset(s);
	if (s->out.len >= OUT_FLUSH_BYTES)
		out_flush(s);
}

/* cmd_data - DATA: 354, then the message */

static void cmd_data(struct smtpd *s, char *arg)
{
	if (*arg) {
		reply_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_mail) {
		reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->env.rcpts.n == 0) {
		reply_error(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	read_data(s);
}

/* cmd_rset - RSET: abort the transaction */

static void cmd_rset(struct smtpd *s, char *arg)
{
	(void)arg;
	txn_reset(s);
	reply(s, "250 2.0.0 Ok");
}

/* cmd_noop - NOOP: Symfony's keep-alive after 100 s idle */

static void cmd_noop(struct smtpd *s, char *arg)
{
	(void)arg;
	reply(s, "250 2.0.0 Ok");
}

/* cmd_vrfy - VRFY: we cannot know, RFC 5321 3.5.3 says 252 */

static void cmd_vrfy(struct smtpd *s, char *arg)
{
	if (*arg == 0) {
		reply_error(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

/* cmd_help - HELP */

static void cmd_help(struct smtpd *s, char *arg)
{
	(void)arg;
	reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT%s",
	      s->cfg->smtpd_auth == SMTPD_AUTH_ACCEPT ? " AUTH" : "");
}

/* cmd_quit - QUIT */

static void cmd_quit(struct smtpd *s, char *arg)
{
	(void)arg;
	reply(s, "221 2.0.0 Bye");
	s->end = END_QUIT;
}

/* cmd_not_implemented - STARTTLS (see smtpd.h), EXPN, ETRN, BDAT, TURN */

static void cmd_not_implemented(struct smtpd *s, char *arg)
{
	(void)arg;
	reply_error(s, "502 5.5.1 Error: command not implemented");
}

/* base64_ok - a syntactically valid base64 string ("=" alone: empty) */

static int base64_ok(const char *p, size_t len)
{
	size_t pad = 0;

	if (len == 1 && p[0] == '=')
		return 1;
	if (len % 4 != 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return 0;
	}
	return pad <= 2;
}

/* auth_step - send a 334 challenge, read and check the answer; 0 ok, -1 failed */

static int auth_step(struct smtpd *s, const char *challenge)
{
	const char *line;
	size_t len;
	int too_long;

	reply(s, "334 %s", challenge);
	if (!in_line(s, s->lim->line_max, &line, &len, &too_long))
		return -1;
	if (too_long) {
		reply_error(s, "500 5.5.6 Authentication exchange line is too long");
		return -1;
	}
	if (len == 1 && line[0] == '*') {
		reply_error(s, "501 5.7.0 Authentication aborted");
		return -1;
	}
	if (!base64_ok(line, len)) {
		reply_error(s, "501 5.5.2 Cannot decode response");
		return -1;
	}
	return 0;
}

/* cmd_auth - AUTH PLAIN / LOGIN: any credentials are good ([smtpd] auth = accept) */

static void cmd_auth(struct smtpd *s, char *arg)
{
	char *mech = arg;
	char *initial = 0;
	char *sp;

	if (s->cfg->smtpd_auth != SMTPD_AUTH_ACCEPT) {
		reply_error(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (s->authenticated) {
		reply_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_mail) {
		reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (*mech == 0) {
		reply_error(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	if ((sp = strchr(mech, ' ')) != 0) {
		*sp = 0;
		initial = sp + 1;
		while (*initial == ' ')
			initial++;
		if (*initial == 0)
			initial = 0;
	}
	if (initial && !base64_ok(initial, strlen(initial))) {
		reply_error(s, "501 5.5.2 Cannot decode response");
		return;
	}
	if (strcasecmp(mech, "PLAIN") == 0) {
		/* RFC 4616: the initial response, or an empty challenge for it. */
		if (initial == 0 && auth_step(s, "") < 0)
			return;
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		/* "Username:" / "Password:"; some clients send the user name at once. */
		if (initial == 0 && auth_step(s, "VXNlcm5hbWU6") < 0)
			return;
		if (auth_step(s, "UGFzc3dvcmQ6") < 0)
			return;
	} else {
		reply_error(s, "504 5.5.4 Unsupported authentication mechanism");
		return;
	}
	s->authenticated = 1;
	log_msg(
	    LOG_LEVEL_DEBUG,
	    "-bs: client authenticated with AUTH %s ([smtpd] auth = accept takes any credentials)",
	    strcasecmp(mech, "PLAIN") == 0 ? "PLAIN" : "LOGIN");
	reply(s, "235 2.7.0 Authentication successful");
}

/* progress: the verb builds a transaction; every other one counts towards junk_max. */
static const struct smtpd_command {
	const char *verb;
	void (*run)(struct smtpd *s, char *arg);
	int progress;
} smtpd_commands[] = {
    {"HELO", cmd_helo, 0},
    {"EHLO", cmd_ehlo, 0},
    {"MAIL", cmd_mail, 1},
    {"RCPT", cmd_rcpt, 1},
    {"DATA", cmd_data, 1},
    {"RSET", cmd_rset, 0},
    {"NOOP", cmd_noop, 0},
    {"VRFY", cmd_vrfy, 0},
    {"HELP", cmd_help, 0},
    {"QUIT", cmd_quit, 1},
    {"AUTH", cmd_auth, 0},
    {"STARTTLS", cmd_not_implemented, 0},
    {"EXPN", cmd_not_implemented, 0},
    {"ETRN", cmd_not_implemented, 0},
    {"BDAT", cmd_not_implemented, 0},
    {"TURN", cmd_not_implemented, 0},
    {0, 0, 0},
};

/* smtpd_command - dispatch one command line */

static void smtpd_command(struct smtpd *s, const char *line, size_t len)
{
	char *verb;
	char *arg;
	size_t vlen;

	if (memchr(line, 0, len) != 0) {
		reply_error(s, "500 5.5.2 Error: NUL byte in command");
		return;
	}
	buf_reset(&s->cmd);
	buf_append(&s->cmd, line, len);
	/* Trailing blanks ("DATA ") and tabs are noise some clients add. */
	while (s->cmd.len > 0 &&
	       (s->cmd.data[s->cmd.len - 1] == ' ' || s->cmd.data[s->cmd.len - 1] == '\t'))
		buf_truncate(&s->cmd, s->cmd.len - 1);
	verb = s->cmd.data ? s->cmd.data : (char *)"";
	while (*verb == ' ')
		verb++;
	vlen = strcspn(verb, " ");
	arg = verb + vlen;
	if (*arg) {
		*arg++ = 0;
		while (*arg == ' ')
			arg++;
	}
	for (const struct smtpd_command *c = smtpd_commands; c->verb; c++) {
		if (strcasecmp(verb, c->verb) == 0) {
			if (!c->progress)
				count_junk(s);
			if (s->end == END_NONE)
				c->run(s, arg);
			return;
		}
	}
	reply_error(s, "500 5.5.2 Error: command not recognized");
}

/* smtpd_hostname - our name for the greeting: [relay] helo, else the host name */

static void smtpd_hostname(struct smtpd *s)
{
	const char *name = s->cfg->helo;
	char host[256];

	if (name == 0 || *name == 0) {
		if (gethostname(host, sizeof(host)) != 0 || host[0] == 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = 0;
		name = host;
	}
	snprintf(s->host, sizeof(s->host), "%s", name);
	/* A name with blanks or control bytes would break the greeting line. */
	for (char *p = s->host; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p == 0x7f)
			*p = '-';
}

/* smtpd_serve_limits - one SMTP session with explicit bounds */

int smtpd_serve_limits(int in_fd, int out_fd, const struct config *cfg,
		       const struct smtpd_limits *lim, const struct smtpd_ops *ops, void *ctx,
		       struct error *err)
{
	struct smtpd s;
	const char *line;
	size_t len;
	int too_long;
	int one = 1;

	memset(&s, 0, sizeof(s));
	s.in_fd = in_fd;
	s.out_fd = out_fd;
	s.cfg = cfg;
	s.lim = lim;
	s.ops = ops;
	s.ctx = ctx;
	s.err = err;
	envelope_init(&s.env);
	error_clear(err);
	smtpd_hostname(&s);
	made_progress(&s);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * On a TCP socket (-bd, or the shim's accepted connection): replies are
	 * already batched per flush, so Nagle could only add delayed-ACK waits.
	 * Pipes and UNIX sockets refuse the option; that is fine.
	 */
	(void)setsockopt(out_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	reply(&s, "220 %s ESMTP relayshim", s.host);
	/*
	 * Send the greeting now and open the relay session (has_dsn does)
	 * while the client's EHLO is on its way: the relay's greeting and
	 * EHLO round trips overlap the client's, instead of following the
	 * EHLO. No thread: a client that talks before that is answered
	 * right after, as it would have been at its EHLO. The answer is
	 * kept for the first EHLO, so a relay that cannot be reached is
	 * tried once here instead of again at EHLO. This is our own time,
	 * not the client's: it does not count against the idle budget.
	 */
	s.dsn_early = -1;
	out_flush(&s);
	if (s.end == END_NONE && ops->has_dsn)
		s.dsn_early = ops->has_dsn(ctx) != 0;
	while (s.end == END_NONE) {
		if (!in_line(&s, lim->line_max, &line, &len, &too_long))
			break;
		if (too_long)
			reply_error(&s, "500 5.5.2 Error: line too long (at most %zu bytes)",
				    lim->line_max);
		else
			smtpd_command(&s, line, len);
	}
	if (s.end == END_QUIT && ops->bye)
		ops->bye(ctx);
	if (s.out.len > 0 && s.end != END_IOERR)
		out_flush(&s);
	if (s.end == END_TIMEOUT)
		log_msg(LOG_LEVEL_INFO, "-bs: client idle for %u s, session closed",
			lim->idle_timeout_ms / 1000);
	else if (s.end == END_ERRORS)
		log_msg(LOG_LEVEL_INFO, "-bs: too many errors from the client, session closed");
	else if (s.end == END_JUNK)
		log_msg(LOG_LEVEL_INFO,
			"-bs: %u commands from the client without a message, session closed",
			lim->junk_max);
	else
		log_msg(LOG_LEVEL_DEBUG, "-bs: session ended (%s)",
			s.end == END_QUIT ? "QUIT" : "client closed");
	txn_reset(&s);
	if (ops->end_session)
		ops->end_session(ctx);
	buf_free(&s.in);
	buf_free(&s.out);
	buf_free(&s.cmd);
	return s.end == END_IOERR ? err->status : 0;
}

/* smtpd_serve - one SMTP session with the documented bounds */

int smtpd_serve(int in_fd, int out_fd, const struct config *cfg, const struct smtpd_ops *ops,
		void *ctx, struct error *err)
{
	struct smtpd_limits lim;

	smtpd_limits_default(&lim);
	return smtpd_serve_limits(in_fd, out_fd, cfg, &lim, ops, ctx, err);
}

/* ------------------------------------------------------------------ */
/* -bd: the loopback daemon for programs the shim cannot reach (Go).   */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t daemon_stop;

/* daemon_signal - SIGTERM/SIGINT set the flag; SIGCHLD only interrupts ppoll */

static void daemon_signal(int sig)
{
	if (sig != SIGCHLD)
		daemon_stop = 1;
}

struct daemon_state {
	int *fds; /* listeners */
	size_t nfds;
	pid_t *children;
	long *client_uids; /* per child: the client's uid, -1 unknown */
	size_t nchildren;
	int uid_warned; /* the kernel could not name a client's uid once */
};

/* daemon_forget - remove child i (order does not matter) */

static void daemon_forget(struct daemon_state *d, size_t i)
{
	d->nchildren--;
	d->children[i] = d->children[d->nchildren];
	d->client_uids[i] = d->client_uids[d->nchildren];
}

/* daemon_client_uid - the uid owning the client's end of a loopback TCP connection */

static long daemon_client_uid(int fd, const struct sockaddr_storage *peer)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} rq;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	struct timeval tv = {1, 0};
	long buf[2048];
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
	ssize_t n;
	long uid = -1;
	int nl;

	/*
	 * Every client of a loopback daemon comes from 127.0.0.1, so the
	 * address says nothing about who it is. The kernel knows which uid
	 * created the other end (what identd reports): ask sock_diag for
	 * exactly that socket - its local end is our peer, its remote end us.
	 */
	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
	    local.ss_family != peer->ss_family)
		return -1;
	memset(&rq, 0, sizeof(rq));
	rq.nlh.nlmsg_len = sizeof(rq);
	rq.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	rq.nlh.nlmsg_flags = NLM_F_REQUEST;
	rq.req.sdiag_family = (unsigned char)peer->ss_family;
	rq.req.sdiag_protocol = IPPROTO_TCP;
	rq.req.idiag_states = ~0U;
	rq.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	rq.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *p = (const struct sockaddr_in *)peer;
		const struct sockaddr_in *l = (const struct sockaddr_in *)&local;

		rq.req.id.idiag_sport = p->sin_port;
		rq.req.id.idiag_dport = l->sin_port;
		memcpy(rq.req.id.idiag_src, &p->sin_addr, 4);
		memcpy(rq.req.id.idiag_dst, &l->sin_addr, 4);
	} else if (peer->ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;
		const struct sockaddr_in6 *l = (const struct sockaddr_in6 *)&local;

		rq.req.id.idiag_sport = p->sin6_port;
		rq.req.id.idiag_dport = l->sin6_port;
		memcpy(rq.req.id.idiag_src, &p->sin6_addr, 16);
		memcpy(rq.req.id.idiag_dst, &l->sin6_addr, 16);
	} else {
		return -1;
	}
	if ((nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) < 0)
		return -1;
	(void)setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(nl, &rq, sizeof(rq), 0, (struct sockaddr *)&kernel, sizeof(kernel)) ==
	    (ssize_t)sizeof(rq)) {
		do
			n = recv(nl, buf, sizeof(buf), 0);
		while (n < 0 && errno == EINTR);
		if (n > 0 && NLMSG_OK(nlh, (size_t)n) && nlh->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
		    nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
			uid = (long)((const struct inet_diag_msg *)NLMSG_DATA(nlh))->idiag_uid;
	}
	close(nl);
	return uid;
}

/* daemon_reap - collect finished sessions without blocking */

static void daemon_reap(struct daemon_state *d)
{
	pid_t pid;

	while ((pid = waitpid(-1, 0, WNOHANG)) > 0) {
		for (size_t i = 0; i < d->nchildren; i++) {
			if (d->children[i] == pid) {
				daemon_forget(d, i);
				break;
			}
		}
	}
}

/* daemon_listen - bind every endpoint; a missing address family is skipped */

static int daemon_listen(struct daemon_state *d, const struct endpoint *eps, size_t n,
			 struct error *err)
{
	struct buf skipped = BUF_INIT;
	int one = 1;

	d->fds = util_calloc(n, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		int family = eps[i].addr.ss_family;
		int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int errnum;

		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			/* [::1]:25 must not also claim the IPv4 side. */
			if (family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
			if (bind(fd, (const struct sockaddr *)&eps[i].addr, eps[i].addrlen) == 0 &&
			    listen(fd, 128) == 0) {
				d->fds[d->nfds++] = fd;
				log_msg(LOG_LEVEL_INFO, "-bd: listening on %s", eps[i].text);
				continue;
			}
		}
		errnum = errno;
		/* Docker containers often run without IPv6: ::1 then simply does not exist. */
		if (errnum == EAFNOSUPPORT || errnum == EADDRNOTAVAIL) {
			log_msg(LOG_LEVEL_WARNING, "-bd: skipping %s: %s", eps[i].text,
				strerror(errnum));
			buf_printf(&skipped, "%s%s: %s", skipped.len ? "; " : "", eps[i].text,
				   strerror(errnum));
			if (fd >= 0)
				close(fd);
			continue;
		}
		error_set(
		    err, EX_OSERR, "-bd: cannot listen on %s: %s%s", eps[i].text, strerror(errnum),
		    errnum == EADDRINUSE
			? " (another SMTP server runs there: stop it or change RELAYSHIM_INTERCEPT)"
		    : errnum == EACCES
			? " (port below 1024: run as root or give CAP_NET_BIND_SERVICE)"
			: "");
		if (fd >= 0)
			close(fd);
		buf_free(&skipped);
		return EX_OSERR;
	}
	if (d->nfds == 0) {
		error_set(err, EX_OSERR,
			  "-bd: no endpoint of RELAYSHIM_INTERCEPT could be bound (%s)",
			  buf_cstr(&skipped));
		buf_free(&skipped);
		return EX_OSERR;
	}
	buf_free(&skipped);
	return 0;
}

/* daemon_session - child: serve one connection and exit */

static void daemon_session(struct daemon_state *d, int fd, const struct sockaddr_storage *peer,
			   const struct config *cfg, const struct smtpd_limits *lim,
			   const struct smtpd_ops *ops, void *ctx, const sigset_t *mask)
{
	struct error err;
	char addr[INET6_ADDRSTRLEN] = "?";

	for (size_t i = 0; i < d->nfds; i++)
		close(d->fds[i]);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_SETMASK, mask, 0);
	if (peer->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, addr,
			  sizeof(addr));
	else if (peer->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, addr,
			  sizeof(addr));
	log_msg(LOG_LEVEL_DEBUG, "-bd: connection from %s (pid %ld)", addr, (long)getpid());
	if (smtpd_serve_limits(fd, fd, cfg, lim, ops, ctx, &err) != 0)
		log_msg(LOG_LEVEL_WARNING, "%s", err.text);
	close(fd);
	fflush(0);
	_exit(0);
}

/* daemon_accept - take every pending connection of one listener */

static void daemon_accept(struct daemon_state *d, int lfd, const struct config *cfg,
			  const struct smtpd_limits *lim, const struct smtpd_ops *ops, void *ctx,
			  const sigset_t *mask, const char *host)
{
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		size_t same = 0;
		long uid;
		pid_t pid;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_msg(LOG_LEVEL_WARNING, "-bd: accept: %s", strerror(errno));
			return;
		}
		if (d->nchildren >= lim->daemon_children) {
			static const char busy[] =
			    "421 4.3.2 Error: too many connections, try again later\r\n";

			(void)!write(fd, busy, sizeof(busy) - 1);
			close(fd);
			log_msg(LOG_LEVEL_WARNING,
				"-bd: %zu sessions running on %s, connection refused", d->nchildren,
				host);
			continue;
		}
		uid = lim->daemon_client_children ? daemon_client_uid(fd, &peer) : -1;
		if (uid < 0 && lim->daemon_client_children && !d->uid_warned) {
			d->uid_warned = 1;
			log_msg(LOG_LEVEL_WARNING,
				"-bd: the kernel does not tell which user a client is (no "
				"NETLINK_SOCK_DIAG): only the limit of %u sessions in all applies",
				lim->daemon_children);
		}
		for (size_t i = 0; uid >= 0 && i < d->nchildren; i++)
			same += d->client_uids[i] == uid;
		if (uid >= 0 && same >= lim->daemon_client_children) {
			static const char busy[] = "421 4.7.0 Error: too many connections from "
						   "your user, try again later\r\n";

			(void)!write(fd, busy, sizeof(busy) - 1);
			close(fd);
			log_msg(LOG_LEVEL_WARNING,
				"-bd: uid %ld already has %zu sessions on %s, connection refused",
				uid, same, host);
			continue;
		}
		/* Unflushed stdio in the parent would otherwise be written twice. */
		fflush(0);
		pid = fork();
		if (pid == 0)
			daemon_session(d, fd, &peer, cfg, lim, ops, ctx, mask);
		if (pid < 0)
			log_msg(LOG_LEVEL_WARNING, "-bd: cannot fork a session: %s",
				strerror(errno));
		else {
			d->client_uids[d->nchildren] = uid;
			d->children[d->nchildren++] = pid;
		}
		close(fd);
	}
}

/* daemon_drain - after SIGTERM: wait a bounded time, then end the rest */

static void daemon_drain(struct daemon_state *d, const struct smtpd_limits *lim,
			 const sigset_t *waitmask)
{
	struct timespec start, now, tick = {0, 50 * 1000 * 1000};

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long elapsed_ms;

		daemon_reap(d);
		if (d->nchildren == 0)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed_ms =
		    (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (elapsed_ms >= (long)lim->drain_ms)
			break;
		ppoll(0, 0, &tick, waitmask);
	}
	log_msg(LOG_LEVEL_WARNING, "-bd: ending %zu session(s) still running after %u s",
		d->nchildren, lim->drain_ms / 1000);
	for (size_t i = 0; i < d->nchildren; i++)
		kill(d->children[i], SIGTERM);
	while (d->nchildren > 0) {
		pid_t pid = waitpid(-1, 0, 0);

		if (pid < 0 && errno != EINTR)
			break;
		if (pid > 0)
			for (size_t i = 0; i < d->nchildren; i++)
				if (d->children[i] == pid) {
					daemon_forget(d, i);
					break;
				}
	}
}

/* smtpd_daemon_limits - -bd with explicit bounds */

int smtpd_daemon_limits(const struct config *cfg, const struct smtpd_limits *lim,
			const struct smtpd_ops *ops, void *ctx, struct error *err)
{
	struct daemon_state d;
	struct endpoint *eps;
	struct pollfd *pfds;
	struct sigaction sa, old_term, old_int, old_chld, old_pipe;
	sigset_t block, orig, waitmask;
	size_t neps;
	char host[256];
	int rc;

	error_clear(err);
	memset(&d, 0, sizeof(d));
	rc = endpoint_parse(cfg->intercept && *cfg->intercept ? cfg->intercept : DEFAULT_INTERCEPT,
			    &eps, &neps, err);
	if (rc)
		return rc;
	if ((rc = daemon_listen(&d, eps, neps, err)) != 0)
		goto out;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = 0;
	d.children = util_calloc(lim->daemon_children ? lim->daemon_children : 1, sizeof(pid_t));
	d.client_uids = util_calloc(lim->daemon_children ? lim->daemon_children : 1, sizeof(long));
	pfds = util_calloc(d.nfds, sizeof(*pfds));
	for (size_t i = 0; i < d.nfds; i++) {
		pfds[i].fd = d.fds[i];
		pfds[i].events = POLLIN;
	}

	/* Signals are blocked except inside ppoll(), so none is lost between checks. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &orig);
	waitmask = orig;
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGCHLD);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = daemon_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGCHLD, &sa, &old_chld);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old_pipe);
	daemon_stop = 0;

	while (!daemon_stop) {
		int ready;

		daemon_reap(&d);
		ready = ppoll(pfds, d.nfds, 0, &waitmask);
		if (ready < 0)
			continue; /* EINTR: a signal; the loop looks at the flags */
		for (size_t i = 0; i < d.nfds; i++)
			if (pfds[i].revents & POLLIN)
				daemon_accept(&d, pfds[i].fd, cfg, lim, ops, ctx, &orig, host);
	}
	log_msg(LOG_LEVEL_INFO, "-bd: stopping, %zu session(s) running", d.nchildren);
	for (size_t i = 0; i < d.nfds; i++)
		close(d.fds[i]);
	d.nfds = 0;
	daemon_drain(&d, lim, &waitmask);

	sigaction(SIGTERM, &old_term, 0);
	sigaction(SIGINT, &old_int, 0);
	sigaction(SIGCHLD, &old_chld, 0);
	sigaction(SIGPIPE, &old_pipe, 0);
	sigprocmask(SIG_SETMASK, &orig, 0);
	free(pfds);
	rc = 0;
out:
	for (size_t i = 0; i < d.nfds; i++)
		close(d.fds[i]);
	free(d.fds);
	free(d.children);
	free(d.client_uids);
	free(eps);
	return rc;
}

/* smtpd_daemon - -bd with the documented bounds */

int smtpd_daemon(const struct config *cfg, const struct smtpd_ops *ops, void *ctx,
		 struct error *err)
{
	struct smtpd_limits lim;

	smtpd_limits_default(&lim);
	return smtpd_daemon_limits(cfg, &lim, ops, ctx, err);
}
