/* test_message - a message and its envelope (contract in message.h) */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "message.h"

static struct message msg;
static char spill[] = "/tmp/test_message.XXXXXX";

static void setup(void)
{
	message_init(&msg);
}

static void teardown(void)
{
	message_free(&msg);
	if (strchr(spill, 'X') == 0)
		unlink(spill);
	strcpy(spill, "/tmp/test_message.XXXXXX");
}

/* spill_file - an unlinked file holding prefix then body, as the queue hands it over */

static int spill_file(const char *prefix, const char *body)
{
	int fd = mkstemp(spill);

	ck_assert_int_ge(fd, 0);
	unlink(spill);
	ck_assert_int_eq(write(fd, prefix, strlen(prefix)), (ssize_t)strlen(prefix));
	ck_assert_int_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	return fd;
}

START_TEST(a_new_message_is_empty_and_has_no_spill_file)
{
	ck_assert_uint_eq(msg.header.len, 0);
	ck_assert_uint_eq(msg.body.mem.len, 0);
	ck_assert_uint_eq(msg.body.len, 0);
	ck_assert_int_eq(msg.body.fd, -1);
	ck_assert_uint_eq(msg.body.fd_offset, 0);
	ck_assert(!msg.has_8bit && !msg.has_nul);
	ck_assert_uint_eq(msg.longest_line, 0);
}
END_TEST

START_TEST(size_of_an_empty_message_is_the_blank_separator_line)
{
	ck_assert_uint_eq(message_size(&msg), 2);
}
END_TEST

START_TEST(size_is_header_plus_crlf_plus_body)
{
	buf_puts(&msg.header, "Subject: x\r\n");
	buf_puts(&msg.body.mem, ".dot\r\n");
	msg.body.len = msg.body.mem.len;
	ck_assert_uint_eq(message_size(&msg), 12 + 2 + 6); /* no dot-stuffing counted */
}
END_TEST

START_TEST(size_counts_a_spilled_body_by_its_length)
{
	buf_puts(&msg.header, "A: b\r\n");
	msg.body.fd = spill_file("", "x");
	msg.body.len = 30ULL * 1024 * 1024; /* a 30 MB body never read for its size */
	ck_assert_uint_eq(message_size(&msg), 6 + 2 + 30ULL * 1024 * 1024);
}
END_TEST

START_TEST(body_read_from_memory_at_any_offset)
{
	char dst[16];

	buf_puts(&msg.body.mem, "hello\r\nworld\r\n");
	msg.body.len = msg.body.mem.len;
	ck_assert_int_eq(body_read(&msg.body, 0, dst, 5), 5);
	ck_assert_mem_eq(dst, "hello", 5);
	ck_assert_int_eq(body_read(&msg.body, 7, dst, 7), 7);
	ck_assert_mem_eq(dst, "world\r\n", 7);
}
END_TEST

START_TEST(body_read_stops_at_the_end_of_the_body)
{
	char dst[64];

	buf_puts(&msg.body.mem, "abcdef");
	msg.body.len = 6;
	ck_assert_int_eq(body_read(&msg.body, 4, dst, sizeof(dst)), 2);
	ck_assert_mem_eq(dst, "ef", 2);
	ck_assert_int_eq(body_read(&msg.body, 6, dst, sizeof(dst)), 0);
	ck_assert_int_eq(body_read(&msg.body, 1000, dst, sizeof(dst)), 0);
}
END_TEST

START_TEST(body_read_of_an_empty_body_is_at_the_end)
{
	char dst[4];

	ck_assert_int_eq(body_read(&msg.body, 0, dst, sizeof(dst)), 0);
}
END_TEST

START_TEST(body_read_of_zero_bytes_reads_nothing)
{
	char dst[4] = "zzz";

	buf_puts(&msg.body.mem, "abc");
	msg.body.len = 3;
	ck_assert_int_eq(body_read(&msg.body, 1, dst, 0), 0);
	ck_assert_str_eq(dst, "zzz");
}
END_TEST

START_TEST(body_read_from_the_spill_file_skips_fd_offset)
{
	static const char header[] = "sender a@example.com\nrcpt b@example.org\n\n";
	char dst[32];

	msg.body.fd = spill_file(header, "line one\r\nline two\r\n");
	msg.body.fd_offset = strlen(header);
	msg.body.len = 20;
	ck_assert_int_eq(body_read(&msg.body, 0, dst, 8), 8);
	ck_assert_mem_eq(dst, "line one", 8);
	ck_assert_int_eq(body_read(&msg.body, 10, dst, sizeof(dst)), 10);
	ck_assert_mem_eq(dst, "line two\r\n", 10);
	ck_assert_int_eq(body_read(&msg.body, 20, dst, sizeof(dst)), 0);
}
END_TEST

