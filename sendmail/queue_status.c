/*++
 * NAME
 *	queue_status 3
 * SUMMARY
 *	queue health for probes and a flush with a deadline for shutdown hooks
 * SYNOPSIS
 *	#include "queue_status.h"
 * DESCRIPTION
 *	See queue_status.h. The listing comes from spool_walk(), so what a
 *	user sees here is exactly what -bp shows them; this file only
 *	aggregates and formats. The flush runs spool_run() in a child so
 *	that the deadline holds even where no timeout of ours applies
 *	(getaddrinfo() of the relay's name).
 *--*/

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "queue_status.h"

/* ====================================================================
 * Arguments and ages
 * ==================================================================== */

/* queue_human_age - the largest whole unit: "12s", "5m", "2h", "3d" */

void queue_human_age(struct buf *out, double secs)
{
	unsigned long long s = secs > 0 && secs < 1e15 ? (unsigned long long)secs : 0;

	if (s >= 86400)
		buf_printf(out, "%llud", s / 86400);
	else if (s >= 3600)
		buf_printf(out, "%lluh", s / 3600);
	else if (s >= 60)
		buf_printf(out, "%llum", s / 60);
	else
		buf_printf(out, "%llus", s);
}

/* ====================================================================
 * Collecting
 * ==================================================================== */

/* queue_status_init - empty */

void queue_status_init(struct queue_status *qs)
{
	memset(qs, 0, sizeof(*qs));
}

/* dup_or_null - an owned copy, NULL stays NULL */

static char *dup_or_null(const char *s)
{
	return s ? util_strdup(s) : 0;
}

/* queue_status_add - one entry as spool_walk() shows it */

void queue_status_add(struct queue_status *qs, const struct spool_info *info, double now)
{
	struct queue_entry *e;
	struct passwd *pw;

	if (qs->n == qs->cap) {
		qs->cap = qs->cap ? qs->cap * 2 : 16;
		qs->v = util_realloc(qs->v, qs->cap * sizeof(*qs->v));
	}
	e = &qs->v[qs->n++];
	memset(e, 0, sizeof(*e));
	e->id = util_strdup(info->id);
	e->uid = info->owner;
	/* spool_walk() goes area by area: one lookup per owner, not per entry. */
	if (qs->n > 1 && e[-1].uid == e->uid) {
		e->user = dup_or_null(e[-1].user);
	} else {
		pw = getpwuid((uid_t)info->owner);
		e->user = pw && pw->pw_name ? util_strdup(pw->pw_name) : 0;
	}
	/* A clock set back must not give a negative age. */
	e->age = now > info->created ? now - info->created : 0;
	e->attempts = info->attempts;
	e->next_in = info->next_try > now ? info->next_try - now : 0;
	e->last_reply = dup_or_null(info->last_error);
	e->sender = dup_or_null(info->sender);
	e->rcpts = info->rcpts;
	e->size = info->size;
	e->corrupt = info->corrupt;
	if (e->age > qs->oldest_age)
		qs->oldest_age = e->age;
	qs->bytes += info->size;
}

struct collect_ctx {
	struct queue_status *qs;
	double now;
};

/* collect_one - spool_visit_fn */

static void collect_one(void *vctx, const struct spool_info *info)
{
	struct collect_ctx *ctx = vctx;

	queue_status_add(ctx->qs, info, ctx->now);
}

/* wall_now - wall-clock seconds, the clock of the spool's time stamps */

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* queue_status_collect - everything the caller may see */

int queue_status_collect(const struct config *cfg, int brief, struct queue_status *qs,
			 struct error *err)
{
	struct collect_ctx ctx;
	unsigned failed = 0;
	int rc;

	queue_status_init(qs);
	ctx.qs = qs;
	ctx.now = wall_now();
	rc = spool_walk(cfg, brief, collect_one, &ctx, &failed, err);
	qs->failed = failed;
	return rc;
}

/* queue_status_free - release the entries */

