/* test_queue_limits - the DUR and N arguments of mailq --status (contract in queue_limits.h) */

#include <check.h>
#include <stdlib.h>

#include "queue_limits.h"

static unsigned long long dur(const char *s)
{
	unsigned long long ms = 12345;

	ck_assert_msg(queue_parse_duration(s, &ms) == 0, "\"%s\" refused", s);
	return ms;
}

static int dur_refused(const char *s)
{
	unsigned long long ms = 12345;

	return queue_parse_duration(s, &ms) == -1 && ms == 12345;
}

START_TEST(duration_units_and_plain_seconds)
{
	ck_assert_uint_eq(dur("8s"), 8000);
	ck_assert_uint_eq(dur("2m"), 120000);
	ck_assert_uint_eq(dur("90"), 90000);
	ck_assert_uint_eq(dur("500ms"), 500);
	ck_assert_uint_eq(dur("1h"), 3600000);
	ck_assert_uint_eq(dur("2d"), 172800000);
	ck_assert_uint_eq(dur("1w"), 604800000);
	ck_assert_uint_eq(dur("0"), 0);
}
END_TEST

START_TEST(duration_refuses_anything_else)
{
	ck_assert(dur_refused(""));
	ck_assert(dur_refused("s"));
	ck_assert(dur_refused("-1"));
	ck_assert(dur_refused("+8s"));
	ck_assert(dur_refused(" 8s"));
	ck_assert(dur_refused("8 s"));
	ck_assert(dur_refused("8s "));
	ck_assert(dur_refused("8x"));
	ck_assert(dur_refused("1.5s"));
	ck_assert(dur_refused("8S"));
	ck_assert(dur_refused("99999999999999999999"));
	ck_assert(dur_refused("18446744073709551w"));
	ck_assert(dur_refused(NULL));
}
END_TEST

START_TEST(count_is_decimal_only)
{
	unsigned long n = 7;

	ck_assert_int_eq(queue_parse_count("100", &n), 0);
	ck_assert_uint_eq(n, 100);
	ck_assert_int_eq(queue_parse_count("0", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(queue_parse_count("", &n), -1);
	ck_assert_int_eq(queue_parse_count("-1", &n), -1);
	ck_assert_int_eq(queue_parse_count("10k", &n), -1);
	ck_assert_int_eq(queue_parse_count("99999999999999999999999", &n), -1);
	ck_assert_uint_eq(n, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("queue_limits");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, duration_units_and_plain_seconds);
	tcase_add_test(tc, duration_refuses_anything_else);
	tcase_add_test(tc, count_is_decimal_only);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