START_TEST(body_read_from_the_spill_file_ignores_bytes_past_len)
{
	char dst[32];

	msg.body.fd = spill_file("", "bodyTRAILING");
	msg.body.len = 4;
	ck_assert_int_eq(body_read(&msg.body, 0, dst, sizeof(dst)), 4);
	ck_assert_mem_eq(dst, "body", 4);
}
END_TEST

START_TEST(body_read_does_not_move_the_shared_file_offset)
{
	char dst[8];

	msg.body.fd = spill_file("", "0123456789");
	msg.body.len = 10;
	ck_assert_int_eq(lseek(msg.body.fd, 3, SEEK_SET), 3);
	ck_assert_int_eq(body_read(&msg.body, 5, dst, 2), 2);
	ck_assert_mem_eq(dst, "56", 2);
	ck_assert_int_eq(lseek(msg.body.fd, 0, SEEK_CUR), 3);
}
END_TEST

START_TEST(body_read_error_is_minus_one_with_errno)
{
	char dst[8];
	int fds[2];

	/* A pipe cannot be read at an offset: pread fails with ESPIPE. */
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[1]);
	msg.body.fd = fds[0];
	msg.body.len = 10;
	errno = 0;
	ck_assert_int_eq(body_read(&msg.body, 0, dst, sizeof(dst)), -1);
	ck_assert_int_eq(errno, ESPIPE);
}
END_TEST

START_TEST(message_free_closes_the_spill_file_and_leaves_an_empty_message)
{
	int fd;

	buf_puts(&msg.header, "Subject: x\r\n");
	msg.body.fd = fd = spill_file("", "abc");
	msg.body.len = 3;
	msg.has_8bit = 1;
	message_free(&msg);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(msg.body.fd, -1);
	ck_assert_uint_eq(msg.header.len, 0);
	ck_assert_uint_eq(msg.body.len, 0);
	ck_assert(!msg.has_8bit);
	ck_assert_uint_eq(message_size(&msg), 2);
}
END_TEST

START_TEST(envelope_free_releases_everything_and_leaves_an_empty_envelope)
{
	struct envelope env;

	envelope_init(&env);
	ck_assert_ptr_null(env.sender);
	ck_assert_uint_eq(env.rcpts.n, 0);
	ck_assert_ptr_null(env.dsn_notify);
	env.sender = util_strdup("");
	strlist_add(&env.rcpts, "b@example.org");
	env.dsn_notify = util_strdup("failure,delay");
	env.dsn_ret = util_strdup("hdrs");
	env.dsn_envid = util_strdup("id1");
	env.smtputf8 = 1;
	envelope_free(&env);
	ck_assert_ptr_null(env.sender);
	ck_assert_ptr_null(env.rcpts.v);
	ck_assert_uint_eq(env.rcpts.n, 0);
	ck_assert_ptr_null(env.dsn_notify);
	ck_assert_ptr_null(env.dsn_ret);
	ck_assert_ptr_null(env.dsn_envid);
	ck_assert_int_eq(env.smtputf8, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("message");
	TCase *tc = tcase_create("message");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_new_message_is_empty_and_has_no_spill_file);
	tcase_add_test(tc, size_of_an_empty_message_is_the_blank_separator_line);
	tcase_add_test(tc, size_is_header_plus_crlf_plus_body);
	tcase_add_test(tc, size_counts_a_spilled_body_by_its_length);
	tcase_add_test(tc, body_read_from_memory_at_any_offset);
	tcase_add_test(tc, body_read_stops_at_the_end_of_the_body);
	tcase_add_test(tc, body_read_of_an_empty_body_is_at_the_end);
	tcase_add_test(tc, body_read_of_zero_bytes_reads_nothing);
	tcase_add_test(tc, body_read_from_the_spill_file_skips_fd_offset);
	tcase_add_test(tc, body_read_from_the_spill_file_ignores_bytes_past_len);
	tcase_add_test(tc, body_read_does_not_move_the_shared_file_offset);
	tcase_add_test(tc, body_read_error_is_minus_one_with_errno);
	tcase_add_test(tc, message_free_closes_the_spill_file_and_leaves_an_empty_message);
	tcase_add_test(tc, envelope_free_releases_everything_and_leaves_an_empty_envelope);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
