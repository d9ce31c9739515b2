/* test_anonymize - boky/postfix-compatible address anonymisation (contract in anonymize.h) */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "anonymize.h"
#include "buf.h"

static struct buf out;

static void teardown(void)
{
	buf_free(&out);
}

/* ---------------------------------------------------------------- */
/* Anonymisation: boky/postfix's own test vectors                   */

static const char *anon(const char *spec, const char *addr)
{
	struct anonymizer *an = 0;
	struct buf why = BUF_INIT;

	ck_assert_msg(anonymizer_parse(spec, &an, &why) == 0, "%s: %s", spec, buf_cstr(&why));
	buf_reset(&out);
	anonymize_address(an, &out, addr, strlen(addr));
	anonymizer_free(an);
	buf_free(&why);
	return buf_cstr(&out);
}

static const char *boky_emails[] = {
    "prettyandsimple@example.com",
    "very.common@example.com",
    "disposable.style.email.with+symbol@example.com",
    "other.email-with-dash@example.com",
    "x@example.com",
    "\"much.more unusual\"@example.com",
    "\"very.unusual.@.unusual.com\"@example.com",
    "\"very.(),:;<>[]\\\".VERY.\\\"very@\\\\ \\\"very\\\".unusual\"@strange.example.com",
    "example-indeed@strange-example.com",
    "admin@mailserver1",
    "#!$%&'*+-/=?^_`{}|~@example.org",
    "\"()<>[]:,;@\\\\\\\"!#$%&'-/=?^_`{}| ~.a\"@example.org",
    "\" \"@example.org",
    "example@localhost",
    "example@s.solutions",
    "user@com",
    "user@localserver",
    "user@[127.0.0.1]",
    "user@[IPv6:2001:db8::1]",
    "Pel\xc3\xa9@example.com",
    "δοκιμή@παράδειγμα.δοκιμή",
    "我買@屋企.香港",
    "二ノ宮@黒川.日本",
    "медведь@с-балалайкой.рф",
    "संपर्क@डाटामेल.भारत",
};

static const char *boky_smart[] = {
    "p#e@#######.com",	       "v#n@#######.com",
    "d#l@#######.com",	       "o#h@#######.com",
    "x#x@#######.com",	       "\"m#l\"@#######.com",
    "\"v#m\"@#######.com",     "\"v#l\"@###############.com",
    "e#d@###############.com", "a#n@###########",
    "##~@#######.org",	       "\"(#a\"@#######.org",
    "\" # \"@#######.org",     "e#e@#########",
    "e#e@#.solutions",	       "u#r@###",
    "u#r@###########",	       "u#r@[#.#.#.#]",
    "u#r@[IPv6:###########]",  "P#\xc3\xa9@#######.com",
    "δ#ή@##########.δοκιμή",   "我#買@##.香港",
    "二#宮@##.日本",	       "м#ь@############.рф",
    "स#क@#######.भारत",
};

static const char *boky_paranoid[] = {
    "*@*.com",	     "*@*.com",	 "*@*.com", "*@*.com",	"*@*.com",    "*@*.com", "*@*.com",
    "*@*.com",	     "*@*.com",	 "*@*",	    "*@*.org",	"*@*.org",    "*@*.org", "*@*",
    "*@*.solutions", "*@*",	 "*@*",	    "*@[*]",	"*@[IPv6:*]", "*@*.com", "*@*.δοκιμή",
    "*@*.香港",	     "*@*.日本", "*@*.рф",  "*@*.भारत",
};

START_TEST(smart_matches_boky_test_vectors)
{
	ck_assert_str_eq(anon("smart?mask_symbol=%23", boky_emails[_i]), boky_smart[_i]);
}
END_TEST

START_TEST(paranoid_matches_boky_test_vectors)
{
	ck_assert_str_eq(anon("paranoid", boky_emails[_i]), boky_paranoid[_i]);
}
END_TEST

START_TEST(smart_readme_example)
{
	ck_assert_str_eq(anon("smart", "demo@example.org"), "d*o@*******.org");
	ck_assert_str_eq(anon("smart", "john.doe@example.solutions"), "j*e@*******.solutions");
	ck_assert_str_eq(anon("smart", "sa@localhost"), "s*a@*********");
	ck_assert_str_eq(anon("smart", "s@[192.168.8.10]"), "s*s@[*.*.*.*]");
}
END_TEST

