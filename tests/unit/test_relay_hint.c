/* test_relay_hint - which relay refusals point at the relay's configuration, and its size count */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "relay_hint.h"

/* The replies below are Postfix's own, as the relay images give them. */

START_TEST(relay_access_denied_points_at_mynetworks)
{
	ck_assert_int_eq(relay_hint_classify("454 4.7.1 <a@example.com>: Relay access denied"),
			 RELAY_HINT_RELAY_ACCESS);
	ck_assert_int_eq(relay_hint_classify("relay 10.0.0.2:25 refused every recipient: "
					     "<a@example.com>: 454 4.7.1 <a@example.com>: "
					     "Relay access denied"),
			 RELAY_HINT_RELAY_ACCESS);
	ck_assert_int_eq(relay_hint_classify(
			     "554 5.7.1 <unknown[10.9.0.2]>: Client host rejected: Access denied"),
			 RELAY_HINT_RELAY_ACCESS);
	ck_assert_str_eq(relay_hint_mark(RELAY_HINT_RELAY_ACCESS), "mynetworks");
	ck_assert_ptr_nonnull(strstr(relay_hint_cause(RELAY_HINT_RELAY_ACCESS), "mynetworks"));
}
END_TEST

START_TEST(domain_not_found_points_at_dns_for_recipient_and_sender)
{
	ck_assert_int_eq(
	    relay_hint_classify(
		"450 4.1.2 <a@example.com>: Recipient address rejected: Domain not found"),
	    RELAY_HINT_DNS);
	ck_assert_int_eq(
	    relay_hint_classify(
		"450 4.1.8 <s@nowhere.test>: Sender address rejected: Domain not found"),
	    RELAY_HINT_DNS);
	ck_assert_str_eq(relay_hint_mark(RELAY_HINT_DNS), "dns");
}
END_TEST

START_TEST(sender_refusals_point_at_allowed_sender_domains)
{
	/* boky/postfix answers a sender outside ALLOWED_SENDER_DOMAINS at RCPT so. */
	ck_assert_int_eq(
	    relay_hint_classify(
		"554 5.7.1 <a@example.com>: Recipient address rejected: Access denied"),
	    RELAY_HINT_SENDER);
	ck_assert_int_eq(
	    relay_hint_classify("450 4.7.1 <s@x.test>: Sender address rejected: not logged in"),
	    RELAY_HINT_SENDER);
	ck_assert_ptr_nonnull(
	    strstr(relay_hint_cause(RELAY_HINT_SENDER), "ALLOWED_SENDER_DOMAINS"));
}
END_TEST

START_TEST(size_refusals_point_at_the_size_limit)
{
	ck_assert_int_eq(relay_hint_classify("552 5.3.4 Error: message file too big"),
			 RELAY_HINT_SIZE);
	ck_assert_int_eq(relay_hint_classify("552 5.3.4 Message size exceeds fixed limit"),
			 RELAY_HINT_SIZE);
	ck_assert_str_eq(relay_hint_mark(RELAY_HINT_SIZE), "size");
}
END_TEST

START_TEST(other_refusals_get_no_hint)
{
	/* 4.7.1 alone is also greylisting or rate limiting: not blamed on mynetworks. */
	ck_assert_int_eq(relay_hint_classify("450 4.7.1 Greylisted, try again later"),
			 RELAY_HINT_NONE);
	ck_assert_int_eq(relay_hint_classify("421 4.4.2 timeout"), RELAY_HINT_NONE);
	ck_assert_int_eq(relay_hint_classify("550 5.1.1 <a@example.com>: User unknown"),
			 RELAY_HINT_NONE);
	ck_assert_int_eq(relay_hint_classify(""), RELAY_HINT_NONE);
	ck_assert_int_eq(relay_hint_classify(0), RELAY_HINT_NONE);
	ck_assert_str_eq(relay_hint_mark(RELAY_HINT_NONE), "");
	ck_assert_str_eq(relay_hint_cause(RELAY_HINT_NONE), "");
}
END_TEST

/* make_message - header + body in memory, line lengths as input.c records them */

static void make_message(struct message *msg, const char *header, size_t body_lines,
			 size_t line_len)
{
	message_init(msg);
	buf_puts(&msg->header, header);
	for (size_t i = 0; i < body_lines; i++) {
		for (size_t j = 0; j < line_len; j++)
			buf_putc(&msg->body.mem, 'x');
		buf_puts(&msg->body.mem, "\r\n");
	}
	msg->body.len = msg->body.mem.len;
	msg->longest_line = line_len;
}

START_TEST(short_lines_cost_only_the_fixed_part_and_the_envelope)
{
	struct message msg;
	struct envelope env;

	make_message(&msg, "Subject: s\r\n", 1000, 76);
	envelope_init(&env);
	env.sender = strdup("a@example.com");
	strlist_add(&env.rcpts, "b@example.net");
	ck_assert_uint_eq(relay_hint_queue_size(&msg, &env),
			  message_size(&msg) + RELAY_HINT_FIXED + (2 * 13 + 64) * 2);
	envelope_free(&env);
	message_free(&msg);
}
END_TEST

START_TEST(long_lines_cost_one_more_byte_and_split_lines_more)
{
	struct message msg;

	make_message(&msg, "Subject: s\r\n", 100, 300);
	ck_assert_uint_eq(relay_hint_queue_size(&msg, 0),
			  message_size(&msg) + RELAY_HINT_FIXED + 100);
	message_free(&msg);
	/* 5000 bytes: three 2048-byte records of 3 bytes overhead each. */
	make_message(&msg, "Subject: s\r\n", 2, 5000);
	ck_assert_uint_eq(relay_hint_queue_size(&msg, 0),
			  message_size(&msg) + RELAY_HINT_FIXED + 18);
	message_free(&msg);
}
END_TEST

START_TEST(measured_postfix_limit_is_covered)
{
	struct message msg;
	struct envelope env;
	unsigned long long est;

	/* Postfix 3.7, message_size_limit 100000: 99139 wire bytes of 76-byte
	 * lines were the most it took, 99140 it refused. Anything past the
	 * measured limit must be refused by us too. */
	make_message(&msg, "From: a@example.com\r\nTo: r0@example.net\r\n", 1270, 76);
	envelope_init(&env);
	env.sender = strdup("a@example.com");
	strlist_add(&env.rcpts, "r0@example.net");
	ck_assert_uint_gt(message_size(&msg), 97000);
	ck_assert_int_eq(relay_hint_too_big(&msg, &env, message_size(&msg) + 861, &est), 1);
	ck_assert_int_eq(relay_hint_too_big(&msg, &env, 0, &est), 0);
	ck_assert_int_eq(relay_hint_too_big(&msg, &env, 10 * 1000 * 1000, &est), 0);
	envelope_free(&env);
	message_free(&msg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("relay_hint");
	TCase *tc = tcase_create("relay_hint");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, relay_access_denied_points_at_mynetworks);
	tcase_add_test(tc, domain_not_found_points_at_dns_for_recipient_and_sender);
	tcase_add_test(tc, sender_refusals_point_at_allowed_sender_domains);
	tcase_add_test(tc, size_refusals_point_at_the_size_limit);
	tcase_add_test(tc, other_refusals_get_no_hint);
	tcase_add_test(tc, short_lines_cost_only_the_fixed_part_and_the_envelope);
	tcase_add_test(tc, long_lines_cost_one_more_byte_and_split_lines_more);
	tcase_add_test(tc, measured_postfix_limit_is_covered);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
