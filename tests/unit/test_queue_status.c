/* test_queue_status - mailq --status/--json and -q --deadline: arguments, verdict, output */

#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cmdline.h"
#include "log.h"
#include "net.h"
#include "queue_status.h"
#include "spool.h"

/* ---- helpers ---- */

static const char *age(double secs)
{
	static struct buf b;

	buf_reset(&b);
	queue_human_age(&b, secs);
	return buf_cstr(&b);
}

/* info - a spool_info as spool_walk() would pass it */

static struct spool_info info(const char *id, double created, const char *reply, const char *sender)
{
	struct spool_info i;

	memset(&i, 0, sizeof(i));
	i.id = id;
	i.owner = 0;
	i.created = created;
	i.attempts = 2;
	i.next_try = created + 90;
	i.last_error = reply;
	i.sender = sender;
	i.rcpts = 3;
	i.size = 100;
	return i;
}

/* utf8_clean - one line: every byte >= 0x20 up to the final newline, valid UTF-8 */

static int utf8_clean(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		if (u[0] == '\n' && u[1] == 0)
			return 1;
		size_t n;

		if (*u < 0x20 || *u == 0x7f)
			return 0;
		if (*u < 0x80)
			n = 1;
		else if ((*u & 0xe0) == 0xc0 && *u >= 0xc2)
			n = 2;
		else if ((*u & 0xf0) == 0xe0)
			n = 3;
		else if ((*u & 0xf8) == 0xf0 && *u <= 0xf4)
			n = 4;
		else
			return 0;
		for (size_t k = 1; k < n; k++)
			if ((u[k] & 0xc0) != 0x80)
				return 0;
		u += n;
	}
	return 0;
}

/* ---- durations, counts, ages ---- */

START_TEST(human_age_uses_the_largest_whole_unit)
{
	ck_assert_str_eq(age(0), "0s");
	ck_assert_str_eq(age(-5), "0s");
	ck_assert_str_eq(age(12.9), "12s");
	ck_assert_str_eq(age(59.99), "59s");
	ck_assert_str_eq(age(60), "1m");
	ck_assert_str_eq(age(300), "5m");
	ck_assert_str_eq(age(7200), "2h");
	ck_assert_str_eq(age(86399), "23h");
	ck_assert_str_eq(age(3 * 86400 + 5), "3d");
}
END_TEST

/* ---- status line and verdict ---- */

START_TEST(status_line_of_an_empty_queue)
{
	struct queue_status qs;
	struct buf out = BUF_INIT;

	queue_status_init(&qs);
	queue_status_line(&qs, &out);
	ck_assert_str_eq(buf_cstr(&out), "queue: 0 messages, oldest 0s, 0 failed\n");
	buf_free(&out);
}
END_TEST

START_TEST(status_line_counts_oldest_and_failed)
{
	struct queue_status qs;
	struct buf out = BUF_INIT;
	struct spool_info a = info("A", 1000, 0, "a@example.com");
	struct spool_info b = info("B", 1290, 0, "b@example.com");

	queue_status_init(&qs);
	queue_status_add(&qs, &a, 1300);
	queue_status_add(&qs, &b, 1300);
	qs.failed = 4;
	queue_status_line(&qs, &out);
	ck_assert_str_eq(buf_cstr(&out), "queue: 2 messages, oldest 5m, 4 failed\n");
	ck_assert_uint_eq(qs.bytes, 200);
	buf_free(&out);
	queue_status_free(&qs);
}
END_TEST

