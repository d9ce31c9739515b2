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
 *	-> input.c (stdin to struct message) -> submit.c: rewrite.c
 *	(envelope, headers, policy), then smtp.c (relay, with failover) or
 *	spool.c when the relay is temporarily unavailable, and log.c (one
 *	line per message).
 *
 *	-bs and -bd feed the same submit_message() from smtpd.c, one
 *	transaction at a time, over one relay connection per session.
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "shim_spare.h"
#include "smtp.h"
#include "smtpd.h"
#include "spool.h"
#include "submit.h"
#include "util.h"

#define RELAYSHIM_VERSION "0.1.0"
#define DEFAULT_CONFIG "/etc/relayshim.conf"

extern char **environ;

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

/* submit_from_cmdline - what the command line tells the rewrite pipeline */

static void submit_from_cmdline(struct submit *sub, const struct cmdline *cl)
{
	memset(sub, 0, sizeof(*sub));
	sub->extract_recipients = cl->extract_recipients;
	sub->ignore_dots = cl->ignore_dots;
	sub->sender = cl->sender;
	sub->fullname = cl->fullname;
	sub->rcpts = cl->args; /* borrowed */
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
	struct submit_ctx ctx;
	struct message msg;
	struct envelope env;
	struct submit sub;
	struct error err;
	int rc;

	error_clear(&err);
	if (config_finish(cfg, &err))
		return die(&err);
	if (cl->args.n == 0 && !cl->extract_recipients) {
		error_set(&err, EX_USAGE, "no recipients given (name them as arguments or use -t)");
		return die(&err);
	}
	submit_begin(&ctx, cfg, 0);
	message_init(&msg);
	envelope_init(&env);
	if ((rc = input_read(0, cl->ignore_dots, &msg, &err)) == 0) {
		submit_from_cmdline(&sub, cl);
		rc = submit_message(&ctx, &sub, &msg, &env, 0, &err);
	}
	submit_end(&ctx);
	envelope_free(&env);
	message_free(&msg);
	return rc ? die(&err) : 0;
}

/* bs_deliver - smtpd_ops.deliver: one transaction of a -bs/-bd session */

static int bs_deliver(void *vctx, struct envelope *env, struct message *msg, struct buf *reply)
{
	struct submit_ctx *ctx = vctx;
	struct submit sub;
	struct error err;

	submit_start(ctx);
	memset(&sub, 0, sizeof(sub));
	sub.bs_mode = 1;
	(void)submit_message(ctx, &sub, msg, env, reply, &err);
	return 0;
}

/* bs_has_dsn - smtpd_ops.has_dsn: advertise DSN only when the relay has it */

static int bs_has_dsn(void *vctx)
{
	return submit_has_dsn(vctx);
}

/* bs_end - smtpd_ops.end: kick the queue, close the relay session */

static void bs_end(void *vctx)
{
	submit_end(vctx);
}

/* spare_bye - smtpd_ops.bye: a spare helper is ready for the next connection */

static void spare_bye(void *vctx)
{
	(void)vctx;
	shim_spare_ready();
}

/* spare_session - one connection handed to a spare helper */

static int spare_session(int conn, void *vctx)
{
	static const struct smtpd_ops ops = {bs_deliver, bs_has_dsn, bs_end, spare_bye};
	struct submit_ctx *ctx = vctx;
	struct error err;
	int rc = smtpd_serve(conn, conn, ctx->cfg, &ops, ctx, &err);

	/* What die() says for a -bs helper, the spare logs: it serves on. */
	if (rc != 0)
		log_msg(LOG_LEVEL_WARNING, "%s", err.text);
	return rc;
}

/* run_smtpd - -bs (stdin/stdout), a spare helper's connections, -bd (loopback listener) */

static int run_smtpd(struct config *cfg, int daemon, int spare)
{
	static const struct smtpd_ops ops = {bs_deliver, bs_has_dsn, bs_end, 0};
	struct submit_ctx ctx;
	struct error err;
	int rc;

	error_clear(&err);
	if (config_finish(cfg, &err))
		return die(&err);
	submit_begin(&ctx, cfg, 1);
	if (spare) {
		/* Read again for a stale configuration (shim_spare.c). */
		const char *files[] = {config_path(cfg) ? config_path(cfg) : "",
				       cfg->password_file ? cfg->password_file : "", NULL};

		/* The time zone, as the caller's identity, is looked up once. */
		tzset();
		shim_spare_serve(files, spare_session, &ctx);
		return 0;
	}
	if (daemon)
		rc = smtpd_daemon(cfg, &ops, &ctx, &err);
	else
		rc = smtpd_serve(0, 1, cfg, &ops, &ctx, &err);
	submit_end(&ctx);
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
	struct submit_caller caller;
	struct buf out = BUF_INIT;
	struct error err;

	error_clear(&err);
	if (cl->args.n == 0) {
		error_set(&err, EX_USAGE, "-bv needs at least one address");
		return die(&err);
	}
	/* No relay is needed to explain rewriting, but derived defaults (domain) are. */
	(void)config_finish(cfg, &err);
	submit_caller_init(&caller);
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
	struct submit_caller caller;
	struct message msg;
	struct submit sub;
	unsigned char rnd[16];
	int rc;

	submit_caller_init(&caller);
	submit_random(rnd, sizeof(rnd));
	message_init(&msg);
	submit_from_cmdline(&sub, cl);
	sub.user = caller.user;
	sub.uid = caller.uid;
	sub.hostname = caller.hostname;
	sub.queue_id = "relaycheck";
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

/* queue_prologue - -bp, -q and mailq: the configuration finished, its complaints aside */

static void queue_prologue(struct config *cfg, struct error *err)
{
	/* The derived defaults are wanted; its complaints (no relay
	 * configured, say) must not keep anyone from listing the queue. */
	error_clear(err);
	(void)config_finish(cfg, err);
	error_clear(err);
}

/* run_queue - -bp and -q */

static int run_queue(struct config *cfg, int list)
{
	struct buf out = BUF_INIT;
	struct error err;
	int rc;

	queue_prologue(cfg, &err);
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

	queue_prologue(cfg, &err);
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
	int spare = 0;
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
	} else if (cl.mode == CMD_SMTP && shim_spare_requested()) {
		/* A helper started ahead of time: it takes connections once configured. */
		if (shim_spare_begin(&err)) {
			fprintf(stderr, "sendmail: %s\n", err.text);
			return err.status;
		}
		spare = 1;
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
		rc = run_smtpd(&cfg, 0, spare);
		break;
	case CMD_DAEMON:
		rc = run_smtpd(&cfg, 1, 0);
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
