/* test_log - log lines (plain, JSON), targets, and anonymised addresses in them */

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"

static struct config cfg;
static struct buf out;
static char logfile[] = "/tmp/test_log.XXXXXX";

/* fixed_clock - 2026-03-04T05:06:07.089Z */

static void fixed_clock(struct timespec *ts)
{
	ts->tv_sec = 1772600767;
	ts->tv_nsec = 89000000;
}

static void setup(void)
{
	int fd = mkstemp(logfile);

	close(fd);
	config_init(&cfg);
	free(cfg.log_target);
	cfg.log_target = strdup(logfile);
	log_set_clock(fixed_clock);
}

static void teardown(void)
{
	log_close();
	log_set_clock(0);
	config_free(&cfg);
	buf_free(&out);
	unlink(logfile);
	strcpy(logfile, "/tmp/test_log.XXXXXX");
}

/* host_uid - the JSON keys every line carries: ',"host":"NAME","uid":N' */

static const char *host_uid(unsigned long uid)
{
	static char s[600];
	char host[256] = "";

	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = 0;
	snprintf(s, sizeof(s), ",\"host\":\"%s\",\"uid\":%lu", host, uid);
	return s;
}

/* logged - what the file target received */

static const char *logged(void)
{
	static char data[16384];
	int fd = open(logfile, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, data, sizeof(data) - 1) : 0;

	if (fd >= 0)
		close(fd);
	data[n > 0 ? n : 0] = 0;
	return data;
}

/* use - log_setup with the file target plus format and anonymize */

static void use(enum log_format format, const char *anonymize)
{
	cfg.log_format = format;
	free(cfg.log_anonymize);
	cfg.log_anonymize = anonymize ? strdup(anonymize) : 0;
	log_setup(&cfg);
}

static struct strlist two_rcpts(void)
{
	struct strlist to = STRLIST_INIT;

	strlist_add(&to, "dev@example.com");
	strlist_add(&to, "ops@example.org");
	return to;
}

/* ---------------------------------------------------------------- */
/* Line shapes                                                      */

START_TEST(plain_delivery_line_is_postfix_like)
{
	struct strlist to = two_rcpts();
	struct log_record rec = {LOG_LEVEL_INFO,
				 "4F2A1B",
				 "app@example.com",
				 &to,
				 "relay.example:25",
				 "sent",
				 "2.0.0",
				 0.1234,
				 1234,
				 "250 2.0.0 Ok: queued as 9C3D",
				 0,
				 0,
				 0};
	char want[512];

	use(LOG_FORMAT_PLAIN, 0);
	log_delivery(&rec);
	snprintf(want, sizeof(want),
		 "2026-03-04T05:06:07.089Z relayshim[%ld]: 4F2A1B: from=<app@example.com>, "
		 "to=<dev@example.com>,<ops@example.org>, relay=relay.example:25, delay=0.12, "
		 "size=1234, dsn=2.0.0, "
		 "status=sent (250 2.0.0 Ok: queued as 9C3D)\n",
		 (long)getpid());
	ck_assert_str_eq(logged(), want);
	strlist_free(&to);
}
END_TEST

START_TEST(plain_delivery_without_queue_id_relay_or_dsn)
{
	struct log_record rec = {LOG_LEVEL_ERROR,   0, "", 0, 0, "failed", 0, 0, 10,
				 "connect refused", 0, 0,  0};
	char want[512];

	use(LOG_FORMAT_PLAIN, 0);
	log_delivery(&rec);
	snprintf(want, sizeof(want),
		 "2026-03-04T05:06:07.089Z relayshim[%ld]: NOQUEUE: from=<>, to=, relay=none, "
		 "delay=0.00, size=10, "
		 "status=failed (connect refused)\n",
		 (long)getpid());
	ck_assert_str_eq(logged(), want);
}
END_TEST

START_TEST(json_delivery_line_has_every_field)
{
	struct strlist to = two_rcpts();
	struct log_record rec = {LOG_LEVEL_INFO,
				 "4F2A1B",
				 "app@example.com",
				 &to,
				 "relay.example:25",
				 "sent",
				 "2.0.0",
				 0.1234,
				 1234,
				 "250 2.0.0 Ok: queued as 9C3D",
				 0,
				 0,
				 0};

	char want[1024];

	use(LOG_FORMAT_JSON, 0);
	log_delivery(&rec);
	snprintf(
	    want, sizeof(want),
	    "{\"time\":\"2026-03-04T05:06:07.089Z\",\"level\":\"info\"%s,\"queue_id\":\"4F2A1B\","
	    "\"from\":\"app@example.com\",\"to\":[\"dev@example.com\",\"ops@example.org\"],"
	    "\"relay\":\"relay.example:25\",\"status\":\"sent\",\"dsn\":\"2.0.0\",\"delay\":0.123,"
	    "\"size\":1234,\"message\":\"250 2.0.0 Ok: queued as 9C3D\"}\n",
	    host_uid(getuid()));
	ck_assert_str_eq(logged(), want);
	strlist_free(&to);
}
END_TEST