START_TEST(thresholds_decide_the_verdict)
{
	struct queue_status qs;
	struct queue_limits lim;
	struct strlist why = STRLIST_INIT;
	struct spool_info a = info("A", 1000, 0, "a@example.com");
	struct spool_info b = info("B", 1000, 0, "a@example.com");

	queue_status_init(&qs);
	queue_status_add(&qs, &a, 1000 + 3600);
	queue_status_add(&qs, &b, 1000 + 3600);
	memset(&lim, 0, sizeof(lim));
	ck_assert_int_eq(queue_status_check(&qs, &lim, &why), 0); /* no thresholds */
	lim.has_max_age = 1;
	lim.max_age_ms = 3600000; /* exactly as old: still healthy */
	lim.has_max_count = 1;
	lim.max_count = 2; /* exactly as many: still healthy */
	ck_assert_int_eq(queue_status_check(&qs, &lim, &why), 0);
	ck_assert_uint_eq(why.n, 0);
	lim.max_age_ms = 3599000;
	lim.max_count = 1;
	ck_assert_int_eq(queue_status_check(&qs, &lim, &why), 1);
	ck_assert_uint_eq(why.n, 2);
	ck_assert_str_eq(why.v[0], "oldest message is 1h old, more than --max-age 59m");
	ck_assert_str_eq(why.v[1], "2 messages queued, more than --max-count 1");
	strlist_free(&why);
	queue_status_free(&qs);
}
END_TEST

START_TEST(an_empty_queue_is_never_too_old)
{
	struct queue_status qs;
	struct queue_limits lim = {1, 0, 1, 0};
	struct strlist why = STRLIST_INIT;

	queue_status_init(&qs);
	ck_assert_int_eq(queue_status_check(&qs, &lim, &why), 0);
	strlist_free(&why);
}
END_TEST

/* ---- JSON ---- */

START_TEST(json_of_an_empty_queue)
{
	struct queue_status qs;
	struct buf out = BUF_INIT;

	queue_status_init(&qs);
	queue_status_json(&qs, 0, &out);
	ck_assert_str_eq(buf_cstr(&out),
			 "{\"count\":0,\"oldest_age_seconds\":0,\"failed\":0,\"bytes\":0,"
			 "\"healthy\":true,\"problems\":[],\"entries\":[]}\n");
	buf_free(&out);
}
END_TEST

START_TEST(json_entry_has_every_field)
{
	struct queue_status qs;
	struct buf out = BUF_INIT;
	struct queue_limits lim = {0, 0, 1, 0};
	struct spool_info a = info("4F2A1B", 1000, "451 4.3.0 try later", "app@example.com");
	struct spool_info b = info("C0", 1010, 0, 0);

	b.corrupt = 1;
	b.attempts = 0;
	b.rcpts = 0;
	b.size = 0;
	b.next_try = 0;
	queue_status_init(&qs);
	queue_status_add(&qs, &a, 1030);
	queue_status_add(&qs, &b, 1030);
	qs.failed = 1;
	queue_status_json(&qs, &lim, &out);
	ck_assert_str_eq(
	    buf_cstr(&out),
	    "{\"count\":2,\"oldest_age_seconds\":30,\"failed\":1,\"bytes\":100,\"healthy\":false,"
	    "\"problems\":[\"2 messages queued, more than --max-count 0\"],\"entries\":["
	    "{\"id\":\"4F2A1B\",\"uid\":0,\"user\":\"root\",\"age_seconds\":30,\"attempts\":2,"
	    "\"next_attempt_seconds\":60,\"last_reply\":\"451 4.3.0 try later\","
	    "\"sender\":\"app@example.com\",\"recipients\":3,\"size\":100,\"corrupt\":false},"
	    "{\"id\":\"C0\",\"uid\":0,\"user\":\"root\",\"age_seconds\":20,\"attempts\":0,"
	    "\"next_attempt_seconds\":0,\"last_reply\":null,\"sender\":null,\"recipients\":0,"
	    "\"size\":0,\"corrupt\":true}]}\n");
	buf_free(&out);
	queue_status_free(&qs);
}
END_TEST

