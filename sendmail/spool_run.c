/*++
 * NAME
 *	spool_run 3
 * SUMMARY
 *	passes over the queue and the detached retry worker
 * SYNOPSIS
 *	#include "spool_int.h"
 *
 *	int	spool_run(const struct config *cfg, struct error *err);
 *	int	spool_deliver(const struct config *cfg, const char *queue_id,
 *			struct error *err);
 *	int	spool_load(const struct config *cfg, const char *queue_id,
 *			struct envelope *env, struct message *msg, struct error *err);
 *	void	spool_kick(const struct config *cfg);
 * DESCRIPTION
 *	A pass (run_pass()) offers every area in scope its turns and every
 *	due entry to spool_deliver_entry(), over one relay connection, and makes
 *	removals durable in batches (spool_removal_sync() in spool_deliver.c);
 *	what ends an area's part or the whole pass is described at
 *	run_pass().
 *	spool_run() repeats passes while they make progress (sendmail -q);
 *	spool_deliver() and spool_load() take one entry of the caller's area.
 *
 *	spool_kick() starts the retry worker (double fork, setsid) unless
 *	one holds the area's lock, in which case it kicks it: one byte more
 *	in the area's "kick" file. The worker runs passes, sleeps until the
 *	next entry is due or a kick (or, while the relay cannot be reached,
 *	looks at it every 20 to 40 s: worker_main()), and exits when
 *	nothing is left. The
 *	contracts are in spool.h.
 * DIAGNOSTICS
 *	spool_run(), spool_deliver(), spool_load(): 0 or a sysexits.h code
 *	with one line in err. The worker logs with log_msg() and
 *	log_delivery().
 *--*/

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "spool_int.h"

/* ====================================================================
 * Passes over the queue
 * ==================================================================== */

struct pass_stats {
	unsigned delivered;
	unsigned deferred;
	unsigned failed;
	unsigned remaining; /* entries left in scope after the pass */
	unsigned tried;
	unsigned streak;    /* consecutive connection failures */
	int aborted;	    /* stopped early: the relay looks down */
	int unreachable;    /* the pass's last attempt could not reach the relay */
	double next_due;    /* earliest next_try of what is left */
	struct error last;  /* last delivery error */
	struct error scope; /* the spool itself was refused (spool_top_check) */
};

/*
 * The ids a sendmail -q run has tried, for its later passes: sorted after
 * each pass and searched by bisection. A list searched from the start
 * made a 10 000-entry backlog cost 10^8 comparisons per pass.
 */
struct id_set {
	struct strlist l;
	size_t sorted; /* l.v[0 .. sorted) is in order */
};

static int cmp_id(const void *x, const void *y)
{
	return strcasecmp(*(char *const *)x, *(char *const *)y);
}

/* id_set_has - was id tried in an earlier pass? */

static int id_set_has(const struct id_set *set, const char *id)
{
	return set->sorted > 0 && bsearch(&id, set->l.v, set->sorted, sizeof(char *), cmp_id) != 0;
}

/* id_set_seal - end of a pass: what it added becomes searchable */

static void id_set_seal(struct id_set *set)
{
	if (set->l.n > 1)
		qsort(set->l.v, set->l.n, sizeof(char *), cmp_id);
	set->sorted = set->l.n;
}

/* One area's place in a pass. */
struct area_turn {
	struct strlist ids; /* listed once, oldest first */
	size_t next;	    /* the first not yet looked at */
	unsigned streak;    /* temporary failures in a row */
	int ended;	    /* SPOOL_STREAK_MAX of them: done for this pass */
	int tried;	    /* some delivery was attempted */
};

/*
 * area_turn - one area's turn in a pass: up to SPOOL_AREA_BUDGET delivery
 * attempts from where its last turn stopped. Returns 1 when entries are
 * left for its next turn.
 */
static int area_turn(const struct config *cfg, const struct spool_area *a, struct area_turn *t,
		     int force, int wait_lock, struct id_set *tried, struct relay_link *link,
		     struct pass_stats *st)
{
	unsigned budget = SPOOL_AREA_BUDGET;
	struct error err;

