/*++
 * NAME
 *	spool_deliver 3
 * SUMMARY
 *	delivering one queue entry
 * SYNOPSIS
 *	#include "spool_int.h"
 *
 *	enum entry_result spool_deliver_entry(const struct config *cfg,
 *			const struct spool_area *a, const char *id, int force,
 *			int wait_lock, double *next_due, struct relay_link *link,
 *			struct error *err);
 * DESCRIPTION
 *	spool_deliver_entry() locks q/ID (waiting only in the caller's own area
 *	when wait_lock), checks it is still the file linked as q/ID, reads
 *	it, and when it is due (or force) sends it to the recipients not yet
 *	done, over link's relay session when link is not NULL. An entry of
 *	another user's area is first made again as that user could have
 *	sent it (entry_revalidate()). Then it settles the entry: removed
 *	when delivered, state written and retry scheduled when deferred,
 *	moved to failed/ when refused or expired. *next_due is lowered to
 *	the entry's next try when it is not due.
 * DIAGNOSTICS
 *	The result says what happened (enum entry_result); err holds the
 *	delivery error of a deferred or failed entry.
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "header.h"
#include "rewrite.h"
#include "spool_int.h"

/* ====================================================================
 * Delivering one entry
 * ==================================================================== */

/* failure_is_permanent - give up on the message? */

static int failure_is_permanent(const struct error *err)
{
	if (err->temporary)
		return 0;
	/* A configuration mistake (credentials over an unprotected link) or
	 * a local fault is fixed on our side: keep the mail until it is. */
	switch (err->status) {
	case EX_CONFIG:
	case EX_SOFTWARE:
	case EX_OSERR:
	case EX_OSFILE:
	case EX_IOERR:
	case EX_CANTCREAT:
		return 0;
	default:
		return 1;
	}
}

/* entry_send - one transaction, on the pass's relay session when there is one */

static int entry_send(const struct config *cfg, struct relay_link *link, const struct envelope *env,
		      const struct message *msg, struct smtp_result *res, struct error *err)
{
	if (link)
		link->unreachable = 0;
	if (spool_transport)
		return spool_transport(cfg, env, msg, res, err);
	if (link == 0)
		return smtp_deliver(cfg, env, msg, res, err);
	/*
	 * After an outage 200 messages go out over one connection, not 200.
	 * A relay that cannot be opened is down for every area, which no
	 * entry can cause: link->unreachable tells the pass so.
	 */
	return smtp_session_deliver(&link->session, cfg, env, msg, res, &link->unreachable, err);
}

/* entry_owner_name - the login name of an area's owner, for Received */

static void entry_owner_name(uid_t uid, char *out, size_t n)
{
	struct passwd *pw = getpwuid(uid);

	if (pw && pw->pw_name && *pw->pw_name)
		snprintf(out, n, "%s", pw->pw_name);
	else
		snprintf(out, n, "uid%lu", (unsigned long)uid);
}

/* trace_is_ours - a Received field as rewrite_message() writes it */

static int trace_is_ours(const struct header_field *f)
{
	size_t len;
	const char *v;

	if (!header_name_is(f, "Received"))
		return 0;
	v = header_value(f, &len);
	return memmem(v, len, "(relayshim)", 11) != 0;
}

/*
 * entry_revalidate - an entry of another user's area goes out only as that
 * user could have sent it through sendmail: the trace at its top is made
 * again for the area's owner (whose uid the area's fstat gave, whatever the
 * entry says), and the header repair, sender policy and size limit of the
 * submission path run again, with this process's configuration.
 */
static int entry_revalidate(const struct config *cfg, const struct spool_area *a,
			    const struct spool_entry *e, struct message *msg, struct envelope *env,
			    struct error *err)
{
	struct header h = HEADER_INIT;
	struct submit sub;
	char user[256], host[256];
	unsigned char rnd[16];
	double now = spool_now();
	time_t when;
	size_t i = 0;

	/* The owner's own sendmail put one Received (and a RelayTag above it)
	 * at the top; rewrite_message() makes both again. Anything forged
	 * below them stays what it is: text the user wrote. */
	header_parse(&h, msg->header.data ? msg->header.data : "", msg->header.len);
	while (i < h.n) {
		if (header_name_is(h.v + i, "RelayTag"))
			i++;
		else if (trace_is_ours(h.v + i))
			header_remove(&h, i);
		else
			break;
	}
	buf_reset(&msg->header);
	header_serialize(&h, &msg->header);
	header_free(&h);

