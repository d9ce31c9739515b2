/*++
 * NAME
 *	spool_deliver 3
 * SUMMARY
 *	delivering one queue entry
 * SYNOPSIS
 *	#include "spool_int.h"
 *
 *	enum entry_result entry_deliver(const struct config *cfg,
 *			const struct spool_area *a, const char *id, int force,
 *			int wait_lock, double *next_due, struct relay_link *link,
 *			struct error *err);
 * DESCRIPTION
 *	entry_deliver() locks q/ID (waiting only in the caller's own area
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

/* entry_deliver - lock, load, send, and settle one entry */

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

enum entry_result entry_deliver(const struct config *cfg, const struct spool_area *a,
				const char *id, int force, int wait_lock, double *next_due,
				struct relay_link *link, struct error *err)
{
	struct spool_entry e;
	struct envelope denv;
	struct message msg;
	struct smtp_result res;
	struct stat fsb, psb;
	enum entry_result result;
	double now;
	int fd, rc, local_fault = 0;

	error_clear(err);
	fd = open_owned(a->q, id, O_RDONLY, a->uid, 0);
	if (fd < 0)
		return errno == ENOENT ? ENTRY_GONE : ENTRY_UNREADABLE;
	/* Anyone may flock() a file they can read: in another user's area
	 * waiting for the lock would let that user stop us forever. */
	if (a->uid != geteuid())
		wait_lock = 0;
	if (lock_entry(fd, wait_lock) != 0) {
		close(fd);
		return ENTRY_BUSY;
	}
	/* Locked, but maybe after the previous holder removed or replaced
	 * the entry: only the file still linked as q/ID is ours to send. */
	if (fstat(fd, &fsb) != 0 || fstatat(a->q, id, &psb, AT_SYMLINK_NOFOLLOW) != 0 ||
	    fsb.st_ino != psb.st_ino || fsb.st_dev != psb.st_dev) {
		close(fd);
		return ENTRY_GONE;
	}
	spool_entry_init(&e);
	if (entry_read(a->q, fd, id, &e) != 0) {
		struct strlist none = STRLIST_INIT;

		snprintf(e.id, sizeof(e.id), "%s", id);
		entry_give_up(cfg, a, fd, &e, "corrupt queue entry (unreadable envelope)", &none, 0,
			      0);
		spool_entry_free(&e);
		close(fd);
		error_set(err, EX_DATAERR, "queue entry %s is corrupt; moved to %s/failed", id,
			  a->path);
		return ENTRY_FAILED;
	}
	now = spool_now();
	if (!force && e.next_try > now) {
		if (e.next_try < *next_due)
			*next_due = e.next_try;
		spool_entry_free(&e);
		close(fd);
		return ENTRY_NOT_DUE;
	}
	/* An entry we could send but not remove (spool remounted read-only)
	 * would go out again at every pass: leave it alone until it can. */
	if (faccessat(a->q, ".", W_OK, AT_EACCESS) != 0) {
		log_msg(LOG_LEVEL_WARNING,
			"%s: not delivering: cannot remove it afterwards from %s/q: %s", id,
			a->path, strerror(errno));
		if (now + spool_retry_base() < *next_due)
			*next_due = now + spool_retry_base();
		spool_entry_free(&e);
		close(fd);
		return ENTRY_NOT_DUE;
	}
	if (cfg->queue_max_age_s > 0 && now - e.created > (double)cfg->queue_max_age_s) {
		struct buf why = BUF_INIT;
		struct strlist left = STRLIST_INIT;

		buf_printf(&why, "message expired after %.0f seconds in the queue (max_age %lu s)",
			   now - e.created, cfg->queue_max_age_s);
		if (e.last_error || e.first_error)
			buf_printf(&why, "; last error: %s",
				   e.last_error ? e.last_error : e.first_error);
		for (size_t i = 0; i < e.env.rcpts.n; i++)
			if (!strlist_contains_ci(&e.done, e.env.rcpts.v[i]))
				strlist_add(&left, e.env.rcpts.v[i]);
		entry_give_up(cfg, a, fd, &e, why.data, &left, 0, 0);
		error_set(err, EX_UNAVAILABLE, "%s: %s", id, why.data);
		buf_free(&why);
		strlist_free(&left);
		spool_entry_free(&e);
		close(fd);
		return ENTRY_FAILED;
	}

