/*
 * test_smtp - the SMTP client's pure functions: reply parser, EHLO
 * capabilities, dot-stuffing across chunk boundaries, xtext, the AUTH
 * helpers (mechanism choice, base64, XOAUTH2) and the credentials rule;
 * and, against a one-connection server in a thread, the envelope check
 * of smtp_session_send() (no control byte or angle bracket on the wire).
 */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "net.h"
#include "smtp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

/* parse - helper: parse s, return consumed count */

static ssize_t parse(const char *s, struct smtp_reply *r)
{
	return smtp_parse_reply(s, strlen(s), r);
}

START_TEST(reply_single_line)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	ck_assert_int_eq(parse("250 2.1.0 Ok\r\n", &r), 14);
	ck_assert_int_eq(r.code, 250);
	ck_assert_str_eq(r.dsn, "2.1.0");
	ck_assert_str_eq(r.text.data, "2.1.0 Ok");
	ck_assert_uint_eq(r.nlines, 1);
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_multi_line_joined_with_newlines)
{
	struct smtp_reply r;
	const char *s = "250-relay.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";

	smtp_reply_init(&r);
	ck_assert_int_eq(parse(s, &r), (ssize_t)strlen(s));
	ck_assert_int_eq(r.code, 250);
	ck_assert_str_eq(r.text.data, "relay.test\nPIPELINING\nSIZE 1000");
	ck_assert_uint_eq(r.nlines, 3);
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_incomplete_needs_more)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	ck_assert_int_eq(parse("250-first\r\n250 sec", &r), 0);
	ck_assert_int_eq(parse("25", &r), 0);
	ck_assert_int_eq(parse("", &r), 0);
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_consumes_only_the_first_of_two)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	ck_assert_int_eq(parse("250 ok\r\n354 go\r\n", &r), 8);
	ck_assert_int_eq(r.code, 250);
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_bare_lf_accepted)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	ck_assert_int_eq(parse("220 hi\n", &r), 7);
	ck_assert_int_eq(r.code, 220);
	ck_assert_str_eq(r.text.data, "hi");
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_code_only)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	ck_assert_int_eq(parse("250\r\n", &r), 5);
	ck_assert_int_eq(r.code, 250);
	ck_assert_uint_eq(r.text.len, 0);
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_garbage_is_malformed)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	ck_assert_int_eq(parse("hello\r\n", &r), -1);
	ck_assert_int_eq(parse("2x0 ok\r\n", &r), -1);
	ck_assert_int_eq(parse("650 ok\r\n", &r), -1);
	ck_assert_int_eq(parse("250_ok\r\n", &r), -1);
	ck_assert_int_eq(parse("\r\n", &r), -1);
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_continuation_code_mismatch)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	ck_assert_int_eq(parse("250-a\r\n550 b\r\n", &r), -1);
	ck_assert_str_eq(r.text.data, "reply lines with different codes");
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_line_too_long)
{
	struct smtp_reply r;
	size_t n = SMTP_REPLY_LINE_MAX + 10;
	char *s = malloc(n + 1);

	memset(s, 'x', n);
	memcpy(s, "250 ", 4);
	s[n] = 0;
	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_parse_reply(s, n, &r), -1);
	/* Just under the limit without a newline: wait for more. */
	ck_assert_int_eq(smtp_parse_reply(s, SMTP_REPLY_LINE_MAX - 1, &r), 0);
	smtp_reply_free(&r);
	free(s);
}
END_TEST

START_TEST(reply_too_many_lines)
{
	struct smtp_reply r;
	struct buf b = BUF_INIT;

	for (int i = 0; i < SMTP_REPLY_LINES_MAX + 1; i++)
		buf_puts(&b, "250-x\r\n");
	buf_puts(&b, "250 end\r\n");
	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_parse_reply(b.data, b.len, &r), -1);
	smtp_reply_free(&r);
	buf_free(&b);
}
END_TEST

