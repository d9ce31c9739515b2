#ifndef RELAYSHIM_SMTPD_H
#define RELAYSHIM_SMTPD_H

/*++
 * NAME
 *	smtpd 3h
 * SUMMARY
 *	the -bs ESMTP server (stdin/stdout or a socket) and the -bd daemon
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	struct smtpd_ops { deliver, has_dsn, end_session, bye };
 *
 *	int	smtpd_serve(int in_fd, int out_fd, const struct config *cfg,
 *			const struct smtpd_ops *ops, void *ctx, struct error *err);
 *	int	smtpd_serve_limits(int in_fd, int out_fd, const struct config *cfg,
 *			const struct smtpd_limits *lim, const struct smtpd_ops *ops,
 *			void *ctx, struct error *err);
 *	void	smtpd_limits_default(struct smtpd_limits *lim);
 *	int	smtpd_daemon(const struct config *cfg, const struct smtpd_ops *ops,
 *			void *ctx, struct error *err);
 *	int	smtpd_daemon_limits(const struct config *cfg,
 *			const struct smtpd_limits *lim, const struct smtpd_ops *ops,
 *			void *ctx, struct error *err);
 *
 *	int	smtpd_parse_path(const char *arg, const char *keyword,
 *			struct buf *addr, const char **params);
 *	int	smtpd_xtext_decode(const char *in, size_t len, struct buf *out);
 *	void	smtpd_format_reply(const char *reply, size_t len, struct buf *out);
 * DESCRIPTION
 *	smtpd_serve() speaks ESMTP (RFC 5321) to one client: commands are
 *	read from in_fd, replies written to out_fd (the same descriptor for
 *	a socket). It returns when the client sends QUIT, closes the
 *	connection (with or without QUIT: nodemailer never sends it), stays
 *	idle too long, or makes too many errors. Delivery is the caller's:
 *	after the final dot, ops->deliver(ctx, env, msg, reply) receives the
 *	envelope (MAIL/RCPT) and the message (dot-unstuffed, CRLF-normalised,
 *	header section split from the body by input.c's message builder) and
 *	fills reply with the final reply ("250 2.0.0 Ok: queued as X", or the
 *	relay's 4xx/5xx). The client gets that reply - same code, same text,
 *	an enhanced status code added when the relay gave none, control bytes
 *	escaped - and nothing before it: the 250 means the relay (or the
 *	queue) has the message. A deliver that returns non-zero, or a reply
 *	that is not a 2xx/4xx/5xx reply, becomes "451 4.3.0". ops->has_dsn
 *	(may be NULL) is asked whether to advertise DSN: once right after
 *	the greeting has been sent (the caller opens its relay session
 *	then, while the client's EHLO is on its way; that answer serves the
 *	first EHLO), and once per later EHLO.
 *	ops->end_session (may be NULL) is called once when the session ends,
 *	so the caller can close the relay connection it kept across the
 *	session's transactions. The envelope and message belong to
 *	smtpd_serve; deliver may modify them but must not free them.
 *
 *	smtpd_serve() sets SIGPIPE to SIG_IGN: a client that went away is
 *	an end of session, not a crash (also for the relay connection).
 *
 *	smtpd_serve_limits() and smtpd_daemon_limits() take explicit bounds
 *	(tests use short timeouts); smtpd_limits_default() fills in the
 *	defaults listed below.
 *
 *	smtpd_daemon() (-bd) listens on every endpoint of cfg->intercept
 *	(RELAYSHIM_INTERCEPT syntax, see endpoint_parse()), forks one
 *	process per connection that runs smtpd_serve() on the socket, reaps
 *	them, and runs in the foreground until SIGTERM or SIGINT. Then it
 *	closes the listeners, gives running sessions SMTPD_DRAIN_SECONDS to
 *	finish, sends SIGTERM to the rest and returns 0. Each child inherits
 *	ctx as it is at the time of the fork (the caller should not have
 *	opened a relay connection yet). An endpoint that cannot be bound
 *	because its address family is missing (IPv6 disabled in the
 *	container) is skipped with a warning; the daemon fails only when no
 *	endpoint could be bound.
 *
 *	Protocol decisions (they go into relayshim(8)):
 *	- 220 greeting first; HELO and EHLO with any argument, or none.
 *	  MAIL without a preceding HELO/EHLO is accepted (RFC 5321 allows
 *	  either; refusing only breaks hand-written clients).
 *	- verbs are case-insensitive; "MAIL FROM: <a>" (space after the
 *	  colon) and unbracketed addresses are accepted, as Postfix does.
 *	- EHLO advertises PIPELINING, SIZE (with the number when [policy]
 *	  max_size is set, bare otherwise - RFC 1870: no fixed limit, and the
 *	  client may then announce the size), 8BITMIME, SMTPUTF8,
 *	  ENHANCEDSTATUSCODES, DSN when ops->has_dsn says so, and
 *	  AUTH PLAIN LOGIN (plus the legacy AUTH= line) when [smtpd] auth is
 *	  "accept". Any credentials are accepted: an application configured
 *	  with a password must still work.
 *	- STARTTLS is never advertised and answered "502 5.5.1": every
 *	  client that upgrades automatically would fail on a certificate of
 *	  ours (PHPMailer and Symfony do, when STARTTLS is offered); 502 rather than 454 so that a
 *	  client configured to require TLS fails at once instead of retrying.
 *	- MAIL parameters SIZE, BODY=7BIT/8BITMIME, SMTPUTF8, RET, ENVID and
 *	  AUTH, RCPT parameters NOTIFY and ORCPT are accepted; DSN parameters
 *	  are kept even when DSN was not advertised and passed on when the
 *	  relay offers DSN (the -N/-R/-V rule). struct envelope has one NOTIFY
 *	  per message: the first RCPT's NOTIFY applies to all recipients;
 *	  ORCPT is dropped. Other parameters: "555 5.5.4".
 *	- VRFY answers 252; EXPN, ETRN, BDAT, TURN 502; unknown verbs 500.
 *
 *	DATA and SMTP smuggling (RFC 5321 2.3.8 and 4.1.1.4; the 2023
 *	"SMTP smuggling" research): only <CR><LF>.<CR><LF> ends the data -
 *	a line that is exactly "." ended by CRLF, after a line (or the DATA
 *	command) ended by CRLF. Postfix 3.9's smtpd_forbid_bare_newline =
 *	normalize does the same. Otherwise a bare LF is a line end for the
 *	content (curl sends files as they are), and one CR just before the
 *	LF belongs to the line ending. A "." line that does not end the data
 *	("\n.\n", "\r\n.\n", "\n.\r\n") is content and stays a dot: a
 *	client that does not see a bare LF as a line end did not dot-stuff
 *	it, so what follows it is its message text, never our next command.
 *	A lone CR is data, never a line ending ("\r.\r" ends nothing). A
 *	leading dot is removed from every other line (transparency, RFC 5321
 *	4.5.2, after CRLF or bare LF alike). Every line is then re-terminated
 *	with CRLF and dot-stuffed again by the SMTP client, so the relay sees
 *	exactly the message boundary we saw and no second message can be
 *	hidden behind an ambiguous one. A client that ends its data with a
 *	bare-LF "." is not answered until the idle timeout, as with Postfix.
 *	Lone CRs inside a line are relayed as they are (the message
 *	bytes are passed on unchanged): a receiver behind the relay that took a lone CR as a line
 *end would see lines we did not; Postfix does not.
 *
 *	Bounds (they go into relayshim(8)):
 *	SMTPD_LINE_MAX		4096 bytes per command line, line ending
 *				excluded (RFC 5321 4.5.3.1.4 asks for 512);
 *				longer: "500 5.5.2", the line is discarded.
 *	SMTPD_DATA_LINE_MAX	1 MiB per message line; longer: the message is
 *				read to its end and refused "554 5.6.0"
 *				(memory stays bounded whatever the client sends).
 *	SMTPD_RCPT_MAX		1000 recipients per message; more: "452 4.5.3"
 *				(RFC 5321 4.5.3.1.10: the client sends the rest
 *				in another transaction).
 *	[policy] max_size	a larger SIZE= is refused at MAIL; a larger
 *				message is read to its end and refused
 *				"552 5.3.4" without being delivered.
 *	SMTPD_ERRORS_MAX	20 commands answered 4xx/5xx in a session; then
 *				"421 4.7.0" and the session ends.
 *	SMTPD_IDLE_TIMEOUT	300 s: inside DATA, without a byte from the
 *				client; between messages, the client's pauses
 *				added up since the greeting or the end of the
 *				last DATA, whatever commands came in between
 *				(NOOP does not keep a session alive; our own
 *				time talking to the relay is not counted);
 *				also for a client that does not read its
 *				replies. Then "421 4.4.2", session ends.
 *	SMTPD_JUNK_MAX		100 commands other than MAIL, RCPT, DATA and
 *				QUIT (NOOP, RSET, HELO, VRFY, ...) and RCPTs
 *				past SMTPD_RCPT_MAX since the greeting or the
 *				last DATA; the next is answered "421 4.7.0" and
 *				the session ends (Postfix's
 *				smtpd_junk_command_limit).
 *	SMTPD_DAEMON_CHILDREN	100 concurrent -bd sessions; more are answered
 *				"421 4.3.2" and closed.
 *	SMTPD_DAEMON_CLIENT_CHILDREN 20 concurrent -bd sessions per client:
 *				the local user (uid) that owns the connecting
 *				socket, asked from the kernel's socket table
 *				(NETLINK_SOCK_DIAG; every client of a loopback
 *				daemon has the same address). More are answered
 *				"421 4.7.0" and closed, so one user's idle
 *				connections leave 80 sessions to the others.
 *				When the kernel cannot tell (no sock_diag), only
 *				the global cap applies, with one warning.
 *	SMTPD_DRAIN_SECONDS	10 s for running -bd sessions after SIGTERM.
 *
 *	smtpd_parse_path() parses the argument of MAIL or RCPT: keyword
 *	("FROM:" or "TO:", case-insensitive), optional spaces, then
 *	"<address>" (a source route "@a,@b:" is dropped, quoted local parts
 *	may hold spaces and '>') or a bare address up to the first space.
 *	addr receives the address ("" for "<>"); *params points at the
 *	ESMTP parameters (possibly ""). Returns 0, or -1 on bad syntax
 *	(including control bytes in the address).
 *
 *	smtpd_xtext_decode() decodes RFC 3461 xtext (ENVID=, ORCPT=): "+XX"
 *	is a byte in upper-case hex. Returns 0, or -1 when in is not xtext.
 *
 *	smtpd_format_reply() turns a reply from deliver (one or more lines,
 *	"250 2.0.0 Ok" or "250-..." continuation form, CRLF or LF or none at
 *	the end) into a well-formed reply appended to out: every line carries
 *	the first line's code, continuation dashes are right, an enhanced
 *	status code of the same class is added where missing ("X.0.0"),
 *	control bytes are escaped. Anything that does not start with a 2xx,
 *	4xx or 5xx code becomes "451 4.3.0 Error: ..." (never a 250).
 *
 * DIAGNOSTICS
 *	smtpd_serve() returns 0 when the session ended the way sessions end
 *	(QUIT, EOF, idle timeout, too many errors: logged, not errors), or
 *	EX_IOERR with err filled when reading or writing the client failed
 *	otherwise. smtpd_daemon() returns 0 after SIGTERM/SIGINT, EX_CONFIG
 *	for a bad RELAYSHIM_INTERCEPT, EX_OSERR when no endpoint can be
 *	bound (err names the endpoints and the reason).
 *--*/

