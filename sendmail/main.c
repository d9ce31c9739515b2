/*++
 * NAME
 *	sendmail 8
 * SUMMARY
 *	relayshim's sendmail: wiring of the modules
 * DESCRIPTION
 *	main() only wires the modules together and decides, from their
 *	struct error, what one line to print and which exit status follows.
 *	The way of a message (docs/ARCHITECTURE.md):
 *
 *	cmdline.c (argv) -> config.c (file < environment < argv)
 *	-> input.c (stdin to struct message) -> rewrite.c (envelope,
 *	headers, policy) -> smtp.c (relay, with failover) -> spool.c when the
 *	relay is temporarily unavailable -> log.c (one line per message).
 *
 *	-bs and -bd feed the same pipeline from smtpd.c, one transaction at a
 *	time, over one relay connection per session.
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cmdline.h"
#include "config.h"
#include "input.h"
#include "log.h"
#include "message.h"
#include "queue_status.h"
#include "rewrite.h"
#include "shim_accept.h"
#include "smtp.h"
#include "smtpd.h"
#include "spool.h"
#include "util.h"

#define RELAYSHIM_VERSION "0.1.0"
#define DEFAULT_CONFIG "/etc/relayshim.conf"

extern char **environ;

/* Set in -bs/-bd: failures become SMTP replies, not a line on stderr. */
static int bs_session;

/* Who called us, filled once. */
struct caller {
	char user[256];
	unsigned long uid;
	char hostname[256];
};

/* The -bs/-bd delivery context: one relay session kept across transactions. */
struct bs_ctx {
	struct config *cfg;
	struct caller *caller;
	struct smtp_session *session;
};

/* ensure_std_fds - fds 0-2 may be closed (GNU mail closes 1 and 2) */

static void ensure_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);

			/* open() returns the lowest free descriptor: fd itself. */
			if (nfd < 0)
				_exit(EX_OSERR);
		}
	}
}

/* die - the one line on stderr, then the exit status */

static int die(const struct error *err)
{
	fprintf(stderr, "sendmail: %s\n", err->text);
	fflush(stderr);
	return err->status ? err->status : EX_SOFTWARE;
}

/* caller_init - login name, uid and host name, without DNS */

static void caller_init(struct caller *c)
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

/* random_bytes - from the kernel; never blocks after early boot */

static void random_bytes(unsigned char *p, size_t n)
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

	random_bytes(r, sizeof(r));
	snprintf(id, size, "%02X%02X%02X%02X%02X%02X", r[0], r[1], r[2], r[3], r[4], r[5]);
}

/*
 * log_outcome - one delivery record for the recipients in to (all of them,
 * or one group of a partial acceptance: each group gets its own status).
 */
