#ifndef RELAYSHIM_SPOOL_H
#define RELAYSHIM_SPOOL_H

/*++
 * NAME
 *	spool 3h
 * SUMMARY
 *	the durable fallback queue and its detached retry worker
 * SYNOPSIS
 *	#include "spool.h"
 *
 *	int	spool_usable(const struct config *cfg, struct error *err);
 *	void	spool_make_id(char *id, size_t size);
 *	int	spool_store(const struct config *cfg, const struct envelope *env,
 *			const struct message *msg, const char *queue_id,
 *			const char *reason, struct error *err);
 *	int	spool_deliver(const struct config *cfg, const char *queue_id,
 *			struct error *err);
 *	void	spool_kick(const struct config *cfg);
 *	int	spool_run(const struct config *cfg, struct error *err);
 *	int	spool_list(const struct config *cfg, struct buf *out, struct error *err);
 *	int	spool_walk(const struct config *cfg, int brief,
 *			spool_visit_fn visit, void *ctx, unsigned *failed,
 *			struct error *err);
 *	void	spool_set_deadline(long long end_ms);
 *
 *	int	spool_load(const struct config *cfg, const char *queue_id,
 *			struct envelope *env, struct message *msg, struct error *err);
 *	void	spool_set_transport(spool_transport_fn fn);
 * DESCRIPTION
 *	A message is acknowledged (exit 0, or 250 in -bs) only after
 *	spool_store() returned 0: by then its data and envelope are written,
 *	fsync'ed, renamed into place and the directory fsync'ed.
 *
 *	spool_usable() checks that the spool exists or can be created and is
 *	writable, and creates the caller's area (below). The submission path
 *	does not ask it first: spool_store() meets and reports the same
 *	failures when a message must be queued, and a check ahead would race
 *	anyway. It serves the tests and any caller that wants the diagnosis.
 *
 *	spool_make_id() writes a new queue id (at most SPOOL_ID_MAX bytes
 *	with the NUL) into id: hex time in seconds and microseconds, pid
 *	and a per-process sequence number. Ids sort by submission time and are unique
 *	across concurrent processes; the commit refuses to replace an
 *	existing entry anyway (renameat2 RENAME_NOREPLACE).
 *
 *	spool_store() stores the fully rewritten message (exactly what would
 *	go to the relay) with its envelope under queue_id (the id already
 *	used in the Received header and the log; an id with characters
 *	other than [A-Za-z0-9._-] is replaced by a fresh one, with a
 *	warning). reason is the last delivery error (NULL when none); -bp
 *	shows it. The entry is due for delivery at once.
 *
 *	spool_deliver() delivers one committed entry of the caller's area
 *	now, in the foreground (mode "always": store, then deliver): 0 when
 *	the relay accepted it (entry removed), EX_TEMPFAIL when it stays
 *	queued (err says why; kick the worker then), another code when it
 *	failed permanently (moved to failed/, notice sent per bounce_to).
 *
 *	spool_kick() makes sure a retry worker runs: when the caller's area
 *	holds messages and no worker holds the area's lock, it starts one
 *	(double fork, setsid, stdio on /dev/null, every other descriptor
 *	closed) and returns at once; when a worker runs, it asks that
 *	worker to retry everything now. Call it after spool_store() and
 *	after every successful synchronous delivery. It never blocks and
 *	never fails visibly.
 *
 *	The worker delivers the due messages it can read, sleeps until the
 *	next one is due (exponential backoff with jitter: base 30 s, doubled
 *	per attempt up to 120 x base = 1 h, each delay scaled by a random
 *	factor in [0.75, 1.25)), and exits when no message is left. When
 *	the relay cannot be connected to three times in a row, or every
 *	area's turn ended on failures (see TRUST), it stops the pass (the
 *	relay is down: no need to time out 200 times). When the relay could
 *	not be reached (no connection, no greeting) it then opens a relay
 *	session every 20 to 40 s (retry base x [2/3, 4/3), drawn afresh each
 *	time) and touches no entry until one opens; that session carries the
 *	next pass. So it delivers within 40 s of the relay's return however
 *	long the outage was, and workers whose relay came back together
 *	reach it at scattered times. The entries deferred only because the
 *	relay could not be reached are due at once (a backoff the relay's
 *	own 4xx set stands). When the relay answers but defers everything,
 *	it sleeps with its own backoff (a pass forced by a kick does not
 *	grow it). A kick while it sleeps makes it retry within a second. Its stdio is
 *	/dev/null, so with [log] target = stderr its log lines are lost:
 *	containers should log to /proc/1/fd/1 or a file. The worker is
 *	reparented to PID 1 and stays a zombie after it exits unless PID 1
 *	reaps orphans (docker run --init, tini; php-fpm and supervisord do).
 *
 *	What is permanent: the relay's 5xx (EX_UNAVAILABLE, EX_NOUSER) and
 *	EX_DATAERR (too big, SMTPUTF8 missing). A configuration error
 *	(EX_CONFIG) or a local fault keeps the message queued: it is fixed
 *	on our side, and bouncing would lose the mail. An entry whose
 *	directory is not writable (spool remounted read-only) is not sent
 *	at all: it could not be removed and would go out at every pass.
 *
 *	spool_run() is sendmail -q: deliver everything the caller may read,
 *	due or not, in the foreground, then run the notices this produced.
 *	Returns 0 when nothing is left, EX_TEMPFAIL when messages remain
 *	(err says how many and the last error).
 *
 *	spool_list() appends the -bp/mailq listing to out: for each message
 *	id, size, age, sender, attempts, owner (when root lists), the last
 *	error and the recipients; then a summary line.
 *
 *	spool_walk() calls visit once per committed entry the caller may
 *	list (the scope of -bp: root every area, others their own), oldest
 *	first, with a struct spool_info whose strings live only during the
 *	call; *failed is the number of entries in the failed/ directories
 *	of that scope. queue_status.c builds mailq --status and --json on it.
 *	With brief set, entries are not read: only id, owner and created
 *	(the time of the file) are filled in, fast enough for the count at
 *	the end of -q --deadline (5000 entries: about 0.25 s read, a few ms
 *	brief).
 *
 *	spool_set_deadline() gives spool_run() an end on the net_now_ms()
 *	clock (net.h; 0: none): no delivery starts after it, and waiting
 *	for an entry another process holds ends then. The caller clips the
 *	relay timeouts with net_set_limit() (sendmail -q --deadline:
 *	queue_status.h).
 *
 *	spool_load() reads one committed entry of the caller's area into env
 *	and msg (msg->header in memory, msg->body.fd on the spool file, with
 *	fd_offset past the header section). For tests and tools.
 * LAYOUT AND PERMISSIONS
 *	Several users share one spool without setuid or setgid programs,
 *	the way /tmp is shared:
 *
 *	dir/		mode 1733 (sticky; anyone may create, nobody may list
 *			or remove what is not theirs), made by whoever comes
 *			first, root normally. An existing dir is used as it
 *			is: an administrator may pre-create it 0700 for one
 *			user, or 1733 (root) on a volume for several. A user
 *			who cannot create it (parent not writable) gets 73:
 *			images should create it at build time
 *			(install -d -m 1733 /var/spool/relayshim).
 *			The top must belong to root or to the caller, and
 *			must not be writable by others without the sticky
 *			bit (the checks of postfix check): otherwise every
 *			function refuses it with EX_CANTCREAT and one line.
 *	dir/UID/	the area of user UID: mode 0700, owned by UID, made by
 *			that user at its first submission. Another owner or
 *			group/other bits make the area unusable: nobody can
 *			plant an area for someone else and read what lands in
 *			it. Anyone may create any name in a 1733 directory, so
 *			a user keeps its area under the next free one of
 *			UID.1 ... UID.7 when UID is taken, and every reader
 *			looks at all eight; root moves a squatter's directory
 *			out of the way (to .squatter.NAME.OWNER.TIME) when it
 *			stores and in every pass, so the name comes back.
 *	dir/UID/tmp/	entries being written (invisible to every reader).
 *	dir/UID/q/	committed entries: ID (envelope + message, 0600) and
 *			ID.st (delivery state: attempts, next retry, last
 *			error, recipients done; absent before the first try).
 *	dir/UID/failed/	ID and ID.reason for messages given up on.
 *	dir/UID/lock	flock()ed by the area's worker (holds its pid).
 *	dir/UID/kick	a kick appends one byte; the worker watches its size.
 *
 *	A user's worker and -q handle that user's area only. Root's worker
 *	and root's -q handle every area (dir/N owned by uid N); files root
 *	writes there are chown'ed to N so that N's own worker can go on.
 *	Each delivery holds flock() on the entry, so two workers, or a
 *	worker and -q, never send one message twice.
 * TRUST
 *	Everything in another user's area is that user's to forge. Root
 *	(and anyone reading an area) opens its files with O_NOFOLLOW and
 *	O_NONBLOCK and takes only plain files owned by the area's owner:
 *	a FIFO, a directory, a symlink or a stranger's file under an
 *	entry's name is skipped with one log line per pass, never opened
 *	for reading, never retried in a loop. Root creates files there with
 *	O_EXCL, appends to failed/ID.reason only when it is a plain file
 *	with one link, and never waits for a lock on another user's entry.
 *	The entry's format is checked by spool_entry_parse() (a header over
 *	64 MiB, control bytes in an address: corrupt, moved to failed/).
 *
 *	An entry of another user's area goes out only as that user could
 *	have sent it through sendmail: the Received and RelayTag fields at
 *	its top are made again for the area's owner (uid from the fstat of
 *	the area, name from the password database), and rewrite_message()
 *	runs again with the deliverer's configuration (header repair, the
 *	sender policy, max_size). A refusal moves it to failed/ without a
 *	notice (the sender it names may be forged). A null-sender entry that
 *	this policy would refuse (allow_null_sender = no) is left to its
 *	owner's worker: it is that worker's failure notice. The caller's own area
 *	is delivered as stored: it holds what the caller's own sendmail
 *	accepted, and the caller can do no more through it than through
 *	sendmail.
 *
 *	Fairness: a pass goes round the areas in turns of SPOOL_AREA_BUDGET
 *	(200) attempts each until every area is through. Within an area,
 *	three temporary failures in a row end its part of the pass; an
 *	entry that cannot be read counts for nothing; only a relay that
 *	cannot be connected to three times in a row ends the whole pass. So
 *	one user's entries can neither stall, starve nor block another
 *	user's mail: they delay it by one turn of 200 transactions at most.
 *
 *	The worker overwrites its command line with "sendmail: queue worker
 *	(uid N)": the submission's sender and recipients do not stay in ps.
 * CRASH CONSISTENCY
 *	spool_store(): write tmp/ID, fsync it, renameat2(RENAME_NOREPLACE)
 *	to q/ID, fsync q/. A crash before the rename leaves only tmp/ID
 *	(never read; removed when older than an hour); after the rename the
 *	entry is complete. The caller acknowledges only after the return,
 *	so no acknowledged message is lost.
 *	Delivery: lock q/ID, send, unlink q/ID and q/ID.st, fsync q/; in a
 *	pass the fsync of q/ covers up to 64 removals and comes at the end
 *	of each area's turn at the latest (spool_removal_sync() in spool_run.c).
 *	One window cannot be closed: when the relay has accepted the data
 *	(its 250 sent or about to be) and we die, or the machine crashes,
 *	before the unlink is on disk, the next attempt sends the message
 *	again (after a machine crash, up to the 64 of the batch). That is the only
 *	way to get a duplicate; a message is never lost and a half message
 *	is never sent (the relay discards data without the final dot).
 * TEST AND TUNING KNOBS (environment, not configuration keys)
 *	RELAYSHIM_RETRY_BASE=SECONDS	the backoff base (default 30, a
 *			fraction allowed); the cap is 120 times it. The tests
 *			use 0.2 to run an outage drill in seconds. It also
 *			scales the period at which the worker looks at a relay
 *			that could not be reached (2/3 to 4/3 of it).
 *	RELAYSHIM_TEST_OUTAGE_ROUNDS=N	test-only: a worker starts as if
 *			N passes had already found the relay down (its backoff
 *			at the cap after hours of outage). Inert when unset.
 *	RELAYSHIM_TEST_CRASH_AT=STEP	test-only: the process SIGKILLs
 *			itself at STEP: store-written (tmp file written),
 *			store-fsynced, store-renamed, store-dirsynced,
 *			deliver-before (entry locked, before the SMTP
 *			transaction), deliver-after (the relay accepted,
 *			before removal), deliver-removed (unlinked, before
 *			the directory fsync). Inert when unset.
 *
 *	spool_set_transport() replaces smtp_deliver() (unit tests only;
 *	NULL restores it).
 * DIAGNOSTICS
 *	EX_CANTCREAT (73) when the spool cannot be created or written
 *	(missing parent, read-only, full, file size limit, area owned by
 *	someone else): err names the path and the system error and says
 *	what to do. EX_NOINPUT when spool_load()/spool_deliver() do not find
 *	the entry. Delivery results are logged with log_delivery(); a
 *	message given up on is logged at error level with the reason.
 *--*/

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "message.h"
#include "smtp.h"
#include "util.h"