#include <stddef.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "message.h"
#include "util.h"

#define SMTPD_LINE_MAX 4096
#define SMTPD_DATA_LINE_MAX (1024 * 1024)
#define SMTPD_RCPT_MAX 1000
#define SMTPD_ERRORS_MAX 20
#define SMTPD_IDLE_TIMEOUT 300 /* seconds */
#define SMTPD_DAEMON_CHILDREN 100
#define SMTPD_DAEMON_CLIENT_CHILDREN 20
#define SMTPD_JUNK_MAX 100
#define SMTPD_DRAIN_SECONDS 10

struct smtpd_ops {
	/* Deliver one transaction; fill reply with the final reply line. Return 0. */
	int (*deliver)(void *ctx, struct envelope *env, struct message *msg, struct buf *reply);
	/* Non-zero when the relay offers DSN (DSN is advertised only then). May be NULL. */
	int (*has_dsn)(void *ctx);
	/* End of the session: close the relay connection. May be NULL. */
	void (*end_session)(void *ctx);
	/* The client said QUIT; called before the goodbye is sent. May be NULL. */
	void (*bye)(void *ctx);
};

struct smtpd_limits {
	size_t line_max;		 /* SMTPD_LINE_MAX */
	size_t data_line_max;		 /* SMTPD_DATA_LINE_MAX */
	size_t rcpt_max;		 /* SMTPD_RCPT_MAX */
	unsigned errors_max;		 /* SMTPD_ERRORS_MAX */
	unsigned idle_timeout_ms;	 /* SMTPD_IDLE_TIMEOUT * 1000 */
	unsigned daemon_children;	 /* SMTPD_DAEMON_CHILDREN */
	unsigned daemon_client_children; /* SMTPD_DAEMON_CLIENT_CHILDREN (0: no cap) */
	unsigned junk_max;		 /* SMTPD_JUNK_MAX (0: no limit) */
	unsigned drain_ms;		 /* SMTPD_DRAIN_SECONDS * 1000 */
};

void smtpd_limits_default(struct smtpd_limits *lim);
int smtpd_serve(int in_fd, int out_fd, const struct config *cfg, const struct smtpd_ops *ops,
		void *ctx, struct error *err);
int smtpd_serve_limits(int in_fd, int out_fd, const struct config *cfg,
		       const struct smtpd_limits *lim, const struct smtpd_ops *ops, void *ctx,
		       struct error *err);
int smtpd_daemon(const struct config *cfg, const struct smtpd_ops *ops, void *ctx,
		 struct error *err);
int smtpd_daemon_limits(const struct config *cfg, const struct smtpd_limits *lim,
			const struct smtpd_ops *ops, void *ctx, struct error *err);

int smtpd_parse_path(const char *arg, const char *keyword, struct buf *addr, const char **params);
int smtpd_xtext_decode(const char *in, size_t len, struct buf *out);
void smtpd_format_reply(const char *reply, size_t len, struct buf *out);

#endif