START_TEST(reply_enhanced_code_must_match_class)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	parse("550 5.7.1 <x@y>: Sender rejected\r\n", &r);
	ck_assert_str_eq(r.dsn, "5.7.1");
	parse("550 4.7.1 wrong class\r\n", &r);
	ck_assert_str_eq(r.dsn, "");
	parse("250 2.0.0\r\n", &r);
	ck_assert_str_eq(r.dsn, "2.0.0");
	parse("250 2.0.0Ok\r\n", &r);
	ck_assert_str_eq(r.dsn, "");
	parse("250 Ok 2.0.0\r\n", &r);
	ck_assert_str_eq(r.dsn, "");
	parse("452 4.5.3 Too many\r\n", &r);
	ck_assert_str_eq(r.dsn, "4.5.3");
	smtp_reply_free(&r);
}
END_TEST

/* ehlo - helper: capabilities of an EHLO reply */

static void ehlo(const char *s, struct smtp_caps *caps)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	ck_assert_int_gt(parse(s, &r), 0);
	memset(caps, 0, sizeof(*caps));
	smtp_parse_ehlo(&r, caps);
	smtp_reply_free(&r);
}

START_TEST(ehlo_capabilities)
{
	struct smtp_caps c;

	ehlo("250-relay.test Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
	     "250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
	     "250 AUTH PLAIN LOGIN\r\n",
	     &c);
	ck_assert(c.pipelining && c.size && c.eightbitmime && c.smtputf8 && c.dsn && c.starttls &&
		  c.enhancedstatuscodes && c.auth);
	ck_assert_uint_eq(c.size_max, 10240000);
	ck_assert_str_eq(c.auth_mechs, "PLAIN LOGIN");
	smtp_caps_free(&c);
}
END_TEST

START_TEST(ehlo_keywords_case_insensitive)
{
	struct smtp_caps c;

	ehlo("250-x\r\n250-pipelining\r\n250-Size 5\r\n250 auth plain cram-md5\r\n", &c);
	ck_assert(c.pipelining);
	ck_assert_uint_eq(c.size_max, 5);
	ck_assert_str_eq(c.auth_mechs, "PLAIN CRAM-MD5");
	smtp_caps_free(&c);
}
END_TEST

START_TEST(ehlo_size_without_limit)
{
	struct smtp_caps c;

	ehlo("250-x\r\n250 SIZE\r\n", &c);
	ck_assert(c.size);
	ck_assert_uint_eq(c.size_max, 0);
	smtp_caps_free(&c);
}
END_TEST

START_TEST(ehlo_old_auth_equals_form_merged)
{
	struct smtp_caps c;

	ehlo("250-x\r\n250-AUTH=LOGIN\r\n250 AUTH PLAIN LOGIN\r\n", &c);
	ck_assert(c.auth);
	ck_assert_str_eq(c.auth_mechs, "LOGIN PLAIN LOGIN");
	smtp_caps_free(&c);
}
END_TEST

START_TEST(ehlo_first_line_is_not_a_keyword)
{
	struct smtp_caps c;

	ehlo("250-PIPELINING\r\n250 8BITMIME\r\n", &c);
	ck_assert(!c.pipelining);
	ck_assert(c.eightbitmime);
	smtp_caps_free(&c);
}
END_TEST

START_TEST(ehlo_prefix_of_keyword_not_matched)
{
	struct smtp_caps c;

	ehlo("250-x\r\n250-PIPELININGX\r\n250 DSNX\r\n", &c);
	ck_assert(!c.pipelining && !c.dsn);
	smtp_caps_free(&c);
}
END_TEST

/* stuff - helper: dot-stuff the chunks (NULL-terminated) and finish */

static char *stuff(const char **chunks)
{
	struct smtp_dot st = {0};
	struct buf out = BUF_INIT;

	for (; *chunks; chunks++)
		smtp_dot_stuff(&st, *chunks, strlen(*chunks), &out);
	smtp_dot_finish(&st, &out);
	return buf_steal(&out);
}

