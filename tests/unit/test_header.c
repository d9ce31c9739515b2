/* test_header - the header model: parse, find, edit, serialise byte-exact */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "header.h"

static struct header h;
static struct buf out;

static void teardown(void)
{
	header_free(&h);
	buf_free(&out);
}

/* load - parse a C string */

static void load(const char *text)
{
	header_free(&h);
	header_parse(&h, text, strlen(text));
}

/* dump - serialise into out, return it as a C string */

static const char *dump(void)
{
	buf_reset(&out);
	header_serialize(&h, &out);
	return buf_cstr(&out);
}

static const char sample[] = "Received: from a by b;\r\n"
			     "\tWed, 1 Jan 2025 00:00:00 +0000\r\n"
			     "From: \"Sender, The\" <s@example.com>\r\n"
			     "To: a@example.com,\r\n"
			     "  b@example.com\r\n"
			     "X-Unknown-Header:    odd   spacing   \r\n"
			     "Subject : obsolete space before colon\r\n"
			     "bcc: hidden@example.com\r\n"
			     "DKIM-Signature: v=1; a=rsa-sha256;\r\n"
			     "\tb=abc\r\n";

START_TEST(untouched_header_serialises_byte_exact)
{
	load(sample);
	ck_assert_uint_eq(h.n, 7);
	ck_assert_str_eq(dump(), sample);
}
END_TEST

START_TEST(continuation_lines_belong_to_their_field)
{
	size_t len;
	const char *v;

	load(sample);
	v = header_value(h.v + 2, &len);
	ck_assert_uint_eq(len, strlen(" a@example.com,\r\n  b@example.com"));
	ck_assert_int_eq(memcmp(v, " a@example.com,\r\n  b@example.com", len), 0);
}
END_TEST

START_TEST(names_match_ignoring_case_and_obsolete_space)
{
	load(sample);
	ck_assert_int_eq(header_find(&h, "BCC", 0), 5);
	ck_assert_int_eq(header_find(&h, "subject", 0), 4);
	ck_assert_int_eq(header_find(&h, "to", 0), 2);
	ck_assert_int_eq(header_find(&h, "to", 3), -1);
	ck_assert_int_eq(header_find(&h, "Resent-To", 0), -1);
	ck_assert_int_eq(header_has_prefix(&h, "dkim-"), 1);
	ck_assert_int_eq(header_has_prefix(&h, "Resent-"), 0);
}
END_TEST

START_TEST(field_name_grammar)
{
	size_t off = 0;

	ck_assert_uint_eq(header_field_name("To: x", 5, &off), 2);
	ck_assert_uint_eq(off, 3);
	ck_assert_uint_eq(header_field_name("X-Odd-Name:", 11, &off), 10);
	ck_assert_uint_eq(header_field_name("BCC : hidden@x", 14, &off), 3);
	ck_assert_uint_eq(off, 5);
	ck_assert_uint_eq(header_field_name("Bcc \t :x", 8, &off), 3);
	ck_assert_uint_eq(off, 7);
	ck_assert_uint_eq(header_field_name("Bcc:", 4, 0), 3);
	ck_assert_uint_eq(header_field_name(": x", 3, 0), 0);
	ck_assert_uint_eq(header_field_name(" To: x", 6, 0), 0);
	ck_assert_uint_eq(header_field_name("Two words: x", 12, 0), 0);
	ck_assert_uint_eq(header_field_name("NoColon", 7, 0), 0);
	ck_assert_uint_eq(header_field_name("Bcc ", 4, 0), 0);
	ck_assert_uint_eq(header_field_name("B\200cc: x", 7, 0), 0);
	ck_assert_uint_eq(header_field_name("Bcc\r: x", 7, 0), 0);
	ck_assert(header_is_continuation(" x", 2));
	ck_assert(header_is_continuation("\tx", 2));
	ck_assert(!header_is_continuation("x", 1));
	ck_assert(!header_is_continuation("", 0));
}
END_TEST

START_TEST(bcc_with_space_before_the_colon_is_found_and_removed)
{
	load("To: b@example.org\r\nBCC : hidden@example.org\r\nbcc\t:other@example.org\r\n");
	ck_assert_int_eq(header_find(&h, "Bcc", 0), 1);
	ck_assert_int_eq(header_find(&h, "Bcc", 2), 2);
	ck_assert_uint_eq(header_remove_all(&h, "Bcc"), 2);
	ck_assert_str_eq(dump(), "To: b@example.org\r\n");
}
END_TEST

