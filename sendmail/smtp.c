/*++
 * NAME
 *	smtp 3
 * SUMMARY
 *	the RFC 5321 client: one relay connection, one or more transactions
 * DESCRIPTION
 *	See smtp.h. The round trips of a delivery with PIPELINING are the
 *	protocol minimum: greeting, EHLO, MAIL+RCPT...+DATA in one write,
 *	message+final dot, and QUIT written without waiting for its 221.
 *	Commands are collected in s->out and written together; TCP_NODELAY
 *	(net.c) makes each write leave at once.
 *--*/

#include <ctype.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "auth.h"
#include "capture.h"
#include "net.h"
#include "relay_hint.h"
#include "smtp.h"
#include "tls.h"

#define SMTP_CHUNK 65536	 /* message bytes per write */
#define SMTP_AUTH_ROUNDS_MAX 16	 /* 334 challenges per AUTH */
#define SMTP_REPLY_SHOWN_MAX 480 /* reply bytes quoted in an error text */

struct smtp_session {
	const struct config *cfg;
	struct net_conn conn;
	struct smtp_caps caps;
	char *relay;		     /* "host:port" as configured */
	const char *host;	     /* host name or address, for TLS */
	struct buf out;		     /* commands not yet written */
	struct buf *report;	     /* --relay-check: lines appended here */
	int maildir;		     /* host is a Maildir path: capture.h, no SMTP */
	int in_sync;		     /* connected, and every reply read */
	int needs_rset;		     /* a transaction was left unfinished */
	unsigned timeout_ms;	     /* per command */
	unsigned eod_timeout_ms;     /* the reply to the final dot: 5x */
	unsigned connect_timeout_ms; /* per address */
};

/* ---------------------------------------------------------------- */
/* Pure functions: reply parser, EHLO capabilities, dot-stuffing    */
/* ---------------------------------------------------------------- */

/* smtp_reply_init - empty reply */

void smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* smtp_reply_free - release the text */

void smtp_reply_free(struct smtp_reply *r)
{
	buf_free(&r->text);
	smtp_reply_init(r);
}

/* parse_enhanced - "X.Y.Z" at the start of text, class matching the code */

static void parse_enhanced(struct smtp_reply *r, const char *t, size_t n)
{
	size_t i = 0;
	int part;

	if (n < 5 || t[0] != '0' + r->code / 100)
		return;
	i = 1;
	for (part = 0; part < 2; part++) {
		size_t digits = 0;

		if (i >= n || t[i] != '.')
			return;
		i++;
		while (i < n && isdigit((unsigned char)t[i]) && digits < 3) {
			i++;
			digits++;
		}
		if (digits == 0)
			return;
	}
	if (i < n && t[i] != ' ')
		return;
	if (i >= sizeof(r->dsn))
		return;
	memcpy(r->dsn, t, i);
	r->dsn[i] = 0;
}

/* reply_error - mark r as malformed with a reason */

static ssize_t reply_error(struct smtp_reply *r, const char *why)
{
	buf_reset(&r->text);
	buf_puts(&r->text, why);
	r->code = 0;
	r->dsn[0] = 0;
	return -1;
}

/* smtp_parse_reply - one complete reply at the start of data */

ssize_t smtp_parse_reply(const char *data, size_t len, struct smtp_reply *r)
{
	size_t pos = 0;

	buf_reset(&r->text);
	r->code = 0;
	r->dsn[0] = 0;
	r->nlines = 0;
	for (;;) {
		size_t avail = len - pos;
		size_t scan = avail < SMTP_REPLY_LINE_MAX ? avail : SMTP_REPLY_LINE_MAX;
		const char *line = data + pos;
		const char *lf = memchr(line, '\n', scan);
		size_t n;
		int code;
		char sep;

		if (lf == 0) {
			if (avail >= SMTP_REPLY_LINE_MAX)
				return reply_error(r, "reply line longer than 4096 bytes");
			return 0;
		}
		n = (size_t)(lf - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) || line[0] < '2' || line[0] > '5')
			return reply_error(r, "not an SMTP reply (no 3-digit code)");
		sep = n > 3 ? line[3] : ' ';
		if (sep != ' ' && sep != '-')
			return reply_error(r, "not an SMTP reply (bad separator after the code)");
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (r->nlines > 0 && code != r->code)
			return reply_error(r, "reply lines with different codes");
		if (r->nlines >= SMTP_REPLY_LINES_MAX)
			return reply_error(r, "reply with more than 100 lines");
		if (r->nlines > 0)
			buf_putc(&r->text, '\n');
		if (n > 4)
			buf_append(&r->text, line + 4, n - 4);
		else
			buf_reserve(&r->text, 0);
		if (r->nlines == 0) {
			r->code = code;
			if (n > 4)
				parse_enhanced(r, line + 4, n - 4);
		}
		r->nlines++;
		pos += (size_t)(lf - line) + 1;
		if (sep == ' ')
			return (ssize_t)pos;
	}
}

/* smtp_caps_free - release capability strings */

void smtp_caps_free(struct smtp_caps *caps)
{
	free(caps->auth_mechs);
	memset(caps, 0, sizeof(*caps));
}

/* keyword_is - line starts with keyword, followed by end, space or '=' */

static int keyword_is(const char *line, size_t n, const char *kw, const char **arg)
{
	size_t k = strlen(kw);

	if (n < k || strncasecmp(line, kw, k) != 0)
		return 0;
	if (n > k && line[k] != ' ' && line[k] != '=')
		return 0;
	*arg = line + (n > k ? k + 1 : k);
	return 1;
}

/* add_auth_mechs - append the AUTH keyword's mechanisms, upper case */

static void add_auth_mechs(struct smtp_caps *caps, const char *arg, size_t n)
{
	struct buf b = BUF_INIT;

	if (caps->auth_mechs)
		buf_puts(&b, caps->auth_mechs);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)arg[i];

		if (isalnum(c) || c == '-' || c == '_')
			buf_putc(&b, toupper(c));
		else if (b.len && b.data[b.len - 1] != ' ')
			buf_putc(&b, ' ');
	}
	if (b.len && b.data[b.len - 1] != ' ')
		buf_putc(&b, ' ');
	free(caps->auth_mechs);
	caps->auth_mechs = buf_steal(&b);
}

/* smtp_parse_ehlo - capabilities from the lines of a 250 EHLO reply */

void smtp_parse_ehlo(const struct smtp_reply *r, struct smtp_caps *caps)
{
	const char *p = r->text.data ? r->text.data : "";
	const char *end = p + r->text.len;
	size_t lineno = 0;

	smtp_caps_free(caps);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *arg;

		/* The first line is the relay's name and greeting text. */
		if (lineno++ > 0) {
			if (keyword_is(p, n, "PIPELINING", &arg))
				caps->pipelining = 1;
			else if (keyword_is(p, n, "8BITMIME", &arg))
				caps->eightbitmime = 1;
			else if (keyword_is(p, n, "SMTPUTF8", &arg))
				caps->smtputf8 = 1;
			else if (keyword_is(p, n, "DSN", &arg))
				caps->dsn = 1;
			else if (keyword_is(p, n, "STARTTLS", &arg))
				caps->starttls = 1;
			else if (keyword_is(p, n, "ENHANCEDSTATUSCODES", &arg))
				caps->enhancedstatuscodes = 1;
			else if (keyword_is(p, n, "SIZE", &arg)) {
				unsigned long long v = 0;

				caps->size = 1;
				while (arg < p + n && isdigit((unsigned char)*arg)) {
					if (v > (~0ULL - 9) / 10) {
						v = 0; /* absurd: treat as no limit */
						break;
					}
					v = v * 10 + (unsigned)(*arg++ - '0');
				}
				caps->size_max = v;
			} else if (keyword_is(p, n, "AUTH", &arg)) {
				caps->auth = 1;
				add_auth_mechs(caps, arg, (size_t)(p + n - arg));
			}
		}
		p += n + 1;
	}
	if (caps->auth_mechs) {
		size_t l = strlen(caps->auth_mechs);

		if (l && caps->auth_mechs[l - 1] == ' ')
			caps->auth_mechs[l - 1] = 0;
	}
}