	while (t->next < t->ids.n) {
		const char *id = t->ids.v[t->next];
		enum entry_result r;

		/* -q --deadline: what is left stays queued. */
		if (spool_time_is_up())
			st->aborted = 1;
		if (st->aborted || t->ended || (tried && id_set_has(tried, id))) {
			st->remaining++;
			t->next++;
			continue;
		}
		if (budget == 0)
			return 1; /* its turn is over; the next round goes on */
		t->next++;
		r = spool_deliver_entry(cfg, a, id, force, wait_lock, &st->next_due, link, &err);
		if (r != ENTRY_GONE && r != ENTRY_UNREADABLE && r != ENTRY_NOT_DUE &&
		    r != ENTRY_BUSY && r != ENTRY_LEFT_TO_OWNER) {
			budget--;
			t->tried = 1;
		}
		switch (r) {
		case ENTRY_DONE:
			st->delivered++;
			st->tried++;
			st->streak = 0;
			t->streak = 0;
			break;
		case ENTRY_DEFERRED:
			st->deferred++;
			st->tried++;
			st->remaining++;
			st->last = err;
			if (link->unreachable || spool_transport) {
				if (++st->streak >= SPOOL_STREAK_MAX)
					st->aborted = 1;
			} else {
				st->streak = 0;
			}
			if (++t->streak >= SPOOL_STREAK_MAX)
				t->ended = 1;
			break;
		case ENTRY_LOCAL_FAULT:
			st->deferred++;
			st->tried++;
			st->remaining++;
			st->last = err;
			break;
		case ENTRY_FAILED:
			st->failed++;
			st->tried++;
			st->streak = 0;
			t->streak = 0;
			st->last = err;
			break;
		case ENTRY_NOT_DUE:
			st->remaining++;
			break;
		case ENTRY_LEFT_TO_OWNER:
			break;
		case ENTRY_BUSY:
			/* In another user's area the lock holder is that
			 * user (its worker, or a flock() meant to keep us
			 * polling): not ours to wait for. */
			if (a->uid != geteuid())
				break;
			st->remaining++;
			if (st->next_due > spool_now() + 1.0)
				st->next_due = spool_now() + 1.0;
			break;
		case ENTRY_GONE:
		case ENTRY_UNREADABLE:
			break;
		}
		if (tried && r != ENTRY_GONE && r != ENTRY_UNREADABLE)
			strlist_add(&tried->l, id);
	}
	return 0;
}

/*
 * run_pass - one pass over every area in scope; tried (may be NULL) = ids
 * already tried; session (may be NULL) = a relay session already open
 * (the worker's look at a relay that was down), which the pass owns.
 *
 * Fairness: the pass goes round the areas in turns of SPOOL_AREA_BUDGET
 * delivery attempts each, until every area is through: an area with
 * 10 000 entries delays another's by one turn at most. Each area's
 * entries are listed once per pass (a listing stats every entry). What
 * one area holds ends only that area's pass: SPOOL_STREAK_MAX temporary
 * failures in a row (its recipients' domains may be the ones failing).
 * Entries that cannot even be read (ENTRY_LOCAL_FAULT) count for nothing.
 * Only a relay that cannot be connected to, SPOOL_STREAK_MAX times in a
 * row, ends the whole pass: no entry can cause that. One relay connection
 * carries the whole pass while the relay keeps it usable.
 */
static void run_pass(const struct config *cfg, int force, int wait_lock, struct id_set *tried,
		     struct smtp_session *session, struct pass_stats *st)
{
	struct spool_area *areas;
	struct area_turn *turns;
	size_t nareas;
	struct relay_link link = {session, 0, -1, 0};
	unsigned areas_ended = 0, areas_tried = 0;
	int more = 1;

	memset(st, 0, sizeof(*st));
	st->next_due = HUGE_VAL;
	if (spool_scope_areas(cfg, &areas, &nareas, 1, &st->scope) != 0) {
		smtp_session_close(session);
		return;
	}
	turns = util_calloc(nareas ? nareas : 1, sizeof(*turns));
	for (size_t ai = 0; ai < nareas; ai++)
		spool_list_ids(&areas[ai], &turns[ai].ids, 1);
	while (more) {
		more = 0;
		for (size_t ai = 0; ai < nareas; ai++) {
			more |= area_turn(cfg, &areas[ai], &turns[ai], force, wait_lock, tried,
					  &link, st);
			/* The batch of removals of this area's turn goes to disk
			 * before the next area's (spool_removal_sync). */
			spool_link_sync(&link);
		}
	}
	for (size_t ai = 0; ai < nareas; ai++) {
		areas_tried += turns[ai].tried;
		areas_ended += turns[ai].ended;
		strlist_free(&turns[ai].ids);
	}
	free(turns);
	/* Every area that was tried ended on failures and nothing went out:
	 * the relay looks down; the worker backs off as a whole. */
	if (areas_tried > 0 && areas_ended == areas_tried && st->delivered == 0)
		st->aborted = 1;
	st->unreachable = link.unreachable && st->tried > 0;
	if (tried)
		id_set_seal(tried);
	smtp_session_close(link.session);
	spool_scope_free(areas, nareas);
}