static void log_outcome(enum log_level level, const char *queue_id, const struct envelope *env,
			const struct strlist *to, const struct message *msg,
			const struct smtp_result *res, const char *status, const char *text,
			const struct timespec *start)
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
	rec.delay =
	    (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
	rec.size = msg ? message_size(msg) : 0;
	rec.text = text;
	/* A failure gets main's one line on stderr; the record goes to the other targets. */
	rec.skip_stderr = level == LOG_LEVEL_ERROR && !bs_session;
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
static int queue_deferred(const struct config *cfg, const struct envelope *env,
			  const struct message *msg, const char *queue_id,
			  const struct timespec *start, const struct smtp_result *res,
			  struct error *err)
{
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
		log_outcome(LOG_LEVEL_WARNING, queue_id, env, &res->deferred, msg, res, "queued",
			    why.data, start);
		log_msg(LOG_LEVEL_WARNING, "%s: %zu deferred recipient(s) queued for retry",
			queue_id, res->deferred.n);
		buf_free(&why);
		return 0;
	}
	if (cfg->queue_mode == QUEUE_NEVER)
		snprintf(qerr.text, sizeof(qerr.text), "queue mode never");
	buf_printf(&why, "; not queued: %s", qerr.text);
	log_outcome(LOG_LEVEL_ERROR, queue_id, env, &res->deferred, msg, res, "deferred", why.data,
		    start);
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
 * deliver_or_queue - the delivery decision shared by the command line and -bs.
 * Returns 0 (every recipient delivered, refused for good or durably queued)
 * or a sysexits code with err set. *queued tells whether the whole message
 * was queued. session may be NULL (one-shot).
 */
static int deliver_or_queue(struct config *cfg, struct smtp_session **session,
			    const struct envelope *env, const struct message *msg,
			    const char *queue_id, const struct timespec *start,
			    struct smtp_result *res, int *queued, struct error *err)
{
	struct error qerr;
	int rc;

	*queued = 0;
	error_clear(&qerr);
	if (cfg->queue_mode == QUEUE_ALWAYS) {
		if (spool_store(cfg, env, msg, queue_id, 0, &qerr) == 0) {
			*queued = 1;
			log_outcome(LOG_LEVEL_INFO, queue_id, env, &env->rcpts, msg, 0, "queued",
				    "queue mode always", start);
			spool_kick(cfg);
			return 0;
		}
		log_msg(LOG_LEVEL_WARNING, "%s; delivering synchronously", qerr.text);
	}

	if (session)
		rc = smtp_session_deliver(session, cfg, env, msg, res, 0, err);
	else
		rc = smtp_deliver(cfg, env, msg, res, err);

	if (rc == 0) {
		struct strlist accepted = STRLIST_INIT;

		smtp_result_accepted(res, env, &accepted);
		log_outcome(LOG_LEVEL_INFO, queue_id, env, &accepted, msg, res, "sent", res->reply,
			    start);
		strlist_free(&accepted);
		log_rejected(queue_id, res);
		rc = queue_deferred(cfg, env, msg, queue_id, start, res, err);
		/* A working relay is the moment to retry the queue; -bs kicks once per
		 * session; in mode never nothing is ever queued (-q still flushes). */
		if (session == 0 && cfg->queue_mode != QUEUE_NEVER)
			spool_kick(cfg);
		return rc;
	}
	if (!err->temporary || cfg->queue_mode == QUEUE_NEVER) {
		log_outcome(LOG_LEVEL_ERROR, queue_id, env, &env->rcpts, msg, res,
			    err->temporary ? "deferred" : "bounced", err->text, start);
		return rc;
	}
	if (spool_store(cfg, env, msg, queue_id, err->text, &qerr) != 0) {
		struct error first = *err;
		struct buf why = BUF_INIT;

		buf_printf(&why, "%s; not queued: %s", first.text, qerr.text);
		log_outcome(LOG_LEVEL_ERROR, queue_id, env, &env->rcpts, msg, res, "deferred",
			    why.data, start);
		buf_free(&why);
		/* err stays temporary: -bs answers 4xx, never a 5xx that would bounce it. */
		return error_set(err, EX_CANTCREAT, "%s, and the message could not be queued: %s",
				 first.text, qerr.text);
	}
	*queued = 1;
	log_outcome(LOG_LEVEL_WARNING, queue_id, env, &env->rcpts, msg, res, "queued", err->text,
		    start);
	spool_kick(cfg);
	error_clear(err);
	return 0;
}

/* submit_from_cmdline - what the command line tells the rewrite pipeline */

static void submit_from_cmdline(struct submit *sub, const struct cmdline *cl,
				const struct caller *c, const char *queue_id)
{
	memset(sub, 0, sizeof(*sub));
	sub->extract_recipients = cl->extract_recipients;
	sub->ignore_dots = cl->ignore_dots;
	sub->sender = cl->sender;
	sub->fullname = cl->fullname;
	sub->rcpts = cl->args; /* borrowed */
	sub->user = c->user;
	sub->uid = c->uid;
	sub->hostname = c->hostname;
	sub->queue_id = queue_id;
	sub->dsn_notify = cl->dsn_notify;
	sub->dsn_ret = cl->dsn_ret;
	sub->dsn_envid = cl->dsn_envid;
}

/* keep_stdout_clean - in -bs, stdout is the SMTP stream: log lines must not go there */

static void keep_stdout_clean(struct config *cfg)
{
	struct buf targets = BUF_INIT;
	struct error err;
	const char *q = cfg->log_target ? cfg->log_target : "";
	const char *p;
	size_t n;
	int dropped = 0;

	while ((p = util_next_item(&q, &n)) != 0) {
		if (n == 6 && strncmp(p, "stdout", 6) == 0)
			dropped = 1;
		else
			buf_printf(&targets, "%s%.*s", targets.len ? "," : "", (int)n, p);
	}
	if (dropped) {
		error_clear(&err);
		(void)config_set(cfg, "log", "target", targets.len ? targets.data : "stderr", &err);
	}
	buf_free(&targets);
}

/* run_deliver - the default mode: one message from stdin */

static int run_deliver(struct config *cfg, const struct cmdline *cl)
{
	struct timespec start;
	struct caller caller;
	struct message msg;
	struct envelope env;
	struct submit sub;
	struct smtp_result res;
	struct error err;
	unsigned char rnd[16];
	char queue_id[16];
	int queued;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &start);
	error_clear(&err);
	if (config_finish(cfg, &err))
		return die(&err);
	if (cl->args.n == 0 && !cl->extract_recipients) {
		error_set(&err, EX_USAGE, "no recipients given (name them as arguments or use -t)");
		return die(&err);
	}
	caller_init(&caller);
	new_queue_id(queue_id, sizeof(queue_id));
	random_bytes(rnd, sizeof(rnd));

	message_init(&msg);
	envelope_init(&env);
	smtp_result_init(&res);
	if ((rc = input_read(0, cl->ignore_dots, &msg, &err)) != 0)
		goto out;
	submit_from_cmdline(&sub, cl, &caller, queue_id);
	if ((rc = rewrite_message(cfg, &sub, &msg, &env, time(0), rnd, sizeof(rnd), &err)) != 0)
		goto out;
	rc = deliver_or_queue(cfg, 0, &env, &msg, queue_id, &start, &res, &queued, &err);
out:
	smtp_result_free(&res);
	envelope_free(&env);
	message_free(&msg);
	return rc ? die(&err) : 0;
}

