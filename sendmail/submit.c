/*++
 * NAME
 *	submit 3
 * SUMMARY
 *	the one submission path: rewrite, deliver or queue, log, answer
 * SYNOPSIS
 *	#include "submit.h"
 * DESCRIPTION
 *	See submit.h. The command line, -bs and -bd (main.c) call
 *	submit_message(); what happens to a message after rewriting is
 *	decided in submit_deliver() and nowhere else.
 *--*/

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rewrite.h"
#include "spool.h"
#include "submit.h"

/* submit_caller_init - login name, uid and host name, without DNS */

void submit_caller_init(struct submit_caller *c)
{
	struct passwd *pw;

	c->uid = (unsigned long)getuid();
	pw = getpwuid(getuid());
	if (pw && pw->pw_name)
		snprintf(c->user, sizeof(c->user), "%s", pw->pw_name);
	else
		snprintf(c->user, sizeof(c->user), "uid%lu", c->uid);
	if (gethostname(c->hostname, sizeof(c->hostname) - 1) != 0 || c->hostname[0] == 0)
		snprintf(c->hostname, sizeof(c->hostname), "localhost");
	c->hostname[sizeof(c->hostname) - 1] = 0;
}

/* submit_random - from the kernel; never blocks after early boot */

void submit_random(unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			util_panic("getrandom: %s", strerror(errno));
		}
		p += r;
		n -= (size_t)r;
	}
}

/* new_queue_id - 12 upper-case hex digits, like Postfix's short ids */

static void new_queue_id(char *id, size_t size)
{
	unsigned char r[6];

	submit_random(r, sizeof(r));
	snprintf(id, size, "%02X%02X%02X%02X%02X%02X", r[0], r[1], r[2], r[3], r[4], r[5]);
}

/*
 * log_outcome - one delivery record for the recipients in to (all of them,
 * or one group of a partial acceptance: each group gets its own status).
 */
static void log_outcome(const struct submit_ctx *ctx, enum log_level level, const char *queue_id,
			const struct envelope *env, const struct strlist *to,
			const struct message *msg, const struct smtp_result *res,
			const char *status, const char *text)
{
	struct log_record rec;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	memset(&rec, 0, sizeof(rec));
	rec.level = level;
	rec.queue_id = queue_id;
	rec.from = env->sender;
	rec.to = to;
	rec.relay = res ? res->relay : 0;
	rec.status = status;
	rec.dsn = res && res->dsn[0] ? res->dsn : 0;
	rec.delay = (double)(now.tv_sec - ctx->start.tv_sec) +
		    (double)(now.tv_nsec - ctx->start.tv_nsec) / 1e9;
	rec.size = msg ? message_size(msg) : 0;
	rec.text = text;
	/* A failure gets main's one line on stderr; the record goes to the other targets. */
	rec.skip_stderr = level == LOG_LEVEL_ERROR && !ctx->smtp;
	log_delivery(&rec);
}

/* log_rejected - every recipient the relay refused (5xx) while it took others */

static void log_rejected(const char *queue_id, const struct smtp_result *res)
{
	for (size_t i = 0; i < res->rejected.n; i++)
		log_msg(LOG_LEVEL_ERROR, "%s: to=<%s>: refused by the relay: %s", queue_id,
			res->rejected.v[i],
			i < res->rejected_replies.n ? res->rejected_replies.v[i] : "");
}

/*
 * deferred_text - "<a@b>: 451 4.2.0 busy; <c@d>: ..." for the first max
 * deferred recipients (the rest counted: the error stays one readable line)
 */
static void deferred_text(struct buf *out, const struct smtp_result *res, size_t max)
{
	for (size_t i = 0; i < res->deferred.n && i < max; i++)
		buf_printf(out, "%s<%s>: %s", i ? "; " : "", res->deferred.v[i],
			   i < res->deferred_replies.n ? res->deferred_replies.v[i] : "");
	if (res->deferred.n > max)
		buf_printf(out, "; and %zu more", res->deferred.n - max);
}

/*
 * queue_deferred - recipients the relay deferred (4xx) while it took others are
 * queued on their own, so a partial acceptance loses nobody. Returns 0 when
 * every recipient is now either delivered or queued; otherwise EX_TEMPFAIL
 * with err set: the deferred ones are in nobody's hands but the caller's, so
 * the caller must hear a temporary failure although its retry gives the
 * accepted recipients a second copy (a duplicate can be noticed, a loss not).
 */
