/* test_smtpd - the -bs ESMTP server, driven over a socketpair with a fake delivery */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "smtpd.h"

/* One delivery as the fake saw it. */
struct delivery {
	char *sender;
	char *rcpts; /* comma-joined */
	char *header;
	char *body;
	unsigned long long body_len;
	int spilled;
	char *notify, *ret, *envid;
	int smtputf8;
};

/* The server side of one test session. */
static struct {
	pthread_t thread;
	int client; /* our end of the socketpair */
	int server;
	struct config cfg;
	struct smtpd_limits lim;
	struct smtpd_ops ops;
	struct error err;
	int rc;
	volatile int done;

	const char *answer; /* what the fake deliver replies */
	int deliver_rc;
	long deliver_delay_ms; /* a slow relay */
	int dsn;
	struct delivery got[16];
	int ndelivered;
	int end_sessions;
	int dsn_asked;

	struct buf in; /* client-side read buffer */
} t;

/* fake_deliver - record the transaction, answer t.answer */

static int fake_deliver(void *ctx, struct envelope *env, struct message *msg, struct buf *reply)
{
	struct delivery *d = &t.got[t.ndelivered < 16 ? t.ndelivered : 0];
	struct buf rcpts = BUF_INIT;

	ck_assert_ptr_eq(ctx, &t);
	if (t.deliver_delay_ms) {
		struct timespec ts = {0, t.deliver_delay_ms * 1000 * 1000};

		nanosleep(&ts, 0);
	}
	if (t.ndelivered >= 16) {
		/* Only counted: the hostile-input test delivers many. */
		t.ndelivered++;
		buf_puts(reply, t.answer);
		return t.deliver_rc;
	}
	for (size_t i = 0; i < env->rcpts.n; i++)
		buf_printf(&rcpts, "%s%s", i ? "," : "", env->rcpts.v[i]);
	d->sender = strdup(env->sender);
	d->rcpts = buf_steal(&rcpts);
	d->header = strdup(buf_cstr(&msg->header));
	d->body_len = msg->body.len;
	d->spilled = msg->body.fd >= 0;
	d->body = malloc(msg->body.len + 1);
	ck_assert_int_eq(body_read(&msg->body, 0, d->body, msg->body.len), (ssize_t)msg->body.len);
	d->body[msg->body.len] = 0;
	d->notify = env->dsn_notify ? strdup(env->dsn_notify) : 0;
	d->ret = env->dsn_ret ? strdup(env->dsn_ret) : 0;
	d->envid = env->dsn_envid ? strdup(env->dsn_envid) : 0;
	d->smtputf8 = env->smtputf8;
	t.ndelivered++;
	buf_puts(reply, t.answer);
	return t.deliver_rc;
}

static int fake_has_dsn(void *ctx)
{
	(void)ctx;
	t.dsn_asked++;
	return t.dsn;
}

static void fake_end_session(void *ctx)
{
	(void)ctx;
	t.end_sessions++;
}

static void *server_thread(void *arg)
{
	(void)arg;
	t.rc = smtpd_serve_limits(t.server, t.server, &t.cfg, &t.lim, &t.ops, &t, &t.err);
	close(t.server);
	t.done = 1;
	return 0;
}

/* setup - defaults: auth accepted, no size limit, relay without DSN */

static void setup(void)
{
	int sv[2];

	memset(&t, 0, sizeof(t));
	t.cfg.smtpd_auth = SMTPD_AUTH_ACCEPT;
	t.cfg.helo = "relayshim.test";
	t.cfg.log_level = LOG_LEVEL_ERROR;
	log_setup(&t.cfg);
	smtpd_limits_default(&t.lim);
	t.lim.idle_timeout_ms = 3000;
	t.ops.deliver = fake_deliver;
	t.ops.has_dsn = fake_has_dsn;
	t.ops.end_session = fake_end_session;
	t.answer = "250 2.0.0 Ok: queued as TEST1";
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	t.client = sv[0];
	t.server = sv[1];
}

/* start - run the server; the tests change t.cfg / t.lim first */

static void start(void)
{
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(pthread_create(&t.thread, 0, server_thread, 0), 0);
}

/* finish - close our end (if still open) and wait for the server */

static void finish(void)
{
	if (t.client >= 0)
		close(t.client);
	t.client = -1;
	pthread_join(t.thread, 0);
}

static void teardown(void)
{
	for (int i = 0; i < t.ndelivered && i < 16; i++) {
		struct delivery *d = &t.got[i];

		free(d->sender);
		free(d->rcpts);
		free(d->header);
		free(d->body);
		free(d->notify);
		free(d->ret);
		free(d->envid);
	}
	buf_free(&t.in);
}

/* send_str - the client writes s in one write() */

static void send_str(const char *s)
{
	size_t n = strlen(s);

	ck_assert_int_eq(write(t.client, s, n), (ssize_t)n);
}

/* fill - read more from the server; 0 at EOF */

static ssize_t fill(void)
{
	struct pollfd pfd = {.fd = t.client, .events = POLLIN};
	ssize_t n;

	ck_assert_msg(poll(&pfd, 1, 3000) == 1, "server did not answer within 3 s; have \"%s\"",
		      buf_cstr(&t.in));
	buf_reserve(&t.in, 65536);
	n = read(t.client, t.in.data + t.in.len, 65536);
	ck_assert_int_ge(n, 0);
	t.in.len += (size_t)n;
	t.in.data[t.in.len] = 0;
	return n;
}

/* reply_end - length of the first complete reply in t.in, 0 if incomplete */

static size_t reply_end(void)
{
	size_t off = 0;

	if (t.in.len == 0)
		return 0;
	for (;;) {
		char *nl = memchr(t.in.data + off, '\n', t.in.len - off);

		if (nl == 0)
			return 0;
		if (nl - (t.in.data + off) >= 4 && t.in.data[off + 3] == ' ')
			return (size_t)(nl - t.in.data) + 1;
		if (nl - (t.in.data + off) == 4 && t.in.data[off + 3] == '\r')
			return (size_t)(nl - t.in.data) + 1;
		off = (size_t)(nl - t.in.data) + 1;
	}
}

/* expect - read one complete reply, check its code; returns it (static copy) */

static const char *expect(const char *code)
{
	static char last[8192];
	size_t n;

	while ((n = reply_end()) == 0)
		ck_assert_msg(fill() > 0, "EOF while waiting for %s; have \"%s\"", code,
			      buf_cstr(&t.in));
	ck_assert_uint_lt(n, sizeof(last));
	memcpy(last, t.in.data, n);
	last[n] = 0;
	buf_consume(&t.in, n);
	ck_assert_msg(strncmp(last, code, strlen(code)) == 0, "expected %s, got \"%s\"", code,
		      last);
	return last;
}