START_TEST(json_escapes_hostile_replies_and_addresses)
{
	/* What a hostile relay or submitter can put in a reply or an address. */
	const char *reply = "451 \"quoted\" back\\slash\r\nInjected: line\x1b[31m\x01\x7f"
			    "\xff\xfe latin-1 \xe9t\xe9 \xc3\xa9 \xe2\x80\xa8 end";
	const char *sender = "\"}],\"count\":0,{\"@example.com";
	struct queue_status qs;
	struct buf out = BUF_INIT;
	struct spool_info a = info("X1", 1000, reply, sender);

	queue_status_init(&qs);
	queue_status_add(&qs, &a, 1001);
	queue_status_json(&qs, 0, &out);
	ck_assert_msg(utf8_clean(buf_cstr(&out)), "raw control byte or bad UTF-8 in %s",
		      buf_cstr(&out));
	ck_assert_ptr_nonnull(strstr(
	    buf_cstr(&out),
	    "\"last_reply\":\"451 \\\"quoted\\\" back\\\\slash\\r\\nInjected: line\\u001b[31m"
	    "\\u0001\\u007f\\ufffd\\ufffd latin-1 \\ufffdt\\ufffd \xc3\xa9 \xe2\x80\xa8 end\""));
	ck_assert_ptr_nonnull(
	    strstr(buf_cstr(&out), "\"sender\":\"\\\"}],\\\"count\\\":0,{\\\"@example.com\""));
	/* The totals were not overridden by the injected text. */
	ck_assert_ptr_eq(strstr(buf_cstr(&out), "{\"count\":1,"), buf_cstr(&out));
	buf_free(&out);
	queue_status_free(&qs);
}
END_TEST

/* ---- command line ---- */

static struct cmdline cl;
static struct error err;