START_TEST(dot_at_start_of_data)
{
	const char *c[] = {".hidden\r\n", 0};
	char *s = stuff(c);

	ck_assert_str_eq(s, "..hidden\r\n.\r\n");
	free(s);
}
END_TEST

START_TEST(dot_lone_line_in_the_middle)
{
	const char *c[] = {"a\r\n.\r\nb\r\n", 0};
	char *s = stuff(c);

	ck_assert_str_eq(s, "a\r\n..\r\nb\r\n.\r\n");
	free(s);
}
END_TEST

START_TEST(dot_double_dot_gets_a_third)
{
	const char *c[] = {"..\r\n", 0};
	char *s = stuff(c);

	ck_assert_str_eq(s, "...\r\n.\r\n");
	free(s);
}
END_TEST

START_TEST(dot_after_crlf_split_across_chunks)
{
	const char *c[] = {"a\r", "\n", ".b\r\n", 0};
	const char *d[] = {"a\r\n", ".b\r\n", 0};
	const char *e[] = {"a\r\n.", "b\r\n", 0};
	char *s;

	s = stuff(c);
	ck_assert_str_eq(s, "a\r\n..b\r\n.\r\n");
	free(s);
	s = stuff(d);
	ck_assert_str_eq(s, "a\r\n..b\r\n.\r\n");
	free(s);
	s = stuff(e);
	ck_assert_str_eq(s, "a\r\n..b\r\n.\r\n");
	free(s);
}
END_TEST

START_TEST(dot_inside_line_untouched)
{
	const char *c[] = {"a.b\r\n", " .x\r\n", "x", ".y\r\n", 0};
	char *s = stuff(c);

	ck_assert_str_eq(s, "a.b\r\n .x\r\nx.y\r\n.\r\n");
	free(s);
}
END_TEST

START_TEST(dot_finish_terminates_last_line)
{
	const char *c[] = {"no newline", 0};
	const char *e[] = {0};
	char *s = stuff(c);

	ck_assert_str_eq(s, "no newline\r\n.\r\n");
	free(s);
	s = stuff(e);
	ck_assert_str_eq(s, ".\r\n");
	free(s);
}
END_TEST

START_TEST(dot_byte_by_byte_matches_whole)
{
	const char *msg = ".a\r\n..b\r\nc.\r\n.\r\n\r\n.";
	struct smtp_dot st = {0};
	struct buf out = BUF_INIT;
	const char *whole[] = {msg, 0};
	char *w = stuff(whole);

	for (size_t i = 0; msg[i]; i++)
		smtp_dot_stuff(&st, msg + i, 1, &out);
	smtp_dot_finish(&st, &out);
	ck_assert_str_eq(out.data, w);
	ck_assert_str_eq(w, "..a\r\n...b\r\nc.\r\n..\r\n\r\n..\r\n.\r\n");
	free(w);
	buf_free(&out);
}
END_TEST

START_TEST(xtext_encodes_plus_equals_and_controls)
{
	struct buf b = BUF_INIT;

	smtp_xtext(&b, "a+b=c d\x01z~");
	ck_assert_str_eq(b.data, "a+2Bb+3Dc+20d+01z~");
	buf_free(&b);
}
END_TEST

START_TEST(base64_roundtrip)
{
	struct buf e = BUF_INIT, d = BUF_INIT;
	const char raw[] = "\0user\0secret";

	auth_base64_encode(&e, raw, sizeof(raw) - 1);
	ck_assert_str_eq(e.data, "AHVzZXIAc2VjcmV0");
	ck_assert_int_eq(auth_base64_decode(&d, e.data, e.len), 0);
	ck_assert_uint_eq(d.len, sizeof(raw) - 1);
	ck_assert(memcmp(d.data, raw, d.len) == 0);
	buf_free(&e);
	buf_free(&d);
}
END_TEST