/* expect_eof - the server closed the session */

static void expect_eof(void)
{
	while (fill() > 0)
		;
	ck_assert_msg(t.in.len == 0, "unexpected bytes before EOF: \"%s\"", buf_cstr(&t.in));
}

/* session_start - greeting and EHLO */

static void session_start(void)
{
	start();
	expect("220");
	send_str("EHLO client.test\r\n");
	expect("250");
}

/* ------------------------------------------------------------------ */

START_TEST(greeting_is_220_with_our_name)
{
	start();
	ck_assert_str_eq(expect("220"), "220 relayshim.test ESMTP relayshim\r\n");
	send_str("QUIT\r\n");
	expect("221");
	expect_eof();
	finish();
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.end_sessions, 1);
}
END_TEST

START_TEST(ehlo_advertises_the_extensions_and_never_starttls)
{
	const char *r;

	start();
	expect("220");
	send_str("EHLO client.test\r\n");
	r = expect("250");
	ck_assert_str_eq(r, "250-relayshim.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
			    "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n"
			    "250 AUTH=PLAIN LOGIN\r\n");
	ck_assert_ptr_null(strstr(r, "STARTTLS"));
	ck_assert_ptr_null(strstr(r, "DSN"));
	finish();
}
END_TEST

START_TEST(ehlo_advertises_size_limit_and_dsn_when_the_relay_has_it)
{
	const char *r;

	t.cfg.max_size = 10240000;
	t.dsn = 1;
	start();
	expect("220");
	send_str("EHLO client.test\r\n");
	r = expect("250");
	ck_assert_ptr_nonnull(strstr(r, "250-SIZE 10240000\r\n"));
	ck_assert_ptr_nonnull(strstr(r, "250-DSN\r\n"));
	ck_assert_int_eq(t.dsn_asked, 1);
	finish();
}
END_TEST

START_TEST(ehlo_without_auth_when_smtpd_auth_is_off)
{
	const char *r;

	t.cfg.smtpd_auth = SMTPD_AUTH_OFF;
	start();
	expect("220");
	send_str("EHLO client.test\r\n");
	r = expect("250");
	ck_assert_ptr_null(strstr(r, "AUTH"));
	send_str("AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
	expect("503");
	finish();
}
END_TEST

START_TEST(symfony_helo_several_transactions_without_rset_and_noop)
{
	start();
	expect("220");
	send_str("HELO [127.0.0.1]\r\n");
	ck_assert_str_eq(expect("250"), "250 relayshim.test\r\n");
	for (int i = 0; i < 3; i++) {
		send_str("MAIL FROM:<app@example.com>\r\n");
		expect("250");
		send_str("RCPT TO:<rcpt1@example.org>\r\n");
		expect("250");
		send_str("RCPT TO:<bcc@example.org>\r\n");
		expect("250");
		send_str("DATA\r\n");
		expect("354");
		send_str("From: app@example.com\r\nSubject: n\r\n\r\nbody\r\n..dotted\r\n.\r\n");
		ck_assert_str_eq(expect("250"), "250 2.0.0 Ok: queued as TEST1\r\n");
	}
	send_str("NOOP\r\n");
	expect("250");
	send_str("QUIT\r\n");
	expect("221");
	finish();
	ck_assert_int_eq(t.ndelivered, 3);
	ck_assert_str_eq(t.got[2].sender, "app@example.com");
	ck_assert_str_eq(t.got[2].rcpts, "rcpt1@example.org,bcc@example.org");
	ck_assert_str_eq(t.got[2].header, "From: app@example.com\r\nSubject: n\r\n");
	ck_assert_str_eq(t.got[2].body, "body\r\n.dotted\r\n");
	ck_assert_int_eq(t.end_sessions, 1);
}
END_TEST

START_TEST(smtplib_lower_case_verbs_and_size_parameter)
{
	start();
	expect("220");
	send_str("ehlo localhost\r\n");
	expect("250");
	send_str("mail FROM:<django@example.com> size=351\r\n");
	expect("250");
	send_str("rcpt TO:<u@example.org>\r\n");
	expect("250");
	send_str("data\r\n");
	expect("354");
	send_str("Subject: hi\r\n\r\nhello\r\n.\r\n");
	expect("250");
	send_str("quit\r\n");
	expect("221");
	expect_eof();
	finish();
	ck_assert_int_eq(t.ndelivered, 1);
	ck_assert_str_eq(t.got[0].sender, "django@example.com");
}
END_TEST

START_TEST(nodemailer_pipelined_group_gets_replies_in_one_write_and_may_close_without_quit)
{
	ssize_t n;

	session_start();
	send_str("MAIL FROM:<app@example.com>\r\nRCPT TO:<a@example.org>\r\nRCPT "
		 "TO:<b@example.org>\r\nDATA\r\n");
	/* All four replies come in one write, so one read sees them all. */
	n = fill();
	ck_assert_str_eq(buf_cstr(&t.in), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End "
					  "data with <CR><LF>.<CR><LF>\r\n");
	ck_assert_int_gt(n, 0);
	buf_reset(&t.in);
	send_str("Subject: p\r\n\r\npipelined\r\n.\r\n");
	expect("250");
	finish();
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.ndelivered, 1);
	ck_assert_str_eq(t.got[0].rcpts, "a@example.org,b@example.org");
	ck_assert_int_eq(t.end_sessions, 1);
}
END_TEST

START_TEST(curl_odd_ehlo_bare_lf_and_no_headers)
{
	start();
	expect("220");
	send_str("EHLO smartd-msg.txt\r\n");
	expect("250");
	send_str("MAIL FROM:<curl@example.com> SIZE=26\r\n");
	expect("250");
	send_str("RCPT TO:<u@example.org>\r\n");
	expect("250");
	send_str("DATA\r\n");
	expect("354");
	send_str("line one\nline two\nlast\r\n.\r\n");
	expect("250");
	finish();
	ck_assert_str_eq(t.got[0].header, "");
	ck_assert_str_eq(t.got[0].body, "line one\r\nline two\r\nlast\r\n");
}
END_TEST

