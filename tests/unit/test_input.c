/* test_input - reading a message the way every real caller gives it */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "input.h"

static struct message msg;
static struct error err;

/* feed - run input_read over a regular file holding data */

static int feed(const char *data, size_t n, int ignore_dots)
{
	FILE *f = tmpfile();
	int rc;

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	fflush(f);
	rewind(f);
	message_init(&msg);
	error_clear(&err);
	rc = input_read(fileno(f), ignore_dots, &msg, &err);
	fclose(f);
	return rc;
}

#define FEED(s, i) feed((s), sizeof(s) - 1, (i))

/* body_string - the whole body as a C string (test bodies are small or spilled) */

static char *body_string(void)
{
	char *s = malloc(msg.body.len + 1);
	ssize_t n = body_read(&msg.body, 0, s, msg.body.len);

	ck_assert_int_eq(n, (ssize_t)msg.body.len);
	s[msg.body.len] = 0;
	return s;
}

static void teardown(void)
{
	message_free(&msg);
}

START_TEST(mixed_line_endings_become_crlf)
{
	char *b;

	ck_assert_int_eq(FEED("To: a@example.com\r\nSubject: x\nX-A: 1\r\n\nline1\nline2\r\n", 1),
			 0);
	ck_assert_str_eq(buf_cstr(&msg.header), "To: a@example.com\r\nSubject: x\r\nX-A: 1\r\n");
	b = body_string();
	ck_assert_str_eq(b, "line1\r\nline2\r\n");
	free(b);
}
END_TEST

START_TEST(lone_cr_inside_a_line_is_kept)
{
	char *b;

	ck_assert_int_eq(FEED("Subject: x\n\na\rb\n", 1), 0);
	b = body_string();
	ck_assert_str_eq(b, "a\rb\r\n");
	free(b);
}
END_TEST

START_TEST(last_line_without_newline_is_delivered)
{
	char *b;

	ck_assert_int_eq(FEED("Subject: ban\n\nHi\nFail2Ban", 0), 0);
	b = body_string();
	ck_assert_str_eq(b, "Hi\r\nFail2Ban\r\n");
	free(b);
}
END_TEST

START_TEST(lone_dot_ends_input_without_i)
{
	char *b;

	ck_assert_int_eq(FEED("Subject: x\n\nbefore\n.\nafter\n", 0), 0);
	b = body_string();
	ck_assert_str_eq(b, "before\r\n");
	free(b);
}
END_TEST

START_TEST(lone_dot_with_crlf_ends_input_without_i)
{
	char *b;

	ck_assert_int_eq(FEED("Subject: x\r\n\r\nbefore\r\n.\r\nafter\r\n", 0), 0);
	b = body_string();
	ck_assert_str_eq(b, "before\r\n");
	free(b);
}
END_TEST

START_TEST(lone_dot_is_data_with_i)
{
	char *b;

	ck_assert_int_eq(FEED("Subject: x\n\nbefore\n.\nafter\n", 1), 0);
	b = body_string();
	ck_assert_str_eq(b, "before\r\n.\r\nafter\r\n");
	free(b);
}
END_TEST

START_TEST(double_dot_loses_one_dot_without_i)
{
	char *b;

	ck_assert_int_eq(FEED("Subject: x\n\n..stuffed\n...\n", 0), 0);
	b = body_string();
	ck_assert_str_eq(b, ".stuffed\r\n..\r\n");
	free(b);
}
END_TEST

START_TEST(double_dot_kept_with_i)
{
	char *b;

	ck_assert_int_eq(FEED("Subject: x\n\n..x\n", 1), 0);
	b = body_string();
	ck_assert_str_eq(b, "..x\r\n");
	free(b);
}
END_TEST

START_TEST(mbox_from_line_is_dropped)
{
	ck_assert_int_eq(FEED("From root@host Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n", 1),
			 0);
	ck_assert_str_eq(buf_cstr(&msg.header), "Subject: x\r\n");
}
END_TEST