	/* The envelope for this attempt: recipients not done yet. */
	envelope_init(&denv);
	denv.sender = util_strdup(e.env.sender);
	for (size_t i = 0; i < e.env.rcpts.n; i++)
		if (!strlist_contains_ci(&e.done, e.env.rcpts.v[i]))
			strlist_add(&denv.rcpts, e.env.rcpts.v[i]);
	denv.dsn_notify = e.env.dsn_notify ? util_strdup(e.env.dsn_notify) : 0;
	denv.dsn_ret = e.env.dsn_ret ? util_strdup(e.env.dsn_ret) : 0;
	denv.dsn_envid = e.env.dsn_envid ? util_strdup(e.env.dsn_envid) : 0;
	denv.smtputf8 = e.env.smtputf8;
	smtp_result_init(&res);
	message_init(&msg);
	if (denv.rcpts.n == 0) {
		rc = 0; /* every recipient done: only the removal was missing */
	} else if (entry_message(fd, &e, &msg) != 0) {
		error_set(err, EX_IOERR, "cannot read queue entry %s/q/%s: %s", a->path, id,
			  strerror(errno));
		err->temporary = 1;
		rc = EX_IOERR;
		local_fault = 1;
	} else if (a->uid != geteuid() && *denv.sender == 0 && cfg->allowed_sender_domains.n > 0 &&
		   !cfg->allow_null_sender) {
		/* A failure notice its owner's worker queued: our policy would
		 * refuse the null sender and lose it; that worker sends it. */
		result = ENTRY_LEFT_TO_OWNER;
		goto done;
	} else if (a->uid != geteuid() &&
		   (rc = entry_revalidate(cfg, a, &e, &msg, &denv, err)) != 0) {
		/* Refused by our policy: nobody to notify but the sender it
		 * claims, who may never have written it. */
		struct strlist why = STRLIST_INIT;
		struct buf text = BUF_INIT;

		buf_printf(&text, "refused at delivery from %s: %s", a->path, err->text);
		for (size_t i = 0; i < denv.rcpts.n; i++)
			strlist_add(&why, err->text);
		if (err->temporary || !failure_is_permanent(err)) {
			local_fault = 1;
		} else {
			entry_give_up_notify(cfg, a, fd, &e, text.data, &denv.rcpts, &why, 0, 0);
			result = ENTRY_FAILED;
			strlist_free(&why);
			buf_free(&text);
			goto done;
		}
		strlist_free(&why);
		buf_free(&text);
	} else {
		spool_crash_point("deliver-before");
		rc = entry_send(cfg, link, &denv, &msg, &res, err);
	}

	if (rc == 0) {
		struct strlist accepted = STRLIST_INIT;

		spool_crash_point("deliver-after");
		smtp_result_accepted(&res, &denv, &accepted);
		if (accepted.n > 0)
			log_result(LOG_LEVEL_INFO, &e, &accepted, "sent", res.relay, res.dsn,
				   res.reply);
		if (res.deferred.n > 0) {
			/* Partial: remember who is done, retry the others. */
			for (size_t i = 0; i < accepted.n; i++)
				strlist_add(&e.done, accepted.v[i]);
			for (size_t i = 0; i < res.rejected.n; i++)
				strlist_add(&e.done, res.rejected.v[i]);
			e.attempts++;
			e.last_try = now;
			e.next_try = now + spool_backoff(e.attempts);
			hint_first_time(e.id, e.last_error ? e.last_error : e.first_error,
					res.deferred_replies.n ? res.deferred_replies.v[0] : 0);
			free(e.last_error);
			e.last_error =
			    util_strdup(res.deferred_replies.n ? res.deferred_replies.v[0]
							       : "recipient deferred");
			state_write(a, &e, 1);
			if (res.rejected.n > 0)
				entry_give_up(cfg, a, fd, &e, "recipients refused by the relay",
					      &res.rejected, &res.rejected_replies, 1);
			log_result(LOG_LEVEL_WARNING, &e, &res.deferred, "deferred", res.relay, 0,
				   e.last_error);
			error_set(err, EX_TEMPFAIL, "%s: %zu recipient(s) deferred: %s", id,
				  res.deferred.n, e.last_error);
			err->temporary = 1;
			result = ENTRY_DEFERRED;
		} else if (res.rejected.n > 0) {
			entry_give_up(cfg, a, fd, &e, "recipients refused by the relay",
				      &res.rejected, &res.rejected_replies, 0);
			result = ENTRY_DONE;
		} else {
			char stname[SPOOL_ID_MAX + 4];

			snprintf(stname, sizeof(stname), "%s.st", id);
			if (unlinkat(a->q, id, 0) != 0 && errno != ENOENT)
				log_msg(LOG_LEVEL_ERROR,
					"%s: delivered but cannot remove %s/q/%s: %s; "
					"it may be sent again",
					id, a->path, id, strerror(errno));
			(void)unlinkat(a->q, stname, 0);
			spool_crash_point("deliver-removed");
			/* Until this is on disk a crash could bring the entry
			 * back and send it twice. */
			removal_sync(a, link);
			result = ENTRY_DONE;
		}
		strlist_free(&accepted);
	} else if (!failure_is_permanent(err)) {
		e.attempts++;
		e.last_try = now;
		/* A relay that could not be reached says nothing about this
		 * message: it is due again as soon as the relay is back, which
		 * the worker watches (worker_main), unless the relay itself had
		 * deferred it before: that backoff stands. */
		if (!local_fault && link && link->unreachable)
			e.next_try = e.next_try > now ? e.next_try : now;
		else
			e.next_try = now + spool_backoff(e.attempts);
		hint_first_time(e.id, e.last_error ? e.last_error : e.first_error, err->text);
		free(e.last_error);
		e.last_error = util_strdup(err->text);
		state_write(a, &e, 0);
		log_result(LOG_LEVEL_WARNING, &e, &denv.rcpts, "deferred", res.relay, 0, err->text);
		result = local_fault ? ENTRY_LOCAL_FAULT : ENTRY_DEFERRED;
	} else {
		struct strlist why = STRLIST_INIT;

		for (size_t i = 0; i < denv.rcpts.n; i++)
			strlist_add(&why, err->text);
		entry_give_up(cfg, a, fd, &e, err->text, &denv.rcpts, &why, 0);
		strlist_free(&why);
		result = ENTRY_FAILED;
	}
done:
	smtp_result_free(&res);
	message_free(&msg);
	envelope_free(&denv);
	spool_entry_free(&e);
	close(fd); /* releases the lock */
	return result;
}