/* smtp_dot_stuff - double every dot that starts a line, across chunks */

void smtp_dot_stuff(struct smtp_dot *st, const char *in, size_t n, struct buf *out)
{
	size_t i = 0;
	size_t start = 0;

	if (n == 0)
		return;
	buf_reserve(out, n + 16);

	/*
	 * Look for dots, not for line ends: dots are rare in mail, so memchr
	 * runs at memory speed and a 25 MB body costs a few hundred calls.
	 */
	while (i < n) {
		const char *p = memchr(in + i, '.', n - i);
		size_t j;

		if (p == 0)
			break;
		j = (size_t)(p - in);
		if (j == 0 ? !st->mid_line : in[j - 1] == '\n') {
			buf_append(out, in + start, j - start);
			buf_putc(out, '.');
			start = j; /* the original dot goes with the next span */
		}
		i = j + 1;
	}
	buf_append(out, in + start, n - start);
	st->mid_line = in[n - 1] != '\n';
}

/* smtp_dot_finish - terminate the last line and append the final dot */

void smtp_dot_finish(struct smtp_dot *st, struct buf *out)
{
	if (st->mid_line)
		buf_puts(out, "\r\n");
	buf_puts(out, ".\r\n");
	st->mid_line = 0;
}

/* smtp_xtext - RFC 3461 xtext: '+', '=' and non-printables as +XX */

void smtp_xtext(struct buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 33 || c > 126 || c == '+' || c == '=')
			buf_printf(out, "+%02X", c);
		else
			buf_putc(out, c);
	}
}

/* ---------------------------------------------------------------- */
/* Results and errors                                                */
/* ---------------------------------------------------------------- */

/* smtp_result_init - empty result */

void smtp_result_init(struct smtp_result *r)
{
	memset(r, 0, sizeof(*r));
}

/* smtp_result_free - release everything */

void smtp_result_free(struct smtp_result *r)
{
	free(r->relay);
	strlist_free(&r->rejected);
	strlist_free(&r->rejected_replies);
	strlist_free(&r->deferred);
	strlist_free(&r->deferred_replies);
	free(r->reply);
	smtp_result_init(r);
}

/* smtp_result_accepted - the recipients the relay took: neither refused nor deferred */

void smtp_result_accepted(const struct smtp_result *r, const struct envelope *env,
			  struct strlist *out)
{
	for (size_t i = 0; i < env->rcpts.n; i++)
		if (!strlist_contains_ci(&r->rejected, env->rcpts.v[i]) &&
		    !strlist_contains_ci(&r->deferred, env->rcpts.v[i]))
			strlist_add(out, env->rcpts.v[i]);
}

/* fail - fill err with status, temporary flag and text */

static int fail(struct error *err, int status, int temporary, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct error *err, int status, int temporary, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->temporary = temporary;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return status;
}

/* reply_show - "550 5.7.1 text" sanitised, lines joined, bounded */

static void reply_show(struct buf *out, const struct smtp_reply *r)
{
	size_t start = out->len;

	buf_printf(out, "%d", r->code);
	if (r->text.len) {
		buf_putc(out, ' ');
		for (size_t i = 0; i < r->text.len; i++) {
			if (out->len - start > SMTP_REPLY_SHOWN_MAX) {
				buf_puts(out, "...");
				break;
			}
			if (r->text.data[i] == '\n')
				buf_puts(out, " / ");
			else
				buf_put_sanitized(out, r->text.data + i, 1);
		}
	}
}

/* is_too_big - a 5xx that says the message exceeds the relay's size limit */

static int is_too_big(const struct smtp_reply *r)
{
	/* RFC 3463: 5.3.4 message too big for system, 5.2.3 exceeds administrative limit. */
	if (strcmp(r->dsn, "5.3.4") == 0 || strcmp(r->dsn, "5.2.3") == 0)
		return 1;
	return r->code == 552 && r->dsn[0] == 0;
}

/*
 * add_hint - a refusal that points at the relay's configuration gets its
 * likely cause appended, so the caller's line, the log and mailq say what
 * to fix (relay_hint.h).
 */
static void add_hint(struct error *err)
{
	enum relay_hint kind = relay_hint_classify(err->text);
	size_t n = strlen(err->text);

	if (kind != RELAY_HINT_NONE)
		snprintf(err->text + n, sizeof(err->text) - n, "; likely cause: %s",
			 relay_hint_cause(kind));
}

/* fail_reply - an unwelcome reply: 4xx temporary, 5xx perm_status */

static int fail_reply(struct smtp_session *s, struct error *err, const struct smtp_reply *r,
		      int perm_status, const char *what)
{
	struct buf b = BUF_INIT;
	int status;

	reply_show(&b, r);
	if (r->code >= 500 && is_too_big(r))
		/* A message too big is a data error (65, relayshim(8) EXIT STATUS), whoever finds
		 * out. */
		status = fail(err, EX_DATAERR, 0, "relay %s %s: %s", s->relay, what, b.data);
	else if (r->code >= 500)
		status = fail(err, perm_status, 0, "relay %s %s: %s", s->relay, what, b.data);
	else
		status = fail(err, EX_TEMPFAIL, 1, "relay %s %s: %s", s->relay, what, b.data);
	add_hint(err);
	buf_free(&b);
	return status;
}

/* fail_net - a network error from net.c or tls.c, with the relay and stage */

static int fail_net(struct smtp_session *s, struct error *err, const char *stage)
{
	char text[sizeof(err->text)];
	int status = err->status ? err->status : EX_TEMPFAIL;

	snprintf(text, sizeof(text), "%s", err->text);
	s->in_sync = 0;
	return fail(err, status, status == EX_TEMPFAIL ? 1 : err->temporary, "relay %s: %s %s",
		    s->relay, text, stage);
}

/* fail_tls - a tls_start() failure: its text already names the TLS stage */

static int fail_tls(struct smtp_session *s, struct error *err)
{
	char text[sizeof(err->text)];

	snprintf(text, sizeof(text), "%s", err->text);
	s->in_sync = 0;
	return fail(err, err->status, err->temporary, "relay %s: %s", s->relay, text);
}

/* ---------------------------------------------------------------- */
/* Dialogue                                                          */
/* ---------------------------------------------------------------- */

/* verbose_line - -v: one dialogue line on stderr, sanitised */