/*
 * area_count - the entries of an area's q/, counting stops at limit: the
 * test spool_list_ids() applies (a valid id naming a plain file of the area's
 * owner), without collecting or sorting. Every submission that queues asks
 * whether anything is queued (spool_kick()): with 10 000 entries behind it,
 * listing them all made queueing during an outage quadratic.
 */
static unsigned area_count(const struct spool_area *a, unsigned limit)
{
	DIR *d = spool_opendir(a->q);
	struct dirent *de;
	unsigned n = 0;

	if (d == 0)
		return 0;
	while (n < limit && (de = readdir(d)) != 0) {
		struct stat sb;

		if (de->d_name[0] == '.' || strchr(de->d_name, '.') != 0 ||
		    !spool_id_valid(de->d_name))
			continue;
		if (fstatat(a->q, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && sb.st_uid == a->uid)
			n++;
	}
	closedir(d);
	return n;
}

/* scope_count - how many entries this process could deliver (stops at limit); own = our areas only
 */

static unsigned scope_count(const struct config *cfg, unsigned limit, int own)
{
	struct spool_area *areas;
	size_t nareas;
	struct error err;
	unsigned found = 0;

	error_clear(&err);
	if (spool_scope_areas(cfg, &areas, &nareas, 0, &err) != 0)
		return 0;
	for (size_t ai = 0; ai < nareas && found < limit; ai++) {
		if (own && areas[ai].uid != geteuid())
			continue;
		found += area_count(&areas[ai], limit - found);
	}
	spool_scope_free(areas, nareas);
	return found;
}

/* scope_nonempty - is anything queued that this process could deliver? */

static int scope_nonempty(const struct config *cfg)
{
	return scope_count(cfg, 1, 0) > 0;
}

/* spool_run - sendmail -q: everything now, in the foreground */

int spool_run(const struct config *cfg, struct error *err)
{
	struct id_set tried = {STRLIST_INIT, 0};
	struct pass_stats st;
	struct error last;
	unsigned left;

	error_clear(err);
	error_clear(&last);
	/* Repeat while passes make progress: a pass may queue notices. */
	for (;;) {
		run_pass(cfg, 1, 1, &tried, 0, &st);
		if (st.scope.status) {
			strlist_free(&tried.l);
			*err = st.scope;
			return err->status;
		}
		if (st.last.text[0])
			last = st.last;
		if (st.aborted || st.tried == 0)
			break;
	}
	strlist_free(&tried.l);
	/* What is left after the last pass (a fresh look, tried or not). */
	if ((left = scope_count(cfg, ~0U, 0)) == 0)
		return 0;
	error_set(err, EX_TEMPFAIL, "%u message(s) remain in the queue%s%s", left,
		  last.text[0] ? "; last error: " : "", last.text);
	err->temporary = 1;
	return EX_TEMPFAIL;
}

/* spool_deliver - deliver one entry of our own area now */

int spool_deliver(const struct config *cfg, const char *queue_id, struct error *err)
{
	struct spool_area a;
	double next_due = HUGE_VAL;
	enum entry_result r;

	if (spool_area_open(cfg->queue_dir, geteuid(), 0, &a, err) != 0)
		return err->status;
	r = spool_deliver_entry(cfg, &a, queue_id, 1, 1, &next_due, 0, err);
	spool_area_close(&a);
	switch (r) {
	case ENTRY_DONE:
		return 0;
	case ENTRY_DEFERRED:
	case ENTRY_LOCAL_FAULT:
		return EX_TEMPFAIL;
	case ENTRY_FAILED:
		return err->status ? err->status : EX_UNAVAILABLE;
	case ENTRY_GONE:
		/* Already delivered by a worker that got there first: fine. */
		return 0;
	default:
		err->temporary = 1;
		return error_set(err, EX_TEMPFAIL, "queue entry %s is busy; it stays queued",
				 queue_id);
	}
}

/* spool_load - one entry of our own area (tests and tools) */

int spool_load(const struct config *cfg, const char *queue_id, struct envelope *env,
	       struct message *msg, struct error *err)
{
	struct spool_area a;
	struct spool_entry e;
	int fd;

	if (!spool_id_valid(queue_id))
		return error_set(err, EX_NOINPUT, "bad queue id \"%s\"", queue_id);
	if (spool_area_open(cfg->queue_dir, geteuid(), 0, &a, err) != 0)
		return err->status;
	fd = spool_open_owned(a.q, queue_id, O_RDONLY, a.uid, 0);
	if (fd < 0) {
		error_set(err, EX_NOINPUT, "no queue entry %s in %s: %s", queue_id, a.path,
			  strerror(errno));
		spool_area_close(&a);
		return err->status;
	}
	spool_entry_init(&e);
	if (spool_read_entry(a.q, fd, queue_id, &e) != 0 || spool_read_message(fd, &e, msg) != 0) {
		error_set(err, EX_DATAERR, "queue entry %s/q/%s is corrupt", a.path, queue_id);
		message_free(msg);
		spool_entry_free(&e);
		close(fd);
		spool_area_close(&a);
		return err->status;
	}
	*env = e.env;
	envelope_init(&e.env);
	spool_entry_free(&e);
	close(fd);
	spool_area_close(&a);
	return 0;
}

/* ====================================================================
 * The retry worker
 * ==================================================================== */

/* kick_size - how many kicks the area's kick file has seen */

static off_t kick_size(int dirfd)
{
	struct stat sb;

	return fstatat(dirfd, "kick", &sb, AT_SYMLINK_NOFOLLOW) == 0 ? sb.st_size : 0;
}

/* kick_worker - tell a running worker to retry now: one byte more in "kick" */

static void kick_worker(int dirfd)
{
	int fd =
	    openat(dirfd, "kick", O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd >= 0) {
		(void)!write(fd, "k", 1);
		close(fd);
	}
}

/* worker_sleep - sleep until wake or a kick: 1 kicked, 0 time, -1 the area was removed */

static int worker_sleep(int dirfd, double wake, off_t *seen)
{
	double step = spool_retry_base() < 1.0 ? spool_retry_base() : 1.0;

	if (step < 0.05)
		step = 0.05;
	for (;;) {
		double left = wake - spool_now();
		struct timespec ts;
		off_t k;

		struct stat sb;

		if ((k = kick_size(dirfd)) != *seen) {
			*seen = k;
			return 1;
		}
		/* Someone removed the spool under us: nothing left to do. */
		if (fstat(dirfd, &sb) != 0 || sb.st_nlink == 0)
			return -1;
		if (left <= 0)
			return 0;
		if (left > step)
			left = step;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, 0);
	}
}