START_TEST(swaks_pipeline_with_message_and_quit_in_one_write)
{
	session_start();
	send_str("MAIL FROM:<swaks@example.com>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("354");
	send_str("Subject: test\r\n\r\nThis is a test mailing\r\n.\r\nQUIT\r\n");
	expect("250");
	expect("221");
	expect_eof();
	finish();
	ck_assert_int_eq(t.ndelivered, 1);
}
END_TEST

START_TEST(helo_is_optional_and_may_have_no_argument)
{
	start();
	expect("220");
	send_str("MAIL FROM:<a@example.com>\r\n");
	expect("250");
	send_str("RSET\r\nEHLO\r\n");
	expect("250");
	expect("250");
	finish();
}
END_TEST

START_TEST(auth_plain_with_initial_response)
{
	session_start();
	send_str("AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
	expect("235");
	send_str("AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
	expect("503");
	finish();
}
END_TEST

START_TEST(auth_plain_after_an_empty_challenge)
{
	session_start();
	send_str("auth plain\r\n");
	ck_assert_str_eq(expect("334"), "334 \r\n");
	send_str("AHVzZXIAcGFzcw==\r\n");
	expect("235");
	finish();
}
END_TEST

START_TEST(auth_login_with_two_prompts)
{
	session_start();
	send_str("AUTH LOGIN\r\n");
	ck_assert_str_eq(expect("334"), "334 VXNlcm5hbWU6\r\n");
	send_str("dXNlcg==\r\n");
	ck_assert_str_eq(expect("334"), "334 UGFzc3dvcmQ6\r\n");
	send_str("cGFzcw==\r\n");
	expect("235");
	send_str("MAIL FROM:<a@example.com> AUTH=<>\r\n");
	expect("250");
	finish();
}
END_TEST

START_TEST(auth_login_with_the_user_name_given_at_once)
{
	session_start();
	send_str("AUTH LOGIN dXNlcg==\r\n");
	ck_assert_str_eq(expect("334"), "334 UGFzc3dvcmQ6\r\n");
	send_str("cGFzcw==\r\n");
	expect("235");
	finish();
}
END_TEST

START_TEST(auth_cancelled_or_garbled_is_refused)
{
	session_start();
	send_str("AUTH LOGIN\r\n");
	expect("334");
	send_str("*\r\n");
	expect("501");
	send_str("AUTH PLAIN not*base64\r\n");
	expect("501");
	send_str("AUTH CRAM-MD5\r\n");
	expect("504");
	finish();
}
END_TEST

START_TEST(starttls_is_refused_with_502)
{
	session_start();
	send_str("STARTTLS\r\n");
	ck_assert_str_eq(expect("502"), "502 5.5.1 Error: command not implemented\r\n");
	send_str("NOOP\r\n");
	expect("250");
	finish();
}
END_TEST

/* one_message - a complete transaction; returns the final reply */

static const char *one_message(void)
{
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("354");
	send_str("Subject: x\r\n\r\nbody\r\n.\r\n");
	return expect(t.answer[0] == '2' && t.deliver_rc == 0 ? "250"
		      : t.answer[0] == '5'		      ? "5"
							      : "4");
}

START_TEST(relay_4xx_reaches_the_client_with_its_text)
{
	t.answer = "451 4.7.1 <b@example.org>: Recipient address rejected: greylisted";
	session_start();
	ck_assert_str_eq(one_message(),
			 "451 4.7.1 <b@example.org>: Recipient address rejected: greylisted\r\n");
	/* The session goes on; the next message may pass. */
	t.answer = "250 2.0.0 Ok: queued as X2";
	ck_assert_str_eq(one_message(), "250 2.0.0 Ok: queued as X2\r\n");
	finish();
}
END_TEST

START_TEST(relay_5xx_reaches_the_client_with_its_text)
{
	t.answer = "550 5.7.1 <a@example.com>: Sender address rejected: not owned by user";
	session_start();
	ck_assert_str_eq(
	    one_message(),
	    "550 5.7.1 <a@example.com>: Sender address rejected: not owned by user\r\n");
	finish();
}
END_TEST

START_TEST(relay_reply_without_enhanced_code_gets_one_of_its_class)
{
	t.answer = "554 Transaction failed\r\n";
	session_start();
	ck_assert_str_eq(one_message(), "554 5.0.0 Transaction failed\r\n");
	finish();
}
END_TEST

START_TEST(failed_delivery_is_never_answered_250)
{
	t.answer = "250 2.0.0 Ok";
	t.deliver_rc = EX_TEMPFAIL;
	session_start();
	ck_assert_str_eq(one_message(), "451 4.3.0 Error: delivery failed; try again later\r\n");
	finish();
}
END_TEST

START_TEST(too_long_command_line_is_refused_and_skipped)
{
	char *line = malloc(10000);

	memset(line, 'A', 9997);
	memcpy(line + 9997, "\r\n", 3);
	session_start();
	send_str(line);
	expect("500");
	send_str("NOOP\r\n");
	expect("250");
	finish();
	free(line);
}
END_TEST

START_TEST(too_many_recipients_get_452)
{
	t.lim.rcpt_max = 2;
	session_start();
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<1@x.org>\r\nRCPT TO:<2@x.org>\r\nRCPT "
		 "TO:<3@x.org>\r\n");
	expect("250");
	expect("250");
	expect("250");
	ck_assert_str_eq(expect("452"),
			 "452 4.5.3 Error: too many recipients (at most 2 per message)\r\n");
	send_str("DATA\r\n");
	expect("354");
	send_str("x\r\n.\r\n");
	expect("250");
	finish();
	ck_assert_str_eq(t.got[0].rcpts, "1@x.org,2@x.org");
}
END_TEST

START_TEST(rset_clears_the_transaction)
{
	session_start();
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRSET\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("250");
	expect("503");
	send_str("MAIL FROM:<c@example.com>\r\n");
	expect("250");
	finish();
	ck_assert_int_eq(t.ndelivered, 0);
}
END_TEST

START_TEST(vrfy_answers_252_help_214_unknown_500)
{
	session_start();
	send_str("VRFY root\r\n");
	expect("252");
	send_str("HELP\r\n");
	expect("214");
	send_str("XYZZY\r\n");
	expect("500");
	send_str("EXPN staff\r\n");
	expect("502");
	finish();
}
END_TEST

START_TEST(bad_sequence_gets_503)
{
	session_start();
	send_str("DATA\r\n");
	ck_assert_str_eq(expect("503"), "503 5.5.1 Error: need MAIL command\r\n");
	send_str("RCPT TO:<b@example.org>\r\n");
	expect("503");
	send_str("MAIL FROM:<a@example.com>\r\n");
	expect("250");
	send_str("DATA\r\n");
	ck_assert_str_eq(expect("503"), "503 5.5.1 Error: need RCPT command\r\n");
	send_str("MAIL FROM:<a@example.com>\r\n");
	ck_assert_str_eq(expect("503"), "503 5.5.1 Error: nested MAIL command\r\n");
	finish();
}
END_TEST

START_TEST(syntax_errors_in_paths_and_parameters)
{
	session_start();
	send_str("MAIL TO:<a@example.com>\r\n");
	expect("501");
	send_str("MAIL FROM:<a@example.com> FOO=BAR\r\n");
	ck_assert_str_eq(expect("555"), "555 5.5.4 Unsupported option: FOO\r\n");
	send_str("MAIL FROM:<a@example.com> SIZE=abc\r\n");
	expect("501");
	send_str("MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n");
	expect("501");
	send_str("MAIL FROM: <>\r\n");
	expect("250");
	send_str("RCPT TO:<>\r\n");
	expect("501");
	send_str("RCPT TO:<b@example.org\r\n");
	expect("501");
	finish();
}
END_TEST

START_TEST(null_sender_and_unbracketed_addresses)
{
	session_start();
	send_str("MAIL FROM: <>\r\nRCPT TO:postmaster\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("354");
	send_str("x\r\n.\r\n");
	expect("250");
	finish();
	ck_assert_str_eq(t.got[0].sender, "");
	ck_assert_str_eq(t.got[0].rcpts, "postmaster");
}
END_TEST

START_TEST(dsn_parameters_reach_the_envelope)
{
	t.dsn = 1;
	session_start();
	send_str("MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ+2B1 BODY=8BITMIME SMTPUTF8\r\n"
		 "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org\r\n"
		 "RCPT TO:<c@example.org> NOTIFY=NEVER\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("250");
	expect("354");
	send_str("x\r\n.\r\n");
	expect("250");
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org> NOTIFY=SOMETIMES\r\n");
	expect("250");
	expect("501");
	finish();
	ck_assert_str_eq(t.got[0].ret, "hdrs");
	ck_assert_str_eq(t.got[0].envid, "QQ+1");
	ck_assert_str_eq(t.got[0].notify, "success,failure");
	ck_assert_int_eq(t.got[0].smtputf8, 1);
}
END_TEST

START_TEST(size_parameter_over_the_limit_is_refused_at_mail)
{
	t.cfg.max_size = 100;
	session_start();
	send_str("MAIL FROM:<a@example.com> SIZE=101\r\n");
	ck_assert_str_eq(expect("552"), "552 5.3.4 Message size exceeds fixed limit\r\n");
	send_str("MAIL FROM:<a@example.com> SIZE=100\r\n");
	expect("250");
	finish();
}
END_TEST

START_TEST(message_over_the_limit_is_read_to_the_end_and_refused)
{
	char body[400];

	t.cfg.max_size = 100;
	memset(body, 'x', 300);
	memcpy(body + 300, "\r\n.\r\nNOOP\r\n", 12);
	session_start();
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("354");
	send_str(body);
	expect("552");
	expect("250");
	finish();
	ck_assert_int_eq(t.ndelivered, 0);
}
END_TEST

START_TEST(overlong_message_line_is_refused_after_the_dot)
{
	char body[400];

	t.lim.data_line_max = 100;
	memset(body, 'x', 300);
	memcpy(body + 300, "\r\nshort\r\n.\r\n", 13);
	session_start();
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("354");
	send_str(body);
	expect("554");
	finish();
	ck_assert_int_eq(t.ndelivered, 0);
}
END_TEST

START_TEST(large_message_is_spilled_and_arrives_whole)
{
	size_t n = 3000000;
	char *big = malloc(n + 1);

	for (size_t i = 0; i < n; i += 100) {
		memset(big + i, 'a' + (char)(i / 100 % 26), 98);
		memcpy(big + i + 98, "\r\n", 2);
	}
	big[n] = 0;
	session_start();
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("354");
	send_str("Subject: big\r\n\r\n");
	/* The socketpair buffer is smaller than the message: write it from a child. */
	if (fork() == 0) {
		size_t off = 0;

		while (off < n) {
			ssize_t w = write(t.client, big + off, n - off);

			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		_exit(write(t.client, ".\r\n", 3) == 3 ? 0 : 1);
	}
	expect("250");
	wait(0);
	finish();
	ck_assert_int_eq(t.ndelivered, 1);
	ck_assert_uint_eq(t.got[0].body_len, n);
	ck_assert_int_eq(t.got[0].spilled, 1);
	ck_assert_int_eq(memcmp(t.got[0].body, big, n), 0);
	free(big);
}
END_TEST

/* smuggle - send data (after 354) and the next command; return delivered bodies */

static void smuggle_start(void)
{
	session_start();
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
	expect("250");
	expect("250");
	expect("354");
}

START_TEST(smuggling_lf_dot_lf_is_content_and_so_is_what_follows)
{
	smuggle_start();
	/* The 2023 smuggling payload: a client that does not see bare LF as a line end
	 * does not dot-stuff "\n.\n", so it must not end the data here either. */
	send_str("one\n.\nMAIL FROM:<evil@example.com>\nRCPT TO:<x@example.org>\nDATA\n"
		 "smuggled\n.\nQUIT\n\r\n.\r\nNOOP\r\n");
	expect("250");
	ck_assert_str_eq(expect("250"), "250 2.0.0 Ok\r\n");
	finish();
	ck_assert_int_eq(t.ndelivered, 1);
	ck_assert_str_eq(t.got[0].sender, "a@example.com");
	/* The dots stay literal: the SMTP client stuffs them again for the relay. */
	ck_assert_str_eq(t.got[0].body, "one\r\n.\r\nMAIL FROM:<evil@example.com>\r\n"
					"RCPT TO:<x@example.org>\r\nDATA\r\nsmuggled\r\n.\r\n"
					"QUIT\r\n\r\n");
}
END_TEST

START_TEST(smuggling_crlf_dot_lf_is_content)
{
	smuggle_start();
	send_str("one\r\n.\nNOOP\r\n.\r\n");
	expect("250");
	finish();
	ck_assert_int_eq(t.ndelivered, 1);
	ck_assert_str_eq(t.got[0].body, "one\r\n.\r\nNOOP\r\n");
}
END_TEST

START_TEST(smuggling_lf_dot_crlf_is_content)
{
	smuggle_start();
	send_str("one\n.\r\nNOOP\r\n.\r\n");
	expect("250");
	finish();
	ck_assert_int_eq(t.ndelivered, 1);
	ck_assert_str_eq(t.got[0].body, "one\r\n.\r\nNOOP\r\n");
}
END_TEST

START_TEST(only_crlf_dot_crlf_ends_the_data_and_bare_lf_lines_are_unstuffed)
{
	smuggle_start();
	/* ".." after a bare LF is transparency as after CRLF (bare LF is a line end
	 * for content, Postfix's "normalize"), and an empty message ends at once. */
	send_str("..two\n..\r\n.\r\nMAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.org>\r\n"
		 "DATA\r\n.\r\n");
	expect("250");
	expect("250");
	expect("250");
	expect("354");
	expect("250");
	finish();
	ck_assert_int_eq(t.ndelivered, 2);
	ck_assert_str_eq(t.got[0].body, ".two\r\n.\r\n");
	ck_assert_str_eq(t.got[1].sender, "c@example.com");
	ck_assert_uint_eq(t.got[1].body_len, 0);
}
END_TEST

START_TEST(data_after_a_bare_lf_data_command_needs_a_crlf_before_the_dot)
{
	session_start();
	send_str("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\n");
	expect("250");
	expect("250");
	expect("354");
	send_str(".\r\nx\r\n.\r\n");
	expect("250");
	finish();
	ck_assert_str_eq(t.got[0].body, ".\r\nx\r\n");
}
END_TEST

START_TEST(smuggling_cr_dot_cr_is_data_and_stays_in_one_line)
{
	smuggle_start();
	send_str("one\r.\rMAIL FROM:<evil@example.com>\r\nRCPT TO:<x@example.org>\r\n.\r\n");
	expect("250");
	finish();
	ck_assert_int_eq(t.ndelivered, 1);
	/* Lone CRs are kept inside the line; the relay gets CRLF-terminated lines only. */
	ck_assert_str_eq(t.got[0].body,
			 "one\r.\rMAIL FROM:<evil@example.com>\r\nRCPT TO:<x@example.org>\r\n");
}
END_TEST

START_TEST(smuggling_crlf_dot_cr_is_data)
{
	smuggle_start();
	send_str("one\r\n.\rMAIL FROM:<evil@example.com>\r\n.\r\n");
	expect("250");
	finish();
	/* ".\rMAIL" is a dot-stuffed line: the leading dot goes, the rest is data. */
	ck_assert_str_eq(t.got[0].body, "one\r\n\rMAIL FROM:<evil@example.com>\r\n");
}
END_TEST

START_TEST(client_closing_in_the_middle_of_data_delivers_nothing)
{
	smuggle_start();
	send_str("Subject: half\r\n\r\nhalf a message\r\n");
	finish();
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.ndelivered, 0);
	ck_assert_int_eq(t.end_sessions, 1);
}
END_TEST

START_TEST(idle_client_gets_421_and_the_session_ends)
{
	t.lim.idle_timeout_ms = 200;
	session_start();
	ck_assert_str_eq(expect("421"), "421 4.4.2 relayshim.test Error: timeout exceeded\r\n");
	expect_eof();
	finish();
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.end_sessions, 1);
}
END_TEST

START_TEST(noop_loop_ends_with_421_after_the_junk_limit)
{
	t.lim.junk_max = 5;
	session_start();
	send_str("NOOP\r\nNOOP\r\nRSET\r\nNOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\n");
	/* EHLO was the first of the five. */
	for (int i = 0; i < 4; i++)
		expect("250");
	ck_assert_str_eq(expect("421"),
			 "421 4.7.0 relayshim.test Error: too many commands without a message\r\n");
	expect_eof();
	finish();
	ck_assert_int_eq(t.rc, 0);
}
END_TEST

START_TEST(a_delivered_message_resets_the_junk_count)
{
	t.lim.junk_max = 3;
	session_start();
	send_str("NOOP\r\nNOOP\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n"
		 "DATA\r\nx\r\n.\r\nNOOP\r\nRSET\r\nNOOP\r\nQUIT\r\n");
	for (int i = 0; i < 4; i++)
		expect("250");
	expect("354");
	for (int i = 0; i < 4; i++)
		expect("250");
	expect("221");
	finish();
	ck_assert_int_eq(t.ndelivered, 1);
}
END_TEST

START_TEST(noop_does_not_extend_the_idle_timeout)
{
	struct timespec tick = {0, 100 * 1000 * 1000};
	int i;

	t.lim.idle_timeout_ms = 500;
	session_start();
	/* A NOOP every 100 ms: the old rule (any byte resets the timer) never ends this. */
	for (i = 0; i < 30 && !t.done; i++) {
		nanosleep(&tick, 0);
		(void)!write(t.client, "NOOP\r\n", 6);
	}
	ck_assert_msg(t.done, "a NOOP every 100 ms kept the session for 3 s (timeout 500 ms)");
	ck_assert_int_le(i, 8);
	while (fill() > 0)
		;
	ck_assert_ptr_nonnull(strstr(buf_cstr(&t.in), "421 4.4.2 relayshim.test Error: timeout"));
	finish();
}
END_TEST

START_TEST(a_slow_delivery_does_not_use_up_the_clients_idle_time)
{
	struct timespec tick = {0, 200 * 1000 * 1000};

	t.lim.idle_timeout_ms = 500;
	t.deliver_delay_ms = 600;
	smuggle_start();
	send_str("x\r\n.\r\n");
	expect("250");
	/* Only the client's own silence counts: 200 ms of the 500 are used. */
	nanosleep(&tick, 0);
	send_str("NOOP\r\nQUIT\r\n");
	expect("250");
	expect("221");
	finish();
}
END_TEST

START_TEST(too_many_errors_end_the_session_with_421)
{
	t.lim.errors_max = 3;
	session_start();
	send_str("BOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n");
	expect("500");
	expect("500");
	expect("500");
	expect("421");
	expect_eof();
	finish();
}
END_TEST

START_TEST(client_that_never_reads_replies_is_timed_out)
{
	static char noops[64 * 1024];
	int flags;

	t.lim.idle_timeout_ms = 300;
	for (size_t i = 0; i + 6 <= sizeof(noops); i += 6)
		memcpy(noops + i, "NOOP\r\n", 6);
	start();
	flags = fcntl(t.client, F_GETFL);
	fcntl(t.client, F_SETFL, flags | O_NONBLOCK);
	/* Pipeline NOOPs and never read: the server's replies fill the socket buffer. */
	for (int i = 0; i < 400 && !t.done; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		(void)!write(t.client, noops, sizeof(noops) - sizeof(noops) % 6);
		nanosleep(&ts, 0);
	}
	ck_assert_msg(t.done, "the server is still blocked writing to a client that never reads");
	finish();
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.end_sessions, 1);
}
END_TEST

START_TEST(nul_in_a_command_is_refused)
{
	session_start();
	ck_assert_int_eq(write(t.client, "NO\0OP\r\n", 7), 7);
	expect("500");
	finish();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Robustness: a deterministic stream of hostile input.                */
/* ------------------------------------------------------------------ */

static struct buf garbage;

static void *garbage_writer(void *arg)
{
	size_t off = 0;

	(void)arg;
	while (off < garbage.len) {
		ssize_t n = write(t.client, garbage.data + off, garbage.len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(t.client, SHUT_WR);
	return 0;
}

START_TEST(hostile_input_never_crashes_the_server)
{
	static const char *const words[] = {
	    "MAIL FROM:<a@example.com>",
	    "MAIL FROM:<>",
	    "mail from:<x SIZE=99999999999999999999",
	    "RCPT TO:<b@example.org> NOTIFY=",
	    "RCPT TO:<\"q\\\"\"@x>",
	    "RCPT TO:<@a,@b:c@d>",
	    "DATA",
	    ".",
	    "..",
	    ".\r",
	    "RSET",
	    "EHLO",
	    "HELO x",
	    "AUTH PLAIN",
	    "AUTH LOGIN",
	    "*",
	    "AHVzZXIAcGFzcw==",
	    "=",
	    "AUTH PLAIN ====",
	    "VRFY",
	    "NOOP",
	    "BDAT 10 LAST",
	    "MAIL FROM:<a@b> ENVID=+zz",
	    "MAIL FROM:<a@b> ENVID=+41+42 RET=FULL",
	    "STARTTLS",
	    "Subject: x",
	    " folded",
	    "",
	    "\x80\xff\xfe",
	    "MAIL FROM:a@b BODY=8BITMIME SMTPUTF8",
	};
	static const char *const ends[] = {"\r\n", "\n", "\r", "", "\r\r\n", "\0"};
	unsigned long long state = 0x9e3779b97f4a7c15ULL;
	pthread_t writer;
	ssize_t n;

	t.lim.errors_max = 1000000;
	t.lim.junk_max = 0;
	t.lim.rcpt_max = 5;
	t.lim.data_line_max = 300;
	t.cfg.max_size = 2000;
	for (int i = 0; i < 40000; i++) {
		state = state * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned r = (unsigned)(state >> 33);

		if (r % 11 == 0) {
			for (unsigned k = 0; k < r % 400; k++)
				buf_putc(&garbage, (int)((r >> (k % 24)) + k) & 0xff);
		} else {
			const char *w = words[r % (sizeof(words) / sizeof(words[0]))];
			const char *e = ends[(r >> 8) % 16 < 12 ? 0 : (r >> 12) % 6];

			buf_puts(&garbage, w);
			buf_append(&garbage, e,
				   *e || e == ends[5] ? (e == ends[5] ? 1 : strlen(e)) : 0);
		}
	}
	buf_puts(&garbage, "\r\n.\r\nQUIT\r\n");
	start();
	ck_assert_int_eq(pthread_create(&writer, 0, garbage_writer, 0), 0);
	/* Read everything the server says until it ends the session. */
	for (;;) {
		buf_reserve(&t.in, 65536);
		n = read(t.client, t.in.data, 65536);
		if (n <= 0)
			break;
	}
	pthread_join(writer, 0);
	finish();
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.end_sessions, 1);
	ck_assert_int_gt(t.ndelivered, 10);
	buf_free(&garbage);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Pure functions.                                                     */
/* ------------------------------------------------------------------ */

START_TEST(parse_path_forms)
{
	struct buf a = BUF_INIT;
	const char *params;

	ck_assert_int_eq(smtpd_parse_path("FROM:<a@b.example> SIZE=1", "FROM:", &a, &params), 0);
	ck_assert_str_eq(buf_cstr(&a), "a@b.example");
	ck_assert_str_eq(params, "SIZE=1");
	ck_assert_int_eq(smtpd_parse_path("from: <>", "FROM:", &a, &params), 0);
	ck_assert_str_eq(buf_cstr(&a), "");
	ck_assert_int_eq(
	    smtpd_parse_path("TO:<@relay.example,@r2.example:u@d.example>", "TO:", &a, &params), 0);
	ck_assert_str_eq(buf_cstr(&a), "u@d.example");
	ck_assert_int_eq(smtpd_parse_path("TO:<\"john doe>\"@d.example>", "TO:", &a, &params), 0);
	ck_assert_str_eq(buf_cstr(&a), "\"john doe>\"@d.example");
	ck_assert_int_eq(smtpd_parse_path("TO:user@d.example NOTIFY=NEVER", "TO:", &a, &params), 0);
	ck_assert_str_eq(buf_cstr(&a), "user@d.example");
	ck_assert_str_eq(params, "NOTIFY=NEVER");
	ck_assert_int_eq(smtpd_parse_path("TO:<a b@d.example>", "TO:", &a, &params), -1);
	ck_assert_int_eq(smtpd_parse_path("TO:<a@d.example", "TO:", &a, &params), -1);
	ck_assert_int_eq(smtpd_parse_path("TO:<a@d.example>x", "TO:", &a, &params), -1);
	ck_assert_int_eq(smtpd_parse_path("TO:", "TO:", &a, &params), -1);
	ck_assert_int_eq(smtpd_parse_path("TO:<a\x01@d.example>", "TO:", &a, &params), -1);
	ck_assert_int_eq(smtpd_parse_path("FROM:<a@d.example>", "TO:", &a, &params), -1);
	buf_free(&a);
}
END_TEST

START_TEST(xtext_decoding)
{
	struct buf out = BUF_INIT;

	ck_assert_int_eq(smtpd_xtext_decode("abc+2Bd", 7, &out), 0);
	ck_assert_str_eq(buf_cstr(&out), "abc+d");
	ck_assert_int_eq(smtpd_xtext_decode("abc+2", 5, &out), -1);
	ck_assert_int_eq(smtpd_xtext_decode("a=b", 3, &out), -1);
	ck_assert_int_eq(smtpd_xtext_decode("a+0Ab", 5, &out), -1);
	buf_free(&out);
}
END_TEST

/* formatted - smtpd_format_reply() as a C string */

static const char *formatted(const char *in)
{
	static struct buf out;

	buf_reset(&out);
	smtpd_format_reply(in, strlen(in), &out);
	return buf_cstr(&out);
}

START_TEST(format_reply_keeps_good_replies)
{
	ck_assert_str_eq(formatted("250 2.0.0 Ok: queued as 4F"), "250 2.0.0 Ok: queued as 4F\r\n");
	ck_assert_str_eq(formatted("250 2.0.0 Ok\r\n"), "250 2.0.0 Ok\r\n");
	ck_assert_str_eq(formatted("452-4.3.1 first\r\n452 4.3.1 second\r\n"),
			 "452-4.3.1 first\r\n452 4.3.1 second\r\n");
}
END_TEST

START_TEST(format_reply_repairs_and_sanitises)
{
	ck_assert_str_eq(formatted("554 Transaction failed"), "554 5.0.0 Transaction failed\r\n");
	ck_assert_str_eq(formatted("550 4.1.1 wrong class"), "550 5.0.0 4.1.1 wrong class\r\n");
	ck_assert_str_eq(formatted("451"), "451 4.0.0\r\n");
	ck_assert_str_eq(formatted("450 4.2.0 a\x1b[31m"), "450 4.2.0 a\\x1b[31m\r\n");
	ck_assert_str_eq(formatted("550-5.1.1 one\n551 5.1.1 two\n"),
			 "550-5.1.1 one\r\n550 5.1.1 two\r\n");
	ck_assert_str_eq(formatted("550 5.1.1 one\r\nloose text"),
			 "550-5.1.1 one\r\n550 5.0.0 loose text\r\n");
}
END_TEST

START_TEST(format_reply_never_invents_a_success)
{
	ck_assert_str_eq(formatted(""),
			 "451 4.3.0 Error: the delivery gave no valid reply; try again later\r\n");
	ck_assert_str_eq(formatted("ok"),
			 "451 4.3.0 Error: the delivery gave no valid reply; try again later\r\n");
	ck_assert_str_eq(formatted("354 go ahead"),
			 "451 4.3.0 Error: the delivery gave no valid reply; try again later\r\n");
	ck_assert_str_eq(formatted("2500 x"),
			 "451 4.3.0 Error: the delivery gave no valid reply; try again later\r\n");
}
END_TEST

/* ------------------------------------------------------------------ */
/* -bd                                                                 */
/* ------------------------------------------------------------------ */

/* free_port - a loopback port nobody listens on right now */

static unsigned free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* connect_port - connect to 127.0.0.1:port, retrying while the daemon starts */

static int connect_port(unsigned port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)port);
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct timespec ts = {0, 10 * 1000 * 1000};

		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			return fd;
		close(fd);
		nanosleep(&ts, 0);
	}
	ck_abort_msg("daemon did not listen on port %u", port);
	return -1;
}

START_TEST(daemon_serves_connections_and_stops_on_sigterm)
{
	char spec[64];
	unsigned port = free_port();
	pid_t pid;
	int status;

	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
	t.cfg.intercept = spec;
	t.lim.drain_ms = 2000;
	pid = fork();
	if (pid == 0) {
		struct error err;

		_exit(smtpd_daemon_limits(&t.cfg, &t.lim, &t.ops, &t, &err));
	}
	close(t.server);
	close(t.client);
	/* Two sessions at once: each is its own process. */
	for (int round = 0; round < 2; round++) {
		int a = connect_port(port);
		int b = connect_port(port);

		t.client = a;
		buf_reset(&t.in);
		expect("220");
		t.client = b;
		buf_reset(&t.in);
		expect("220");
		send_str("EHLO go-client\r\nMAIL FROM:<go@example.com>\r\nRCPT "
			 "TO:<u@example.org>\r\nDATA\r\n");
		expect("250");
		expect("250");
		expect("250");
		expect("354");
		send_str("Subject: static\r\n\r\nfrom a static binary\r\n.\r\nQUIT\r\n");
		ck_assert_str_eq(expect("250"), "250 2.0.0 Ok: queued as TEST1\r\n");
		expect("221");
		expect_eof();
		close(b);
		t.client = a;
		send_str("QUIT\r\n");
		expect("221");
		close(a);
	}
	t.client = -1;
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* The listener is gone. */
	{
		struct sockaddr_in sin = {.sin_family = AF_INET};
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((unsigned short)port);
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), -1);
		close(fd);
	}
}
END_TEST