static void verbose_line(const struct smtp_session *s, const char *prefix, const char *p, size_t n)
{
	struct buf b = BUF_INIT;

	if (!s->cfg->verbose)
		return;
	buf_puts(&b, prefix);
	buf_put_sanitized(&b, p, n);
	buf_putc(&b, '\n');
	(void)!write(2, b.data, b.len);
	buf_free(&b);
}

/* verbose_reply - -v: a reply, line by line */

static void verbose_reply(const struct smtp_session *s, const struct smtp_reply *r)
{
	const char *p = r->text.data ? r->text.data : "";
	size_t left = r->text.len;
	size_t i = 0;

	if (!s->cfg->verbose)
		return;
	for (;;) {
		const char *nl = memchr(p, '\n', left);
		size_t n = nl ? (size_t)(nl - p) : left;
		char head[8];

		snprintf(head, sizeof(head), "S: %d%c", r->code, nl ? '-' : ' ');
		verbose_line(s, head, p, n);
		if (!nl || ++i >= SMTP_REPLY_LINES_MAX)
			break;
		p += n + 1;
		left -= n + 1;
	}
}

/* queue_cmd - add one command line to the pending output */

static void queue_cmd(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void queue_cmd(struct smtp_session *s, const char *fmt, ...)
{
	size_t start = s->out.len;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	verbose_line(s, "C: ", s->out.data + start, s->out.len - start);
	buf_puts(&s->out, "\r\n");
}

/* flush_out - write the pending output in one write */

static int flush_out(struct smtp_session *s, const char *stage, struct error *err)
{
	int status;

	if (s->out.len == 0)
		return 0;
	status = net_write(&s->conn, s->out.data, s->out.len, net_deadline(s->timeout_ms), err);
	buf_reset(&s->out);
	if (status)
		return fail_net(s, err, stage);
	return 0;
}

/* read_reply - the next complete reply, within timeout_ms */

static int read_reply(struct smtp_session *s, struct smtp_reply *r, unsigned timeout_ms,
		      const char *stage, struct error *err)
{
	long long start = net_now_ms();
	long long deadline = net_deadline(timeout_ms);
	/* Less than timeout_ms under -q --deadline (net_set_limit): say what was waited. */
	long long waited = deadline - start < (long long)timeout_ms ? deadline - start : timeout_ms;

	for (;;) {
		ssize_t n =
		    smtp_parse_reply(s->conn.in.data ? s->conn.in.data : "", s->conn.in.len, r);

		if (n > 0) {
			buf_consume(&s->conn.in, (size_t)n);
			verbose_reply(s, r);
			return 0;
		}
		if (n < 0) {
			s->in_sync = 0;
			return fail(err, EX_TEMPFAIL, 1, "relay %s sent a malformed reply %s: %s",
				    s->relay, stage, r->text.data);
		}
		if (net_fill(&s->conn, deadline, err) != 0) {
			if (strcmp(err->text, "timed out") == 0) {
				s->in_sync = 0;
				return fail(err, EX_TEMPFAIL, 1,
					    "relay %s: timed out after %lld.%03lld s %s", s->relay,
					    waited > 0 ? waited / 1000 : 0,
					    waited > 0 ? waited % 1000 : 0, stage);
			}
			return fail_net(s, err, stage);
		}
	}
}

/* report - --relay-check: one line */

static void report(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void report(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->report == 0)
		return;
	buf_puts(s->report, "  ");
	va_start(ap, fmt);
	buf_vprintf(s->report, fmt, ap);
	va_end(ap);
	buf_putc(s->report, '\n');
}

/* helo_name - cfg->helo, else our host name (no DNS lookup: it costs start-up time) */

static const char *helo_name(const struct config *cfg, char *tmp, size_t size)
{
	if (cfg->helo && *cfg->helo)
		return cfg->helo;
	if (gethostname(tmp, size) != 0 || tmp[0] == 0)
		return "localhost";
	tmp[size - 1] = 0;
	return tmp;
}

/* ehlo - EHLO (HELO when EHLO is refused with 5xx), capabilities into s->caps */

static int ehlo(struct smtp_session *s, struct error *err)
{
	char tmp[256];
	const char *name = helo_name(s->cfg, tmp, sizeof(tmp));
	struct smtp_reply r;
	int status;

	smtp_reply_init(&r);
	queue_cmd(s, "EHLO %s", name);
	if ((status = flush_out(s, "sending EHLO", err)) != 0 ||
	    (status = read_reply(s, &r, s->timeout_ms, "waiting for the reply to EHLO", err)) != 0)
		goto done;
	if (r.code == 250) {
		smtp_parse_ehlo(&r, &s->caps);
		goto done;
	}
	if (r.code < 500) {
		status = fail_reply(s, err, &r, EX_UNAVAILABLE, "refused EHLO");
		goto done;
	}
	/* RFC 5321 4.1.4: a server without ESMTP answers 5xx; say HELO. */
	smtp_caps_free(&s->caps);
	queue_cmd(s, "HELO %s", name);
	if ((status = flush_out(s, "sending HELO", err)) != 0 ||
	    (status = read_reply(s, &r, s->timeout_ms, "waiting for the reply to HELO", err)) != 0)
		goto done;
	if (r.code != 250)
		status = fail_reply(s, err, &r, EX_UNAVAILABLE, "refused EHLO and HELO");

done:
	smtp_reply_free(&r);
	return status;
}

/* starttls - STARTTLS per the configured level; *done set when TLS is on */

static int starttls(struct smtp_session *s, struct error *err)
{
	const struct config *cfg = s->cfg;
	/* A pin or tls_verify = yes turns tls = may into mandatory TLS. */
	const char *required = tls_required_by(cfg);
	struct smtp_reply r;
	struct buf b = BUF_INIT;
	int status;

	if (cfg->tls == TLS_NONE || cfg->tls == TLS_IMPLICIT)
		return 0;
	if (!s->caps.starttls) {
		if (required == 0)
			return 0;
		/* Like Postfix: a relay that stops offering TLS is a deferral. */
		return fail(err, EX_TEMPFAIL, 1,
			    "relay %s does not offer STARTTLS, which %s requires (nothing is sent "
			    "in plain text)",
			    s->relay, required);
	}
	smtp_reply_init(&r);
	queue_cmd(s, "STARTTLS");
	if ((status = flush_out(s, "sending STARTTLS", err)) != 0 ||
	    (status = read_reply(s, &r, s->timeout_ms, "waiting for the reply to STARTTLS", err)) !=
		0)
		goto done;
	if (r.code != 220) {
		if (required == 0 && r.code >= 400) {
			/* Opportunistic: carry on in plain text, the session is still sane. */
			report(s, "STARTTLS refused, continuing without TLS (tls = may)");
			goto done;
		}
		if (cfg->tls == TLS_STARTTLS)
			buf_puts(&b, "refused STARTTLS");
		else
			buf_printf(&b, "refused STARTTLS, which %s requires", required);
		status = fail_reply(s, err, &r, EX_TEMPFAIL, b.data);
		err->temporary = 1;
		goto done;
	}
	if (s->conn.in.len) {
		/* Plain-text bytes after the 220 would be injected into the TLS session. */
		s->in_sync = 0;
		status = fail(err, EX_TEMPFAIL, 1,
			      "relay %s sent data after its STARTTLS reply (command injection?)",
			      s->relay);
		goto done;
	}
	if ((status = tls_start(&s->conn.tls, s->conn.fd, cfg, s->host, net_deadline(s->timeout_ms),
				err)) != 0) {
		status = fail_tls(s, err);
		goto done;
	}
	tls_describe(s->conn.tls, &b);
	report(s, "TLS: %s", b.data);
	verbose_line(s, "-- TLS: ", b.data, b.len);
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	smtp_caps_free(&s->caps);
	status = ehlo(s, err);

done:
	buf_free(&b);
	smtp_reply_free(&r);
	return status;
}

/* authenticate - AUTH with the configured credentials */

static int authenticate(struct smtp_session *s, struct error *err)
{
	const struct config *cfg = s->cfg;
	struct auth_session *a = 0;
	struct smtp_reply r;
	int status;
	int rounds = 0;

	if (cfg->username == 0)
		return 0;
	if (!s->caps.auth)
		return fail(err, EX_UNAVAILABLE, 0,
			    "relay %s does not offer AUTH, but a username is set%s", s->relay,
			    s->conn.tls ? "" : " (many relays offer AUTH only after STARTTLS)");
	if (!auth_may_send_credentials(tls_verified(s->conn.tls), s->conn.loopback,
				       cfg->auth_insecure))
		return fail(err, EX_CONFIG, 0,
			    "relay %s: credentials not sent over a connection that is neither "
			    "verified TLS nor loopback (use tls = starttls or tls with a trusted "
			    "CA, or set auth_insecure = yes)",
			    s->relay);
	if ((status = auth_start(&a, cfg, s->caps.auth_mechs ? s->caps.auth_mechs : "", s->host,
				 err)) != 0) {
		char text[sizeof(err->text)];

		snprintf(text, sizeof(text), "%s", err->text);
		return fail(err, status, 0, "relay %s: %s", s->relay, text);
	}
	smtp_reply_init(&r);
	buf_printf(&s->out, "AUTH %s", auth_mechanism(a));
	if (cfg->verbose) {
		struct buf v = BUF_INIT;

		buf_printf(&v, "AUTH %s <auth data hidden>", auth_mechanism(a));
		verbose_line(s, "C: ", v.data, v.len);
		buf_free(&v);
	}
	buf_putc(&s->out, ' ');
	if (!auth_initial(a, &s->out))
		buf_truncate(&s->out, s->out.len - 1);
	buf_puts(&s->out, "\r\n");
	for (;;) {
		if ((status = flush_out(s, "during AUTH", err)) != 0 ||
		    (status = read_reply(s, &r, s->timeout_ms, "waiting for the reply to AUTH",
					 err)) != 0)
			break;
		if (r.code == 235) {
			report(s, "AUTH %s as %s: accepted", auth_mechanism(a), cfg->username);
			break;
		}
		if (r.code != 334 || ++rounds > SMTP_AUTH_ROUNDS_MAX) {
			struct buf b = BUF_INIT;

			reply_show(&b, &r);
			status =
			    fail(err, r.code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL, r.code < 500,
				 "relay %s: authentication failed as %s "
				 "(relay said: %s)",
				 s->relay, cfg->username, b.data);
			buf_free(&b);
			break;
		}
		if ((status = auth_step(a, r.text.data ? r.text.data : "", r.text.len, &s->out,
					err)) != 0) {
			char text[sizeof(err->text)];

			snprintf(text, sizeof(text), "%s", err->text);
			/* Cancel the exchange (RFC 4954 4) so the session stays in sync. */
			buf_reset(&s->out);
			buf_puts(&s->out, "*\r\n");
			verbose_line(s, "C: ", "*", 1);
			if (flush_out(s, "during AUTH", err) == 0)
				(void)read_reply(s, &r, s->timeout_ms, "cancelling AUTH", err);
			status = fail(err, status, 0, "relay %s: authentication as %s: %s",
				      s->relay, cfg->username, text);
			break;
		}
		buf_puts(&s->out, "\r\n");
		verbose_line(s, "C: ", "<auth data hidden>", 18);
	}
	if (s->out.data)
		memset(s->out.data, 0, s->out.cap);
	buf_reset(&s->out);
	smtp_reply_free(&r);
	auth_free(a);
	return status;
}

/* open_address - connect to one address of one relay and get ready for MAIL */

static int open_address(struct smtp_session *s, const struct addrinfo *ai, struct error *err)
{
	const struct config *cfg = s->cfg;
	struct smtp_reply r;
	int status;

	if ((status = net_connect(&s->conn, ai, s->connect_timeout_ms, err)) != 0) {
		char text[sizeof(err->text)];

		snprintf(text, sizeof(text), "%s", err->text);
		return fail(err, EX_TEMPFAIL, 1, "relay %s: %s", s->relay, text);
	}
	s->in_sync = 1;
	if (cfg->verbose) {
		struct buf v = BUF_INIT;

		buf_printf(&v, "connected to %s (%s)", s->relay, s->conn.peer);
		verbose_line(s, "-- ", v.data, v.len);
		buf_free(&v);
	}
	report(s, "connected to %s", s->conn.peer);
	if (cfg->tls == TLS_IMPLICIT) {
		struct buf b = BUF_INIT;

		if ((status = tls_start(&s->conn.tls, s->conn.fd, cfg, s->host,
					net_deadline(s->timeout_ms), err)) != 0)
			return fail_tls(s, err);
		tls_describe(s->conn.tls, &b);
		report(s, "TLS: %s", b.data);
		verbose_line(s, "-- TLS: ", b.data, b.len);
		buf_free(&b);
	}
	smtp_reply_init(&r);
	if ((status = read_reply(s, &r, s->timeout_ms, "waiting for the greeting", err)) != 0)
		goto done;
	if (r.code / 100 != 2) {
		status =
		    fail_reply(s, err, &r, EX_UNAVAILABLE, "refused the connection at greeting");
		goto done;
	}
	if (s->report) {
		struct buf b = BUF_INIT;

		reply_show(&b, &r);
		report(s, "greeting: %s", b.data);
		buf_free(&b);
	}
	if ((status = ehlo(s, err)) != 0 || (status = starttls(s, err)) != 0)
		goto done;
	if (s->report) {
		report(s, "capabilities:%s%s%s%s%s%s%s%s%s",
		       s->caps.pipelining ? " PIPELINING" : "", s->caps.size ? " SIZE" : "",
		       s->caps.eightbitmime ? " 8BITMIME" : "", s->caps.smtputf8 ? " SMTPUTF8" : "",
		       s->caps.dsn ? " DSN" : "", s->caps.starttls ? " STARTTLS" : "",
		       s->caps.enhancedstatuscodes ? " ENHANCEDSTATUSCODES" : "",
		       s->caps.auth ? " AUTH " : "", s->caps.auth_mechs ? s->caps.auth_mechs : "");
		if (s->caps.size && s->caps.size_max)
			report(s, "message size limit: %llu bytes", s->caps.size_max);
	}
	status = authenticate(s, err);

done:
	smtp_reply_free(&r);
	return status;
}

/* relay_port - the configured port, or the default for the TLS level */

static unsigned relay_port(const struct config *cfg, const struct relay_addr *ra)
{
	if (ra->port)
		return ra->port;
	return cfg->tls == TLS_IMPLICIT ? 465 : 25;
}

/* session_new - an unconnected session for relay i */

static struct smtp_session *session_new(const struct config *cfg, size_t i)
{
	struct smtp_session *s = util_calloc(1, sizeof(*s));
	const struct relay_addr *ra = &cfg->relays[i];
	struct buf b = BUF_INIT;

	s->cfg = cfg;
	net_conn_init(&s->conn);
	/* Zero means unset (config_init fills the defaults; be defensive). */
	s->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 120000;
	s->connect_timeout_ms = cfg->timeout_connect_ms ? cfg->timeout_connect_ms : 10000;
	s->eod_timeout_ms = s->timeout_ms > UINT_MAX / 5 ? UINT_MAX : 5 * s->timeout_ms;
	s->host = ra->host;
	s->maildir = ra->maildir;
	if (ra->maildir)
		buf_printf(&b, "maildir:%s", ra->host);
	else if (strchr(ra->host, ':'))
		buf_printf(&b, "[%s]:%u", ra->host, relay_port(cfg, ra));
	else
		buf_printf(&b, "%s:%u", ra->host, relay_port(cfg, ra));
	s->relay = buf_steal(&b);
	return s;
}

/* session_reset - drop the connection, keep the relay */

static void session_reset(struct smtp_session *s)
{
	net_close(&s->conn);
	net_conn_init(&s->conn);
	smtp_caps_free(&s->caps);
	buf_free(&s->out);
	s->in_sync = 0;
	s->needs_rset = 0;
}

/* session_free - release without QUIT */

static void session_free(struct smtp_session *s)
{
	if (s == 0)
		return;
	session_reset(s);
	free(s->relay);
	free(s);
}

/* smtp_session_close - QUIT (not waited for) and release */

void smtp_session_close(struct smtp_session *s)
{
	struct error err;

	if (s == 0)
		return;
	if (s->conn.fd >= 0 && s->in_sync) {
		/* Nothing useful can come of the 221: do not wait a round trip for it. */
		queue_cmd(s, "QUIT");
		error_clear(&err);
		(void)flush_out(s, "sending QUIT", &err);
	}
	session_free(s);
}

/* smtp_session_usable - connected and in sync */

int smtp_session_usable(const struct smtp_session *s)
{
	struct pollfd pfd;

	if (s && s->maildir)
		return 1;
	if (!(s && s->conn.fd >= 0 && s->in_sync))
		return 0;

	/*
	 * Between transactions the relay has nothing to say. Anything
	 * readable now is its idle-timeout 421 or the close that follows
	 * (Postfix: smtpd_timeout), so the session is gone; finding out here
	 * saves a failed MAIL FROM and lets the caller reconnect.
	 */
	pfd.fd = s->conn.fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (s->conn.in.len > 0 || poll(&pfd, 1, 0) != 0)
		return 0;
	return 1;
}

/* smtp_session_has_dsn - the relay offers DSN */

int smtp_session_has_dsn(const struct smtp_session *s)
{
	return s && s->caps.dsn;
}

/* try_relays - open a session with failover; deliver when env is given */

static int try_relays(const struct config *cfg, struct smtp_session **out,
		      const struct envelope *env, const struct message *msg,
		      struct smtp_result *res, struct error *err)
{
	int status = fail(err, EX_CONFIG, 0, "no relay configured ([relay] host)");

	if (out)
		*out = 0;
	for (size_t i = 0; i < cfg->nrelays; i++) {
		struct smtp_session *s = session_new(cfg, i);
		struct addrinfo *ai = 0;

		if (res) {
			free(res->relay);
			res->relay = util_strdup(s->relay);
		}
		if (s->maildir) {
			status = env ? smtp_session_send(s, env, msg, res, err) : 0;
			if (status == 0) {
				if (out)
					*out = s;
				else
					session_free(s);
				return 0;
			}
			session_free(s);
			if (!err->temporary)
				return status;
			continue;
		}
		status = net_resolve(s->host, relay_port(cfg, &cfg->relays[i]), &ai, err);
		if (status) {
			char text[sizeof(err->text)];

			snprintf(text, sizeof(text), "%s", err->text);
			status = fail(err, status, err->temporary, "relay %s: %s", s->relay, text);
			verbose_line(s, "-- ", err->text, strlen(err->text));
		}
		for (struct addrinfo *a = status == 0 ? ai : 0; a; a = a->ai_next) {
			status = open_address(s, a, err);
			if (status == 0 && env)
				status = smtp_session_send(s, env, msg, res, err);
			if (status == 0)
				break;
			verbose_line(s, "-- ", err->text, strlen(err->text));
			session_reset(s);
			if (!err->temporary)
				break;
		}
		if (ai)
			freeaddrinfo(ai);
		if (status == 0) {
			if (out)
				*out = s;
			else
				smtp_session_close(s);
			return 0;
		}
		session_free(s);
		if (!err->temporary)
			return status;
	}
	return status;
}

/* smtp_session_open - connect to the first relay that works */

int smtp_session_open(struct smtp_session **out, const struct config *cfg, struct error *err)
{
	return try_relays(cfg, out, 0, 0, 0, err);
}

/* smtp_deliver - one message with relay failover */

int smtp_deliver(const struct config *cfg, const struct envelope *env, const struct message *msg,
		 struct smtp_result *res, struct error *err)
{
	return try_relays(cfg, 0, env, msg, res, err);
}

/*
 * smtp_session_deliver - one message over *session, reused or reopened
 *
 * The one rule for a session kept across messages (-bs, -bd, a queue pass):
 * reuse it while smtp_session_usable() says so, otherwise open a new one.
 * After a failure it is dropped when it is unusable and also after any
 * temporary error: a 4xx, a timeout or a dropped read leaves the relay's
 * idea of the transaction uncertain, and a fresh connection (with failover
 * to the next relay) is the only state both sides agree on. A permanent
 * refusal leaves the session in sync (the next transaction starts with
 * RSET), so it is kept.
 */
int smtp_session_deliver(struct smtp_session **session, const struct config *cfg,
			 const struct envelope *env, const struct message *msg,
			 struct smtp_result *res, int *no_relay, struct error *err)
{
	int status;

	if (no_relay)
		*no_relay = 0;
	if (*session && !smtp_session_usable(*session)) {
		smtp_session_close(*session);
		*session = 0;
	}
	if (*session == 0 && (status = smtp_session_open(session, cfg, err)) != 0) {
		if (no_relay)
			*no_relay = err->temporary;
		return status;
	}
	status = smtp_session_send(*session, env, msg, res, err);
	if (status != 0 && (err->temporary || !smtp_session_usable(*session))) {
		smtp_session_close(*session);
		*session = 0;
	}
	return status;
}

/* ---------------------------------------------------------------- */
/* The transaction                                                   */
/* ---------------------------------------------------------------- */

/* has_non_ascii - any byte >= 0x80 */

static int has_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* has_control_or_angle - a byte that must not reach a command line, or an
 * angle bracket: the address goes inside "<...>", so '>' would end the path
 * early and let the rest pass as MAIL/RCPT parameters */

static int has_control_or_angle(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '<' || *s == '>')
			return 1;
	return 0;
}