	entry_owner_name(a->uid, user, sizeof(user));
	if (gethostname(host, sizeof(host) - 1) != 0 || *host == 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = 0;
	memset(&sub, 0, sizeof(sub));
	sub.bs_mode = 1; /* the envelope is the entry's */
	sub.user = user;
	sub.uid = (unsigned long)a->uid;
	sub.hostname = host;
	sub.queue_id = e->id;
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		for (size_t k = 0; k < sizeof(rnd); k++)
			rnd[k] = (unsigned char)spool_random();
	/* The submission's time, when the entry's claim is plausible. */
	when = e->created > 0 && e->created <= now ? (time_t)e->created : (time_t)now;
	return rewrite_message(cfg, &sub, msg, env, when, rnd, sizeof(rnd), err);
}

/*
 * One attempt at one entry: what the steps of spool_deliver_entry() share. Every
 * member is valid (initialised) from attempt_init() on, so attempt_free()
 * is the one cleanup path whichever step ends the attempt.
 */
struct attempt {
	const struct config *cfg;
	const struct spool_area *a;
	const char *id;
	struct relay_link *link;
	struct error *err;
	int fd;		      /* q/ID, locked from attempt_lock() on; -1 */
	struct spool_entry e; /* as read from q/ID and q/ID.st */
	struct envelope env;  /* this attempt: the recipients not done yet */
	struct message msg;
	struct smtp_result res;
	double now;
	int local_fault; /* failed on our side: retried, not the relay's doing */
};

/* attempt_init - nothing open, nothing read */

static void attempt_init(struct attempt *t, const struct config *cfg, const struct spool_area *a,
			 const char *id, struct relay_link *link, struct error *err)
{
	t->cfg = cfg;
	t->a = a;
	t->id = id;
	t->link = link;
	t->err = err;
	t->fd = -1;
	spool_entry_init(&t->e);
	envelope_init(&t->env);
	message_init(&t->msg);
	smtp_result_init(&t->res);
	t->now = 0;
	t->local_fault = 0;
	error_clear(err);
}

/* attempt_free - release everything; closing the entry releases its lock */

static void attempt_free(struct attempt *t)
{
	smtp_result_free(&t->res);
	message_free(&t->msg);
	envelope_free(&t->env);
	spool_entry_free(&t->e);
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* attempt_lock - open and lock q/ID; 1 with *result when it is not ours to send now */

static int attempt_lock(struct attempt *t, int wait_lock, enum entry_result *result)
{
	struct stat fsb, psb;

	t->fd = spool_open_owned(t->a->q, t->id, O_RDONLY, t->a->uid, &fsb);
	if (t->fd < 0) {
		*result = errno == ENOENT ? ENTRY_GONE : ENTRY_UNREADABLE;
		return 1;
	}
	/* Anyone may flock() a file they can read: in another user's area
	 * waiting for the lock would let that user stop us forever. */
	if (t->a->uid != geteuid())
		wait_lock = 0;
	if (spool_lock_entry(t->fd, wait_lock) != 0) {
		*result = ENTRY_BUSY;
		return 1;
	}
	/* Locked, but maybe after the previous holder removed or replaced
	 * the entry: only the file still linked as q/ID is ours to send.
	 * (fsb is from the open: an open file's inode does not change.) */
	if (fstatat(t->a->q, t->id, &psb, AT_SYMLINK_NOFOLLOW) != 0 || fsb.st_ino != psb.st_ino ||
	    fsb.st_dev != psb.st_dev) {
		*result = ENTRY_GONE;
		return 1;
	}
	return 0;
}

/* attempt_read - parse the entry; a corrupt one goes to failed/ */

static int attempt_read(struct attempt *t, enum entry_result *result)
{
	struct strlist none = STRLIST_INIT;

	if (spool_read_entry(t->a->q, t->fd, t->id, &t->e) == 0)
		return 0;
	snprintf(t->e.id, sizeof(t->e.id), "%s", t->id);
	spool_give_up(t->cfg, t->a, t->fd, &t->e, "corrupt queue entry (unreadable envelope)",
		      &none, 0, 0);
	error_set(t->err, EX_DATAERR, "queue entry %s is corrupt; moved to %s/failed", t->id,
		  t->a->path);
	*result = ENTRY_FAILED;
	return 1;
}

/* attempt_not_due - 1 when the entry waits: its next try is later, or q/ is read-only */

static int attempt_not_due(struct attempt *t, int force, double *next_due,
			   enum entry_result *result)
{
	if (!force && t->e.next_try > t->now) {
		if (t->e.next_try < *next_due)
			*next_due = t->e.next_try;
		*result = ENTRY_NOT_DUE;
		return 1;
	}
	/* An entry we could send but not remove (spool remounted read-only)
	 * would go out again at every pass: leave it alone until it can. */
	if (faccessat(t->a->q, ".", W_OK, AT_EACCESS) != 0) {
		log_msg(LOG_LEVEL_WARNING,
			"%s: not delivering: cannot remove it afterwards from %s/q: %s", t->id,
			t->a->path, strerror(errno));
		if (t->now + spool_retry_base() < *next_due)
			*next_due = t->now + spool_retry_base();
		*result = ENTRY_NOT_DUE;
		return 1;
	}
	return 0;
}

/* attempt_expired - past [queue] max_age: give up on the recipients left */

static int attempt_expired(struct attempt *t, enum entry_result *result)
{
	const struct spool_entry *e = &t->e;
	struct buf why = BUF_INIT;
	struct strlist left = STRLIST_INIT;

	/* Written as the test for expiry: a NaN creation time must not expire. */
	if (!(t->cfg->queue_max_age_s > 0 && t->now - e->created > (double)t->cfg->queue_max_age_s))
		return 0;
	buf_printf(&why, "message expired after %.0f seconds in the queue (max_age %lu s)",
		   t->now - e->created, t->cfg->queue_max_age_s);
	if (e->last_error || e->first_error)
		buf_printf(&why, "; last error: %s",
			   e->last_error ? e->last_error : e->first_error);
	for (size_t i = 0; i < e->env.rcpts.n; i++)
		if (!strlist_contains_ci(&e->done, e->env.rcpts.v[i]))
			strlist_add(&left, e->env.rcpts.v[i]);
	spool_give_up(t->cfg, t->a, t->fd, e, why.data, &left, 0, 0);
	error_set(t->err, EX_UNAVAILABLE, "%s: %s", t->id, why.data);
	buf_free(&why);
	strlist_free(&left);
	*result = ENTRY_FAILED;
	return 1;
}

/* attempt_envelope - the envelope for this attempt: recipients not done yet */

static void attempt_envelope(struct attempt *t)
{
	const struct spool_entry *e = &t->e;

	t->env.sender = util_strdup(e->env.sender);
	for (size_t i = 0; i < e->env.rcpts.n; i++)
		if (!strlist_contains_ci(&e->done, e->env.rcpts.v[i]))
			strlist_add(&t->env.rcpts, e->env.rcpts.v[i]);
	t->env.dsn_notify = e->env.dsn_notify ? util_strdup(e->env.dsn_notify) : 0;
	t->env.dsn_ret = e->env.dsn_ret ? util_strdup(e->env.dsn_ret) : 0;
	t->env.dsn_envid = e->env.dsn_envid ? util_strdup(e->env.dsn_envid) : 0;
	t->env.smtputf8 = e->env.smtputf8;
}

/*
 * attempt_prepare - the message, and for another user's area that user's
 * policy again: 0 ready to send, 1 settled (*result), else a sysexits.h code
 * with err (local_fault set when the fault is ours).
 */
static int attempt_prepare(struct attempt *t, enum entry_result *result)
{
	const struct config *cfg = t->cfg;
	struct strlist why = STRLIST_INIT;
	struct buf text = BUF_INIT;
	int rc;

	if (spool_read_message(t->fd, &t->e, &t->msg) != 0) {
		error_set(t->err, EX_IOERR, "cannot read queue entry %s/q/%s: %s", t->a->path,
			  t->id, strerror(errno));
		t->err->temporary = 1;
		t->local_fault = 1;
		return EX_IOERR;
	}
	if (t->a->uid == geteuid())
		return 0;
	if (*t->env.sender == 0 && cfg->allowed_sender_domains.n > 0 && !cfg->allow_null_sender) {
		/* A failure notice its owner's worker queued: our policy would
		 * refuse the null sender and lose it; that worker sends it. */
		*result = ENTRY_LEFT_TO_OWNER;
		return 1;
	}
	if ((rc = entry_revalidate(cfg, t->a, &t->e, &t->msg, &t->env, t->err)) == 0)
		return 0;
	/* Refused by our policy: nobody to notify but the sender it claims,
	 * who may never have written it. */
	if (t->err->temporary || !failure_is_permanent(t->err)) {
		t->local_fault = 1;
		return rc;
	}
	buf_printf(&text, "refused at delivery from %s: %s", t->a->path, t->err->text);
	for (size_t i = 0; i < t->env.rcpts.n; i++)
		strlist_add(&why, t->err->text);
	spool_give_up_notify(cfg, t->a, t->fd, &t->e, text.data, &t->env.rcpts, &why, 0, 0);
	strlist_free(&why);
	buf_free(&text);
	*result = ENTRY_FAILED;
	return 1;
}

/* attempt_reschedule - retry bookkeeping: one attempt more, the next after a backoff */

static void attempt_reschedule(struct attempt *t, const char *reply, const char *why, int durable)
{
	struct spool_entry *e = &t->e;

	e->attempts++;
	e->last_try = t->now;
	/* A relay that could not be reached says nothing about this
	 * message: it is due again as soon as the relay is back, which
	 * the worker watches (worker_main), unless the relay itself had
	 * deferred it before: that backoff stands. */
	if (!t->local_fault && t->link && t->link->unreachable)
		e->next_try = e->next_try > t->now ? e->next_try : t->now;
	else
		e->next_try = t->now + spool_backoff(e->attempts);
	spool_hint_first_time(e->id, e->last_error ? e->last_error : e->first_error, reply);
	free(e->last_error);
	e->last_error = util_strdup(why);
	spool_state_write(t->a, e, durable);
}

/* spool_link_sync - fsync the q/ directory whose removals are pending */

void spool_link_sync(struct relay_link *link)
{
	if (link && link->unsynced > 0) {
		(void)spool_fsync_dir(link->unsynced_dir);
		link->unsynced = 0;
	}
}

/*
 * spool_removal_sync - make a delivered entry's removal durable: at once, or in
 * a batch when a pass carries the entry.
 *
 * A removal lost in a crash brings the entry back and sends it a second
 * time: a duplicate, never a loss (the relay has the message). So a pass
 * fsyncs q/ once per SPOOL_SYNC_BATCH removals and at the end of each
 * area's turn (run_pass), not once per entry: that fsync, a journal
 * commit, was most of what draining an entry cost. The window it widens
 * is the one SMTP has anyway between the relay's 250 and the client's
 * record of it, now up to SPOOL_SYNC_BATCH messages instead of one.
 * What must not be lost keeps its own fsync: the entry before the
 * submitter is told it is queued (store_in_area), the recipients a
 * partial delivery finished (spool_state_write), an entry moved to failed/.
 */
void spool_removal_sync(const struct spool_area *a, struct relay_link *link)
{
	if (link == 0) {
		(void)spool_fsync_dir(a->q);
		return;
	}
	if (link->unsynced > 0 && link->unsynced_dir != a->q)
		spool_link_sync(link);
	link->unsynced_dir = a->q;
	if (++link->unsynced >= SPOOL_SYNC_BATCH)
		spool_link_sync(link);
}

/* attempt_remove - every recipient settled: q/ID and its state go */

static void attempt_remove(struct attempt *t)
{
	char stname[SPOOL_ID_MAX + 4];

	snprintf(stname, sizeof(stname), "%s.st", t->id);
	if (unlinkat(t->a->q, t->id, 0) != 0 && errno != ENOENT)
		log_msg(LOG_LEVEL_ERROR,
			"%s: delivered but cannot remove %s/q/%s: %s; it may be sent again", t->id,
			t->a->path, t->id, strerror(errno));
	(void)unlinkat(t->a->q, stname, 0);
	spool_crash_point("deliver-removed");
	/* Until this is on disk a crash could bring the entry back and send it twice. */
	spool_removal_sync(t->a, t->link);
}

/* attempt_sent - the relay answered the transaction: settle each recipient */

static enum entry_result attempt_sent(struct attempt *t)
{
	struct smtp_result *res = &t->res;
	struct spool_entry *e = &t->e;
	struct strlist accepted = STRLIST_INIT;
	enum entry_result result = ENTRY_DONE;

	spool_crash_point("deliver-after");
	smtp_result_accepted(res, &t->env, &accepted);
	if (accepted.n > 0)
		spool_log_result(LOG_LEVEL_INFO, e, &accepted, "sent", res->relay, res->dsn,
				 res->reply);
	if (res->deferred.n > 0) {
		/* Partial: remember who is done, retry the others. */
		for (size_t i = 0; i < accepted.n; i++)
			strlist_add(&e->done, accepted.v[i]);
		for (size_t i = 0; i < res->rejected.n; i++)
			strlist_add(&e->done, res->rejected.v[i]);
		attempt_reschedule(
		    t, res->deferred_replies.n ? res->deferred_replies.v[0] : 0,
		    res->deferred_replies.n ? res->deferred_replies.v[0] : "recipient deferred", 1);
		if (res->rejected.n > 0)
			spool_give_up(t->cfg, t->a, t->fd, e, "recipients refused by the relay",
				      &res->rejected, &res->rejected_replies, 1);
		spool_log_result(LOG_LEVEL_WARNING, e, &res->deferred, "deferred", res->relay, 0,
				 e->last_error);
		error_set(t->err, EX_TEMPFAIL, "%s: %zu recipient(s) deferred: %s", t->id,
			  res->deferred.n, e->last_error);
		t->err->temporary = 1;
		result = ENTRY_DEFERRED;
	} else if (res->rejected.n > 0) {
		spool_give_up(t->cfg, t->a, t->fd, e, "recipients refused by the relay",
			      &res->rejected, &res->rejected_replies, 0);
	} else {
		attempt_remove(t);
	}
	strlist_free(&accepted);
	return result;
}

/* attempt_failed - no transaction went through: retry, or give up for good */

static enum entry_result attempt_failed(struct attempt *t)
{
	struct strlist why = STRLIST_INIT;

	if (!failure_is_permanent(t->err)) {
		attempt_reschedule(t, t->err->text, t->err->text, 0);
		spool_log_result(LOG_LEVEL_WARNING, &t->e, &t->env.rcpts, "deferred", t->res.relay,
				 0, t->err->text);
		return t->local_fault ? ENTRY_LOCAL_FAULT : ENTRY_DEFERRED;
	}
	for (size_t i = 0; i < t->env.rcpts.n; i++)
		strlist_add(&why, t->err->text);
	spool_give_up(t->cfg, t->a, t->fd, &t->e, t->err->text, &t->env.rcpts, &why, 0);
	strlist_free(&why);
	return ENTRY_FAILED;
}

/* attempt_send - send what is left of a due entry and settle the outcome */

static enum entry_result attempt_send(struct attempt *t)
{
	enum entry_result result = ENTRY_FAILED; /* set by attempt_prepare() when it returns 1 */
	int rc = 0;

	attempt_envelope(t);
	/* Every recipient done: only the removal was missing. */
	if (t->env.rcpts.n > 0) {
		if ((rc = attempt_prepare(t, &result)) == 1)
			return result;
		if (rc == 0) {
			spool_crash_point("deliver-before");
			rc = entry_send(t->cfg, t->link, &t->env, &t->msg, &t->res, t->err);
		}
	}
	return rc == 0 ? attempt_sent(t) : attempt_failed(t);
}

/* spool_deliver_entry - lock, read, check, send, and settle one entry */

enum entry_result spool_deliver_entry(const struct config *cfg, const struct spool_area *a,
				      const char *id, int force, int wait_lock, double *next_due,
				      struct relay_link *link, struct error *err)
{
	struct attempt t;
	enum entry_result result = ENTRY_GONE; /* every step sets it; for the compiler */

	attempt_init(&t, cfg, a, id, link, err);
	if (attempt_lock(&t, wait_lock, &result) == 0 && attempt_read(&t, &result) == 0) {
		t.now = spool_now();
		if (attempt_not_due(&t, force, next_due, &result) == 0 &&
		    attempt_expired(&t, &result) == 0)
			result = attempt_send(&t);
	}
	attempt_free(&t);
	return result;
}
