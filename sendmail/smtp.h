#ifndef RELAYSHIM_SMTP_H
#define RELAYSHIM_SMTP_H

/*++
 * NAME
 *	smtp 3h
 * SUMMARY
 *	the RFC 5321 client: one relay connection, one or more transactions
 * SYNOPSIS
 *	#include "smtp.h"
 *
 *	void	smtp_result_init(struct smtp_result *r);
 *	void	smtp_result_free(struct smtp_result *r);
 *	void	smtp_result_accepted(const struct smtp_result *r,
 *			const struct envelope *env, struct strlist *out);
 *
 *	int	smtp_session_open(struct smtp_session **out, const struct config *cfg,
 *			struct error *err);
 *	int	smtp_session_send(struct smtp_session *s, const struct envelope *env,
 *			const struct message *msg, struct smtp_result *res,
 *			struct error *err);
 *	int	smtp_session_usable(const struct smtp_session *s);
 *	int	smtp_session_has_dsn(const struct smtp_session *s);
 *	void	smtp_session_close(struct smtp_session *s);
 *
 *	int	smtp_session_deliver(struct smtp_session **session,
 *			const struct config *cfg, const struct envelope *env,
 *			const struct message *msg, struct smtp_result *res,
 *			int *no_relay, struct error *err);
 *	int	smtp_deliver(const struct config *cfg, const struct envelope *env,
 *			const struct message *msg, struct smtp_result *res,
 *			struct error *err);
 *	int	smtp_relay_check(const struct config *cfg, struct buf *out,
 *			struct error *err);
 *	int	smtp_relay_probe(const struct config *cfg,
 *			const struct envelope *probe, struct buf *out,
 *			struct error *err);
 *
 *	ssize_t	smtp_parse_reply(const char *data, size_t len, struct smtp_reply *r);
 *	void	smtp_reply_init(struct smtp_reply *r);
 *	void	smtp_reply_free(struct smtp_reply *r);
 *	void	smtp_parse_ehlo(const struct smtp_reply *r, struct smtp_caps *caps);
 *	void	smtp_caps_free(struct smtp_caps *caps);
 *	void	smtp_dot_stuff(struct smtp_dot *st, const char *in, size_t n,
 *			struct buf *out);
 *	void	smtp_dot_finish(struct smtp_dot *st, struct buf *out);
 *	void	smtp_xtext(struct buf *out, const char *s);
 * DESCRIPTION
 *	The shape follows msmtp's smtp.h; errors follow our struct error.
 *
 *	smtp_result_accepted() appends to out the recipients of env that
 *	the relay took: neither refused (r->rejected) nor deferred
 *	(r->deferred), compared as those lists were filled.
 *	Everything a relay says is untrusted: reply lines are bounded
 *	(SMTP_REPLY_LINE_MAX bytes each, SMTP_REPLY_LINES_MAX lines per
 *	reply) and sanitised before they reach an error text or a result.
 *
 *	smtp_session_open() tries the relays of cfg->relays in order, and
 *	each address of a relay in order (failover on temporary trouble),
 *	reads the greeting, sends EHLO (HELO when EHLO is refused with 5xx),
 *	does STARTTLS per cfg->tls and AUTH when cfg->username is set.
 *
 *	smtp_session_send() runs one transaction: MAIL (SIZE=, BODY=8BITMIME,
 *	SMTPUTF8, RET=/ENVID= when DSN is offered), every RCPT (NOTIFY=),
 *	DATA - all in one write when the relay offers PIPELINING - then the
 *	header section, the separator, the body streamed in large chunks and
 *	dot-stuffed on the fly, the final dot in the last write. A
 *	transaction that follows one left unfinished (refused sender or
 *	recipients, refused DATA) starts with RSET, pipelined with MAIL. A
 *	refused RSET (any code) fails the transaction with EX_TEMPFAIL,
 *	temporary, and leaves the session unusable, pipelined or not: the
 *	caller reconnects or queues. Replies are judged in the same order by
 *	one loop either way. Recipients the
 *	relay refuses while it accepts others are listed in res->rejected
 *	(5xx) or res->deferred (4xx); the message goes to the accepted ones
 *	and the call returns 0.
 *
 *	smtp_session_usable() says whether the session can carry another
 *	transaction: connected, in sync, and the relay has not sent anything
 *	since (a relay that timed out the idle session has sent 421 or
 *	closed it; then open a new session).
 *
 *	smtp_session_close() writes QUIT and closes without waiting for the
 *	221 (nothing useful can come of it). It accepts NULL.
 *
 *	smtp_session_deliver() sends one message over *session, a session
 *	the caller keeps across messages (-bs, -bd, a queue pass; *session
 *	starts NULL and the caller closes it at the end). It reuses *session
 *	while smtp_session_usable() says so and opens a new one otherwise.
 *	After a failed transaction it closes *session and sets it to NULL
 *	when the session is unusable or the error is temporary (the relay's
 *	state is then uncertain; the next message starts on a new connection,
 *	with failover); after a permanent refusal the session is kept. With
 *	no_relay non-NULL, *no_relay is set when no relay could be opened
 *	(temporary), so a queue pass can tell a relay outage from a message
 *	the relay deferred.
 *
 *	smtp_deliver() is open + send + close with relay failover: a
 *	temporary failure (connect, timeout, dropped connection, 4xx, TLS
 *	trouble) moves on to the next address and relay, a permanent one
 *	(5xx) stops.
 *
 *	smtp_relay_check() (--relay-check) connects to every relay, does
 *	EHLO/STARTTLS/AUTH and QUIT, and appends a human report to out.
 *	smtp_relay_probe() does the same and, with probe non-NULL, asks each
 *	relay that answered whether it would take mail from probe->sender to
 *	probe->rcpts.v[0] (of max_size bytes, as SIZE=, when both are set):
 *	MAIL FROM, RCPT TO, RSET, nothing sent. The verdict is one line in
 *	out and, when negative, in err: "relay H: relay access denied: RCPT
 *	TO:<r> answered 454 4.7.1 ...; likely cause: ..." with status
 *	EX_UNAVAILABLE (69) for relay access denied (the relay's mynetworks),
 *	EX_NOPERM (77) for a refused sender (its ALLOWED_SENDER_DOMAINS),
 *	EX_DATAERR (65) for a size refusal (its SIZE below max_size, or
 *	SIZE= refused), EX_NOHOST (68) for domain not found (no DNS on the
 *	relay), and otherwise EX_PROTOCOL (76) for 5xx, EX_TEMPFAIL for 4xx.
 *
 *	The pure functions below do no I/O; unit tests and fuzzers call them.
 *	smtp_parse_reply() parses one complete (possibly multi-line) reply
 *	at the start of data: it returns the number of bytes consumed, 0 when
 *	more input is needed, -1 when the input is not a valid reply (bad
 *	code, mixed codes in one reply, line or line count over the limits);
 *	r->text then says why. Lines may end in CRLF or bare LF.
 *	smtp_parse_ehlo() reads the capabilities of a 250 EHLO reply
 *	(keywords case-insensitive). smtp_dot_stuff() dot-stuffs a stream of
 *	CRLF-terminated lines given in arbitrary chunks (state in st, which
 *	starts zeroed = at the start of a line); smtp_dot_finish() appends a
 *	CRLF when the data did not end with one, then ".\r\n".
 *	smtp_xtext() appends s xtext-encoded (RFC 3461 section 4).
 * DIAGNOSTICS
 *	Functions return 0 or a sysexits.h code; err->status is the same and
 *	err->temporary is set when a later retry may succeed. err->text is
 *	one line naming the relay, the stage and the relay's reply, e.g.
 *	"relay 127.0.0.1:2525 refused the sender at MAIL FROM: 550 5.7.1 <x@y>: Sender rejected".
 *	A refusal that points at the relay's configuration (relay_hint.h:
 *	Relay access denied, Domain not found, sender refusals, size) ends in
 *	"; likely cause: ...", so the caller's line, the log and mailq say
 *	what to fix.
 *
 *	EX_NOUSER (67)		every recipient refused with 5xx.
 *	EX_UNAVAILABLE (69)	5xx at greeting, EHLO, MAIL, DATA or end of
 *				data; AUTH refused (535), never with the
 *				password in the text; AUTH required by the
 *				configuration but not offered.
 *	EX_TEMPFAIL (75)	temporary=1: connect failure, timeout,
 *				dropped connection, 4xx anywhere, every
 *				recipient refused with at least one 4xx, TLS
 *				handshake failure, and TLS certificate
 *				verification failure (expired, wrong name,
 *				unknown CA, self-signed, fingerprint mismatch).
 *				Decision: like Postfix, which defers on
 *				"Server certificate not verified", because
 *				a certificate is fixed on the relay side
 *				(renewal, rotation) and the next relay in the
 *				list may be fine; the text always names the
 *				reason so the log shows what to fix.
 *	EX_DATAERR (65)		the message is bigger than the relay's SIZE
 *				limit (checked before MAIL) or the relay says
 *				so (5.3.4, 5.2.3, or a bare 552, at MAIL or
 *				end of data), or an address is not ASCII and
 *				the relay lacks SMTPUTF8.
 *	EX_CONFIG (78)		credentials would go over a connection that
 *				is neither verified TLS nor loopback (and
 *				auth_insecure is off); STARTTLS required but
 *				not offered is EX_TEMPFAIL like any relay
 *				trouble.
 *
 *	With tls = may, a STARTTLS refused with 4xx/5xx continues in plain
 *	text on the same connection; a failed handshake is a temporary
 *	failure (the connection is unusable, and reconnecting in plain text
 *	is what an active attacker would provoke).
 *
 *	8-bit bodies get BODY=8BITMIME when offered; when not offered the
 *	message is sent anyway (Postfix and every relay in practice pass
 *	8-bit data; refusing would lose mail for nothing).
 *--*/

