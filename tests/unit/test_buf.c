/* test_buf - the one length-checked byte buffer (contract in buf.h) */

#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static struct buf b;

static void teardown(void)
{
	buf_free(&b);
}

START_TEST(zero_initialised_buffer_is_empty_and_reads_as_empty_string)
{
	struct buf z = BUF_INIT;

	ck_assert_uint_eq(z.len, 0);
	ck_assert_ptr_null(z.data);
	ck_assert_str_eq(buf_cstr(&z), "");
}
END_TEST

START_TEST(every_operation_accepts_a_zero_initialised_buffer)
{
	buf_reset(&b);
	buf_truncate(&b, 0);
	buf_consume(&b, 0);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(buf_cstr(&b), "");
	buf_free(&b);
	buf_free(&b);
	ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(appending_nothing_still_yields_a_terminated_string)
{
	buf_append(&b, "", 0);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(b.data[0], 0);
}
END_TEST

START_TEST(data_is_nul_terminated_after_every_append)
{
	buf_puts(&b, "ab");
	ck_assert_int_eq(b.data[b.len], 0);
	buf_putc(&b, 'c');
	ck_assert_int_eq(b.data[b.len], 0);
	buf_append(&b, "def", 2);
	ck_assert_int_eq(b.data[b.len], 0);
	buf_printf(&b, "%d", 7);
	ck_assert_int_eq(b.data[b.len], 0);
	ck_assert_str_eq(buf_cstr(&b), "abcde7");
	ck_assert_uint_eq(b.len, 6);
}
END_TEST

START_TEST(embedded_nuls_are_kept_and_counted)
{
	buf_append(&b, "a\0b", 3);
	buf_putc(&b, 0);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_mem_eq(b.data, "a\0b\0", 5);
}
END_TEST

START_TEST(growth_across_the_allocation_size_keeps_every_byte)
{
	char want[10000];

	for (size_t i = 0; i < sizeof(want); i++) {
		want[i] = (char)('a' + i % 26);
		buf_putc(&b, want[i]);
		ck_assert_uint_gt(b.cap, b.len);
	}
	ck_assert_uint_eq(b.len, sizeof(want));
	ck_assert_mem_eq(b.data, want, sizeof(want));
	ck_assert_int_eq(b.data[b.len], 0);
}
END_TEST

START_TEST(one_append_larger_than_the_allocation_fits_exactly)
{
	char big[100000];

	memset(big, 'x', sizeof(big));
	buf_putc(&b, '<');
	buf_append(&b, big, sizeof(big));
	buf_putc(&b, '>');
	ck_assert_uint_eq(b.len, sizeof(big) + 2);
	ck_assert_int_eq(b.data[0], '<');
	ck_assert_mem_eq(b.data + 1, big, sizeof(big));
	ck_assert_int_eq(b.data[b.len - 1], '>');
	ck_assert_int_eq(b.data[b.len], 0);
}
END_TEST

START_TEST(reserve_makes_room_for_the_bytes_and_the_nul)
{
	buf_puts(&b, "abc");
	buf_reserve(&b, 500);
	ck_assert_uint_ge(b.cap, 3 + 500 + 1);
	ck_assert_str_eq(buf_cstr(&b), "abc");
}
END_TEST

START_TEST(reserve_of_a_size_that_would_overflow_exits_71)
{
	buf_puts(&b, "abc");
	buf_reserve(&b, SIZE_MAX - 2);
}
END_TEST

START_TEST(append_of_a_size_that_would_overflow_exits_71)
{
	buf_puts(&b, "abc");
	buf_append(&b, "", SIZE_MAX);
}
END_TEST

START_TEST(printf_appends_formatted_text)
{
	buf_puts(&b, "x=");
	buf_printf(&b, "%d %s %05.1f %c%%", -42, "str", 3.14159, 'z');
	ck_assert_str_eq(buf_cstr(&b), "x=-42 str 003.1 z%");
	ck_assert_uint_eq(b.len, strlen("x=-42 str 003.1 z%"));
}
END_TEST

START_TEST(printf_of_nothing_leaves_the_buffer_alone)
{
	buf_puts(&b, "keep");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-zero-length"
	buf_printf(&b, "");
#pragma GCC diagnostic pop
	ck_assert_str_eq(buf_cstr(&b), "keep");
	ck_assert_uint_eq(b.len, 4);
}
END_TEST

START_TEST(printf_longer_than_the_free_space_is_complete)
{
	char big[5000];

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	for (int i = 0; i < 60; i++)
		buf_putc(&b, '.');
	buf_printf(&b, "[%s]%d", big, 99);
	ck_assert_uint_eq(b.len, 60 + 1 + 4999 + 1 + 2);
	ck_assert_mem_eq(b.data + 60, "[qqq", 4);
	ck_assert_str_eq(b.data + b.len - 4, "q]99");
}
END_TEST

START_TEST(printf_at_every_fill_level_around_the_allocation_size)
{
	/* The first try formats into what is left; the retry must replace it. */
	for (size_t fill = 0; fill < 140; fill++) {
		struct buf t = BUF_INIT;
		struct buf want = BUF_INIT;

		for (size_t i = 0; i < fill; i++)
			buf_putc(&t, '.');
		buf_printf(&t, "%s-%zu", "0123456789012345678901234567890123456789", fill);
		for (size_t i = 0; i < fill; i++)
			buf_putc(&want, '.');
		buf_puts(&want, "0123456789012345678901234567890123456789-");
		buf_printf(&want, "%zu", fill);
		ck_assert_uint_eq(t.len, want.len);
		ck_assert_str_eq(buf_cstr(&t), buf_cstr(&want));
		buf_free(&t);
		buf_free(&want);
	}
}
END_TEST

START_TEST(reset_empties_but_keeps_the_allocation)
{
	char *before;
	size_t cap;

	buf_puts(&b, "hello");
	before = b.data;
	cap = b.cap;
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(buf_cstr(&b), "");
	ck_assert_ptr_eq(b.data, before);
	ck_assert_uint_eq(b.cap, cap);
	buf_puts(&b, "again");
	ck_assert_str_eq(buf_cstr(&b), "again");
}
END_TEST

START_TEST(truncate_shortens_and_terminates)
{
	buf_puts(&b, "hello world");
	buf_truncate(&b, 5);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_str_eq(buf_cstr(&b), "hello");
	buf_truncate(&b, 5);
	ck_assert_str_eq(buf_cstr(&b), "hello");
	buf_truncate(&b, 0);
	ck_assert_str_eq(buf_cstr(&b), "");
}
END_TEST

START_TEST(truncate_beyond_the_length_panics)
{
	buf_puts(&b, "abc");
	buf_truncate(&b, 4);
}
END_TEST

START_TEST(consume_drops_bytes_from_the_front)
{
	buf_puts(&b, "HELO x\r\nQUIT\r\n");
	buf_consume(&b, 8);
	ck_assert_uint_eq(b.len, 6);
	ck_assert_str_eq(buf_cstr(&b), "QUIT\r\n");
	buf_consume(&b, 0);
	ck_assert_str_eq(buf_cstr(&b), "QUIT\r\n");
	buf_consume(&b, 6);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(buf_cstr(&b), "");
}
END_TEST

START_TEST(consume_beyond_the_length_panics)
{
	buf_puts(&b, "abc");
	buf_consume(&b, 4);
}
END_TEST

START_TEST(steal_hands_over_the_string_and_leaves_the_buffer_empty)
{
	char *s;

	buf_puts(&b, "mine");
	s = buf_steal(&b);
	ck_assert_str_eq(s, "mine");
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	free(s);
	buf_puts(&b, "reusable");
	ck_assert_str_eq(buf_cstr(&b), "reusable");
}
END_TEST

START_TEST(steal_from_an_empty_buffer_gives_an_empty_string_to_free)
{
	char *s = buf_steal(&b);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

START_TEST(free_leaves_a_valid_empty_buffer)
{
	buf_puts(&b, "something");
	buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_str_eq(buf_cstr(&b), "");
	buf_puts(&b, "x");
	ck_assert_str_eq(buf_cstr(&b), "x");
}
END_TEST

START_TEST(sanitize_shows_every_control_byte_as_hex)
{
	buf_put_sanitized(&b, "a\r\nb\x1b[31m\x7f\t\x01", 12);
	ck_assert_str_eq(buf_cstr(&b), "a\\x0d\\x0ab\\x1b[31m\\x7f\\x09\\x01");
}
END_TEST

START_TEST(sanitize_shows_a_nul_and_continues_past_it)
{
	buf_put_sanitized(&b, "x\0y", 3);
	ck_assert_str_eq(buf_cstr(&b), "x\\x00y");
	ck_assert_uint_eq(b.len, 6);
}
END_TEST

START_TEST(sanitize_keeps_printable_ascii_and_utf8_bytes)
{
	static const char s[] = " !~azAZ09 caf\xc3\xa9";

	buf_put_sanitized(&b, s, sizeof(s) - 1);
	ck_assert_str_eq(buf_cstr(&b), s);
}
END_TEST

START_TEST(sanitize_appends_to_what_is_there)
{
	buf_puts(&b, "reply: ");
	buf_put_sanitized(&b, "550\r\n", 5);
	buf_put_sanitized(&b, "", 0);
	ck_assert_str_eq(buf_cstr(&b), "reply: 550\\x0d\\x0a");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, 0, teardown);
	tcase_add_test(tc, zero_initialised_buffer_is_empty_and_reads_as_empty_string);
	tcase_add_test(tc, every_operation_accepts_a_zero_initialised_buffer);
	tcase_add_test(tc, appending_nothing_still_yields_a_terminated_string);
	tcase_add_test(tc, data_is_nul_terminated_after_every_append);
	tcase_add_test(tc, embedded_nuls_are_kept_and_counted);
	tcase_add_test(tc, growth_across_the_allocation_size_keeps_every_byte);
	tcase_add_test(tc, one_append_larger_than_the_allocation_fits_exactly);
	tcase_add_test(tc, reserve_makes_room_for_the_bytes_and_the_nul);
	tcase_add_exit_test(tc, reserve_of_a_size_that_would_overflow_exits_71, 71);
	tcase_add_exit_test(tc, append_of_a_size_that_would_overflow_exits_71, 71);
	tcase_add_test(tc, printf_appends_formatted_text);
	tcase_add_test(tc, printf_of_nothing_leaves_the_buffer_alone);
	tcase_add_test(tc, printf_longer_than_the_free_space_is_complete);
	tcase_add_test(tc, printf_at_every_fill_level_around_the_allocation_size);
	tcase_add_test(tc, reset_empties_but_keeps_the_allocation);
	tcase_add_test(tc, truncate_shortens_and_terminates);
	tcase_add_test_raise_signal(tc, truncate_beyond_the_length_panics, SIGABRT);
	tcase_add_test(tc, consume_drops_bytes_from_the_front);
	tcase_add_test_raise_signal(tc, consume_beyond_the_length_panics, SIGABRT);
	tcase_add_test(tc, steal_hands_over_the_string_and_leaves_the_buffer_empty);
	tcase_add_test(tc, steal_from_an_empty_buffer_gives_an_empty_string_to_free);
	tcase_add_test(tc, free_leaves_a_valid_empty_buffer);
	tcase_add_test(tc, sanitize_shows_every_control_byte_as_hex);
	tcase_add_test(tc, sanitize_shows_a_nul_and_continues_past_it);
	tcase_add_test(tc, sanitize_keeps_printable_ascii_and_utf8_bytes);
	tcase_add_test(tc, sanitize_appends_to_what_is_there);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