/* bs_reply - map a failure to an SMTP reply of the same class */

static void bs_reply(struct buf *reply, const struct smtp_result *res, const struct error *err)
{
	const char *r = res->reply;

	buf_reset(reply);
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

/* bs_deliver - smtpd_ops.deliver: one transaction of a -bs/-bd session */

static int bs_deliver(void *vctx, struct envelope *env, struct message *msg, struct buf *reply)
{
	struct bs_ctx *ctx = vctx;
	struct timespec start;
	struct submit sub;
	struct smtp_result res;
	struct error err;
	unsigned char rnd[16];
	char queue_id[16];
	int queued = 0;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &start);
	error_clear(&err);
	new_queue_id(queue_id, sizeof(queue_id));
	random_bytes(rnd, sizeof(rnd));
	memset(&sub, 0, sizeof(sub));
	sub.bs_mode = 1;
	sub.user = ctx->caller->user;
	sub.uid = ctx->caller->uid;
	sub.hostname = ctx->caller->hostname;
	sub.queue_id = queue_id;
	smtp_result_init(&res);
	rc = rewrite_message(ctx->cfg, &sub, msg, env, time(0), rnd, sizeof(rnd), &err);
	if (rc == 0)
		rc = deliver_or_queue(ctx->cfg, &ctx->session, env, msg, queue_id, &start, &res,
				      &queued, &err);
	if (rc == 0) {
		buf_reset(reply);
		if (queued)
			buf_printf(reply,
				   "250 2.0.0 Ok: queued as %s (relay unavailable, will retry)",
				   queue_id);
		else if (res.reply && res.reply[0] == '2')
			buf_puts(reply,
				 res.reply); /* the relay's own queue id reaches the client */
		else
			buf_printf(reply, "250 2.0.0 Ok: queued as %s", queue_id);
	} else {
		bs_reply(reply, &res, &err);
	}
	smtp_result_free(&res);
	return 0;
}

/* bs_has_dsn - advertise DSN only when the relay has it */

static int bs_has_dsn(void *vctx)
{
	struct bs_ctx *ctx = vctx;
	struct error err;

	error_clear(&err);
	if (ctx->session == 0 && smtp_session_open(&ctx->session, ctx->cfg, &err) != 0)
		return 0;
	return smtp_session_has_dsn(ctx->session);
}

/* bs_end - close the relay session */

static void bs_end(void *vctx)
{
	struct bs_ctx *ctx = vctx;

	if (ctx->session && ctx->cfg->queue_mode != QUEUE_NEVER)
		spool_kick(ctx->cfg);
	smtp_session_close(ctx->session);
	ctx->session = 0;
}

/* run_smtpd - -bs (stdin/stdout) and -bd (loopback listener) */