#include <sys/types.h>

#include "buf.h"
#include "config.h"
#include "message.h"
#include "util.h"

#define SMTP_REPLY_LINE_MAX 4096 /* bytes per reply line, CRLF included */
#define SMTP_REPLY_LINES_MAX 100 /* lines per reply */

struct smtp_session;

struct smtp_result {
	char *relay;			 /* "host:port" of the relay that answered last */
	struct strlist rejected;	 /* recipients refused one by one with 5xx ... */
	struct strlist rejected_replies; /* ... with the relay's reply (sanitised) */
	struct strlist deferred;	 /* recipients refused with 4xx while others passed */
	struct strlist deferred_replies;
	char *reply;  /* final reply, e.g. "250 2.0.0 Ok: queued as 4F...", sanitised */
	char dsn[16]; /* enhanced status code of the final reply, "" if none */
};

void smtp_result_init(struct smtp_result *r);
void smtp_result_free(struct smtp_result *r);
void smtp_result_accepted(const struct smtp_result *r, const struct envelope *env,
			  struct strlist *out);

int smtp_session_open(struct smtp_session **out, const struct config *cfg, struct error *err);
int smtp_session_send(struct smtp_session *s, const struct envelope *env, const struct message *msg,
		      struct smtp_result *res, struct error *err);