START_TEST(smtp_data_keeps_a_from_line)
{
	struct msgbuild mb;
	char *b;

	message_init(&msg);
	msgbuild_init(&mb, &msg);
	mb.keep_from_line = 1;
	ck_assert_int_eq(msgbuild_line(&mb, "From the desk of Bob", 20, &err), 0);
	ck_assert_int_eq(msgbuild_finish(&mb, &err), 0);
	ck_assert_uint_eq(msg.header.len, 0);
	b = body_string();
	ck_assert_str_eq(b, "From the desk of Bob\r\n");
	free(b);
}
END_TEST

START_TEST(message_without_headers_is_all_body)
{
	char *b;

	ck_assert_int_eq(FEED("hello world\nsecond line\n", 1), 0);
	ck_assert_uint_eq(msg.header.len, 0);
	b = body_string();
	ck_assert_str_eq(b, "hello world\r\nsecond line\r\n");
	free(b);
}
END_TEST

START_TEST(folded_header_continuation_stays_in_header)
{
	ck_assert_int_eq(FEED("To: a@example.com,\n b@example.com\nSubject: x\n\nbody\n", 1), 0);
	ck_assert_str_eq(buf_cstr(&msg.header),
			 "To: a@example.com,\r\n b@example.com\r\nSubject: x\r\n");
}
END_TEST

START_TEST(non_header_line_ends_the_header_without_separator)
{
	char *b;

	ck_assert_int_eq(FEED("Subject: x\nnot a header\nmore\n", 1), 0);
	ck_assert_str_eq(buf_cstr(&msg.header), "Subject: x\r\n");
	b = body_string();
	ck_assert_str_eq(b, "not a header\r\nmore\r\n");
	free(b);
}
END_TEST

START_TEST(eight_bit_and_nul_are_noted)
{
	static const char m[] = "Subject: x\n\ncaf\xc3\xa9\n\0z\n";

	ck_assert_int_eq(feed(m, sizeof(m) - 1, 1), 0);
	ck_assert(msg.has_8bit);
	ck_assert(msg.has_nul);
	ck_assert_uint_eq(msg.body.len, 11);
}
END_TEST

START_TEST(empty_input_is_an_empty_message)
{
	ck_assert_int_eq(FEED("", 1), 0);
	ck_assert_uint_eq(msg.header.len, 0);
	ck_assert_uint_eq(msg.body.len, 0);
}
END_TEST

START_TEST(large_body_spills_to_a_file)
{
	size_t n = 3 * INPUT_SPILL_BYTES;
	char *data = malloc(n);
	char *b;

	memcpy(data, "Subject: big\n\n", 14);
	for (size_t i = 14; i < n; i++)
		data[i] = (i % 80 == 79) ? '\n' : 'x';
	ck_assert_int_eq(feed(data, n, 1), 0);
	ck_assert_int_ge(msg.body.fd, 0);
	ck_assert_uint_eq(msg.body.mem.len, 0);
	b = body_string();
	/* every LF became CRLF: body is longer than input by the number of lines */
	ck_assert_uint_gt(msg.body.len, n - 14);
	ck_assert(strncmp(b, "xxxxx", 5) == 0);
	ck_assert_ptr_null(strstr(b, "x\nx"));
	free(b);
	free(data);
}
END_TEST

START_TEST(long_single_line_is_kept_whole)
{
	size_t n = 100 * 1024;
	char *data = malloc(n + 20);

	memcpy(data, "Subject: x\n\n", 12);
	memset(data + 12, 'y', n);
	ck_assert_int_eq(feed(data, n + 12, 1), 0);
	ck_assert_uint_eq(msg.longest_line, n);
	ck_assert_uint_eq(msg.body.len, n + 2);
	free(data);
}
END_TEST