START_TEST(base64_decode_padding_and_errors)
{
	struct buf d = BUF_INIT;

	ck_assert_int_eq(auth_base64_decode(&d, "VXNlcm5hbWU6", 12), 0);
	ck_assert_str_eq(d.data, "Username:");
	buf_reset(&d);
	ck_assert_int_eq(auth_base64_decode(&d, "YQ==", 4), 0);
	ck_assert_uint_eq(d.len, 1);
	buf_reset(&d);
	ck_assert_int_eq(auth_base64_decode(&d, "", 0), 0);
	ck_assert_uint_eq(d.len, 0);
	ck_assert_int_eq(auth_base64_decode(&d, "abc", 3), -1);
	ck_assert_int_eq(auth_base64_decode(&d, "a=bc", 4), -1);
	ck_assert_int_eq(auth_base64_decode(&d, "ab!c", 4), -1);
	buf_free(&d);
}
END_TEST

START_TEST(xoauth2_initial_response)
{
	struct buf b = BUF_INIT, d = BUF_INIT;

	auth_xoauth2_response(&b, "me@example.com", "tok123");
	ck_assert_int_eq(auth_base64_decode(&d, b.data, b.len), 0);
	ck_assert_str_eq(d.data, "user=me@example.com\001auth=Bearer tok123\001\001");
	ck_assert_str_eq(b.data, "dXNlcj1tZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB0b2sxMjMBAQ==");
	buf_free(&b);
	buf_free(&d);
}
END_TEST

START_TEST(mechanisms_intersection_in_relay_order)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(auth_choose_mechanisms("PLAIN LOGIN CRAM-MD5", "cram-md5, plain", &b), 2);
	ck_assert_str_eq(b.data, "PLAIN CRAM-MD5");
	buf_reset(&b);
	ck_assert_int_eq(auth_choose_mechanisms("PLAIN LOGIN", 0, &b), 2);
	ck_assert_str_eq(b.data, "PLAIN LOGIN");
	buf_reset(&b);
	ck_assert_int_eq(auth_choose_mechanisms("PLAIN LOGIN", "XOAUTH2", &b), 0);
	ck_assert_int_eq(auth_choose_mechanisms("", 0, &b), 0);
	buf_free(&b);
}
END_TEST

START_TEST(credentials_rule)
{
	ck_assert(auth_may_send_credentials(1, 0, 0));	/* verified TLS */
	ck_assert(auth_may_send_credentials(0, 1, 0));	/* loopback */
	ck_assert(auth_may_send_credentials(0, 0, 1));	/* auth_insecure */
	ck_assert(!auth_may_send_credentials(0, 0, 0)); /* plain or unverified TLS, remote */
}
END_TEST

START_TEST(loopback_addresses)
{
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;

	memset(&a4, 0, sizeof(a4));
	a4.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.2", &a4.sin_addr);
	ck_assert(net_sockaddr_is_loopback((struct sockaddr *)&a4));
	inet_pton(AF_INET, "10.0.0.1", &a4.sin_addr);
	ck_assert(!net_sockaddr_is_loopback((struct sockaddr *)&a4));
	memset(&a6, 0, sizeof(a6));
	a6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::1", &a6.sin6_addr);
	ck_assert(net_sockaddr_is_loopback((struct sockaddr *)&a6));
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
	ck_assert(net_sockaddr_is_loopback((struct sockaddr *)&a6));
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &a6.sin6_addr);
	ck_assert(!net_sockaddr_is_loopback((struct sockaddr *)&a6));
	inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
	ck_assert(!net_sockaddr_is_loopback((struct sockaddr *)&a6));
}
END_TEST

/*
 * The envelope check of smtp_session_send(): an address goes on the wire
 * inside "<...>", so a control byte (a CR LF would start a command of its
 * own) or an angle bracket (the rest would pass as MAIL/RCPT parameters)
 * must be refused before anything is sent. A one-connection SMTP server in
 * a thread records every command it gets.
 */

struct fake_relay {
	int listener;
	unsigned port;
	pthread_t thread;
	struct buf commands; /* every command line received, CRLF kept */
};