/* dsn_word_list - "failure,delay" -> "FAILURE,DELAY" if well-formed */

static int dsn_word_list(struct buf *out, const char *v)
{
	size_t start = out->len;

	if (*v == 0)
		return 0;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (isalpha(c))
			buf_putc(out, toupper(c));
		else if (c == ',')
			buf_putc(out, ',');
		else if (c != ' ') {
			buf_truncate(out, start);
			return 0;
		}
	}
	return 1;
}

/* build_mail - the MAIL FROM command */

static void build_mail(struct smtp_session *s, const struct envelope *env,
		       const struct message *msg, int utf8)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "MAIL FROM:<%s>", env->sender ? env->sender : "");
	if (s->caps.size)
		buf_printf(&b, " SIZE=%llu", message_size(msg));
	if (msg->has_8bit && s->caps.eightbitmime)
		buf_puts(&b, " BODY=8BITMIME");
	if (utf8 && s->caps.smtputf8)
		buf_puts(&b, " SMTPUTF8");
	if (s->caps.dsn && env->dsn_ret) {
		if (strcasecmp(env->dsn_ret, "full") == 0)
			buf_puts(&b, " RET=FULL");
		else if (strcasecmp(env->dsn_ret, "hdrs") == 0)
			buf_puts(&b, " RET=HDRS");
	}
	if (s->caps.dsn && env->dsn_envid && *env->dsn_envid) {
		buf_puts(&b, " ENVID=");
		smtp_xtext(&b, env->dsn_envid);
	}
	queue_cmd(s, "%s", b.data);
	buf_free(&b);
}

