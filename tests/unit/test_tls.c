/* test_tls - which settings forbid a plain-text relay session (tls_required_by) */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tls.h"

static struct config cfg;
static struct error err;

static void setup(void)
{
	config_init(&cfg);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(config_set(&cfg, "relay", "host", "relay.test", &err), 0);
}

static void teardown(void)
{
	config_free(&cfg);
}

/* set - one [relay] key; the configuration is finished by required() */

static void set(const char *key, const char *value)
{
	ck_assert_int_eq(config_set(&cfg, "relay", key, value, &err), 0);
}

/* required - tls_required_by() of the finished configuration, "" for NULL */

static const char *required(void)
{
	const char *r;

	ck_assert_msg(config_finish(&cfg, &err) == 0, "%s", err.text);
	r = tls_required_by(&cfg);
	return r ? r : "";
}

static const char pin[] = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
			  "AB:CD:EF:01:23:45:67:89";

START_TEST(may_alone_is_opportunistic)
{
	set("tls", "may");
	ck_assert_str_eq(required(), "");
}
END_TEST

START_TEST(none_is_plain_text)
{
	set("tls", "none");
	ck_assert_str_eq(required(), "");
}
END_TEST

START_TEST(may_with_a_pin_is_mandatory)
{
	set("tls", "may");
	set("tls_fingerprint", pin);
	ck_assert_str_eq(required(), "tls_fingerprint");
}
END_TEST

START_TEST(may_with_verify_yes_is_mandatory)
{
	set("tls", "may");
	set("tls_verify", "yes");
	ck_assert_str_eq(required(), "tls_verify = yes");
}
END_TEST

START_TEST(may_with_verify_no_stays_opportunistic)
{
	set("tls", "may");
	set("tls_verify", "no");
	ck_assert_str_eq(required(), "");
}
END_TEST

START_TEST(starttls_and_tls_name_the_level)
{
	set("tls", "starttls");
	set("tls_fingerprint", pin);
	ck_assert_str_eq(required(), "tls = starttls");
	config_free(&cfg);
	setup();
	set("tls", "tls");
	ck_assert_str_eq(required(), "tls = tls");
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("required");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, may_alone_is_opportunistic);
	tcase_add_test(tc, none_is_plain_text);
	tcase_add_test(tc, may_with_a_pin_is_mandatory);
	tcase_add_test(tc, may_with_verify_yes_is_mandatory);
	tcase_add_test(tc, may_with_verify_no_stays_opportunistic);
	tcase_add_test(tc, starttls_and_tls_name_the_level);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