/* fake_relay_serve - answer one session: 250 to everything, DATA to the dot */

static void *fake_relay_serve(void *arg)
{
	struct fake_relay *f = arg;
	int c = accept(f->listener, 0, 0);
	FILE *in;
	char line[1024];
	int in_data = 0;

	if (c < 0)
		return 0;
	in = fdopen(dup(c), "r");
	(void)!write(c, "220 fake ESMTP\r\n", 16);
	while (fgets(line, sizeof(line), in)) {
		const char *reply = "250 ok\r\n";

		if (in_data) {
			if (strcmp(line, ".\r\n") != 0)
				continue;
			in_data = 0;
			reply = "250 queued\r\n";
		} else {
			buf_puts(&f->commands, line);
			if (strncasecmp(line, "DATA", 4) == 0) {
				in_data = 1;
				reply = "354 go on\r\n";
			} else if (strncasecmp(line, "QUIT", 4) == 0) {
				reply = "221 bye\r\n";
			}
		}
		(void)!write(c, reply, strlen(reply));
		if (strcmp(reply, "221 bye\r\n") == 0)
			break;
	}
	fclose(in);
	close(c);
	return 0;
}

/* fake_relay_start - listen on 127.0.0.1, serve one connection in a thread */

static void fake_relay_start(struct fake_relay *f)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(f, 0, sizeof(*f));
	f->listener = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(f->listener, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(f->listener, 1), 0);
	ck_assert_int_eq(getsockname(f->listener, (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	ck_assert_int_eq(pthread_create(&f->thread, 0, fake_relay_serve, f), 0);
}

START_TEST(bad_bytes_in_an_address_are_refused_before_anything_is_sent)
{
	static const char *const bad[] = {
	    "a>b@example.org",	     "<a@example.org>",	  "a@example.org> SIZE=1",
	    "a\r\nRSET@example.org", "a\nb@example.org",  "a\tb@example.org",
	    "a\x7f@example.org",     "a\x01@example.org",
	};
	struct fake_relay f;
	struct config cfg;
	struct error err;
	struct smtp_session *s;
	struct smtp_result res;
	struct envelope env;
	struct message msg;
	char host[64];

	fake_relay_start(&f);
	config_init(&cfg);
	memset(&err, 0, sizeof(err));
	snprintf(host, sizeof(host), "127.0.0.1:%u", f.port);
	ck_assert_int_eq(config_set(&cfg, "relay", "host", host, &err), 0);
	ck_assert_int_eq(config_set(&cfg, "relay", "tls", "none", &err), 0);
	ck_assert_msg(config_finish(&cfg, &err) == 0, "%s", err.text);
	ck_assert_msg(smtp_session_open(&s, &cfg, &err) == 0, "%s", err.text);
	message_init(&msg);
	buf_puts(&msg.header, "Subject: t\r\n");
	buf_puts(&msg.body.mem, "hi\r\n");
	msg.body.len = 4;
	smtp_result_init(&res);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		envelope_init(&env);
		env.sender = util_strdup(bad[i]);
		strlist_add(&env.rcpts, "r@example.org");
		ck_assert_int_eq(smtp_session_send(s, &env, &msg, &res, &err), EX_DATAERR);
		ck_assert_int_eq(err.temporary, 0);
		ck_assert_str_eq(err.text, "bad character in the sender address");
		envelope_free(&env);

		envelope_init(&env);
		env.sender = util_strdup("s@example.com");
		strlist_add(&env.rcpts, "r@example.org");
		strlist_add(&env.rcpts, bad[i]);
		ck_assert_int_eq(smtp_session_send(s, &env, &msg, &res, &err), EX_DATAERR);
		ck_assert_str_eq(err.text, "bad character in the recipient address");
		envelope_free(&env);
	}
	/* The session is still good: a clean envelope goes through it. */
	ck_assert_int_eq(smtp_session_usable(s), 1);
	envelope_init(&env);
	env.sender = util_strdup("s@example.com");
	strlist_add(&env.rcpts, "r@example.org");
	ck_assert_msg(smtp_session_send(s, &env, &msg, &res, &err) == 0, "%s", err.text);
	envelope_free(&env);
	smtp_session_close(s);
	pthread_join(f.thread, 0);
	close(f.listener);

	/* EHLO, one transaction, QUIT: not one byte of the refused envelopes. */
	ck_assert_msg(strncmp(buf_cstr(&f.commands), "EHLO ", 5) == 0, "%s", buf_cstr(&f.commands));
	ck_assert_msg(strstr(buf_cstr(&f.commands),
			     "\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
			     "QUIT\r\n") != 0,
		      "%s", buf_cstr(&f.commands));
	ck_assert_ptr_null(strstr(buf_cstr(&f.commands), "SIZE=1"));
	ck_assert_ptr_null(strstr(buf_cstr(&f.commands), "a>b"));
	ck_assert_ptr_null(strstr(buf_cstr(&f.commands), "RSET"));
	smtp_result_free(&res);
	message_free(&msg);
	buf_free(&f.commands);
	config_free(&cfg);
}
END_TEST

static Suite *smtp_suite(void)
{
	Suite *s = suite_create("smtp");
	TCase *reply = tcase_create("reply");
	TCase *caps = tcase_create("ehlo");
	TCase *dot = tcase_create("dot");
	TCase *auth = tcase_create("auth");
	TCase *session = tcase_create("session");

	tcase_add_test(reply, reply_single_line);
	tcase_add_test(reply, reply_multi_line_joined_with_newlines);
	tcase_add_test(reply, reply_incomplete_needs_more);
	tcase_add_test(reply, reply_consumes_only_the_first_of_two);
	tcase_add_test(reply, reply_bare_lf_accepted);
	tcase_add_test(reply, reply_code_only);
	tcase_add_test(reply, reply_garbage_is_malformed);
	tcase_add_test(reply, reply_continuation_code_mismatch);
	tcase_add_test(reply, reply_line_too_long);
	tcase_add_test(reply, reply_too_many_lines);
	tcase_add_test(reply, reply_enhanced_code_must_match_class);
	suite_add_tcase(s, reply);

	tcase_add_test(caps, ehlo_capabilities);
	tcase_add_test(caps, ehlo_keywords_case_insensitive);
	tcase_add_test(caps, ehlo_size_without_limit);
	tcase_add_test(caps, ehlo_old_auth_equals_form_merged);
	tcase_add_test(caps, ehlo_first_line_is_not_a_keyword);
	tcase_add_test(caps, ehlo_prefix_of_keyword_not_matched);
	suite_add_tcase(s, caps);

	tcase_add_test(dot, dot_at_start_of_data);
	tcase_add_test(dot, dot_lone_line_in_the_middle);
	tcase_add_test(dot, dot_double_dot_gets_a_third);
	tcase_add_test(dot, dot_after_crlf_split_across_chunks);
	tcase_add_test(dot, dot_inside_line_untouched);
	tcase_add_test(dot, dot_finish_terminates_last_line);
	tcase_add_test(dot, dot_byte_by_byte_matches_whole);
	tcase_add_test(dot, xtext_encodes_plus_equals_and_controls);
	suite_add_tcase(s, dot);

	tcase_add_test(auth, base64_roundtrip);
	tcase_add_test(auth, base64_decode_padding_and_errors);
	tcase_add_test(auth, xoauth2_initial_response);
	tcase_add_test(auth, mechanisms_intersection_in_relay_order);
	tcase_add_test(auth, credentials_rule);
	tcase_add_test(auth, loopback_addresses);
	suite_add_tcase(s, auth);

	tcase_set_timeout(session, 15);
	tcase_add_test(session, bad_bytes_in_an_address_are_refused_before_anything_is_sent);
	suite_add_tcase(s, session);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smtp_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