START_TEST(removing_a_field_leaves_the_others_in_order)
{
	load(sample);
	ck_assert_uint_eq(header_remove_all(&h, "Bcc"), 1);
	ck_assert_str_eq(dump(), "Received: from a by b;\r\n"
				 "\tWed, 1 Jan 2025 00:00:00 +0000\r\n"
				 "From: \"Sender, The\" <s@example.com>\r\n"
				 "To: a@example.com,\r\n"
				 "  b@example.com\r\n"
				 "X-Unknown-Header:    odd   spacing   \r\n"
				 "Subject : obsolete space before colon\r\n"
				 "DKIM-Signature: v=1; a=rsa-sha256;\r\n"
				 "\tb=abc\r\n");
}
END_TEST

START_TEST(remove_all_removes_every_copy)
{
	load("Bcc: a\r\nX: 1\r\nBCC: b\r\nbcc:c\r\nY: 2\r\n");
	ck_assert_uint_eq(header_remove_all(&h, "Bcc"), 3);
	ck_assert_str_eq(dump(), "X: 1\r\nY: 2\r\n");
}
END_TEST

START_TEST(insert_at_top_and_bottom)
{
	load("Subject: s\r\n");
	header_insert(&h, 0, "RelayTag", "tag");
	header_insert(&h, h.n, "Date", "Wed, 1 Jan 2025 00:00:00 +0000");
	ck_assert_str_eq(dump(),
			 "RelayTag: tag\r\nSubject: s\r\nDate: Wed, 1 Jan 2025 00:00:00 +0000\r\n");
	ck_assert_int_eq(header_find(&h, "relaytag", 0), 0);
}
END_TEST

START_TEST(set_value_keeps_name_spelling_and_neighbours)
{
	load("X-A: 1\r\nfROM:  old@example.com\r\nX-B: 2\r\n");
	header_set_value(&h, 1, " new@example.com", strlen(" new@example.com"));
	ck_assert_str_eq(dump(), "X-A: 1\r\nfROM: new@example.com\r\nX-B: 2\r\n");
}
END_TEST

START_TEST(lines_that_are_not_fields_are_kept_as_they_are)
{
	static const char text[] =
	    "  leading continuation\r\nno colon here\r\nX: 1\r\n: empty name\r\n";

	load(text);
	ck_assert_uint_eq(h.n, 4);
	ck_assert_uint_eq(h.v[0].name_len, 0);
	ck_assert_uint_eq(h.v[1].name_len, 0);
	ck_assert_uint_eq(h.v[2].name_len, 1);
	ck_assert_uint_eq(h.v[3].name_len, 0);
	ck_assert_int_eq(header_find(&h, "no colon here", 0), -1);
	ck_assert_str_eq(dump(), text);
}
END_TEST

START_TEST(last_line_without_line_end_is_kept)
{
	load("X: 1\r\nY: 2");
	ck_assert_uint_eq(h.n, 2);
	ck_assert_str_eq(dump(), "X: 1\r\nY: 2");
	header_set_value(&h, 1, " 3", 2);
	ck_assert_str_eq(dump(), "X: 1\r\nY: 3\r\n");
}
END_TEST

START_TEST(empty_header_has_no_fields)
{
	load("");
	ck_assert_uint_eq(h.n, 0);
	ck_assert_str_eq(dump(), "");
}
END_TEST

START_TEST(many_fields_remove_in_linear_time)
{
	struct buf text = BUF_INIT;

	for (int i = 0; i < 50000; i++)
		buf_printf(&text, "%s: %d\r\n", i % 2 ? "Bcc" : "X-Keep", i);
	header_parse(&h, text.data, text.len);
	ck_assert_uint_eq(h.n, 50000);
	ck_assert_uint_eq(header_remove_all(&h, "bcc"), 25000);
	ck_assert_uint_eq(h.n, 25000);
	buf_free(&text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("header");
	TCase *tc = tcase_create("header");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, 0, teardown);
	tcase_add_test(tc, untouched_header_serialises_byte_exact);
	tcase_add_test(tc, continuation_lines_belong_to_their_field);
	tcase_add_test(tc, names_match_ignoring_case_and_obsolete_space);
	tcase_add_test(tc, field_name_grammar);
	tcase_add_test(tc, bcc_with_space_before_the_colon_is_found_and_removed);
	tcase_add_test(tc, removing_a_field_leaves_the_others_in_order);
	tcase_add_test(tc, remove_all_removes_every_copy);
	tcase_add_test(tc, insert_at_top_and_bottom);
	tcase_add_test(tc, set_value_keeps_name_spelling_and_neighbours);
	tcase_add_test(tc, lines_that_are_not_fields_are_kept_as_they_are);
	tcase_add_test(tc, last_line_without_line_end_is_kept);
	tcase_add_test(tc, empty_header_has_no_fields);
	tcase_add_test(tc, many_fields_remove_in_linear_time);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
