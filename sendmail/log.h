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
 *	void	log_msg(enum log_level level, const char *fmt, ...);
 *	void	log_delivery(const struct log_record *rec);
 * DESCRIPTION
 *	log_setup() opens the targets of [log] target (stderr, stdout,
 *	syslog, a file path such as /proc/1/fd/1, none). Before it is
 *	called, messages go to stderr.
 *
 *	log_msg() writes one line at level (suppressed below [log] level).
 *	log_delivery() writes the one line per delivered, queued or failed
 *	message; addresses pass through [log] anonymize. Never a secret.
 *--*/

#include "config.h"

struct log_record {
	enum log_level level;
	const char *queue_id;
	const char *from;
	const struct strlist *to;
	const char *relay;		/* host:port, or NULL */
	const char *status;		/* "sent", "queued", "deferred", "bounced", "failed" */
	const char *dsn;		/* "2.0.0", or NULL */
	double delay;			/* seconds since submission */
	unsigned long long size;
	const char *text;		/* relay reply or reason */
};

void log_setup(const struct config *cfg);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_delivery(const struct log_record *rec);

#endif
