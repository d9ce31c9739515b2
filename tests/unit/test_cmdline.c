/* test_cmdline - the sendmail command line, as real callers give it */

#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cmdline.h"

static struct cmdline cl;
static struct error err;

/* parse - NULL-terminated argument list */

static int parse(const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	const char *a;

	argv[argc++] = (char *)"sendmail";
	va_start(ap, first);
	for (a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = 0;
	error_clear(&err);
	return cmdline_parse(&cl, argc, argv, &err);
}

static void teardown(void)
{
	cmdline_free(&cl);
}

START_TEST(php_mail_t_i)
{
	ck_assert_int_eq(parse("-t", "-i", NULL), 0);
	ck_assert(cl.extract_recipients);
	ck_assert(cl.ignore_dots);
	ck_assert_int_eq(cl.mode, CMD_DELIVER);
	ck_assert_uint_eq(cl.args.n, 0);
}
END_TEST

START_TEST(phpmailer_repeated_flags_and_attached_sender)
{
	ck_assert_int_eq(parse("-t", "-i", "-oi", "-fapp@example.com", "-t", NULL), 0);
	ck_assert(cl.extract_recipients);
	ck_assert_str_eq(cl.sender, "app@example.com");
}
END_TEST

START_TEST(debian_cron_comma_list_in_one_argument)
{
	ck_assert_int_eq(parse("-FCronDaemon", "-i", "-B8BITMIME", "-oem",
			       "ops@example.org,second@example.org", NULL),
			 0);
	ck_assert_str_eq(cl.fullname, "CronDaemon");
	ck_assert_uint_eq(cl.args.n, 2);
	ck_assert_str_eq(cl.args.v[0], "ops@example.org");
	ck_assert_str_eq(cl.args.v[1], "second@example.org");
}
END_TEST

START_TEST(cronie_separate_sender_value)
{
	ck_assert_int_eq(
	    parse("-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root", NULL), 0);
	ck_assert_str_eq(cl.sender, "root");
	ck_assert(cl.extract_recipients);
}
END_TEST

START_TEST(git_send_email_recipients_without_double_dash)
{
	ck_assert_int_eq(parse("-i", "r1@example.com", "r2@example.com", NULL), 0);
	ck_assert_uint_eq(cl.args.n, 2);
}
END_TEST

START_TEST(mutt_dsn_options_and_double_dash)
{
	ck_assert_int_eq(parse("-oem", "-oi", "-f", "me@example.com", "-N", "failure,delay", "-R",
			       "hdrs", "--", "-odd@example.com", NULL),
			 0);
	ck_assert_str_eq(cl.dsn_notify, "failure,delay");
	ck_assert_str_eq(cl.dsn_ret, "hdrs");
	ck_assert_uint_eq(cl.args.n, 1);
	ck_assert_str_eq(cl.args.v[0], "-odd@example.com");
}
END_TEST

START_TEST(null_sender_in_angle_brackets)
{
	ck_assert_int_eq(parse("-f", "<>", "a@example.com", NULL), 0);
	ck_assert_str_eq(cl.sender, "");
}
END_TEST

START_TEST(angle_brackets_stripped_from_sender)
{
	ck_assert_int_eq(parse("-r<bounce@example.com>", "a@example.com", NULL), 0);
	ck_assert_str_eq(cl.sender, "bounce@example.com");
}
END_TEST

START_TEST(bundled_flags)
{
	ck_assert_int_eq(parse("-ti", NULL), 0);
	ck_assert(cl.extract_recipients);
	ck_assert(cl.ignore_dots);
}
END_TEST

START_TEST(line_break_in_sender_is_a_data_error)
{
	ck_assert_int_eq(
	    parse("-f", "a@example.com\r\nBcc: victim@example.com", "x@example.com", NULL),
	    EX_DATAERR);
}
END_TEST

START_TEST(line_break_in_full_name_is_a_data_error)
{
	ck_assert_int_eq(parse("-FEvil\nBcc: x@y", "x@example.com", NULL), EX_DATAERR);
}
END_TEST

START_TEST(unknown_option_is_usage_error)
{
	ck_assert_int_eq(parse("-X", NULL), EX_USAGE);
	ck_assert_ptr_nonnull(strstr(err.text, "-X"));
}
END_TEST

START_TEST(unknown_long_option_is_usage_error)
{
	ck_assert_int_eq(parse("--frobnicate", NULL), EX_USAGE);
}
END_TEST

START_TEST(missing_value_is_usage_error)
{
	ck_assert_int_eq(parse("-f", NULL), EX_USAGE);
}
END_TEST

START_TEST(modes)
{
	ck_assert_int_eq(parse("-bs", NULL), 0);
	ck_assert_int_eq(cl.mode, CMD_SMTP);
	cmdline_free(&cl);
	ck_assert_int_eq(parse("-bs", "-i", NULL), 0);
	ck_assert_int_eq(cl.mode, CMD_SMTP);
	cmdline_free(&cl);
	ck_assert_int_eq(parse("-bp", NULL), 0);
	ck_assert_int_eq(cl.mode, CMD_LIST_QUEUE);
	cmdline_free(&cl);
	ck_assert_int_eq(parse("-q", NULL), 0);
	ck_assert_int_eq(cl.mode, CMD_RUN_QUEUE);
	cmdline_free(&cl);
	ck_assert_int_eq(parse("-q30m", NULL), 0);
	ck_assert_str_eq(cl.queue_arg, "30m");
	cmdline_free(&cl);
	ck_assert_int_eq(parse("-bv", "root", NULL), 0);
	ck_assert_int_eq(cl.mode, CMD_VERIFY);
	cmdline_free(&cl);
	ck_assert_int_eq(parse("--config-check", NULL), 0);
	ck_assert_int_eq(cl.mode, CMD_CONFIG_CHECK);
	cmdline_free(&cl);
	ck_assert_int_eq(parse("-bz", NULL), EX_USAGE);
}
END_TEST

START_TEST(invoked_as_mailq_lists_the_queue)
{
	char *argv[] = {(char *)"/usr/bin/mailq", 0};

	ck_assert_int_eq(cmdline_parse(&cl, 1, argv, &err), 0);
	ck_assert_int_eq(cl.mode, CMD_LIST_QUEUE);
}
END_TEST

START_TEST(config_path_and_verbose)
{
	ck_assert_int_eq(parse("-C", "/tmp/x.conf", "-v", "a@example.com", NULL), 0);
	ck_assert_str_eq(cl.config_path, "/tmp/x.conf");
	ck_assert(cl.verbose);
}
END_TEST

START_TEST(empty_pieces_of_comma_list_are_dropped)
{
	ck_assert_int_eq(parse("a@example.com, ,b@example.com,", NULL), 0);
	ck_assert_uint_eq(cl.args.n, 2);
	ck_assert_str_eq(cl.args.v[1], "b@example.com");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cmdline");
	TCase *tc = tcase_create("callers");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, php_mail_t_i);
	tcase_add_test(tc, phpmailer_repeated_flags_and_attached_sender);
	tcase_add_test(tc, debian_cron_comma_list_in_one_argument);
	tcase_add_test(tc, cronie_separate_sender_value);
	tcase_add_test(tc, git_send_email_recipients_without_double_dash);
	tcase_add_test(tc, mutt_dsn_options_and_double_dash);
	tcase_add_test(tc, null_sender_in_angle_brackets);
	tcase_add_test(tc, angle_brackets_stripped_from_sender);
	tcase_add_test(tc, bundled_flags);
	tcase_add_test(tc, line_break_in_sender_is_a_data_error);
	tcase_add_test(tc, line_break_in_full_name_is_a_data_error);
	tcase_add_test(tc, unknown_option_is_usage_error);
	tcase_add_test(tc, unknown_long_option_is_usage_error);
	tcase_add_test(tc, missing_value_is_usage_error);
	tcase_add_test(tc, modes);
	tcase_add_test(tc, invoked_as_mailq_lists_the_queue);
	tcase_add_test(tc, config_path_and_verbose);
	tcase_add_test(tc, empty_pieces_of_comma_list_are_dropped);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