/* worker_relock - after letting go of the lock: take it again if work arrived */

static int worker_relock(const struct config *cfg, int dirfd)
{
	int fd;

	/* A submitter that committed while we held the lock only kicked
	 * the file; its message is ours unless another worker has started.
	 * Only our own areas count: another user's entry that a pass left
	 * (locked by that user, say) is that user's worker's to deliver,
	 * and must not keep ours alive. */
	if (scope_count(cfg, 1, 1) == 0)
		return -1;
	fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * spool_probe_period - seconds between two looks at a relay that could not
 * be reached: the retry base times a random factor in [2/3, 4/3), so 20 to
 * 40 s by default. Random on every draw: workers whose relay went away
 * together look again at different times, and keep doing so.
 */
static double spool_probe_period(void)
{
	return spool_retry_base() * (2.0 + (double)(spool_random() % 1000) / 500.0) / 3.0;
}

/*
 * spool_test_outage_rounds - test-only: RELAYSHIM_TEST_OUTAGE_ROUNDS=N
 * starts a worker as if N passes had already found the relay down (its
 * backoff at the cap after hours of outage), so that tests and the
 * benchmark need not wait those hours.
 */
static unsigned spool_test_outage_rounds(void)
{
	const char *s = getenv("RELAYSHIM_TEST_OUTAGE_ROUNDS");
	unsigned long v;
	char *end;

	if (s == 0 || *s == 0)
		return 0;
	v = strtoul(s, &end, 10);
	return *end == 0 && v < 64 ? (unsigned)v : 0;
}

/*
 * worker_main - deliver, sleep, repeat; return when nothing is left
 *
 * A relay that cannot be reached (no connection, no greeting) is not
 * backed off exponentially: the worker looks at it again every
 * spool_probe_period() (20 to 40 s by default, drawn afresh each time)
 * by opening the session the next pass would use, and touches no entry
 * until that succeeds; then that session carries the pass. An idle
 * container whose relay was down for hours thus delivers within 40 s of
 * its return, where a backoff doubling to its 1 h cap left it waiting up
 * to 75 minutes; and the look costs one connection attempt, no disk I/O.
 * The spread stays: each worker's looks fall at its own random times, so
 * 50 containers whose relay comes back reach it over some 20 s, not in
 * the same second. Entries deferred because the relay was unreachable are
 * due at once (spool_deliver_entry); those the relay itself deferred keep their
 * own backoff, and a relay that answers but defers everything (passes
 * aborted on 4xx) still backs the worker off exponentially.
 */
static void worker_main(const struct config *cfg, int dirfd, int lockfd)
{
	struct pass_stats st;
	struct smtp_session *session = 0;
	unsigned idle_rounds = spool_test_outage_rounds();
	int force = 0;
	off_t seen = kick_size(dirfd);

	for (;;) {
		double wake;

		if (seen > 65536) {
			/* Keep the kick file small; a kick lost here only waits for the backoff. */
			int kfd =
			    openat(dirfd, "kick", O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);

			if (kfd >= 0)
				close(kfd);
			seen = kick_size(dirfd);
		}
		run_pass(cfg, force, 0, 0, session, &st);
		session = 0;
		if (st.remaining == 0) {
			force = 0;
			close(lockfd);
			if ((lockfd = worker_relock(cfg, dirfd)) < 0)
				return;
			/* New work arrived meanwhile; should anything else keep the
			 * queue non-empty without a pass seeing it, do not spin. */
			if (st.tried == 0 && worker_sleep(dirfd, spool_now() + 0.05, &seen) < 0)
				return;
			continue;
		}
		if (st.unreachable && !spool_transport) {
			/* Watch the relay until it answers; a kick (new mail)
			 * looks at once. */
			struct error perr;

			for (;;) {
				if ((force = worker_sleep(dirfd, spool_now() + spool_probe_period(),
							  &seen)) < 0)
					return;
				error_clear(&perr);
				if (smtp_session_open(&session, cfg, &perr) == 0)
					break;
				session = 0;
				if (!perr.temporary)
					break; /* a refusal for the pass to record */
			}
			idle_rounds = 0;
			continue;
		}
		if (st.aborted) {
			/* The relay answers but defers everything: back off as a
			 * whole, not per message. A pass forced by a kick does not
			 * count: 200 submitters kicking during an outage must not
			 * push the next retry to the cap. */
			if (!force || idle_rounds == 0)
				idle_rounds++;
			wake = spool_now() + spool_backoff(idle_rounds);
		} else {
			idle_rounds = 0;
			wake = st.next_due;
		}
		if (wake == HUGE_VAL)
			wake = spool_now() + spool_retry_base();
		if ((force = worker_sleep(dirfd, wake, &seen)) < 0)
			return;
	}
}

/* worker_detach - become a daemon child: stdio on /dev/null, fds above last closed */

static void worker_detach(int last)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	sigset_t none;

	/* The caller's stdout/stderr may be a pipe someone reads to EOF
	 * (cron, PHP proc_open): holding it would hang them for days. */
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > last)
			close(null);
	}
	if (close_range((unsigned)last + 1, ~0U, 0) != 0) {
		long max = sysconf(_SC_OPEN_MAX);

		for (long fd = last + 1; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
			close((int)fd);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGHUP, SIG_IGN);
	umask(077);
	(void)!chdir("/");
}