/* build_rcpt - one RCPT TO command */

static void build_rcpt(struct smtp_session *s, const struct envelope *env, const char *rcpt)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "RCPT TO:<%s>", rcpt);
	if (s->caps.dsn && env->dsn_notify) {
		size_t mark = b.len;

		buf_puts(&b, " NOTIFY=");
		if (!dsn_word_list(&b, env->dsn_notify))
			buf_truncate(&b, mark);
	}
	queue_cmd(s, "%s", b.data);
	buf_free(&b);
}

/* add_refusal - record a recipient refused by the relay */

static void add_refusal(struct strlist *who, struct strlist *why, const char *rcpt,
			const struct smtp_reply *r)
{
	struct buf b = BUF_INIT;

	reply_show(&b, r);
	strlist_add(who, rcpt);
	strlist_add_nodup(why, buf_steal(&b));
}

/* send_message - header, separator, body: dot-stuffed, in large writes */

static int send_message(struct smtp_session *s, const struct message *msg, struct error *err)
{
	struct smtp_dot dot = {0};
	struct buf out = BUF_INIT;
	char *chunk = 0;
	/* No 64 KB buffer for a small body: its end page is one more page fault. */
	size_t size = msg->body.len < SMTP_CHUNK ? (size_t)msg->body.len : SMTP_CHUNK;
	unsigned long long off = 0;
	int status = 0;

	smtp_dot_stuff(&dot, msg->header.data ? msg->header.data : "", msg->header.len, &out);
	smtp_dot_stuff(&dot, "\r\n", 2, &out);
	if (size)
		chunk = util_malloc(size);
	while (off < msg->body.len) {
		ssize_t n = body_read(&msg->body, off, chunk, size);

		if (n <= 0) {
			/* Our own spill file failed: nothing the relay can fix. */
			status = fail(err, EX_IOERR, 1, "cannot read the message body: %s",
				      n < 0 ? "read error" : "file shorter than expected");
			s->in_sync = 0;
			goto done;
		}
		off += (unsigned long long)n;
		smtp_dot_stuff(&dot, chunk, (size_t)n, &out);
		if (out.len >= SMTP_CHUNK && off < msg->body.len) {
			if ((status = net_write(&s->conn, out.data, out.len,
						net_deadline(s->timeout_ms), err)) != 0) {
				status = fail_net(s, err, "while sending the message");
				goto done;
			}
			buf_reset(&out);
		}
	}
	smtp_dot_finish(&dot, &out);
	if ((status = net_write(&s->conn, out.data, out.len, net_deadline(s->timeout_ms), err)) !=
	    0)
		status = fail_net(s, err, "while sending the message");

done:
	if (s->cfg->verbose) {
		char v[64];

		snprintf(v, sizeof(v), "<%llu bytes of message>", message_size(msg));
		verbose_line(s, "C: ", v, strlen(v));
	}
	free(chunk);
	buf_free(&out);
	return status;
}