void queue_status_free(struct queue_status *qs)
{
	for (size_t i = 0; i < qs->n; i++) {
		free(qs->v[i].id);
		free(qs->v[i].user);
		free(qs->v[i].last_reply);
		free(qs->v[i].sender);
	}
	free(qs->v);
	queue_status_init(qs);
}

/* ====================================================================
 * Verdict and output
 * ==================================================================== */

/* queue_status_check - 1 (one reason per threshold in why) when over a threshold */

int queue_status_check(const struct queue_status *qs, const struct queue_limits *lim,
		       struct strlist *why)
{
	struct buf b = BUF_INIT;
	size_t before = why->n;

	if (lim && lim->has_max_age && qs->n > 0 &&
	    qs->oldest_age * 1000.0 > (double)lim->max_age_ms) {
		buf_puts(&b, "oldest message is ");
		queue_human_age(&b, qs->oldest_age);
		buf_puts(&b, " old, more than --max-age ");
		queue_human_age(&b, (double)lim->max_age_ms / 1000.0);
		strlist_add(why, b.data);
	}
	if (lim && lim->has_max_count && qs->n > lim->max_count) {
		buf_reset(&b);
		buf_printf(&b, "%zu messages queued, more than --max-count %lu", qs->n,
			   lim->max_count);
		strlist_add(why, b.data);
	}
	buf_free(&b);
	return why->n > before;
}

/* queue_status_line - "queue: N messages, oldest 12s, M failed" */

void queue_status_line(const struct queue_status *qs, struct buf *out)
{
	buf_printf(out, "queue: %zu messages, oldest ", qs->n);
	queue_human_age(out, qs->oldest_age);
	buf_printf(out, ", %u failed\n", qs->failed);
}

/* json_str - a JSON string, or null */

static void json_str(struct buf *out, const char *s)
{
	if (s)
		log_json_string(out, s, strlen(s));
	else
		buf_puts(out, "null");
}

/* json_secs - whole seconds, never negative, never a non-number */

static unsigned long long json_secs(double secs)
{
	return secs > 0 && secs < 1e15 ? (unsigned long long)secs : 0;
}

/* queue_status_json - one object and a newline */

void queue_status_json(const struct queue_status *qs, const struct queue_limits *lim,
		       struct buf *out)
{
	struct strlist why = STRLIST_INIT;
	int over = queue_status_check(qs, lim, &why);

	buf_printf(out, "{\"count\":%zu,\"oldest_age_seconds\":%llu,\"failed\":%u,\"bytes\":%llu,",
		   qs->n, json_secs(qs->oldest_age), qs->failed, qs->bytes);
	buf_printf(out, "\"healthy\":%s,\"problems\":[", over ? "false" : "true");
	for (size_t i = 0; i < why.n; i++) {
		if (i)
			buf_putc(out, ',');
		json_str(out, why.v[i]);
	}
	buf_puts(out, "],\"entries\":[");
	for (size_t i = 0; i < qs->n; i++) {
		const struct queue_entry *e = &qs->v[i];

		buf_puts(out, i ? ",{\"id\":" : "{\"id\":");
		json_str(out, e->id);
		buf_printf(out, ",\"uid\":%lu,\"user\":", e->uid);
		json_str(out, e->user);
		buf_printf(out,
			   ",\"age_seconds\":%llu,\"attempts\":%u,\"next_attempt_seconds\":%llu",
			   json_secs(e->age), e->attempts, json_secs(e->next_in));
		buf_puts(out, ",\"last_reply\":");
		json_str(out, e->last_reply);
		buf_puts(out, ",\"sender\":");
		json_str(out, e->sender);
		buf_printf(out, ",\"recipients\":%zu,\"size\":%llu,\"corrupt\":%s}", e->rcpts,
			   e->size, e->corrupt ? "true" : "false");
	}
	buf_puts(out, "]}\n");
	strlist_free(&why);
}

/* queue_status_report - mailq --status / --json */