static int parse(const char *argv0, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	const char *a;

	argv[argc++] = (char *)argv0;
	va_start(ap, argv0);
	for (a = va_arg(ap, const char *); a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = 0;
	error_clear(&err);
	cmdline_free(&cl);
	return cmdline_parse(&cl, argc, argv, &err);
}

START_TEST(mailq_status_with_thresholds)
{
	ck_assert_int_eq(
	    parse("/usr/bin/mailq", "--status", "--max-age=1h", "--max-count=50", NULL), 0);
	ck_assert_int_eq(cl.mode, CMD_LIST_QUEUE);
	ck_assert(cl.queue_status && !cl.queue_json);
	ck_assert(cl.limits.has_max_age && cl.limits.max_age_ms == 3600000);
	ck_assert(cl.limits.has_max_count && cl.limits.max_count == 50);
	ck_assert_int_eq(parse("sendmail", "--json", "-bp", NULL), 0);
	ck_assert(cl.queue_json && !cl.queue_status && !cl.limits.has_max_age);
	/* A threshold alone is a probe. */
	ck_assert_int_eq(parse("mailq", "--max-age=30m", NULL), 0);
	ck_assert(cl.queue_status);
	cmdline_free(&cl);
}
END_TEST

START_TEST(q_with_a_deadline)
{
	ck_assert_int_eq(parse("sendmail", "-q", "--deadline=8s", NULL), 0);
	ck_assert_int_eq(cl.mode, CMD_RUN_QUEUE);
	ck_assert(cl.has_deadline && cl.deadline_ms == 8000);
	ck_assert_int_eq(parse("sendmail", "--deadline=10", "-q", NULL), 0);
	ck_assert(cl.has_deadline && cl.deadline_ms == 10000);
	cmdline_free(&cl);
}
END_TEST

START_TEST(bad_container_options_are_usage_errors)
{
	ck_assert_int_eq(parse("sendmail", "-q", "--deadline=soon", NULL), EX_USAGE);
	ck_assert_ptr_nonnull(strstr(err.text, "--deadline=soon"));
	ck_assert_int_eq(parse("sendmail", "-q", "--deadline=0", NULL), EX_USAGE);
	ck_assert_int_eq(parse("sendmail", "-q", "--deadline", NULL), EX_USAGE);
	ck_assert_int_eq(parse("mailq", "--max-age=-1", NULL), EX_USAGE);
	ck_assert_int_eq(parse("mailq", "--max-count=ten", NULL), EX_USAGE);
	ck_assert_int_eq(parse("mailq", "--max-age=1h\x1b[2J", NULL), EX_USAGE);
	ck_assert_ptr_null(strchr(err.text, '\x1b')); /* shown escaped */
	ck_assert_int_eq(parse("sendmail", "--deadline=8s", "a@example.com", NULL), EX_USAGE);
	ck_assert_int_eq(parse("sendmail", "-q", "--status", NULL), EX_USAGE);
	ck_assert_int_eq(parse("sendmail", "--json", "a@example.com", NULL), EX_USAGE);
	cmdline_free(&cl);
}
END_TEST

/* ---- against a real spool directory ---- */

static char top[256];
static char qdir[300];
static struct config cfg;
static int sends;
static int stall; /* the transport hangs like a relay that never answers */

static int counting_transport(const struct config *c, const struct envelope *env,
			      const struct message *msg, struct smtp_result *res, struct error *e)
{
	(void)c, (void)env, (void)msg, (void)res, (void)e;
	if (stall)
		sleep(30);
	sends++;
	return 0;
}

static void spool_setup(void)
{
	snprintf(top, sizeof(top), "/tmp/relayshim-qstatus-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(qdir, sizeof(qdir), "%s/spool", top);
	memset(&cfg, 0, sizeof(cfg));
	cfg.queue_dir = qdir;
	cfg.queue_mode = QUEUE_FALLBACK;
	cfg.queue_max_age_s = 5 * 86400;
	cfg.log_level = LOG_LEVEL_ERROR + 1; /* quiet */
	log_setup(&cfg);
	sends = 0;
	stall = 0;
	spool_set_transport(counting_transport);
}

static void spool_teardown(void)
{
	char cmd[400];

	spool_set_deadline(0);
	spool_set_transport(0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	(void)!system(cmd);
}

/* store - one message with the given last error */

static void store(const char *id, const char *reason)
{
	struct envelope env;
	struct message msg;
	struct error e;

	error_clear(&e);
	envelope_init(&env);
	env.sender = util_strdup("app@example.com");
	strlist_add(&env.rcpts, "a@example.com");
	strlist_add(&env.rcpts, "b@example.com");
	message_init(&msg);
	buf_puts(&msg.header, "Subject: t\r\n");
	buf_puts(&msg.body.mem, "hi\r\n");
	msg.body.len = msg.body.mem.len;
	ck_assert_int_eq(spool_store(&cfg, &env, &msg, id, reason, &e), 0);
	envelope_free(&env);
	message_free(&msg);
}

START_TEST(collect_reads_the_spool_as_bp_sees_it)
{
	struct queue_status qs;
	struct error e;
	const char *hostile = "421 \"busy\"\r\n\xff";

	store("AAA1", hostile);
	store("AAA2", 0);
	ck_assert_int_eq(queue_status_collect(&cfg, 1, &qs, &e), 0);
	ck_assert_uint_eq(qs.n, 2);
	ck_assert_str_eq(qs.v[0].id, "AAA1");
	ck_assert_ptr_null(qs.v[0].sender); /* brief: not read */
	queue_status_free(&qs);
	ck_assert_int_eq(queue_status_collect(&cfg, 0, &qs, &e), 0);
	ck_assert_uint_eq(qs.n, 2);
	ck_assert_str_eq(qs.v[0].id, "AAA1");
	ck_assert_str_eq(qs.v[0].last_reply, hostile); /* the bytes survive the spool */
	ck_assert_ptr_null(qs.v[1].last_reply);
	ck_assert_str_eq(qs.v[0].sender, "app@example.com");
	ck_assert_uint_eq(qs.v[0].rcpts, 2);
	ck_assert_uint_eq(qs.v[0].uid, (unsigned long)geteuid());
	ck_assert_uint_eq(qs.failed, 0);
	queue_status_free(&qs);
}
END_TEST

START_TEST(collect_of_a_missing_spool_is_empty)
{
	struct queue_status qs;
	struct error e;

	ck_assert_int_eq(queue_status_collect(&cfg, 0, &qs, &e), 0);
	ck_assert_uint_eq(qs.n, 0);
	queue_status_free(&qs);
}
END_TEST

START_TEST(no_delivery_starts_after_the_deadline)
{
	struct error e;

	store("AAA1", 0);
	store("AAA2", 0);
	spool_set_deadline(net_now_ms());
	ck_assert_int_eq(spool_run(&cfg, &e), EX_TEMPFAIL);
	ck_assert_int_eq(sends, 0);
	spool_set_deadline(net_now_ms() + 60000);
	ck_assert_int_eq(spool_run(&cfg, &e), 0);
	ck_assert_int_eq(sends, 2);
}
END_TEST

START_TEST(an_entry_held_by_another_process_cannot_hold_q_past_the_deadline)
{
	char path[400];
	struct error e;
	long long t0;
	int fd;

	store("AAA1", 0);
	snprintf(path, sizeof(path), "%s/%lu/q/AAA1", qdir, (unsigned long)geteuid());
	/* A second open file description: its flock conflicts like a worker's. */
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);
	t0 = net_now_ms();
	spool_set_deadline(t0 + 300);
	ck_assert_int_eq(spool_run(&cfg, &e), EX_TEMPFAIL);
	ck_assert_int_lt(net_now_ms() - t0, 1000);
	ck_assert_int_ge(net_now_ms() - t0, 290);
	ck_assert_int_eq(sends, 0);
	close(fd);
}
END_TEST

START_TEST(net_limit_clips_every_deadline)
{
	long long now = net_now_ms();

	net_set_limit(now + 100);
	ck_assert_int_le(net_deadline(120000), now + 100);
	net_set_limit(0);
	ck_assert_int_ge(net_deadline(120000), now + 120000);
}
END_TEST

START_TEST(flush_of_an_empty_queue_is_0_and_a_delivered_one_too)
{
	struct error e;

	ck_assert_int_eq(queue_flush(&cfg, 2000, &e), 0);
	store("AAA1", 0);
	/* Delivered in the child by the counting transport: nothing left. */
	ck_assert_int_eq(queue_flush(&cfg, 2000, &e), 0);
	ck_assert_int_eq(sends, 0); /* the child's counter */
}
END_TEST

START_TEST(flush_returns_by_its_deadline_even_when_a_delivery_hangs)
{
	struct error e;
	long long t0;

	store("AAA2", 0);
	store("AAA3", 0);
	stall = 1; /* no timeout of ours applies: the child must be stopped */
	t0 = net_now_ms();
	ck_assert_int_eq(queue_flush(&cfg, 1000, &e), EX_TEMPFAIL);
	ck_assert_int_lt(net_now_ms() - t0, 1000);
	/* About a second old by now: 0s or 1s. */
	ck_assert_msg(strcmp(e.text, "2 messages left in the queue, oldest 0s") == 0 ||
			  strcmp(e.text, "2 messages left in the queue, oldest 1s") == 0,
		      "%s", e.text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("queue_status");
	TCase *tc = tcase_create("pure");
	TCase *tcs = tcase_create("spool");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, human_age_uses_the_largest_whole_unit);
	tcase_add_test(tc, status_line_of_an_empty_queue);
	tcase_add_test(tc, status_line_counts_oldest_and_failed);
	tcase_add_test(tc, thresholds_decide_the_verdict);
	tcase_add_test(tc, an_empty_queue_is_never_too_old);
	tcase_add_test(tc, json_of_an_empty_queue);
	tcase_add_test(tc, json_entry_has_every_field);
	tcase_add_test(tc, json_escapes_hostile_replies_and_addresses);
	tcase_add_test(tc, mailq_status_with_thresholds);
	tcase_add_test(tc, q_with_a_deadline);
	tcase_add_test(tc, bad_container_options_are_usage_errors);
	tcase_add_test(tc, net_limit_clips_every_deadline);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tcs, spool_setup, spool_teardown);
	tcase_add_test(tcs, collect_reads_the_spool_as_bp_sees_it);
	tcase_add_test(tcs, collect_of_a_missing_spool_is_empty);
	tcase_add_test(tcs, no_delivery_starts_after_the_deadline);
	tcase_add_test(tcs, an_entry_held_by_another_process_cannot_hold_q_past_the_deadline);
	tcase_add_test(tcs, flush_of_an_empty_queue_is_0_and_a_delivered_one_too);
	tcase_add_test(tcs, flush_returns_by_its_deadline_even_when_a_delivery_hangs);
	suite_add_tcase(s, tcs);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
