/* test_limits - the resource limits of relayshim(8) LIMITS, at their exact boundaries
 *
 * Each bound is tested at and just over its value: the input line length
 * (INPUT_LINE_MAX), the header section (INPUT_MAX_HEADER_BYTES) and a relay's
 * reply (SMTP_REPLY_LINE_MAX, SMTP_REPLY_LINES_MAX). Recipients per message
 * (REWRITE_RCPT_MAX) are in test_rewrite.c, the -bs bounds in test_smtpd.c.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "input.h"
#include "smtp.h"

static struct message msg;
static struct error err;

static void setup(void)
{
	message_init(&msg);
	error_clear(&err);
}

static void teardown(void)
{
	message_free(&msg);
}

/* feed - input_read over a temporary file holding data */

static int feed(const char *data, size_t n)
{
	FILE *f = tmpfile();
	int rc;

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	fflush(f);
	rewind(f);
	rc = input_read(fileno(f), 1, &msg, &err);
	fclose(f);
	return rc;
}

/* message_with_line - "Subject: x" header, then one body line of len bytes and end */

static char *message_with_line(size_t len, const char *end, size_t *n)
{
	static const char head[] = "Subject: x\r\n\r\nfirst\r\n";
	size_t elen = strlen(end);
	char *m = malloc(sizeof(head) - 1 + len + elen);

	memcpy(m, head, sizeof(head) - 1);
	memset(m + sizeof(head) - 1, 'x', len);
	memcpy(m + sizeof(head) - 1 + len, end, elen);
	*n = sizeof(head) - 1 + len + elen;
	return m;
}

START_TEST(a_line_of_exactly_the_limit_is_accepted_with_crlf)
{
	size_t n;
	char *m = message_with_line(INPUT_LINE_MAX, "\r\nlast\r\n", &n);

	ck_assert_int_eq(feed(m, n), 0);
	ck_assert_uint_eq(msg.body.len, 7 + INPUT_LINE_MAX + 2 + 6);
	ck_assert_uint_eq(msg.longest_line, INPUT_LINE_MAX);
	free(m);
}
END_TEST

START_TEST(a_line_over_the_limit_is_refused_with_its_number)
{
	size_t n;
	char *m = message_with_line(INPUT_LINE_MAX + 2, "\nlast\n", &n);

	ck_assert_int_eq(feed(m, n), EX_DATAERR);
	ck_assert_ptr_nonnull(
	    strstr(err.text, "line 4 of the message is longer than 1048576 bytes"));
	ck_assert_ptr_null(strpbrk(err.text, "\r\n"));
	free(m);
}
END_TEST

START_TEST(an_endless_last_line_without_newline_is_refused)
{
	size_t n;
	char *m = message_with_line(3 * INPUT_LINE_MAX, "", &n);

	ck_assert_int_eq(feed(m, n), EX_DATAERR);
	ck_assert_ptr_nonnull(strstr(err.text, "line 4 "));
	free(m);
}
END_TEST

START_TEST(a_header_section_over_its_bound_continues_in_the_body)
{
	struct buf in = BUF_INIT;
	size_t fields = INPUT_MAX_HEADER_BYTES / 16 + 100;

	for (size_t i = 0; i < fields; i++)
		buf_printf(&in, "X-F%011zu: v\r\n", i); /* 18 bytes a field */
	buf_puts(&in, "\r\nbody\r\n");
	ck_assert_int_eq(feed(in.data, in.len), 0);
	/* The header stops at the first field that starts past the bound. */
	ck_assert_uint_ge(msg.header.len, INPUT_MAX_HEADER_BYTES);
	ck_assert_uint_lt(msg.header.len, INPUT_MAX_HEADER_BYTES + 18);
	ck_assert_uint_eq(msg.header.len + msg.body.len, in.len);
	buf_free(&in);
}
END_TEST

/* reply - parse s */

static ssize_t reply(const char *s, size_t len, struct smtp_reply *r)
{
	return smtp_parse_reply(s, len, r);
}

START_TEST(a_reply_of_exactly_100_lines_parses_and_101_do_not)
{
	struct smtp_reply r;
	struct buf s = BUF_INIT;

	smtp_reply_init(&r);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		buf_puts(&s, "250-x\r\n");
	buf_puts(&s, "250 end\r\n");
	ck_assert_int_eq(reply(s.data, s.len, &r), (ssize_t)s.len);
	ck_assert_uint_eq(r.nlines, SMTP_REPLY_LINES_MAX);
	buf_reset(&s);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		buf_puts(&s, "250-x\r\n");
	buf_puts(&s, "250 end\r\n");
	ck_assert_int_eq(reply(s.data, s.len, &r), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&r.text), "more than 100 lines"));
	smtp_reply_free(&r);
	buf_free(&s);
}
END_TEST

START_TEST(a_reply_line_of_4096_bytes_parses_and_longer_does_not)
{
	struct smtp_reply r;
	struct buf s = BUF_INIT;

	smtp_reply_init(&r);
	buf_puts(&s, "250 ");
	while (s.len < SMTP_REPLY_LINE_MAX - 2)
		buf_putc(&s, 'y');
	buf_puts(&s, "\r\n"); /* 4096 bytes, CRLF included */
	ck_assert_int_eq(reply(s.data, s.len, &r), (ssize_t)s.len);
	buf_truncate(&s, s.len - 2);
	buf_puts(&s, "yy\r\n");
	ck_assert_int_eq(reply(s.data, s.len, &r), -1);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&r.text), "longer than 4096 bytes"));
	/* Without its LF yet, an over-long line is refused at once: no unbounded wait. */
	buf_truncate(&s, s.len - 2);
	ck_assert_int_eq(reply(s.data, s.len, &r), -1);
	smtp_reply_free(&r);
	buf_free(&s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_line_of_exactly_the_limit_is_accepted_with_crlf);
	tcase_add_test(tc, a_line_over_the_limit_is_refused_with_its_number);
	tcase_add_test(tc, an_endless_last_line_without_newline_is_refused);
	tcase_add_test(tc, a_header_section_over_its_bound_continues_in_the_body);
	tcase_add_test(tc, a_reply_of_exactly_100_lines_parses_and_101_do_not);
	tcase_add_test(tc, a_reply_line_of_4096_bytes_parses_and_longer_does_not);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