/* rcpt_failure - every recipient refused: 67 when all 5xx, else temporary */

static int rcpt_failure(struct smtp_session *s, const struct smtp_result *res, struct error *err)
{
	struct buf b = BUF_INIT;
	int status;

	for (size_t i = 0; i < res->rejected.n; i++)
		buf_printf(&b, "%s<%s>: %s", b.len ? "; " : "", res->rejected.v[i],
			   res->rejected_replies.v[i]);
	for (size_t i = 0; i < res->deferred.n; i++)
		buf_printf(&b, "%s<%s>: %s", b.len ? "; " : "", res->deferred.v[i],
			   res->deferred_replies.v[i]);
	if (res->deferred.n)
		status = fail(err, EX_TEMPFAIL, 1, "relay %s refused every recipient: %s", s->relay,
			      b.data);
	else
		status = fail(err, EX_NOUSER, 0, "relay %s refused every recipient: %s", s->relay,
			      b.data);
	add_hint(err);
	buf_free(&b);
	return status;
}

/*
 * read_rset_reply - read the reply to RSET and judge it, for both ways of
 * sending. Any refusal leaves the session unusable: the relay kept the old
 * transaction (or is closing), and with pipelining the envelope behind the
 * RSET has already been answered in that state. The transaction fails with
 * a temporary error whatever the code, so the caller reconnects or queues
 * instead of bouncing a message that never reached a clean session.
 */
static int read_rset_reply(struct smtp_session *s, struct smtp_reply *r, struct error *err)
{
	struct buf b = BUF_INIT;
	int status;

	if ((status = read_reply(s, r, s->timeout_ms, "waiting for the reply to RSET", err)) != 0)
		return status;
	if (r->code / 100 == 2)
		return 0;
	s->in_sync = 0;
	reply_show(&b, r);
	status = fail(err, EX_TEMPFAIL, 1, "relay %s refused RSET: %s", s->relay, b.data);
	add_hint(err);
	buf_free(&b);
	return status;
}

/*
 * The envelope as a list of steps: RSET (when the previous transaction was
 * left unfinished), MAIL, one RCPT per recipient, DATA. Step i's command is
 * queued by queue_step() and its reply judged by envelope_dialogue(), in
 * the same order whether the relay pipelines or not, so the two ways of
 * sending cannot judge a reply differently.
 */
enum txn_step { STEP_RSET, STEP_MAIL, STEP_RCPT, STEP_DATA };

struct txn_steps {
	const struct envelope *env;
	const struct message *msg;
	int utf8; /* SMTPUTF8 on MAIL */
	int rset; /* step 0 is RSET */
	size_t n; /* rset + MAIL + each RCPT + DATA */
};

/* step_kind - what step i is; *rcpt the recipient index of a RCPT step */

static enum txn_step step_kind(const struct txn_steps *t, size_t i, size_t *rcpt)
{
	if (t->rset && i == 0)
		return STEP_RSET;
	i -= (size_t)t->rset;
	if (i == 0)
		return STEP_MAIL;
	if (i <= t->env->rcpts.n) {
		*rcpt = i - 1;
		return STEP_RCPT;
	}
	return STEP_DATA;
}

