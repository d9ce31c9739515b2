/* test_endpoint - loopback endpoint lists (contract in endpoint.h) */

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "endpoint.h"

START_TEST(endpoints_default_and_localhost)
{
	struct endpoint *eps;
	size_t n;
	struct error err;

	ck_assert_int_eq(endpoint_parse("127.0.0.1:25 [::1]:25", &eps, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(eps[0].text, "127.0.0.1:25");
	ck_assert_str_eq(eps[1].text, "[::1]:25");
	free(eps);
	ck_assert_int_eq(endpoint_parse("localhost:2525,127.0.0.1:2525, 127.0.0.2", &eps, &n, &err),
			 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(eps[0].text, "127.0.0.1:2525");
	ck_assert_str_eq(eps[1].text, "[::1]:2525");
	ck_assert_str_eq(eps[2].text, "127.0.0.2:25");
	free(eps);
	ck_assert_int_eq(endpoint_parse("::1", &eps, &n, &err), 0);
	ck_assert_str_eq(eps[0].text, "[::1]:25");
	free(eps);
	ck_assert_int_eq(endpoint_parse("[::ffff:127.0.0.1]:2525", &eps, &n, &err), 0);
	ck_assert_str_eq(eps[0].text, "127.0.0.1:2525");
	free(eps);
}
END_TEST

START_TEST(endpoints_must_be_loopback_and_well_formed)
{
	struct endpoint *eps;
	size_t n;
	struct error err;

	ck_assert_int_eq(endpoint_parse("0.0.0.0:25", &eps, &n, &err), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "not a loopback address"));
	ck_assert_int_eq(endpoint_parse("[::]:25", &eps, &n, &err), EX_CONFIG);
	ck_assert_int_eq(endpoint_parse("10.0.0.1", &eps, &n, &err), EX_CONFIG);
	ck_assert_int_eq(endpoint_parse("[::ffff:10.0.0.1]:25", &eps, &n, &err), EX_CONFIG);
	ck_assert_int_eq(endpoint_parse("127.0.0.1:0", &eps, &n, &err), EX_CONFIG);
	ck_assert_int_eq(endpoint_parse("127.0.0.1:99999", &eps, &n, &err), EX_CONFIG);
	ck_assert_int_eq(endpoint_parse("[::1", &eps, &n, &err), EX_CONFIG);
	ck_assert_int_eq(endpoint_parse("mail.example.com:25", &eps, &n, &err), EX_CONFIG);
	ck_assert_int_eq(endpoint_parse(" ", &eps, &n, &err), EX_CONFIG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("endpoint");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, endpoints_default_and_localhost);
	tcase_add_test(tc, endpoints_must_be_loopback_and_well_formed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