static int run_smtpd(struct config *cfg, int daemon)
{
	static const struct smtpd_ops ops = {bs_deliver, bs_has_dsn, bs_end};
	struct caller caller;
	struct bs_ctx ctx;
	struct error err;
	int rc;

	error_clear(&err);
	if (config_finish(cfg, &err))
		return die(&err);
	bs_session = 1;
	caller_init(&caller);
	ctx.cfg = cfg;
	ctx.caller = &caller;
	ctx.session = 0;
	if (daemon)
		rc = smtpd_daemon(cfg, &ops, &ctx, &err);
	else
		rc = smtpd_serve(0, 1, cfg, &ops, &ctx, &err);
	bs_end(&ctx);
	return rc ? die(&err) : 0;
}

/* print_output - the report of a -bv/-bp/-- command to stdout; releases out */

static int print_output(struct buf *out)
{
	fwrite(out->data ? out->data : "", 1, out->len, stdout);
	buf_free(out);
	return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

/* run_verify - -bv: how each address would be rewritten */

static int run_verify(struct config *cfg, const struct cmdline *cl)
{
	struct caller caller;
	struct buf out = BUF_INIT;
	struct error err;

	error_clear(&err);
	if (cl->args.n == 0) {
		error_set(&err, EX_USAGE, "-bv needs at least one address");
		return die(&err);
	}
	/* No relay is needed to explain rewriting, but derived defaults (domain) are. */
	(void)config_finish(cfg, &err);
	caller_init(&caller);
	for (size_t i = 0; i < cl->args.n; i++)
		rewrite_explain_host(cfg, caller.hostname, cl->args.v[i], &out);
	return print_output(&out);
}

/* run_config_check - --config-check */

static int run_config_check(struct config *cfg)
{
	struct buf out = BUF_INIT;
	struct error err;
	int rc;

	error_clear(&err);
	rc = config_finish(cfg, &err);
	config_write(cfg, &out, CONFIG_WRITE_REDACT | CONFIG_WRITE_SOURCES);
	(void)print_output(&out);
	return rc ? die(&err) : 0;
}

/* run_write_config - --write-config */

static int run_write_config(struct config *cfg)
{
	struct buf out = BUF_INIT;
	struct error err;

	error_clear(&err);
	(void)config_finish(cfg, &err);
	config_write(cfg, &out, 0);
	return print_output(&out);
}

/*
 * relay_check_envelope - the sender and recipient the --relay-check probe asks
 * about: what a message from this user would carry (-f, [senders], domain,
 * masquerading, [rewrite] from all applied by the real pipeline), to the
 * first recipient argument, else to the sender itself (cron's usual mail
 * to root), else postmaster@domain for the null sender.
 */
static int relay_check_envelope(struct config *cfg, const struct cmdline *cl, struct envelope *env,
				struct error *err)
{
	struct caller caller;
	struct message msg;
	struct submit sub;
	unsigned char rnd[16];
	int rc;

	caller_init(&caller);
	random_bytes(rnd, sizeof(rnd));
	message_init(&msg);
	submit_from_cmdline(&sub, cl, &caller, "relaycheck");
	sub.extract_recipients = 0;
	if (cl->args.n == 0) {
		memset(&sub.rcpts, 0, sizeof(sub.rcpts));
		strlist_add(&sub.rcpts, "postmaster");
	}
	rc = rewrite_message(cfg, &sub, &msg, env, time(0), rnd, sizeof(rnd), err);
	if (cl->args.n == 0) {
		strlist_free(&sub.rcpts);
		if (rc == 0 && *env->sender) {
			strlist_free(&env->rcpts);
			strlist_add(&env->rcpts, env->sender);
		}
	}
	message_free(&msg);
	return rc;
}

/* run_relay_check - --relay-check: connection, then the policy probe */

static int run_relay_check(struct config *cfg, const struct cmdline *cl)
{
	struct buf out = BUF_INIT;
	struct envelope env;
	struct error err;
	int rc;

	error_clear(&err);
	if (config_finish(cfg, &err))
		return die(&err);
	envelope_init(&env);
	rc = relay_check_envelope(cfg, cl, &env, &err);
	if (rc == 0)
		rc = smtp_relay_probe(cfg, &env, &out, &err);
	envelope_free(&env);
	(void)print_output(&out);
	return rc ? die(&err) : 0;
}

/* run_queue - -bp and -q */

static int run_queue(struct config *cfg, int list)
{
	struct buf out = BUF_INIT;
	struct error err;
	int rc;

	error_clear(&err);
	(void)config_finish(cfg, &err);
	error_clear(&err);
	if (list)
		rc = spool_list(cfg, &out, &err);
	else
		rc = spool_run(cfg, &err);
	(void)print_output(&out);
	return rc ? die(&err) : 0;
}

/* run_queue_container - mailq --status/--json and -q --deadline (queue_status.h) */

static int run_queue_container(struct config *cfg, const struct cmdline *cl)
{
	struct buf out = BUF_INIT;
	struct error err;
	int rc;

	error_clear(&err);
	(void)config_finish(cfg, &err);
	error_clear(&err);
	if (cl->mode == CMD_RUN_QUEUE) {
		if ((rc = queue_flush(cfg, cl->deadline_ms, &err)) == EX_TEMPFAIL) {
			/* The shape promised to shutdown hooks, with its own prefix. */
			fprintf(stderr, "relayshim: %s\n", err.text);
			return rc;
		}
		return rc ? die(&err) : 0;
	}
	rc = queue_status_report(cfg, &cl->limits, cl->queue_json, &out, &err);
	(void)print_output(&out);
	return rc ? die(&err) : 0;
}

int main(int argc, char **argv)
{
	struct cmdline cl;
	struct config cfg;
	struct error err;
	const char *path;
	int explicit_path;
	int rc;

	ensure_std_fds();
	/* A reader that went away (a pipe, the -bs client) is an EPIPE error, not a kill. */
	signal(SIGPIPE, SIG_IGN);
	error_clear(&err);
	if (cmdline_parse(&cl, argc, argv, &err)) {
		if (err.status == EX_USAGE)
			fprintf(stderr, "sendmail: %s\n%s\n", err.text, cmdline_usage);
		else
			fprintf(stderr, "sendmail: %s\n", err.text);
		return err.status;
	}
	/* Started by the LD_PRELOAD shim: take over the application's connection
	 * before anything else opens a descriptor (shim_accept.h). */
	if (cl.mode == CMD_SMTP && shim_accept_requested()) {
		if (shim_accept(&err)) {
			if (err.status != EX_NOINPUT)
				fprintf(stderr, "sendmail: %s\n", err.text);
			return err.status;
		}
	}
	switch (cl.mode) {
	case CMD_VERSION:
		printf("relayshim %s\n", RELAYSHIM_VERSION);
		return 0;
	case CMD_HELP:
		printf("%s\n", cmdline_usage);
		printf("See relayshim(8) and relayshim.conf(5).\n");
		return 0;
	default:
		break;
	}

	path = cl.config_path ? cl.config_path : getenv("RELAYSHIM_CONFIG");
	explicit_path = path != 0 && *path != 0;
	if (!explicit_path)
		path = DEFAULT_CONFIG;
	config_init(&cfg);
	if (config_load(&cfg, path, explicit_path, environ, &err)) {
		/* Freed on this path too: SAN=1 and valgrind runs report leaks at exit. */
		rc = die(&err);
		config_free(&cfg);
		cmdline_free(&cl);
		return rc;
	}
	cfg.verbose = cl.verbose;
	if (cl.mode == CMD_SMTP)
		keep_stdout_clean(&cfg);
	log_setup(&cfg);
	if (config_warning(&cfg))
		log_msg(LOG_LEVEL_WARNING, "%s", config_warning(&cfg));

	switch (cl.mode) {
	case CMD_DELIVER:
		rc = run_deliver(&cfg, &cl);
		break;
	case CMD_SMTP:
		rc = run_smtpd(&cfg, 0);
		break;
	case CMD_DAEMON:
		rc = run_smtpd(&cfg, 1);
		break;
	case CMD_LIST_QUEUE:
		if (cl.queue_status || cl.queue_json)
			rc = run_queue_container(&cfg, &cl);
		else
			rc = run_queue(&cfg, 1);
		break;
	case CMD_RUN_QUEUE:
		if (cl.has_deadline)
			rc = run_queue_container(&cfg, &cl);
		else
			rc = run_queue(&cfg, 0);
		break;
	case CMD_VERIFY:
		rc = run_verify(&cfg, &cl);
		break;
	case CMD_CONFIG_CHECK:
		rc = run_config_check(&cfg);
		break;
	case CMD_RELAY_CHECK:
		rc = run_relay_check(&cfg, &cl);
		break;
	case CMD_WRITE_CONFIG:
		rc = run_write_config(&cfg);
		break;
	default:
		util_panic("main: mode %d", (int)cl.mode);
	}
	config_free(&cfg);
	cmdline_free(&cl);
	return rc;
}
