/* test_deadline - waiting for a descriptor until a deadline (contract in deadline.h) */

#include <check.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "deadline.h"

START_TEST(a_passed_deadline_returns_0_without_waiting)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(deadline_wait(p[0], POLLIN, deadline_now_ms() - 1), 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(a_quiet_descriptor_times_out_at_the_deadline)
{
	int p[2];
	long long start = deadline_now_ms();

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(deadline_wait(p[0], POLLIN, start + 50), 0);
	ck_assert_int_ge(deadline_now_ms() - start, 50);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(a_ready_descriptor_returns_1)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(deadline_wait(p[0], POLLIN, deadline_now_ms() + 10000), 1);
	close(p[1]);
	close(p[0]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("deadline");
	TCase *tc = tcase_create("wait");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, a_passed_deadline_returns_0_without_waiting);
	tcase_add_test(tc, a_quiet_descriptor_times_out_at_the_deadline);
	tcase_add_test(tc, a_ready_descriptor_returns_1);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