int queue_status_report(const struct config *cfg, const struct queue_limits *lim, int json,
			struct buf *out, struct error *err)
{
	struct queue_status qs;
	struct strlist why = STRLIST_INIT;
	struct buf text = BUF_INIT;
	int rc;

	if ((rc = queue_status_collect(cfg, 0, &qs, err)) != 0) {
		queue_status_free(&qs);
		return rc;
	}
	if (json)
		queue_status_json(&qs, lim, out);
	else
		queue_status_line(&qs, out);
	rc = queue_status_check(&qs, lim, &why);
	for (size_t i = 0; i < why.n; i++)
		buf_printf(&text, "%s%s", i ? "; " : "", why.v[i]);
	if (rc)
		error_set(err, 1, "queue unhealthy: %s", text.data);
	buf_free(&text);
	strlist_free(&why);
	queue_status_free(&qs);
	return rc;
}

/* ====================================================================
 * Flush with a deadline
 * ==================================================================== */

/* flush_child - the child's part: deliver until the deadline, never return */

static void flush_child(const struct config *cfg, long long stop_at, long long net_end)
{
	struct error err;

	spool_set_deadline(stop_at);
	net_set_limit(net_end);
	error_clear(&err);
	/* _exit: the parent owns stdio and main's cleanup. */
	_exit(spool_run(cfg, &err) == 0 ? 0 : EX_TEMPFAIL);
}

/* wait_until - reap pid, killing it at kill_at (net_now_ms() clock) */

static void wait_until(pid_t pid, long long kill_at, const sigset_t *chld)
{
	int status;

	for (;;) {
		long long left = kill_at - net_now_ms();
		struct timespec ts;
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid || (r < 0 && errno != EINTR))
			return;
		if (left <= 0) {
			/* The queue is crash-safe: a delivery cut here stays queued. */
			(void)kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return;
		}
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000L;
		(void)sigtimedwait(chld, 0, &ts);
	}
}

/* queue_flush - sendmail -q --deadline=DUR */

int queue_flush(const struct config *cfg, unsigned long long deadline_ms, struct error *err)
{
	long long start = net_now_ms();
	long long end, margin;
	struct queue_status qs;
	struct buf age = BUF_INIT;
	sigset_t chld, old;
	pid_t pid;
	int rc;

	error_clear(err);
	if (deadline_ms > 86400000ULL * 365)
		deadline_ms = 86400000ULL * 365;
	end = start + (long long)deadline_ms;
	/* The last fifth (at most 500 ms) is for stopping: no new delivery,
	 * relay waits cut a quarter into it, the child killed halfway, the
	 * other half for counting what is left (fork and getpwuid() are slow
	 * under the sanitizers). */
	margin = (long long)deadline_ms / 5;
	if (margin > 500)
		margin = 500;

	/* SIGCHLD ignored by our parent would reap the child unseen. */
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, 0);
		flush_child(cfg, end - margin, end - margin * 3 / 4);
	}
	if (pid < 0) {
		sigprocmask(SIG_SETMASK, &old, 0);
		return error_set(err, EX_OSERR, "cannot start the queue flush: %s",
				 strerror(errno));
	}
	wait_until(pid, end - margin / 2, &chld);
	sigprocmask(SIG_SETMASK, &old, 0);

	/* Brief: the count must fit in what is left of the deadline. */
	if ((rc = queue_status_collect(cfg, 1, &qs, err)) != 0) {
		queue_status_free(&qs);
		return rc;
	}
	if (qs.n == 0) {
		queue_status_free(&qs);
		return 0;
	}
	queue_human_age(&age, qs.oldest_age);
	/* One fixed shape: shutdown hooks and tests match it. */
	error_set(err, EX_TEMPFAIL, "%zu messages left in the queue, oldest %s", qs.n, age.data);
	err->temporary = 1;
	buf_free(&age);
	queue_status_free(&qs);
	return EX_TEMPFAIL;
}