int smtp_session_usable(const struct smtp_session *s);
int smtp_session_has_dsn(const struct smtp_session *s);
void smtp_session_close(struct smtp_session *s);

int smtp_session_deliver(struct smtp_session **session, const struct config *cfg,
			 const struct envelope *env, const struct message *msg,
			 struct smtp_result *res, int *no_relay, struct error *err);
int smtp_deliver(const struct config *cfg, const struct envelope *env, const struct message *msg,
		 struct smtp_result *res, struct error *err);
int smtp_relay_check(const struct config *cfg, struct buf *out, struct error *err);
int smtp_relay_probe(const struct config *cfg, const struct envelope *probe, struct buf *out,
		     struct error *err);

/* One parsed reply. */
struct smtp_reply {
	int code;	 /* 200..599 */
	char dsn[16];	 /* enhanced status code ("2.0.0"), "" if none */
	struct buf text; /* the lines without code and separator, joined by '\n' */
	size_t nlines;
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);
ssize_t smtp_parse_reply(const char *data, size_t len, struct smtp_reply *r);

/* Capabilities from EHLO. */
struct smtp_caps {
	int pipelining;
	int size;		     /* SIZE advertised */
	unsigned long long size_max; /* its argument, 0 = no limit given */
	int eightbitmime;
	int smtputf8;
	int dsn;
	int starttls;
	int enhancedstatuscodes;
	int auth;	  /* AUTH advertised */
	char *auth_mechs; /* space-separated, upper case, NULL if none */
};

void smtp_parse_ehlo(const struct smtp_reply *r, struct smtp_caps *caps);
void smtp_caps_free(struct smtp_caps *caps);

/* Dot-stuffing state across chunks. */
struct smtp_dot {
	int mid_line; /* 0 at the start of a line (after LF) */
};

void smtp_dot_stuff(struct smtp_dot *st, const char *in, size_t n, struct buf *out);
void smtp_dot_finish(struct smtp_dot *st, struct buf *out);
void smtp_xtext(struct buf *out, const char *s);

#endif