START_TEST(lines_across_the_first_4k_read_are_kept_whole)
{
	/* input_read() reads 4 KB first, then 64 KB: lines that straddle
	 * either boundary, through a pipe, arrive byte for byte. */
	static char data[12000], want[13000];
	size_t n = 0, w = 0;
	int p[2];
	char *b;

	n += (size_t)snprintf(data, sizeof(data), "Subject: across\n\n");
	for (int i = 0; n + 100 < sizeof(data); i++) {
		int len = snprintf(data + n, sizeof(data) - n, "%0*d\n", 1 + i % 97, i);

		memcpy(want + w, data + n, (size_t)len - 1);
		w += (size_t)len - 1;
		want[w++] = '\r';
		want[w++] = '\n';
		n += (size_t)len;
	}
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], data, n), (ssize_t)n);
	close(p[1]);
	message_init(&msg);
	ck_assert_int_eq(input_read(p[0], 1, &msg, &err), 0);
	close(p[0]);
	ck_assert_uint_eq(msg.body.len, w);
	b = body_string();
	ck_assert(memcmp(b, want, w) == 0);
	free(b);
}
END_TEST

START_TEST(socket_input_is_read_to_eof)
{
	int sv[2];
	static const char m[] = "Subject: s\n\nvia socket\n";

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], m, sizeof(m) - 1), (ssize_t)(sizeof(m) - 1));
	close(sv[1]);
	message_init(&msg);
	ck_assert_int_eq(input_read(sv[0], 1, &msg, &err), 0);
	close(sv[0]);
	ck_assert_uint_eq(msg.body.len, 12);
}
END_TEST

START_TEST(obsolete_space_before_the_colon_stays_in_the_header)
{
	struct msgbuild mb;

	message_init(&msg);
	msgbuild_init(&mb, &msg);
	ck_assert_int_eq(msgbuild_line(&mb, "To: b@example.org", 17, &err), 0);
	ck_assert_int_eq(msgbuild_line(&mb, "BCC : hidden@example.org", 24, &err), 0);
	ck_assert_int_eq(msgbuild_line(&mb, "Cc\t: c@example.org", 18, &err), 0);
	ck_assert_int_eq(msgbuild_line(&mb, "", 0, &err), 0);
	ck_assert_int_eq(msgbuild_line(&mb, "body", 4, &err), 0);
	ck_assert_int_eq(msgbuild_finish(&mb, &err), 0);
	ck_assert_str_eq(
	    buf_cstr(&msg.header),
	    "To: b@example.org\r\nBCC : hidden@example.org\r\nCc\t: c@example.org\r\n");
	ck_assert_str_eq(buf_cstr(&msg.body.mem), "body\r\n");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("input");
	TCase *tc = tcase_create("reader");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, mixed_line_endings_become_crlf);
	tcase_add_test(tc, lone_cr_inside_a_line_is_kept);
	tcase_add_test(tc, last_line_without_newline_is_delivered);
	tcase_add_test(tc, lone_dot_ends_input_without_i);
	tcase_add_test(tc, lone_dot_with_crlf_ends_input_without_i);
	tcase_add_test(tc, lone_dot_is_data_with_i);
	tcase_add_test(tc, double_dot_loses_one_dot_without_i);
	tcase_add_test(tc, double_dot_kept_with_i);
	tcase_add_test(tc, mbox_from_line_is_dropped);
	tcase_add_test(tc, smtp_data_keeps_a_from_line);
	tcase_add_test(tc, message_without_headers_is_all_body);
	tcase_add_test(tc, folded_header_continuation_stays_in_header);
	tcase_add_test(tc, non_header_line_ends_the_header_without_separator);
	tcase_add_test(tc, eight_bit_and_nul_are_noted);
	tcase_add_test(tc, empty_input_is_an_empty_message);
	tcase_add_test(tc, large_body_spills_to_a_file);
	tcase_add_test(tc, long_single_line_is_kept_whole);
	tcase_add_test(tc, lines_across_the_first_4k_read_are_kept_whole);
	tcase_add_test(tc, socket_input_is_read_to_eof);
	tcase_add_test(tc, obsolete_space_before_the_colon_stays_in_the_header);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