START_TEST(smart_aliases_of_boky_all_select_smart)
{
	static const char *names[] = {"default", "true", "1", "yes", "y", "on", "SMART"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_str_eq(anon(names[i], "demo@example.org"), "d*o@*******.org");
}
END_TEST

START_TEST(hash_matches_boky_test_vector)
{
	ck_assert_str_eq(anon("hash?salt=hello%20world", "prettyandsimple@example.com"),
			 "3052a860ddfde8b50e39843d8f1c9f591bec442823d97948b811d38779e2c757");
}
END_TEST

START_TEST(hash_is_case_sensitive_by_default)
{
	ck_assert_str_ne(anon("hash?salt=hello%20world", "PRETTYANDSIMPLE@EXAMPLE.COM"),
			 "3052a860ddfde8b50e39843d8f1c9f591bec442823d97948b811d38779e2c757");
}
END_TEST

START_TEST(hash_case_insensitive_lowercases_first)
{
	ck_assert_str_eq(
	    anon("hash?salt=hello%20world&case_sensitive=false", "PRETTYANDSIMPLE@EXAMPLE.COM"),
	    "3052a860ddfde8b50e39843d8f1c9f591bec442823d97948b811d38779e2c757");
}
END_TEST

START_TEST(hash_split_hashes_local_and_domain_apart)
{
	ck_assert_str_eq(anon("hash?salt=hello+world&case_sensitive=false&split=1",
			      "PRETTYANDSIMPLE@EXAMPLE.COM"),
			 "c58731d3c6216c2cd1b62408c904da3b0678dabeffb82b52ac371c969ebef9df@"
			 "8bd7a35c91efae81e642e50c7432d16aaa708ebe8f91212a6e5f50843e1cbf97");
}
END_TEST

START_TEST(hash_short_sha_with_prefix_and_suffix)
{
	ck_assert_str_eq(
	    anon(
		"hash?salt=hello%20world&case_sensitive=no&split=yes&short_sha=t&prefix=~&suffix=~",
		"PRETTYANDSIMPLE@EXAMPLE.COM"),
	    "~c58731d3@8bd7a35c~");
}
END_TEST

START_TEST(noop_passes_addresses_through)
{
	ck_assert_str_eq(anon("noop", "demo@example.org"), "demo@example.org");
}
END_TEST

START_TEST(off_values_give_no_anonymizer)
{
	static const char *offs[] = {"", "0", "no", "false", "off", "  "};

	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		struct anonymizer *an = (struct anonymizer *)1;
		struct buf why = BUF_INIT;

		ck_assert_int_eq(anonymizer_parse(offs[i], &an, &why), 0);
		ck_assert_ptr_null(an);
	}
}
END_TEST

START_TEST(bad_specs_are_refused_with_a_reason)
{
	static const char *bad[] = {"on-ish",
				    "hash",
				    "hash?salt=",
				    "hash?salt=x&",
				    "hash?salt",
				    "hash?salt=x&bogus=1",
				    "hash?salt=x&split=perhaps",
				    "smart?salt=x"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct anonymizer *an = 0;
		struct buf why = BUF_INIT;

		ck_assert_msg(anonymizer_parse(bad[i], &an, &why) == -1, "%s accepted", bad[i]);
		ck_assert_msg(why.len > 0, "%s: no reason", bad[i]);
		ck_assert_ptr_null(an);
		buf_free(&why);
	}
}
END_TEST

START_TEST(value_without_at_sign_is_left_alone)
{
	ck_assert_str_eq(anon("smart", "root"), "root");
}
END_TEST

/* ---------------------------------------------------------------- */
/* Anonymisation in whole lines                                     */

static const char *anon_text(const char *spec, const char *text)
{
	struct anonymizer *an = 0;
	struct buf why = BUF_INIT;

	ck_assert_int_eq(anonymizer_parse(spec, &an, &why), 0);
	buf_reset(&out);
	anonymize_text(an, &out, text, strlen(text));
	anonymizer_free(an);
	buf_free(&why);
	return buf_cstr(&out);
}

START_TEST(text_masks_addresses_in_a_relay_reply)
{
	ck_assert_str_eq(
	    anon_text("smart",
		      "554 5.7.1 <root@3f2a1b9c0d1e>: Recipient address rejected: Access denied"),
	    "554 5.7.1 <r*t@************>: Recipient address rejected: Access denied");
}
END_TEST

START_TEST(text_masks_several_addresses)
{
	ck_assert_str_eq(anon_text("paranoid", "from=a@b.example.com to=c@d.org, e@f.net"),
			 "from=*@*.com to=*@*.org, *@*.net");
}
END_TEST

START_TEST(text_leaves_message_id_alone)
{
	ck_assert_str_eq(
	    anon_text("smart", "message-id=<20211207101128.0805BA272@31bfa77a2cab> from=<a@b.com>"),
	    "message-id=<20211207101128.0805BA272@31bfa77a2cab> from=<a*a@*.com>");
}
END_TEST

START_TEST(text_without_addresses_is_unchanged)
{
	ck_assert_str_eq(anon_text("smart", "250 2.0.0 Ok: queued as 4F2A1B @ noon"),
			 "250 2.0.0 Ok: queued as 4F2A1B @ noon");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("anonymize");
	TCase *tc = tcase_create("anonymize");
	size_t nvec = sizeof(boky_emails) / sizeof(boky_emails[0]);
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, 0, teardown);
	tcase_add_loop_test(tc, smart_matches_boky_test_vectors, 0, nvec);
	tcase_add_loop_test(tc, paranoid_matches_boky_test_vectors, 0, nvec);
	tcase_add_test(tc, smart_readme_example);
	tcase_add_test(tc, smart_aliases_of_boky_all_select_smart);
	tcase_add_test(tc, hash_matches_boky_test_vector);
	tcase_add_test(tc, hash_is_case_sensitive_by_default);
	tcase_add_test(tc, hash_case_insensitive_lowercases_first);
	tcase_add_test(tc, hash_split_hashes_local_and_domain_apart);
	tcase_add_test(tc, hash_short_sha_with_prefix_and_suffix);
	tcase_add_test(tc, noop_passes_addresses_through);
	tcase_add_test(tc, off_values_give_no_anonymizer);
	tcase_add_test(tc, bad_specs_are_refused_with_a_reason);
	tcase_add_test(tc, value_without_at_sign_is_left_alone);
	tcase_add_test(tc, text_masks_addresses_in_a_relay_reply);
	tcase_add_test(tc, text_masks_several_addresses);
	tcase_add_test(tc, text_leaves_message_id_alone);
	tcase_add_test(tc, text_without_addresses_is_unchanged);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