#include "spool_entry.h"

/* One entry as spool_walk() shows it. */
struct spool_info {
	const char *id;
	unsigned long owner; /* uid of the area */
	double created;	     /* wall-clock seconds */
	unsigned attempts;
	double next_try;	 /* wall-clock seconds; <= now: due */
	const char *last_error;	 /* the relay's last answer or why it gave none; NULL */
	const char *sender;	 /* "" null sender; NULL when corrupt */
	size_t rcpts;		 /* recipients still to deliver */
	unsigned long long size; /* message bytes */
	int corrupt;		 /* unreadable envelope: only id, owner, created */
};

typedef void (*spool_visit_fn)(void *ctx, const struct spool_info *info);

typedef int (*spool_transport_fn)(const struct config *cfg, const struct envelope *env,
				  const struct message *msg, struct smtp_result *res,
				  struct error *err);

int spool_usable(const struct config *cfg, struct error *err);
void spool_make_id(char *id, size_t size);
int spool_store(const struct config *cfg, const struct envelope *env, const struct message *msg,
		const char *queue_id, const char *reason, struct error *err);
int spool_deliver(const struct config *cfg, const char *queue_id, struct error *err);
void spool_kick(const struct config *cfg);
int spool_run(const struct config *cfg, struct error *err);
int spool_list(const struct config *cfg, struct buf *out, struct error *err);
int spool_walk(const struct config *cfg, int brief, spool_visit_fn visit, void *ctx,
	       unsigned *failed, struct error *err);
void spool_set_deadline(long long end_ms);

int spool_load(const struct config *cfg, const char *queue_id, struct envelope *env,
	       struct message *msg, struct error *err);
void spool_set_transport(spool_transport_fn fn);

#endif