/* queue_step - queue step i's command; returns the stage for a write error */

static const char *queue_step(struct smtp_session *s, const struct txn_steps *t, size_t i)
{
	size_t k = 0;

	switch (step_kind(t, i, &k)) {
	case STEP_RSET:
		queue_cmd(s, "RSET");
		return "sending RSET";
	case STEP_MAIL:
		build_mail(s, t->env, t->msg, t->utf8);
		return "sending MAIL FROM";
	case STEP_RCPT:
		build_rcpt(s, t->env, t->env->rcpts.v[k]);
		return "sending RCPT TO";
	case STEP_DATA:
		break;
	}
	queue_cmd(s, "DATA");
	return "sending DATA";
}

/* end_empty_data - end a DATA the relay took with no recipient (RFC 2920 3.1) */

static int end_empty_data(struct smtp_session *s, struct smtp_reply *r, struct error *err)
{
	int status;

	buf_puts(&s->out, ".\r\n");
	if ((status = flush_out(s, "ending DATA", err)) != 0)
		return status;
	return read_reply(s, r, s->timeout_ms, "waiting for the reply to an empty DATA", err);
}

/*
 * envelope_dialogue - send the steps and judge their replies; 0 when DATA
 * got its 354 with at least one recipient accepted. With PIPELINING all
 * commands go out in one write (RFC 2920); without it each is written only
 * once the reply before it was judged, so one the judgement made pointless
 * (RCPT after a refused sender, DATA with no recipient) is never sent. A
 * reply already on its way after a refused sender is still read, to keep
 * the session in sync.
 */
static int envelope_dialogue(struct smtp_session *s, const struct txn_steps *t,
			     struct smtp_result *res, struct smtp_reply *r, struct error *err)
{
	size_t sent = 0;
	size_t accepted = 0;
	int status = 0;

	if (s->caps.pipelining) {
		for (; sent < t->n; sent++)
			(void)queue_step(s, t, sent);
		if ((status = flush_out(s, "sending the envelope", err)) != 0)
			return status;
	}
	for (size_t i = 0; i < t->n; i++) {
		size_t k = 0;
		enum txn_step kind = step_kind(t, i, &k);

		if (i == sent) {
			if (status != 0)
				break;
			if (kind == STEP_DATA && accepted == 0)
				return rcpt_failure(s, res, err);
			if ((status = flush_out(s, queue_step(s, t, i), err)) != 0)
				return status;
			sent++;
		}
		if (status != 0) {
			/* The sender was refused: the rest only answers "need MAIL". */
			struct error drain;

			error_clear(&drain);
			if (read_reply(s, r, s->timeout_ms, "after a refused MAIL FROM", &drain) !=
			    0)
				break;
			if (kind == STEP_DATA && r->code == 354)
				(void)end_empty_data(s, r, &drain);
			continue;
		}
		switch (kind) {
		case STEP_RSET:
			if ((status = read_rset_reply(s, r, err)) != 0)
				return status;
			break;
		case STEP_MAIL:
			if ((status = read_reply(s, r, s->timeout_ms,
						 "waiting for the reply to MAIL FROM", err)) != 0)
				return status;
			if (r->code / 100 != 2)
				status = fail_reply(s, err, r, EX_UNAVAILABLE,
						    "refused the sender at MAIL FROM");
			break;
		case STEP_RCPT:
			if ((status = read_reply(s, r, s->timeout_ms,
						 "waiting for the reply to RCPT TO", err)) != 0)
				return status;
			if (r->code / 100 == 2)
				accepted++;
			else if (r->code >= 500)
				add_refusal(&res->rejected, &res->rejected_replies,
					    t->env->rcpts.v[k], r);
			else
				add_refusal(&res->deferred, &res->deferred_replies,
					    t->env->rcpts.v[k], r);
			break;
		case STEP_DATA:
			if ((status = read_reply(s, r, s->timeout_ms,
						 "waiting for the reply to DATA", err)) != 0)
				return status;
			if (accepted == 0) {
				if (r->code == 354 && (status = end_empty_data(s, r, err)) != 0)
					return status;
				return rcpt_failure(s, res, err);
			}
			if (r->code != 354)
				return fail_reply(s, err, r, EX_UNAVAILABLE, "refused DATA");
			break;
		}
	}
	return status;
}

/* smtp_session_send - one transaction */

int smtp_session_send(struct smtp_session *s, const struct envelope *env, const struct message *msg,
		      struct smtp_result *res, struct error *err)
{
	struct smtp_reply r;
	struct txn_steps steps;
	int utf8 = env->smtputf8;
	int rset = s->needs_rset;
	int status = 0;

	if (res == 0) {
		struct smtp_result local;

		smtp_result_init(&local);
		status = smtp_session_send(s, env, msg, &local, err);
		smtp_result_free(&local);
		return status;
	}
	smtp_result_free(res);
	res->relay = util_strdup(s->relay);
	if (!smtp_session_usable(s))
		return fail(err, EX_TEMPFAIL, 1, "relay %s: connection lost", s->relay);
	if (env->rcpts.n == 0)
		return fail(err, EX_USAGE, 0, "no recipients");
	if (s->maildir) {
		struct buf reply = BUF_INIT;
		char *name;

		if ((status = capture_deliver(s->host, env, msg, &name, err)) != 0)
			return status;
		buf_printf(&reply, "250 2.0.0 Ok: captured as %s", name);
		res->reply = buf_steal(&reply);
		snprintf(res->dsn, sizeof(res->dsn), "2.0.0");
		free(name);
		return 0;
	}
	if (has_control_or_angle(env->sender ? env->sender : ""))
		return fail(err, EX_DATAERR, 0, "bad character in the sender address");
	utf8 |= has_non_ascii(env->sender ? env->sender : "");
	for (size_t i = 0; i < env->rcpts.n; i++) {
		if (has_control_or_angle(env->rcpts.v[i]))
			return fail(err, EX_DATAERR, 0, "bad character in the recipient address");
		utf8 |= has_non_ascii(env->rcpts.v[i]);
	}
	/* The relay's SIZE is Postfix's message_size_limit, which counts its
	 * queue file: refuse here what it would refuse after the whole DATA. */
	if (s->caps.size && s->caps.size_max) {
		unsigned long long estimate;

		if (relay_hint_too_big(msg, env, s->caps.size_max, &estimate))
			return fail(err, EX_DATAERR, 0,
				    "message is %llu bytes (about %llu as the relay counts it),"
				    " relay %s accepts at most %llu bytes (SIZE)",
				    message_size(msg), estimate, s->relay, s->caps.size_max);
	}
	if (utf8 && !s->caps.smtputf8)
		return fail(err, EX_DATAERR, 0,
			    "an address is not ASCII and relay %s does not offer SMTPUTF8",
			    s->relay);