START_TEST(json_delivery_unknown_fields_are_null)
{
	struct log_record rec = {LOG_LEVEL_WARNING, 0, "", 0, 0, "deferred", 0, 1.5, 0, 0, 0, 0, 0};

	char want[1024];

	use(LOG_FORMAT_JSON, 0);
	log_delivery(&rec);
	snprintf(want, sizeof(want),
		 "{\"time\":\"2026-03-04T05:06:07.089Z\",\"level\":\"warning\"%s,\"queue_id\":null,"
		 "\"from\":\"\",\"to\":[],\"relay\":null,\"status\":\"deferred\",\"dsn\":null,"
		 "\"delay\":1.500,\"size\":0,\"message\":\"\"}\n",
		 host_uid(getuid()));
	ck_assert_str_eq(logged(), want);
}
END_TEST

START_TEST(json_message_line)
{
	char want[1024];

	use(LOG_FORMAT_JSON, 0);
	log_msg(LOG_LEVEL_WARNING, "queue %s is full", "/var/spool/relayshim");
	snprintf(want, sizeof(want),
		 "{\"time\":\"2026-03-04T05:06:07.089Z\",\"level\":\"warning\"%s,"
		 "\"message\":\"queue /var/spool/relayshim is full\"}\n",
		 host_uid(getuid()));
	ck_assert_str_eq(logged(), want);
}
END_TEST

START_TEST(json_delivery_carries_the_submitters_uid)
{
	struct log_record rec = {
	    LOG_LEVEL_INFO, "Q1", "a@example.com", 0, 0, "sent", 0, 0, 1, 0, 0, 33, 1};

	/* Root's worker delivering www-data's queued mail: the line names www-data. */
	use(LOG_FORMAT_JSON, 0);
	log_delivery(&rec);
	ck_assert_ptr_nonnull(strstr(logged(), host_uid(33)));
}
END_TEST

START_TEST(plain_message_line_has_level_prefix_except_info)
{
	char want[256];

	use(LOG_FORMAT_PLAIN, 0);
	log_msg(LOG_LEVEL_INFO, "hello");
	log_msg(LOG_LEVEL_ERROR, "broken");
	snprintf(want, sizeof(want),
		 "2026-03-04T05:06:07.089Z relayshim[%ld]: hello\n"
		 "2026-03-04T05:06:07.089Z relayshim[%ld]: error: broken\n",
		 (long)getpid(), (long)getpid());
	ck_assert_str_eq(logged(), want);
}
END_TEST

START_TEST(plain_message_cannot_split_the_line)
{
	use(LOG_FORMAT_PLAIN, 0);
	log_msg(LOG_LEVEL_INFO, "reply: %s", "250 ok\r\nfake: line\x1b[31m");
	ck_assert_ptr_nonnull(strstr(logged(), "reply: 250 ok\\x0d\\x0afake: line\\x1b[31m\n"));
	ck_assert_ptr_null(strchr(logged(), '\r'));
}
END_TEST

START_TEST(levels_below_the_threshold_are_dropped)
{
	cfg.log_level = LOG_LEVEL_WARNING;
	use(LOG_FORMAT_PLAIN, 0);
	log_msg(LOG_LEVEL_DEBUG, "debug line");
	log_msg(LOG_LEVEL_INFO, "info line");
	log_msg(LOG_LEVEL_WARNING, "warning line");
	ck_assert_ptr_null(strstr(logged(), "debug line"));
	ck_assert_ptr_null(strstr(logged(), "info line"));
	ck_assert_ptr_nonnull(strstr(logged(), "warning: warning line"));
}
END_TEST

START_TEST(debug_level_lets_debug_lines_through)
{
	cfg.log_level = LOG_LEVEL_DEBUG;
	use(LOG_FORMAT_PLAIN, 0);
	log_msg(LOG_LEVEL_DEBUG, "details");
	ck_assert_ptr_nonnull(strstr(logged(), "debug: details"));
}
END_TEST

/* ---------------------------------------------------------------- */
/* JSON string escaping                                             */

static const char *json(const char *s, size_t n)
{
	buf_reset(&out);
	log_json_string(&out, s, n);
	return buf_cstr(&out);
}