/*
 * worker_title - the worker outlives the submission that started it: its
 * command line (sender, recipients) must not stay visible in ps for hours.
 * The argv strings lie in one block that /proc/PID/cmdline shows; glibc's
 * program_invocation_name points at its start. Overwrite it in place
 * (what setproctitle() does), after checking that it is that block.
 */
static void worker_title(uid_t uid)
{
	struct buf cmdline = BUF_INIT;
	char *start = program_invocation_name;
	char title[64];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return;
	for (;;) {
		buf_reserve(&cmdline, 4096);
		r = read(fd, cmdline.data + cmdline.len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		cmdline.len += (size_t)r;
	}
	close(fd);
	if (start && cmdline.len > 1 && memcmp(start, cmdline.data, cmdline.len) == 0) {
		snprintf(title, sizeof(title), "sendmail: queue worker (uid %lu)",
			 (unsigned long)uid);
		memset(start, 0, cmdline.len);
		memcpy(start, title,
		       strlen(title) < cmdline.len - 1 ? strlen(title) : cmdline.len - 1);
	}
	buf_free(&cmdline);
}

/* spool_kick - start a worker unless one runs; never blocks */

void spool_kick(const struct config *cfg)
{
	struct spool_area a;
	struct error err;
	struct config wcfg;
	char *abs;
	int lockfd;
	pid_t pid;

	/* This runs after every successful delivery, queue in use or not: an
	 * empty queue must cost one look, not a lock and two scans. Something
	 * committed right after this look kicks the queue itself. */
	if (!scope_nonempty(cfg))
		return;
	/* No area yet: nothing of ours is queued. Do not create one. */
	if (spool_area_open(cfg->queue_dir, geteuid(), 0, &a, &err) != 0)
		return;
	for (;;) {
		lockfd = openat(a.dir, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (lockfd < 0) {
			spool_area_close(&a);
			return;
		}
		if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
			/* A worker runs: make it look now. */
			close(lockfd);
			kick_worker(a.dir);
			spool_area_close(&a);
			return;
		}
		if (scope_nonempty(cfg))
			break;
		close(lockfd);
		/* Something may have been committed (and only kicked) while we
		 * held the lock: look once more now that it is released. */
		if (!scope_nonempty(cfg)) {
			spool_area_close(&a);
			return;
		}
	}
	/* The worker outlives our cwd: it needs an absolute queue path. */
	abs = realpath(cfg->queue_dir, 0);
	if (abs == 0) {
		close(lockfd);
		spool_area_close(&a);
		return;
	}
	fflush(0);
	pid = fork();
	if (pid < 0) {
		log_msg(LOG_LEVEL_WARNING, "cannot start the queue worker: %s", strerror(errno));
	} else if (pid == 0) {
		/* Double fork + setsid: no zombie for our caller, no controlling tty. */
		setsid();
		/* Before the second fork: the worker is born with its title,
		 * and ps never shows it with the submission's command line
		 * (the middle process writes the pid and exits at once). */
		worker_title(geteuid());
		pid = fork();
		if (pid != 0) {
			/* The worker's pid is in the lock file before our caller
			 * returns (tools and tests find the worker by it). */
			char pidtext[32];
			int n = snprintf(pidtext, sizeof(pidtext), "%ld\n", (long)pid);

			if (pid > 0 && ftruncate(lockfd, 0) == 0)
				(void)!pwrite(lockfd, pidtext, (size_t)n, 0);
			_exit(0);
		}
		wcfg = *cfg;
		wcfg.queue_dir = abs;
		/* Keep the lock and the area's directory, as fds 3 and 4;
		 * everything else goes. The copies at >= 10 step out of the
		 * way of dup2(), and the lock lives on in fd 3 (flock belongs
		 * to the open file description, shared by dups). The log goes
		 * first: its file may be fd 3, and log_setup() below would
		 * close "its" descriptor, by then the lock's, and free the
		 * area for a second worker at the next submission. */
		log_close();
		{
			int hilock = fcntl(lockfd, F_DUPFD, 10);
			int hidir = fcntl(a.dir, F_DUPFD, 10);

			if (hilock < 0 || hidir < 0 || dup2(hilock, 3) < 0 || dup2(hidir, 4) < 0)
				_exit(0);
			worker_detach(4);
			log_setup(&wcfg);
			worker_main(&wcfg, 4, 3);
		}
		_exit(0);
	} else {
		while (waitpid(pid, 0, 0) < 0 && errno == EINTR)
			;
	}
	free(abs);
	close(lockfd);
	spool_area_close(&a);
}