static int queue_deferred(const struct submit_ctx *ctx, const struct envelope *env,
			  const struct message *msg, const char *queue_id,
			  const struct smtp_result *res, struct error *err)
{
	const struct config *cfg = ctx->cfg;
	struct envelope rest = *env;
	struct buf why = BUF_INIT;
	struct error qerr;
	size_t accepted = env->rcpts.n - res->rejected.n - res->deferred.n;

	if (res->deferred.n == 0)
		return 0;
	error_clear(&qerr);
	deferred_text(&why, res, res->deferred.n);
	rest.rcpts = res->deferred; /* borrowed: spool_store copies what it keeps */
	if (cfg->queue_mode != QUEUE_NEVER &&
	    spool_store(cfg, &rest, msg, queue_id,
			res->deferred_replies.n ? res->deferred_replies.v[0] : 0, &qerr) == 0) {
		/* The caller kicks the queue (-bs: at the end of the session). */
		log_outcome(ctx, LOG_LEVEL_WARNING, queue_id, env, &res->deferred, msg, res,
			    "queued", why.data);
		log_msg(LOG_LEVEL_WARNING, "%s: %zu deferred recipient(s) queued for retry",
			queue_id, res->deferred.n);
		buf_free(&why);
		return 0;
	}
	if (cfg->queue_mode == QUEUE_NEVER)
		snprintf(qerr.text, sizeof(qerr.text), "queue mode never");
	buf_printf(&why, "; not queued: %s", qerr.text);
	log_outcome(ctx, LOG_LEVEL_ERROR, queue_id, env, &res->deferred, msg, res, "deferred",
		    why.data);
	buf_reset(&why);
	deferred_text(&why, res, 3);
	error_set(err, EX_TEMPFAIL,
		  "relay took %zu recipient(s) but deferred %zu (%s), which could not be "
		  "queued (%s): try again later; the recipients already served will get "
		  "the message twice",
		  accepted, res->deferred.n, why.data, qerr.text);
	err->temporary = 1;
	buf_free(&why);
	return EX_TEMPFAIL;
}

/*
 * submit_deliver - the delivery decision. Returns 0 (every recipient
 * delivered, refused for good or durably queued) or a sysexits code with err
 * set. *queued tells whether the whole message was queued.
 */
static int submit_deliver(struct submit_ctx *ctx, const struct envelope *env,
			  const struct message *msg, const char *queue_id, struct smtp_result *res,
			  int *queued, struct error *err)
{
	struct config *cfg = ctx->cfg;
	struct error qerr;
	int rc;

	*queued = 0;
	error_clear(&qerr);
	if (cfg->queue_mode == QUEUE_ALWAYS) {
		if (spool_store(cfg, env, msg, queue_id, 0, &qerr) == 0) {
			*queued = 1;
			log_outcome(ctx, LOG_LEVEL_INFO, queue_id, env, &env->rcpts, msg, 0,
				    "queued", "queue mode always");
			spool_kick(cfg);
			return 0;
		}
		log_msg(LOG_LEVEL_WARNING, "%s; delivering synchronously", qerr.text);
	}

	/* -bs/-bd: one relay session for the whole SMTP session. */
	if (ctx->smtp)
		rc = smtp_session_deliver(&ctx->relay, cfg, env, msg, res, 0, err);
	else
		rc = smtp_deliver(cfg, env, msg, res, err);

	if (rc == 0) {
		struct strlist accepted = STRLIST_INIT;

		smtp_result_accepted(res, env, &accepted);
		log_outcome(ctx, LOG_LEVEL_INFO, queue_id, env, &accepted, msg, res, "sent",
			    res->reply);
		strlist_free(&accepted);
		log_rejected(queue_id, res);
		rc = queue_deferred(ctx, env, msg, queue_id, res, err);
		/* A working relay is the moment to retry the queue; -bs kicks once per
		 * session; in mode never nothing is ever queued (-q still flushes). */
		if (!ctx->smtp && cfg->queue_mode != QUEUE_NEVER)
			spool_kick(cfg);
		return rc;
	}
	if (!err->temporary || cfg->queue_mode == QUEUE_NEVER) {
		log_outcome(ctx, LOG_LEVEL_ERROR, queue_id, env, &env->rcpts, msg, res,
			    err->temporary ? "deferred" : "bounced", err->text);
		return rc;
	}
	if (spool_store(cfg, env, msg, queue_id, err->text, &qerr) != 0) {
		struct error first = *err;
		struct buf why = BUF_INIT;

		buf_printf(&why, "%s; not queued: %s", first.text, qerr.text);
		log_outcome(ctx, LOG_LEVEL_ERROR, queue_id, env, &env->rcpts, msg, res, "deferred",
			    why.data);
		buf_free(&why);
		/* err stays temporary: -bs answers 4xx, never a 5xx that would bounce it. */
		return error_set(err, EX_CANTCREAT, "%s, and the message could not be queued: %s",
				 first.text, qerr.text);
	}
	*queued = 1;
	log_outcome(ctx, LOG_LEVEL_WARNING, queue_id, env, &env->rcpts, msg, res, "queued",
		    err->text);
	spool_kick(cfg);
	error_clear(err);
	return 0;
}

