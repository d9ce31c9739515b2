#ifndef RELAYSHIM_QUEUE_STATUS_H
#define RELAYSHIM_QUEUE_STATUS_H

/*++
 * NAME
 *	queue_status 3h
 * SUMMARY
 *	queue health for probes and a flush with a deadline for shutdown hooks
 * SYNOPSIS
 *	#include "queue_status.h"
 *
 *	void	queue_human_age(struct buf *out, double secs);
 *
 *	void	queue_status_init(struct queue_status *qs);
 *	void	queue_status_add(struct queue_status *qs,
 *			const struct spool_info *info, double now);
 *	int	queue_status_collect(const struct config *cfg, int brief,
 *			struct queue_status *qs, struct error *err);
 *	void	queue_status_free(struct queue_status *qs);
 *	int	queue_status_check(const struct queue_status *qs,
 *			const struct queue_limits *lim, struct strlist *why);
 *	void	queue_status_line(const struct queue_status *qs, struct buf *out);
 *	void	queue_status_json(const struct queue_status *qs,
 *			const struct queue_limits *lim, struct buf *out);
 *	int	queue_status_report(const struct config *cfg,
 *			const struct queue_limits *lim, int json,
 *			struct buf *out, struct error *err);
 *
 *	int	queue_flush(const struct config *cfg,
 *			unsigned long long deadline_ms, struct error *err);
 * DESCRIPTION
 *	Containers need two things from the queue that -bp and -q do not
 *	give: a probe that answers "healthy or not" by its exit status
 *	(mailq --status, mailq --json), and a flush that ends before the
 *	engine kills the container (sendmail -q --deadline=DUR for a
 *	Kubernetes preStop hook or docker stop's 10 seconds).
 *
 *	queue_human_age() appends an age in its largest whole unit: "12s",
 *	"5m", "2h", "3d".
 *
 *	queue_status_collect() fills qs with what the caller may see of
 *	the queue: the scope of -bp (root every area, another user their
 *	own area; spool_walk()), each entry with its owner, age, attempts,
 *	next attempt, last reply of the relay, sender and the number of
 *	recipients still to deliver; count, oldest age, bytes, and the
 *	entries in failed/; brief: ids, owners and ages only (spool_walk()).
 *	queue_status_add() adds one entry (tests build
 *	a status by hand with it). Free with queue_status_free().
 *
 *	queue_status_check() returns 1, with one reason per exceeded
 *	threshold added to why, when the
 *	oldest entry is older than lim->max_age_ms or there are more than
 *	lim->max_count entries (each only when its has_ flag is set);
 *	otherwise 0.
 *
 *	queue_status_line() appends "queue: N messages, oldest 12s, M
 *	failed\n" (oldest 0s when empty). queue_status_json() appends one
 *	JSON object and a newline: count, oldest_age_seconds, failed,
 *	bytes, healthy, problems (array of the reasons), entries (array: id,
 *	uid, user, age_seconds, attempts, next_attempt_seconds (0 = due),
 *	last_reply (null before the first attempt), sender, recipients,
 *	size, corrupt). Every string goes through log_json_string(): relay
 *	replies and addresses are untrusted, so quotes, backslashes and
 *	control bytes are escaped and bytes that are not UTF-8 become
 *	U+FFFD; the output is always valid JSON.
 *
 *	queue_status_report() is mailq --status / --json: collect, write
 *	the line or the JSON object to out, and return 0 (healthy) or 1
 *	(over a threshold, err holding one line with the reasons).
 *
 *	queue_flush() is sendmail -q --deadline: it delivers what the
 *	caller may flush (spool_run()) in a child process and returns by
 *	deadline_ms from now in every case. No delivery starts in the last
 *	fifth of the time (at most 500 ms), every relay wait is cut short
 *	before the end (net_set_limit()), and a child still running near
 *	the end (a DNS lookup that hangs) is killed: the queue is
 *	crash-safe, an interrupted delivery stays queued. Returns 0 when
 *	the scope is empty afterwards, else EX_TEMPFAIL with err->text
 *	"N messages left in the queue, oldest X".
 * DIAGNOSTICS
 *	queue_status_collect() and queue_flush() return 0 or a sysexits
 *	code with err set; a missing queue directory is an empty queue.
 *--*/

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "queue_limits.h"
#include "spool.h"
#include "util.h"

/* Thresholds of mailq --status / --json (--max-age, --max-count). */
/* One entry, owned copies. */
struct queue_entry {
	char *id;
	unsigned long uid;
	char *user; /* login name of uid, or NULL */
	double age; /* seconds */
	unsigned attempts;
	double next_in;	  /* seconds until the next attempt; 0 = due */
	char *last_reply; /* NULL before the first attempt */
	char *sender;	  /* NULL when corrupt */
	size_t rcpts;
	unsigned long long size;
	int corrupt;
};

struct queue_status {
	struct queue_entry *v;
	size_t n;
	size_t cap;
	double oldest_age; /* seconds; 0 when empty */
	unsigned failed;   /* entries in failed/ */
	unsigned long long bytes;
};

void queue_human_age(struct buf *out, double secs);

void queue_status_init(struct queue_status *qs);
void queue_status_add(struct queue_status *qs, const struct spool_info *info, double now);
int queue_status_collect(const struct config *cfg, int brief, struct queue_status *qs,
			 struct error *err);
void queue_status_free(struct queue_status *qs);
int queue_status_check(const struct queue_status *qs, const struct queue_limits *lim,
		       struct strlist *why);
void queue_status_line(const struct queue_status *qs, struct buf *out);
void queue_status_json(const struct queue_status *qs, const struct queue_limits *lim,
		       struct buf *out);
int queue_status_report(const struct config *cfg, const struct queue_limits *lim, int json,
			struct buf *out, struct error *err);

int queue_flush(const struct config *cfg, unsigned long long deadline_ms, struct error *err);

#endif
