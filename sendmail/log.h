#ifndef RELAYSHIM_LOG_H
#define RELAYSHIM_LOG_H

/*++
 * NAME
 *	log 3h
 * SUMMARY
 *	container-friendly logging: targets, plain or JSON, anonymised addresses
 * SYNOPSIS
 *	#include "log.h"
 *
 *	void	log_setup(const struct config *cfg);
 *	void	log_close(void);
 *	void	log_msg(enum log_level level, const char *fmt, ...);
 *	void	log_delivery(const struct log_record *rec);
 *	void	log_set_clock(void (*now)(struct timespec *ts));
 *	void	log_json_string(struct buf *out, const char *s, size_t len);
 * DESCRIPTION
 *	log_setup() opens the targets of [log] target: "stderr", "stdout",
 *	"syslog" (ident "relayshim", facility LOG_MAIL), an absolute file
 *	path opened O_WRONLY|O_APPEND (/proc/1/fd/1 reaches docker logs),
 *	or "none". A path that cannot be opened falls back to stderr with
 *	one warning. It also sets the level, the format (plain or json) and
 *	the anonymizer. Calling it again replaces the previous setup.
 *	Before it is called, and after log_close(), lines go to stderr in
 *	plain format at level info.
 *
 *	log_msg() writes one line at level (suppressed below [log] level).
 *	Control bytes are shown as \xNN so that no caller can split a line;
 *	anything that looks like an e-mail address passes through the
 *	anonymizer. log_delivery() writes the one line per delivered,
 *	queued or failed message: from, every recipient, relay, status,
 *	DSN code, delay, size and the relay's reply; addresses pass through
 *	[log] anonymize. Nothing here ever sees a secret. With
 *	rec->skip_stderr the record skips a stderr target: sendmail prints
 *	its own one-line error there for a failure, and a caller must see
 *	exactly one line (relayshim(8) EXIT STATUS).
 *
 *	Plain lines look like Postfix's:
 *	"relayshim[PID]: QUEUEID: from=<a@b>, to=<c@d>,<e@f>, relay=h:25,
 *	delay=0.12, size=123, dsn=2.0.0, status=sent (250 2.0.0 Ok)";
 *	lines written to a file target start with an RFC 3339 UTC time.
 *	JSON lines are one object per line with the keys time (RFC 3339
 *	UTC, milliseconds), level, host (gethostname(): the pod name in
 *	Kubernetes), uid (the submitting user: rec->uid when has_uid is set,
 *	as for queued mail root's worker delivers, else the real uid of
 *	this process), message and, for deliveries, queue_id, from, to
 *	(array), relay, status, dsn, delay, size (null when unknown).
 *
 *	log_set_clock() replaces the clock used for time stamps (tests);
 *	NULL restores clock_gettime(CLOCK_REALTIME).
 *
 *	log_json_string() appends s as a JSON string literal: quotes,
 *	backslash and control characters escaped, invalid UTF-8 bytes
 *	replaced by \ufffd.
 *--*/

#include <time.h>

#include "config.h"

struct buf;

struct log_record {
	enum log_level level;
	const char *queue_id;
	const char *from;
	const struct strlist *to;
	const char *relay;  /* host:port, or NULL */
	const char *status; /* "sent", "queued", "deferred", "bounced", "failed" */
	const char *dsn;    /* "2.0.0", or NULL */
	double delay;	    /* seconds since submission */
	unsigned long long size;
	const char *text;  /* relay reply or reason */
	int skip_stderr;   /* the caller prints this outcome on stderr itself */
	unsigned long uid; /* the submitter, when has_uid is set */
	int has_uid;	   /* 0: the real uid of this process */
};

void log_setup(const struct config *cfg);
void log_close(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_delivery(const struct log_record *rec);
void log_set_clock(void (*now)(struct timespec *ts));

void log_json_string(struct buf *out, const char *s, size_t len);

#endif