/* failure_reply - map a failure to an SMTP reply of the same class */

static void failure_reply(struct buf *reply, const struct smtp_result *res, const struct error *err)
{
	const char *r = res->reply;

	/* The relay's own reply, when it is what failed, reaches the client as it is. */
	if (r && (r[0] == '4' || r[0] == '5') && r[1] >= '0' && r[1] <= '9' && r[3] == ' ' &&
	    ((r[0] == '4') == (err->temporary != 0)))
		buf_puts(reply, r);
	else if (err->temporary)
		buf_printf(reply, "451 4.3.0 %s", err->text);
	else if (err->status == EX_NOPERM)
		buf_printf(reply, "550 5.7.1 %s", err->text);
	else if (err->status == EX_DATAERR && strncmp(err->text, "message is ", 11) == 0)
		/* Our two size refusals (max_size, the relay's SIZE) both start so. */
		buf_printf(reply, "552 5.3.4 %s", err->text);
	else if (err->status == EX_DATAERR)
		buf_printf(reply, "554 5.6.0 %s", err->text);
	else
		buf_printf(reply, "554 5.0.0 %s", err->text);
}

/* submit_reply - what the -bs/-bd client hears after its final dot */

static void submit_reply(struct buf *reply, int rc, int queued, const char *queue_id,
			 const struct smtp_result *res, const struct error *err)
{
	buf_reset(reply);
	if (rc != 0)
		failure_reply(reply, res, err);
	else if (queued)
		buf_printf(reply, "250 2.0.0 Ok: queued as %s (relay unavailable, will retry)",
			   queue_id);
	else if (res->reply && res->reply[0] == '2')
		buf_puts(reply, res->reply); /* the relay's own queue id reaches the client */
	else
		buf_printf(reply, "250 2.0.0 Ok: queued as %s", queue_id);
}

/* submit_begin - one caller's submissions start */

void submit_begin(struct submit_ctx *ctx, struct config *cfg, int smtp)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->cfg = cfg;
	ctx->smtp = smtp;
	submit_caller_init(&ctx->caller);
	submit_start(ctx);
}

/* submit_start - a message begins to arrive: its log record's delay counts from now */

void submit_start(struct submit_ctx *ctx)
{
	clock_gettime(CLOCK_MONOTONIC, &ctx->start);
}

/* submit_message - rewrite one message as this caller's, then deliver or queue it */

int submit_message(struct submit_ctx *ctx, struct submit *sub, struct message *msg,
		   struct envelope *env, struct buf *reply, struct error *err)
{
	struct smtp_result res;
	unsigned char rnd[16];
	char queue_id[16];
	int queued = 0;
	int rc;

	error_clear(err);
	new_queue_id(queue_id, sizeof(queue_id));
	submit_random(rnd, sizeof(rnd));
	sub->user = ctx->caller.user;
	sub->uid = ctx->caller.uid;
	sub->hostname = ctx->caller.hostname;
	sub->queue_id = queue_id;
	smtp_result_init(&res);
	rc = rewrite_message(ctx->cfg, sub, msg, env, time(0), rnd, sizeof(rnd), err);
	if (rc == 0)
		rc = submit_deliver(ctx, env, msg, queue_id, &res, &queued, err);
	if (reply)
		submit_reply(reply, rc, queued, queue_id, &res, err);
	smtp_result_free(&res);
	sub->queue_id = 0; /* it lived on our stack */
	return rc;
}

/* submit_has_dsn - advertise DSN only when the relay has it */

int submit_has_dsn(struct submit_ctx *ctx)
{
	struct error err;

	error_clear(&err);
	if (ctx->relay == 0 && smtp_session_open(&ctx->relay, ctx->cfg, &err) != 0)
		return 0;
	return smtp_session_has_dsn(ctx->relay);
}

/* submit_end - kick the queue once for a session that used the relay; close it */

void submit_end(struct submit_ctx *ctx)
{
	if (ctx->relay && ctx->cfg->queue_mode != QUEUE_NEVER)
		spool_kick(ctx->cfg);
	smtp_session_close(ctx->relay);
	ctx->relay = 0;
}