START_TEST(json_escapes_quotes_and_backslash)
{
	ck_assert_str_eq(json("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
}
END_TEST

START_TEST(json_escapes_control_characters)
{
	ck_assert_str_eq(json("\r\n\t\x01\x1f\x7f", 6), "\"\\r\\n\\t\\u0001\\u001f\\u007f\"");
}
END_TEST

START_TEST(json_escapes_nul)
{
	ck_assert_str_eq(json("a\0b", 3), "\"a\\u0000b\"");
}
END_TEST

START_TEST(json_keeps_valid_utf8)
{
	ck_assert_str_eq(json("Pel\xc3\xa9 \xe6\x88\x91 \xf0\x9f\x93\xa7", 14),
			 "\"Pel\xc3\xa9 \xe6\x88\x91 \xf0\x9f\x93\xa7\"");
}
END_TEST

START_TEST(json_replaces_invalid_utf8)
{
	/* lone continuation, truncated sequence, overlong "/", surrogate, latin-1 byte */
	ck_assert_str_eq(json("\x80|\xe6\x88|\xc0\xaf|\xed\xa0\x80|\xe9", 13),
			 "\"\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\"");
}
END_TEST

/* ---------------------------------------------------------------- */
/* Targets                                                          */

START_TEST(file_target_appends)
{
	FILE *f = fopen(logfile, "w");

	fputs("earlier line\n", f);
	fclose(f);
	use(LOG_FORMAT_PLAIN, 0);
	log_msg(LOG_LEVEL_INFO, "new line");
	ck_assert_ptr_nonnull(strstr(logged(), "earlier line\n"));
	ck_assert_ptr_nonnull(strstr(logged(), "new line\n"));
}
END_TEST

START_TEST(proc_fd_path_reaches_a_pipe)
{
	int p[2];
	char path[64], data[512];
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	snprintf(path, sizeof(path), "/proc/%ld/fd/%d", (long)getpid(), p[1]);
	free(cfg.log_target);
	cfg.log_target = strdup(path);
	log_setup(&cfg);
	log_msg(LOG_LEVEL_INFO, "to docker logs");
	log_close();
	close(p[1]);
	n = read(p[0], data, sizeof(data) - 1);
	ck_assert_int_gt(n, 0);
	data[n] = 0;
	ck_assert_ptr_nonnull(strstr(data, "to docker logs\n"));
	close(p[0]);
}
END_TEST

/* with_stderr_captured - run f with fd 2 redirected to a file; return what it wrote */

static const char *with_stderr_captured(void (*f)(void))
{
	static char data[4096];
	char path[] = "/tmp/test_log_err.XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	dup2(fd, 2);
	f();
	dup2(saved, 2);
	close(saved);
	n = pread(fd, data, sizeof(data) - 1, 0);
	data[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
	return data;
}

static void log_to_none(void)
{
	free(cfg.log_target);
	cfg.log_target = strdup("none");
	log_setup(&cfg);
	log_msg(LOG_LEVEL_ERROR, "nobody hears this");
}

START_TEST(none_target_writes_nothing)
{
	ck_assert_str_eq(with_stderr_captured(log_to_none), "");
}
END_TEST

static void log_to_stderr(void)
{
	free(cfg.log_target);
	cfg.log_target = strdup("stderr");
	log_setup(&cfg);
	log_msg(LOG_LEVEL_INFO, "on stderr");
}

START_TEST(stderr_target_has_no_time_stamp)
{
	char want[128];

	snprintf(want, sizeof(want), "relayshim[%ld]: on stderr\n", (long)getpid());
	ck_assert_str_eq(with_stderr_captured(log_to_stderr), want);
}
END_TEST

static void log_before_setup(void)
{
	log_close();
	log_msg(LOG_LEVEL_WARNING, "early");
}

START_TEST(before_setup_lines_go_to_stderr)
{
	ck_assert_ptr_nonnull(strstr(with_stderr_captured(log_before_setup), "warning: early\n"));
}
END_TEST

static void log_to_unwritable(void)
{
	free(cfg.log_target);
	cfg.log_target = strdup("/nonexistent/dir/mail.log");
	log_setup(&cfg);
	log_msg(LOG_LEVEL_INFO, "still logged");
}

START_TEST(unopenable_file_falls_back_to_stderr_with_a_warning)
{
	const char *err = with_stderr_captured(log_to_unwritable);

	ck_assert_ptr_nonnull(strstr(err, "cannot open log file /nonexistent/dir/mail.log"));
	ck_assert_ptr_nonnull(strstr(err, "still logged\n"));
}
END_TEST

static void log_to_file_and_stderr(void)
{
	char target[128];

	snprintf(target, sizeof(target), "stderr,%s", logfile);
	free(cfg.log_target);
	cfg.log_target = strdup(target);
	log_setup(&cfg);
	log_msg(LOG_LEVEL_INFO, "twice");
}

START_TEST(several_targets_each_get_the_line)
{
	ck_assert_ptr_nonnull(strstr(with_stderr_captured(log_to_file_and_stderr), "twice\n"));
	ck_assert_ptr_nonnull(strstr(logged(), "twice\n"));
}
END_TEST

static void log_to_syslog(void)
{
	free(cfg.log_target);
	cfg.log_target = strdup("syslog");
	log_setup(&cfg);
	log_msg(LOG_LEVEL_INFO, "to syslog only");
	log_close();
}

START_TEST(syslog_target_does_not_write_to_stderr)
{
	ck_assert_str_eq(with_stderr_captured(log_to_syslog), "");
}
END_TEST

START_TEST(delivery_line_addresses_are_anonymised)
{
	struct strlist to = two_rcpts();
	struct log_record rec = {LOG_LEVEL_INFO,
				 "Q1",
				 "app@example.com",
				 &to,
				 "relay:25",
				 "bounced",
				 "5.7.1",
				 0,
				 1,
				 "554 5.7.1 <dev@example.com>: Recipient address rejected",
				 0,
				 0,
				 0};

	use(LOG_FORMAT_PLAIN, "smart");
	log_delivery(&rec);
	ck_assert_ptr_nonnull(
	    strstr(logged(), "from=<a*p@*******.com>, to=<d*v@*******.com>,<o*s@*******.org>"));
	ck_assert_ptr_nonnull(
	    strstr(logged(), "(554 5.7.1 <d*v@*******.com>: Recipient address rejected)"));
	ck_assert_ptr_null(strstr(logged(), "example"));
	strlist_free(&to);
}
END_TEST

START_TEST(json_delivery_addresses_are_anonymised)
{
	struct strlist to = two_rcpts();
	struct log_record rec = {LOG_LEVEL_INFO,
				 "Q1",
				 "app@example.com",
				 &to,
				 "relay:25",
				 "sent",
				 "2.0.0",
				 0,
				 1,
				 "250 ok",
				 0,
				 0,
				 0};

	use(LOG_FORMAT_JSON, "paranoid");
	log_delivery(&rec);
	ck_assert_ptr_nonnull(
	    strstr(logged(), "\"from\":\"*@*.com\",\"to\":[\"*@*.com\",\"*@*.org\"]"));
	strlist_free(&to);
}
END_TEST

START_TEST(message_lines_are_anonymised)
{
	use(LOG_FORMAT_PLAIN, "smart");
	log_msg(LOG_LEVEL_WARNING, "sender %s is not in %s", "root@3f2a1b9c0d1e", "example.com");
	ck_assert_ptr_nonnull(strstr(logged(), "sender r*t@************ is not in example.com"));
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, plain_delivery_line_is_postfix_like);
	tcase_add_test(tc, plain_delivery_without_queue_id_relay_or_dsn);
	tcase_add_test(tc, json_delivery_line_has_every_field);
	tcase_add_test(tc, json_delivery_unknown_fields_are_null);
	tcase_add_test(tc, json_message_line);
	tcase_add_test(tc, json_delivery_carries_the_submitters_uid);
	tcase_add_test(tc, plain_message_line_has_level_prefix_except_info);
	tcase_add_test(tc, plain_message_cannot_split_the_line);
	tcase_add_test(tc, levels_below_the_threshold_are_dropped);
	tcase_add_test(tc, debug_level_lets_debug_lines_through);
	tcase_add_test(tc, json_escapes_quotes_and_backslash);
	tcase_add_test(tc, json_escapes_control_characters);
	tcase_add_test(tc, json_escapes_nul);
	tcase_add_test(tc, json_keeps_valid_utf8);
	tcase_add_test(tc, json_replaces_invalid_utf8);
	tcase_add_test(tc, file_target_appends);
	tcase_add_test(tc, proc_fd_path_reaches_a_pipe);
	tcase_add_test(tc, none_target_writes_nothing);
	tcase_add_test(tc, stderr_target_has_no_time_stamp);
	tcase_add_test(tc, before_setup_lines_go_to_stderr);
	tcase_add_test(tc, unopenable_file_falls_back_to_stderr_with_a_warning);
	tcase_add_test(tc, several_targets_each_get_the_line);
	tcase_add_test(tc, syslog_target_does_not_write_to_stderr);
	tcase_add_test(tc, delivery_line_addresses_are_anonymised);
	tcase_add_test(tc, json_delivery_addresses_are_anonymised);
	tcase_add_test(tc, message_lines_are_anonymised);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