START_TEST(daemon_caps_the_sessions_of_one_local_user)
{
	char spec[64];
	unsigned port = free_port();
	int fds[2];
	pid_t pid;
	int status;
	int got220 = 0;

	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
	t.cfg.intercept = spec;
	t.lim.daemon_client_children = 2;
	t.lim.drain_ms = 300;
	pid = fork();
	if (pid == 0) {
		struct error err;

		_exit(smtpd_daemon_limits(&t.cfg, &t.lim, &t.ops, &t, &err));
	}
	close(t.server);
	close(t.client);
	/* Same uid for all: the third is refused although 98 sessions are free. */
	for (int i = 0; i < 2; i++) {
		t.client = fds[i] = connect_port(port);
		buf_reset(&t.in);
		expect("220");
	}
	t.client = connect_port(port);
	buf_reset(&t.in);
	ck_assert_str_eq(
	    expect("421"),
	    "421 4.7.0 Error: too many connections from your user, try again later\r\n");
	expect_eof();
	close(t.client);
	/* One session ends: the user may open one again (once the daemon reaped it). */
	t.client = fds[0];
	send_str("QUIT\r\n");
	expect("221");
	expect_eof();
	close(fds[0]);
	for (int i = 0; i < 100 && !got220; i++) {
		struct timespec ts = {0, 20 * 1000 * 1000};

		t.client = connect_port(port);
		buf_reset(&t.in);
		while (reply_end() == 0 && fill() > 0)
			;
		got220 = strncmp(buf_cstr(&t.in), "220", 3) == 0;
		close(t.client);
		nanosleep(&ts, 0);
	}
	ck_assert(got220);
	close(fds[1]);
	t.client = -1;
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(daemon_sigterm_waits_for_a_running_session_then_ends_it)
{
	char spec[64];
	unsigned port = free_port();
	pid_t pid;
	int status;
	struct timespec a, b;

	snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
	t.cfg.intercept = spec;
	t.lim.drain_ms = 300;
	pid = fork();
	if (pid == 0) {
		struct error err;

		_exit(smtpd_daemon_limits(&t.cfg, &t.lim, &t.ops, &t, &err));
	}
	close(t.server);
	close(t.client);
	t.client = connect_port(port);
	expect("220");
	clock_gettime(CLOCK_MONOTONIC, &a);
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_ge((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 250);
	/* The idle session was ended: our end sees EOF. */
	expect_eof();
}
END_TEST

START_TEST(daemon_refuses_a_non_loopback_endpoint)
{
	struct error err;

	t.cfg.intercept = "0.0.0.0:2525";
	ck_assert_int_eq(smtpd_daemon_limits(&t.cfg, &t.lim, &t.ops, &t, &err), EX_CONFIG);
}
END_TEST

START_TEST(daemon_fails_clearly_when_the_port_is_taken)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char spec[64];
	struct error err;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", ntohs(sin.sin_port));
	t.cfg.intercept = spec;
	ck_assert_int_eq(smtpd_daemon_limits(&t.cfg, &t.lim, &t.ops, &t, &err), EX_OSERR);
	ck_assert_ptr_nonnull(strstr(err.text, "another SMTP server"));
	close(fd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("smtpd");
	TCase *clients = tcase_create("clients");
	TCase *protocol = tcase_create("protocol");
	TCase *data = tcase_create("data");
	TCase *pure = tcase_create("pure");
	TCase *daemon = tcase_create("daemon");
	SRunner *sr;
	int failed;

	TCase *all[] = {clients, protocol, data, pure, daemon};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_add_checked_fixture(all[i], setup, teardown);
		tcase_set_timeout(all[i], 20);
		suite_add_tcase(s, all[i]);
	}

	tcase_add_test(clients, greeting_is_220_with_our_name);
	tcase_add_test(clients, symfony_helo_several_transactions_without_rset_and_noop);
	tcase_add_test(clients, smtplib_lower_case_verbs_and_size_parameter);
	tcase_add_test(
	    clients,
	    nodemailer_pipelined_group_gets_replies_in_one_write_and_may_close_without_quit);
	tcase_add_test(clients, curl_odd_ehlo_bare_lf_and_no_headers);
	tcase_add_test(clients, swaks_pipeline_with_message_and_quit_in_one_write);

	tcase_add_test(protocol, ehlo_advertises_the_extensions_and_never_starttls);
	tcase_add_test(protocol, ehlo_advertises_size_limit_and_dsn_when_the_relay_has_it);
	tcase_add_test(protocol, ehlo_without_auth_when_smtpd_auth_is_off);
	tcase_add_test(protocol, helo_is_optional_and_may_have_no_argument);
	tcase_add_test(protocol, auth_plain_with_initial_response);
	tcase_add_test(protocol, auth_plain_after_an_empty_challenge);
	tcase_add_test(protocol, auth_login_with_two_prompts);
	tcase_add_test(protocol, auth_login_with_the_user_name_given_at_once);
	tcase_add_test(protocol, auth_cancelled_or_garbled_is_refused);
	tcase_add_test(protocol, starttls_is_refused_with_502);
	tcase_add_test(protocol, relay_4xx_reaches_the_client_with_its_text);
	tcase_add_test(protocol, relay_5xx_reaches_the_client_with_its_text);
	tcase_add_test(protocol, relay_reply_without_enhanced_code_gets_one_of_its_class);
	tcase_add_test(protocol, failed_delivery_is_never_answered_250);
	tcase_add_test(protocol, too_long_command_line_is_refused_and_skipped);
	tcase_add_test(protocol, too_many_recipients_get_452);
	tcase_add_test(protocol, rset_clears_the_transaction);
	tcase_add_test(protocol, vrfy_answers_252_help_214_unknown_500);
	tcase_add_test(protocol, bad_sequence_gets_503);
	tcase_add_test(protocol, syntax_errors_in_paths_and_parameters);
	tcase_add_test(protocol, null_sender_and_unbracketed_addresses);
	tcase_add_test(protocol, dsn_parameters_reach_the_envelope);
	tcase_add_test(protocol, size_parameter_over_the_limit_is_refused_at_mail);
	tcase_add_test(protocol, idle_client_gets_421_and_the_session_ends);
	tcase_add_test(protocol, too_many_errors_end_the_session_with_421);
	tcase_add_test(protocol, nul_in_a_command_is_refused);
	tcase_add_test(protocol, client_that_never_reads_replies_is_timed_out);
	tcase_add_test(protocol, hostile_input_never_crashes_the_server);

	tcase_add_test(data, message_over_the_limit_is_read_to_the_end_and_refused);
	tcase_add_test(data, overlong_message_line_is_refused_after_the_dot);
	tcase_add_test(data, large_message_is_spilled_and_arrives_whole);
	tcase_add_test(data, smuggling_lf_dot_lf_is_content_and_so_is_what_follows);
	tcase_add_test(data, smuggling_crlf_dot_lf_is_content);
	tcase_add_test(data, smuggling_lf_dot_crlf_is_content);
	tcase_add_test(data, only_crlf_dot_crlf_ends_the_data_and_bare_lf_lines_are_unstuffed);
	tcase_add_test(data, noop_loop_ends_with_421_after_the_junk_limit);
	tcase_add_test(data, a_delivered_message_resets_the_junk_count);
	tcase_add_test(data, noop_does_not_extend_the_idle_timeout);
	tcase_add_test(data, a_slow_delivery_does_not_use_up_the_clients_idle_time);
	tcase_add_test(data, data_after_a_bare_lf_data_command_needs_a_crlf_before_the_dot);
	tcase_add_test(data, smuggling_cr_dot_cr_is_data_and_stays_in_one_line);
	tcase_add_test(data, smuggling_crlf_dot_cr_is_data);
	tcase_add_test(data, client_closing_in_the_middle_of_data_delivers_nothing);

	tcase_add_test(pure, parse_path_forms);
	tcase_add_test(pure, xtext_decoding);
	tcase_add_test(pure, format_reply_keeps_good_replies);
	tcase_add_test(pure, format_reply_repairs_and_sanitises);
	tcase_add_test(pure, format_reply_never_invents_a_success);

	tcase_add_test(daemon, daemon_serves_connections_and_stops_on_sigterm);
	tcase_add_test(daemon, daemon_caps_the_sessions_of_one_local_user);
	tcase_add_test(daemon, daemon_sigterm_waits_for_a_running_session_then_ends_it);
	tcase_add_test(daemon, daemon_refuses_a_non_loopback_endpoint);
	tcase_add_test(daemon, daemon_fails_clearly_when_the_port_is_taken);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