	smtp_reply_init(&r);
	/* Cleared by the reply to the final dot, which ends a transaction either way. */
	s->needs_rset = 1;
	steps.env = env;
	steps.msg = msg;
	steps.utf8 = utf8;
	steps.rset = rset;
	steps.n = (size_t)rset + 1 + env->rcpts.n + 1;
	if ((status = envelope_dialogue(s, &steps, res, &r, err)) != 0)
		goto done;
	if ((status = send_message(s, msg, err)) != 0)
		goto done;
	if ((status = read_reply(s, &r, s->eod_timeout_ms,
				 "waiting for the reply to the end of data", err)) != 0)
		goto done;
	s->needs_rset = 0;
	if (r.code / 100 != 2) {
		status = fail_reply(s, err, &r, EX_UNAVAILABLE,
				    r.code >= 500 ? "refused the message at end of data"
						  : "deferred the message at end of data");
		goto done;
	}
	{
		struct buf b = BUF_INIT;

		reply_show(&b, &r);
		res->reply = buf_steal(&b);
		snprintf(res->dsn, sizeof(res->dsn), "%s", r.dsn);
	}

done:
	smtp_reply_free(&r);
	buf_reset(&s->out);
	return status;
}

/* ---------------------------------------------------------------- */
/* --relay-check                                                     */
/* ---------------------------------------------------------------- */

/*
 * probe_verdict - a refusal of the policy probe as one line: what was
 * refused, the relay's reply and the likely cause, with a status per cause
 * (smtp.h) so an entrypoint script can tell them apart.
 */
static int probe_verdict(struct smtp_session *s, const struct smtp_reply *r, const char *cmd,
			 struct error *err)
{
	struct buf b = BUF_INIT;
	enum relay_hint kind;
	const char *label = "refused";
	int status = r->code >= 500 ? EX_PROTOCOL : EX_TEMPFAIL;

	reply_show(&b, r);
	kind = relay_hint_classify(b.data);
	if (kind == RELAY_HINT_NONE && r->code >= 500 && is_too_big(r))
		kind = RELAY_HINT_SIZE;
	switch (kind) {
	case RELAY_HINT_RELAY_ACCESS:
		label = "relay access denied", status = EX_UNAVAILABLE;
		break;
	case RELAY_HINT_SENDER:
		label = "sender rejected", status = EX_NOPERM;
		break;
	case RELAY_HINT_SIZE:
		label = "size refused", status = EX_DATAERR;
		break;
	case RELAY_HINT_DNS:
		label = "domain not found", status = EX_NOHOST;
		break;
	case RELAY_HINT_NONE:
		break;
	}
	fail(err, status, r->code < 500, "relay %s: %s: %s answered %s%s%s", s->relay, label, cmd,
	     b.data, kind != RELAY_HINT_NONE ? "; likely cause: " : "", relay_hint_cause(kind));
	buf_free(&b);
	return status;
}

/* probe_step - one command of the probe and its reply */

static int probe_step(struct smtp_session *s, const char *cmd, struct smtp_reply *r,
		      struct error *err)
{
	int status;

	queue_cmd(s, "%s", cmd);
	if ((status = flush_out(s, "sending the policy probe", err)) != 0)
		return status;
	return read_reply(s, r, s->timeout_ms, "waiting for a reply to the policy probe", err);
}

/*
 * probe_policy - would the relay take mail from env->sender to env->rcpts.v[0]
 * (of max_size bytes)? MAIL FROM, RCPT TO, then RSET: nothing is sent.
 */
static int probe_policy(struct smtp_session *s, const struct envelope *env, struct error *err)
{
	const struct config *cfg = s->cfg;
	const char *sender = env->sender ? env->sender : "";
	const char *rcpt = env->rcpts.n ? env->rcpts.v[0] : "";
	struct buf cmd = BUF_INIT;
	struct smtp_reply r;
	int status = 0;

	if (cfg->max_size && s->caps.size && s->caps.size_max && s->caps.size_max < cfg->max_size) {
		status = fail(
		    err, EX_DATAERR, 0,
		    "relay %s: size refused: it accepts at most %llu bytes (SIZE), less than"
		    " max_size %llu; likely cause: %s",
		    s->relay, s->caps.size_max, cfg->max_size, relay_hint_cause(RELAY_HINT_SIZE));
		report(s, "policy: %s", err->text);
		return status;
	}
	smtp_reply_init(&r);
	buf_printf(&cmd, "MAIL FROM:<%s>", sender);
	if (s->caps.size && cfg->max_size)
		buf_printf(&cmd, " SIZE=%llu", cfg->max_size);
	if ((status = probe_step(s, cmd.data, &r, err)) != 0)
		goto done;
	if (r.code / 100 != 2) {
		status = probe_verdict(s, &r, cmd.data, err);
		goto done;
	}
	buf_reset(&cmd);
	buf_printf(&cmd, "RCPT TO:<%s>", rcpt);
	if ((status = probe_step(s, cmd.data, &r, err)) != 0)
		goto done;
	if (r.code / 100 != 2)
		status = probe_verdict(s, &r, cmd.data, err);
	else
		report(s,
		       "policy: OK: the relay would take mail from <%s> to <%s>%s (nothing sent)",
		       sender, rcpt, s->caps.size && cfg->max_size ? " of max_size bytes" : "");
	/* The answer to RSET does not change the verdict. */
	if (probe_step(s, "RSET", &r, &(struct error){0}) != 0)
		s->in_sync = 0;
done:
	if (status)
		report(s, "policy: %s", err->text);
	smtp_reply_free(&r);
	buf_free(&cmd);
	return status;
}

/* smtp_relay_check - connect, EHLO, STARTTLS, AUTH, QUIT for every relay */

int smtp_relay_check(const struct config *cfg, struct buf *out, struct error *err)
{
	return smtp_relay_probe(cfg, 0, out, err);
}

/* smtp_relay_probe - smtp_relay_check, plus the policy probe on every relay that answered */

int smtp_relay_probe(const struct config *cfg, const struct envelope *probe, struct buf *out,
		     struct error *err)
{
	int first = 0;

	if (cfg->nrelays == 0)
		return fail(err, EX_CONFIG, 0, "no relay configured ([relay] host)");
	for (size_t i = 0; i < cfg->nrelays; i++) {
		struct smtp_session *s = session_new(cfg, i);
		struct addrinfo *ai = 0;
		struct error e;
		int status;

		error_clear(&e);
		s->report = out;
		buf_printf(out, "relay %s:\n", s->relay);
		if (s->maildir) {
			status = capture_check(s->host, &e);
			if (status == 0)
				buf_puts(out, "  ok (capture: nothing leaves this machine)\n");
			else
				buf_printf(out, "  failed: %s\n", e.text);
			if (status && first == 0) {
				first = status;
				*err = e;
			}
			session_free(s);
			continue;
		}
		status = net_resolve(s->host, relay_port(cfg, &cfg->relays[i]), &ai, &e);
		for (struct addrinfo *a = ai; status == 0 && a; a = a->ai_next) {
			status = open_address(s, a, &e);
			if (status == 0)
				break;
			buf_printf(out, "  failed: %s\n", e.text);
			session_reset(s);
			if (!e.temporary || a->ai_next == 0)
				break;
			status = 0;
		}
		if (ai == 0 && status)
			buf_printf(out, "  failed: %s\n", e.text);
		if (ai)
			freeaddrinfo(ai);
		if (status == 0 && probe)
			status = probe_policy(s, probe, &e);
		if (status == 0)
			buf_puts(out, "  ok\n");
		else if (first == 0) {
			first = status;
			*err = e;
		}
		smtp_session_close(s);
	}
	return first;
}
