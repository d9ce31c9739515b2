/* test_spool - the durable queue: commit protocol, crash points, delivery outcomes, worker */

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

static char top[256];  /* temporary directory of one test */
static char qdir[300]; /* top/spool: [queue] dir */
static char area[340]; /* qdir/<our uid> */
static struct config cfg;
static struct error err;

/* ---- a scriptable transport in place of smtp_deliver() ---- */

enum mock_mode { MOCK_OK, MOCK_TEMP, MOCK_PERM, MOCK_CONFIG, MOCK_PARTIAL, MOCK_DOWN_WHILE_FLAG };

static enum mock_mode mock_mode;
static int mock_calls;
static struct buf mock_data;	  /* header CRLF body of the last message */
static struct strlist mock_rcpts; /* recipients of the last call */
static char mock_sender[256];

/* mock_log - one line per call in top/sent, so forked workers can report */

static void mock_log(const struct envelope *env)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/sent", top);
	f = fopen(path, "a");
	if (f == 0)
		return;
	fprintf(f, "%s", env->sender);
	for (size_t i = 0; i < env->rcpts.n; i++)
		fprintf(f, " %s", env->rcpts.v[i]);
	fputc('\n', f);
	fclose(f);
}

static int mock_deliver(const struct config *c, const struct envelope *env,
			const struct message *msg, struct smtp_result *res, struct error *e)
{
	char chunk[4096];
	unsigned long long off = 0;

	(void)c;
	mock_calls++;
	buf_reset(&mock_data);
	buf_append(&mock_data, msg->header.data, msg->header.len);
	buf_puts(&mock_data, "\r\n");
	for (;;) {
		ssize_t r = body_read(&msg->body, off, chunk, sizeof(chunk));

		if (r <= 0)
			break;
		buf_append(&mock_data, chunk, (size_t)r);
		off += (unsigned long long)r;
	}
	strlist_free(&mock_rcpts);
	for (size_t i = 0; i < env->rcpts.n; i++)
		strlist_add(&mock_rcpts, env->rcpts.v[i]);
	snprintf(mock_sender, sizeof(mock_sender), "%s", env->sender);
	switch (mock_mode) {
	case MOCK_DOWN_WHILE_FLAG: {
		/* a forked worker has its own copy of mock_mode: a file says "relay down" */
		char flag[400];

		snprintf(flag, sizeof(flag), "%s/down", top);
		if (access(flag, F_OK) == 0) {
			e->temporary = 1;
			return error_set(e, EX_TEMPFAIL, "relay down (flag file)");
		}
		mock_log(env);
		return 0;
	}
	case MOCK_OK:
		mock_log(env);
		res->relay = util_strdup("127.0.0.1:25");
		res->reply = util_strdup("250 2.0.0 Ok: queued as X");
		return 0;
	case MOCK_TEMP:
		e->temporary = 1;
		return error_set(e, EX_TEMPFAIL,
				 "relay 127.0.0.1:1 connect failed: Connection refused");
	case MOCK_PERM:
		e->temporary = 0;
		return error_set(e, EX_UNAVAILABLE, "relay refused at DATA: 554 5.7.1 no thanks");
	case MOCK_CONFIG:
		e->temporary = 0;
		return error_set(e, EX_CONFIG,
				 "credentials would go over an unprotected connection");
	case MOCK_PARTIAL:
		/* first recipient accepted, second refused 5xx, third deferred 4xx */
		mock_log(env);
		if (env->rcpts.n >= 2) {
			strlist_add(&res->rejected, env->rcpts.v[1]);
			strlist_add(&res->rejected_replies, "550 5.1.1 no such user");
		}
		if (env->rcpts.n >= 3) {
			strlist_add(&res->deferred, env->rcpts.v[2]);
			strlist_add(&res->deferred_replies, "450 4.2.0 mailbox busy");
		}
		return 0;
	}
	return 0;
}

/* ---- fixtures ---- */

static void setup(void)
{
	snprintf(top, sizeof(top), "/tmp/relayshim-spool-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(qdir, sizeof(qdir), "%s/spool", top);
	snprintf(area, sizeof(area), "%s/%lu", qdir, (unsigned long)geteuid());
	memset(&cfg, 0, sizeof(cfg));
	cfg.queue_dir = qdir;
	cfg.queue_mode = QUEUE_FALLBACK;
	cfg.queue_max_age_s = 5 * 86400;
	cfg.log_level = LOG_LEVEL_ERROR + 1; /* quiet */
	log_setup(&cfg);
	error_clear(&err);
	mock_mode = MOCK_OK;
	mock_calls = 0;
	spool_set_transport(mock_deliver);
	setenv("RELAYSHIM_RETRY_BASE", "0.05", 1);
	unsetenv("RELAYSHIM_TEST_CRASH_AT");
}

static void teardown(void)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	(void)!system(cmd);
	buf_free(&mock_data);
	strlist_free(&mock_rcpts);
}

/* make_message - a small message; body in memory */

static void make_message(struct envelope *env, struct message *msg, const char *sender,
			 const char *body)
{
	envelope_init(env);
	env->sender = util_strdup(sender);
	strlist_add(&env->rcpts, "a@example.com");
	strlist_add(&env->rcpts, "\"b c\"@example.com");
	message_init(msg);
	buf_puts(&msg->header, "From: x@example.com\r\nSubject: test\r\n");
	buf_puts(&msg->body.mem, body);
	msg->body.len = msg->body.mem.len;
	msg->longest_line = 40;
}

/* store_one - store a small message under id; asserts success */

static void store_one(const char *id, const char *sender)
{
	struct envelope env;
	struct message msg;

	make_message(&env, &msg, sender, "hello\r\n.dot line\r\n");
	ck_assert_int_eq(spool_store(&cfg, &env, &msg, id, "relay down", &err), 0);
	envelope_free(&env);
	message_free(&msg);
}

/* count_dir - regular entries in area/sub whose name has (or lacks) a dot */

static int count_dir(const char *base, const char *sub, int with_dot)
{
	char path[500];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", base, sub);
	if ((d = opendir(path)) == 0)
		return -1;
	while ((de = readdir(d)) != 0)
		if (de->d_name[0] != '.' && (strchr(de->d_name, '.') != 0) == with_dot)
			n++;
	closedir(d);
	return n;
}

static int exists(const char *fmt, const char *a, const char *b)
{
	char path[600];
	struct stat sb;

	snprintf(path, sizeof(path), fmt, a, b);
	return stat(path, &sb) == 0;
}

static int sent_lines(void)
{
	char path[400], line[1024];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/sent", top);
	if ((f = fopen(path, "r")) == 0)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

/* ---- the entry format (spool_entry.c), as another user may have written it ---- */

/* parse_text - spool_entry_parse() of a C string; 0 = accepted */

static int parse_text(const char *text, struct spool_entry *e)
{
	spool_entry_init(e);
	return spool_entry_parse(text, strlen(text), e);
}

START_TEST(entry_format_parses_back_to_the_same_envelope)
{
	struct spool_entry e, back;
	struct buf text = BUF_INIT;

	spool_entry_init(&e);
	e.created = 1764000000.5;
	e.env.sender = util_strdup("a b@example.com");
	strlist_add(&e.env.rcpts, "x%y@example.com");
	e.header_len = 10;
	e.body_len = 20;
	spool_entry_format(&text, &e);
	ck_assert_int_eq(parse_text(text.data, &back), 0);
	ck_assert_str_eq(back.env.sender, "a b@example.com");
	ck_assert_str_eq(back.env.rcpts.v[0], "x%y@example.com");
	ck_assert_uint_eq(back.data_off, text.len);
	ck_assert_uint_eq(back.body_len, 20);
	spool_entry_free(&e);
	spool_entry_free(&back);
	buf_free(&text);
}
END_TEST

START_TEST(entry_parse_refuses_a_line_break_in_a_recipient)
{
	struct spool_entry e;

	/* It would become a second SMTP command on the relay connection. */
	ck_assert_int_eq(parse_text("relayshim-spool 1\ncreated 1\nsender a@b\n"
				    "rcpt x%0D%0ARCPT%20TO:<v@w>\nheader 0\nbody 0\n\n",
				    &e),
			 -1);
	spool_entry_free(&e);
	ck_assert_int_eq(parse_text("relayshim-spool 1\ncreated 1\nsender a%0A@b\n"
				    "rcpt x@y\nheader 0\nbody 0\n\n",
				    &e),
			 -1);
	spool_entry_free(&e);
}
END_TEST

START_TEST(entry_parse_refuses_a_header_claimed_over_64_mib)
{
	struct spool_entry e;

	ck_assert_int_eq(parse_text("relayshim-spool 1\ncreated 1\nsender a@b\nrcpt x@y\n"
				    "header 104857600\nbody 0\n\n",
				    &e),
			 -1);
	spool_entry_free(&e);
}
END_TEST

START_TEST(entry_parse_refuses_more_than_1000_recipients)
{
	struct buf text = BUF_INIT;
	struct spool_entry e;

	buf_puts(&text, "relayshim-spool 1\ncreated 1\nsender a@b\n");
	for (int i = 0; i <= SPOOL_ENTRY_RCPT_MAX; i++)
		buf_printf(&text, "rcpt r%d@example.com\n", i);
	buf_puts(&text, "header 0\nbody 0\n\n");
	spool_entry_init(&e);
	ck_assert_int_eq(spool_entry_parse(text.data, text.len, &e), -1);
	spool_entry_free(&e);
	buf_free(&text);
}
END_TEST

START_TEST(a_fifo_and_a_directory_in_q_are_skipped_without_blocking)
{
	char path[500];

	store_one("GOOD1", "s@example.com");
	snprintf(path, sizeof(path), "%s/q/AFIFO", area);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/q/ADIR", area);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/q/GOOD1.st", area);
	ck_assert_int_eq(mkfifo(path, 0600), 0); /* a state file that is a FIFO */
	mock_mode = MOCK_OK;
	ck_assert_int_eq(spool_run(&cfg, &err), 0); /* returns: nothing it could deliver is left */
	ck_assert_int_eq(mock_calls, 1);
	ck_assert_int_eq(count_dir(area, "failed", 0), 0);
}
END_TEST

/* ---- store and load ---- */

START_TEST(store_then_load_gives_back_envelope_and_bytes)
{
	struct envelope env, got;
	struct message msg, gmsg;
	char body[64];

	make_message(&env, &msg, "sender@example.com", "line 1\r\n.leading dot\r\nlast");
	env.dsn_notify = util_strdup("FAILURE,DELAY");
	env.dsn_envid = util_strdup("env id%1");
	ck_assert_int_eq(spool_store(&cfg, &env, &msg, "ABC123", 0, &err), 0);
	ck_assert_int_eq(spool_load(&cfg, "ABC123", &got, &gmsg, &err), 0);
	ck_assert_str_eq(got.sender, "sender@example.com");
	ck_assert_uint_eq(got.rcpts.n, 2);
	ck_assert_str_eq(got.rcpts.v[1], "\"b c\"@example.com");
	ck_assert_str_eq(got.dsn_notify, "FAILURE,DELAY");
	ck_assert_str_eq(got.dsn_envid, "env id%1");
	ck_assert_ptr_null(got.dsn_ret);
	ck_assert_str_eq(buf_cstr(&gmsg.header), "From: x@example.com\r\nSubject: test\r\n");
	ck_assert_uint_eq(gmsg.body.len, msg.body.len);
	ck_assert_int_ge(gmsg.body.fd, 0);
	ck_assert_int_eq(body_read(&gmsg.body, 0, body, sizeof(body)), (ssize_t)msg.body.len);
	ck_assert_int_eq(memcmp(body, "line 1\r\n.leading dot\r\nlast", msg.body.len), 0);
	envelope_free(&env);
	envelope_free(&got);
	message_free(&msg);
	message_free(&gmsg);
}
END_TEST

START_TEST(store_copies_a_body_held_in_a_file)
{
	struct envelope env, got;
	struct message msg, gmsg;
	FILE *f = tmpfile();
	char *big = malloc(1 << 20), *back = malloc(1 << 20);

	for (int i = 0; i < (1 << 20); i++)
		big[i] = (char)('a' + i % 26);
	fwrite(big, 1, 1 << 20, f);
	fflush(f);
	make_message(&env, &msg, "", "");
	msg.body.fd = dup(fileno(f));
	msg.body.len = 1 << 20;
	fclose(f);
	ck_assert_int_eq(spool_store(&cfg, &env, &msg, "BIG", 0, &err), 0);
	ck_assert_int_eq(spool_load(&cfg, "BIG", &got, &gmsg, &err), 0);
	ck_assert_str_eq(got.sender, "");
	ck_assert_int_eq(body_read(&gmsg.body, 0, back, 1 << 20), 1 << 20);
	ck_assert_int_eq(memcmp(big, back, 1 << 20), 0);
	free(big);
	free(back);
	envelope_free(&env);
	envelope_free(&got);
	message_free(&msg);
	message_free(&gmsg);
}
END_TEST

START_TEST(spool_directories_and_files_have_the_shared_modes)
{
	struct stat sb;
	char path[500];

	store_one("MODES", "s@example.com");
	ck_assert_int_eq(stat(qdir, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 01733);
	ck_assert_int_eq(stat(area, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/q/MODES", area);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0600);
	ck_assert_uint_eq(sb.st_uid, geteuid());
}
END_TEST

START_TEST(made_ids_are_unique_and_safe)
{
	enum { N = 20000 };
	static char ids[N][SPOOL_ID_MAX];
	struct strlist seen = STRLIST_INIT;

	for (int i = 0; i < N; i++)
		spool_make_id(ids[i], sizeof(ids[i]));
	for (int i = 0; i < N; i++) {
		ck_assert_uint_gt(strlen(ids[i]), 10);
		ck_assert_uint_eq(strspn(ids[i], "0123456789ABCDEF"), strlen(ids[i]));
	}
	/* sort and look for neighbours */
	qsort(ids, N, SPOOL_ID_MAX, (int (*)(const void *, const void *))strcmp);
	for (int i = 1; i < N; i++)
		ck_assert_str_ne(ids[i - 1], ids[i]);
	strlist_free(&seen);
}
END_TEST

START_TEST(concurrent_stores_with_one_id_keep_every_message)
{
	enum { KIDS = 20 };
	pid_t pids[KIDS];

	for (int k = 0; k < KIDS; k++) {
		pids[k] = fork();
		if (pids[k] == 0) {
			struct error e;
			struct envelope env;
			struct message msg;

			make_message(&env, &msg, "s@example.com", "x\r\n");
			/* everyone insists on the same id: the spool must still keep 20 */
			_exit(spool_store(&cfg, &env, &msg, "SAMEID", 0, &e) == 0 ? 0 : 1);
		}
	}
	for (int k = 0; k < KIDS; k++) {
		int status;

		ck_assert_int_eq(waitpid(pids[k], &status, 0), pids[k]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ck_assert_int_eq(count_dir(area, "q", 0), KIDS);
	ck_assert_int_eq(count_dir(area, "tmp", 0), 0);
}
END_TEST

START_TEST(an_unsafe_queue_id_is_replaced)
{
	struct buf out = BUF_INIT;

	store_one("../../etc/x", "s@example.com");
	ck_assert_int_eq(count_dir(area, "q", 0), 1);
	ck_assert_int_eq(spool_list(&cfg, &out, &err), 0);
	ck_assert_ptr_null(strstr(out.data, "etc"));
	buf_free(&out);
}
END_TEST

/* ---- unusable spool ---- */

START_TEST(missing_parent_makes_the_spool_unusable)
{
	struct envelope env;
	struct message msg;

	cfg.queue_dir = "/nonexistent-relayshim/dir/spool";
	ck_assert_int_eq(spool_usable(&cfg, &err), EX_CANTCREAT);
	ck_assert_ptr_nonnull(strstr(err.text, "/nonexistent-relayshim/dir/spool"));
	make_message(&env, &msg, "s@example.com", "x\r\n");
	ck_assert_int_eq(spool_store(&cfg, &env, &msg, "X1", 0, &err), EX_CANTCREAT);
	envelope_free(&env);
	message_free(&msg);
}
END_TEST

START_TEST(an_area_open_to_others_is_left_alone_and_the_next_name_used)
{
	char path[400], alt[420];
	struct stat sb;

	ck_assert_int_eq(mkdir(qdir, 01733), 0);
	snprintf(path, sizeof(path), "%s/%lu", qdir, (unsigned long)geteuid());
	ck_assert_int_eq(mkdir(path, 0755), 0); /* open to others: never stored into */
	ck_assert_int_eq(spool_usable(&cfg, &err), 0);
	store_one("PLANTED1", "s@example.com");
	snprintf(alt, sizeof(alt), "%s.1/q/PLANTED1", path);
	ck_assert_int_eq(stat(alt, &sb), 0);
	ck_assert_int_eq(count_dir(path, "", 0), 0);
	mock_mode = MOCK_OK;
	ck_assert_int_eq(spool_run(&cfg, &err), 0); /* -q finds it under the other name */
	ck_assert_int_eq(mock_calls, 1);
}
END_TEST

START_TEST(a_spool_top_writable_by_others_without_the_sticky_bit_is_refused)
{
	ck_assert_int_eq(mkdir(qdir, 0777), 0);
	ck_assert_int_eq(chmod(qdir, 0777), 0);
	ck_assert_int_eq(spool_usable(&cfg, &err), EX_CANTCREAT);
	ck_assert_ptr_nonnull(strstr(err.text, "without the sticky bit"));
}
END_TEST

START_TEST(file_size_limit_gives_73_and_no_entry)
{
	struct envelope env;
	struct message msg;
	struct rlimit rl = {4096, 4096};
	char big[10000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ck_assert_int_eq(spool_usable(&cfg, &err), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	make_message(&env, &msg, "s@example.com", big);
	ck_assert_int_eq(spool_store(&cfg, &env, &msg, "TOOBIG", 0, &err), EX_CANTCREAT);
	ck_assert_ptr_nonnull(strstr(err.text, "free space"));
	ck_assert_int_eq(count_dir(area, "q", 0), 0);
	ck_assert_int_eq(count_dir(area, "tmp", 0), 0);
	envelope_free(&env);
	message_free(&msg);
}
END_TEST

/* ---- crash points of the commit protocol ---- */

/* store_and_die - store in a child that SIGKILLs itself at step */

static void store_and_die(const char *step, const char *id)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		setenv("RELAYSHIM_TEST_CRASH_AT", step, 1);
		store_one(id, "s@example.com");
		_exit(0); /* not reached when the step exists */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "no crash at step %s",
		      step);
}

static void assert_no_entry_visible(void)
{
	struct buf out = BUF_INIT;

	ck_assert_int_eq(count_dir(area, "q", 0), 0);
	ck_assert_int_eq(spool_list(&cfg, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out.data, "Mail queue is empty"));
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(mock_calls, 0); /* nothing half-written is sent */
	buf_free(&out);
}

static void assert_entry_complete(const char *id)
{
	struct envelope env;
	struct message msg;

	ck_assert_int_eq(spool_load(&cfg, id, &env, &msg, &err), 0);
	ck_assert_uint_eq(msg.body.len, strlen("hello\r\n.dot line\r\n"));
	envelope_free(&env);
	message_free(&msg);
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(mock_calls, 1);
	ck_assert_str_eq(buf_cstr(&mock_data),
			 "From: x@example.com\r\nSubject: test\r\n\r\nhello\r\n.dot line\r\n");
}

START_TEST(crash_after_tmp_write_leaves_no_visible_entry)
{
	store_and_die("store-written", "CRASH1");
	ck_assert_int_eq(count_dir(area, "tmp", 0), 1); /* debris, invisible */
	assert_no_entry_visible();
}
END_TEST

START_TEST(crash_after_fsync_leaves_no_visible_entry)
{
	store_and_die("store-fsynced", "CRASH2");
	assert_no_entry_visible();
}
END_TEST

START_TEST(crash_after_rename_leaves_a_complete_entry)
{
	store_and_die("store-renamed", "CRASH3");
	assert_entry_complete("CRASH3");
}
END_TEST

START_TEST(crash_after_directory_fsync_leaves_a_complete_entry)
{
	store_and_die("store-dirsynced", "CRASH4");
	assert_entry_complete("CRASH4");
}
END_TEST

START_TEST(a_truncated_entry_is_never_delivered)
{
	char path[500];

	store_one("TRUNC", "s@example.com");
	snprintf(path, sizeof(path), "%s/q/TRUNC", area);
	ck_assert_int_eq(truncate(path, 200), 0);
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(mock_calls, 0);
	ck_assert(exists("%s/failed/%s", area, "TRUNC"));
	ck_assert(exists("%s/failed/%s.reason", area, "TRUNC"));
}
END_TEST

/* ---- crash points of delivery ---- */

/* run_and_die - spool_run in a child that dies at step; returns the calls it made */

static void run_and_die(const char *step)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		struct error e;

		setenv("RELAYSHIM_TEST_CRASH_AT", step, 1);
		spool_run(&cfg, &e);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "no crash at step %s",
		      step);
}

START_TEST(crash_before_sending_keeps_the_entry)
{
	store_one("D1", "s@example.com");
	run_and_die("deliver-before");
	ck_assert_int_eq(sent_lines(), 0);
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(sent_lines(), 1);
}
END_TEST

START_TEST(crash_after_the_relay_accepted_resends_once_the_documented_duplicate)
{
	store_one("D2", "s@example.com");
	run_and_die("deliver-after");
	ck_assert_int_eq(sent_lines(), 1);
	ck_assert_int_eq(count_dir(area, "q", 0), 1);
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(sent_lines(), 2);
	ck_assert_int_eq(count_dir(area, "q", 0), 0);
}
END_TEST

START_TEST(crash_after_removal_sends_nothing_again)
{
	store_one("D3", "s@example.com");
	run_and_die("deliver-removed");
	ck_assert_int_eq(sent_lines(), 1);
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(sent_lines(), 1);
}
END_TEST

/* ---- delivery outcomes ---- */

START_TEST(run_delivers_and_removes)
{
	store_one("R1", "s@example.com");
	store_one("R2", "s@example.com");
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(mock_calls, 2);
	ck_assert_int_eq(count_dir(area, "q", 0), 0);
	ck_assert_int_eq(count_dir(area, "q", 1), 0);
}
END_TEST

START_TEST(temporary_failure_keeps_the_message_with_attempts_and_error)
{
	struct buf out = BUF_INIT;

	store_one("T1", "s@example.com");
	mock_mode = MOCK_TEMP;
	ck_assert_int_eq(spool_run(&cfg, &err), EX_TEMPFAIL);
	ck_assert_ptr_nonnull(strstr(err.text, "1 message(s) remain"));
	ck_assert_ptr_nonnull(strstr(err.text, "Connection refused"));
	ck_assert_int_eq(spool_list(&cfg, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out.data, "T1"));
	ck_assert_ptr_nonnull(strstr(out.data, "attempts: 1"));
	ck_assert_ptr_nonnull(strstr(out.data, "last error: relay 127.0.0.1:1 connect failed"));
	ck_assert_ptr_nonnull(strstr(out.data, "<s@example.com>"));
	ck_assert_ptr_nonnull(strstr(out.data, "to: <a@example.com>"));
	ck_assert_ptr_nonnull(strstr(out.data, "-- 1 message,"));
	buf_free(&out);
}
END_TEST

START_TEST(list_of_an_empty_queue_says_so)
{
	struct buf out = BUF_INIT;

	ck_assert_int_eq(spool_list(&cfg, &out, &err), 0);
	ck_assert_str_eq(out.data, "Mail queue is empty\n");
	buf_free(&out);
}
END_TEST

START_TEST(three_temporary_failures_end_the_pass)
{
	for (int i = 0; i < 6; i++) {
		char id[16];

		snprintf(id, sizeof(id), "S%d", i);
		store_one(id, "s@example.com");
	}
	mock_mode = MOCK_TEMP;
	ck_assert_int_eq(spool_run(&cfg, &err), EX_TEMPFAIL);
	ck_assert_int_eq(mock_calls, 3);
	ck_assert_ptr_nonnull(strstr(err.text, "6 message(s) remain"));
}
END_TEST

START_TEST(permanent_failure_moves_to_failed_and_notifies_the_sender)
{
	char path[500], reason[2048];
	FILE *f;
	size_t n;

	cfg.bounce_to = "sender";
	cfg.domain = "example.com";
	store_one("P1", "s@example.com");
	mock_mode = MOCK_PERM;
	/* The run fails P1, queues the notice and tries it in a second pass
	 * (the mock refuses that too; the last call is the notice). */
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(mock_calls, 2);
	ck_assert(exists("%s/failed/%s", area, "P1"));
	snprintf(path, sizeof(path), "%s/failed/P1.reason", area);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(reason, 1, sizeof(reason) - 1, f);
	reason[n] = 0;
	fclose(f);
	ck_assert_ptr_nonnull(strstr(reason, "554 5.7.1 no thanks"));
	ck_assert_ptr_nonnull(strstr(reason, "<a@example.com>"));
	/* the notice: the null sender, to the original sender */
	ck_assert_str_eq(mock_sender, "");
	ck_assert_uint_eq(mock_rcpts.n, 1);
	ck_assert_str_eq(mock_rcpts.v[0], "s@example.com");
	ck_assert_ptr_nonnull(
	    strstr(mock_data.data, "From: Mail Delivery System <MAILER-DAEMON@example.com>"));
	ck_assert_ptr_nonnull(strstr(mock_data.data, "Auto-Submitted: auto-replied"));
	ck_assert_ptr_nonnull(strstr(mock_data.data, "Queue ID: P1"));
	ck_assert_ptr_nonnull(strstr(mock_data.data, "Subject: test"));
}
END_TEST

START_TEST(a_configuration_error_keeps_the_message_queued)
{
	cfg.bounce_to = "sender";
	store_one("C1", "s@example.com");
	mock_mode = MOCK_CONFIG;
	ck_assert_int_eq(spool_run(&cfg, &err), EX_TEMPFAIL);
	ck_assert_ptr_nonnull(strstr(err.text, "credentials"));
	ck_assert_int_eq(count_dir(area, "q", 0), 1);
	ck_assert_int_eq(count_dir(area, "failed", 0), 0);
}
END_TEST

START_TEST(a_message_with_the_null_sender_gets_no_notice)
{
	cfg.bounce_to = "sender";
	store_one("N1", "");
	mock_mode = MOCK_PERM;
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert(exists("%s/failed/%s", area, "N1"));
	ck_assert_int_eq(count_dir(area, "q", 0), 0);
}
END_TEST

START_TEST(a_notice_to_a_fixed_address_is_not_sent_about_a_notice)
{
	cfg.bounce_to = "postmaster@example.com";
	store_one("N2", "s@example.com");
	mock_mode = MOCK_PERM;
	/* the original fails, its notice is queued and fails too: no third message */
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(mock_calls, 2);
	ck_assert_str_eq(mock_rcpts.v[0], "postmaster@example.com");
	ck_assert_int_eq(count_dir(area, "q", 0), 0);
	ck_assert_int_eq(count_dir(area, "failed", 0), 2);
}
END_TEST

START_TEST(max_age_moves_to_failed_without_trying)
{
	store_one("OLD", "s@example.com");
	cfg.queue_max_age_s = 1;
	/* Age comes from the creation time inside the envelope: wait it out. */
	sleep(2);
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_int_eq(mock_calls, 0);
	ck_assert(exists("%s/failed/%s", area, "OLD"));
	ck_assert(exists("%s/failed/%s.reason", area, "OLD"));
	ck_assert_int_eq(count_dir(area, "q", 0), 0);
}
END_TEST

START_TEST(partial_acceptance_retries_only_the_deferred_recipient)
{
	struct envelope env;
	struct message msg;

	make_message(&env, &msg, "s@example.com", "x\r\n");
	strlist_add(&env.rcpts, "later@example.com");
	ck_assert_int_eq(spool_store(&cfg, &env, &msg, "PART", 0, &err), 0);
	mock_mode = MOCK_PARTIAL;
	ck_assert_int_eq(spool_run(&cfg, &err), EX_TEMPFAIL);
	/* the refused one is recorded in failed/, the message stays for "later" */
	ck_assert(exists("%s/failed/%s.reason", area, "PART"));
	ck_assert(exists("%s/q/%s", area, "PART"));
	mock_mode = MOCK_OK;
	ck_assert_int_eq(spool_run(&cfg, &err), 0);
	ck_assert_uint_eq(mock_rcpts.n, 1);
	ck_assert_str_eq(mock_rcpts.v[0], "later@example.com");
	ck_assert_int_eq(count_dir(area, "q", 0), 0);
	envelope_free(&env);
	message_free(&msg);
}
END_TEST

START_TEST(deliver_one_entry_in_the_foreground)
{
	store_one("F1", "s@example.com");
	ck_assert_int_eq(spool_deliver(&cfg, "F1", &err), 0);
	ck_assert_int_eq(mock_calls, 1);
	ck_assert_int_eq(count_dir(area, "q", 0), 0);
	store_one("F2", "s@example.com");
	mock_mode = MOCK_TEMP;
	ck_assert_int_eq(spool_deliver(&cfg, "F2", &err), EX_TEMPFAIL);
	ck_assert_int_eq(count_dir(area, "q", 0), 1);
}
END_TEST

START_TEST(a_locked_entry_is_not_sent_twice)
{
	char path[500];
	int fd, i;
	pid_t pid;

	store_one("L1", "s@example.com");
	snprintf(path, sizeof(path), "%s/q/L1", area);
	/* Another deliverer holds the entry, then removes it (as after a 250). */
	if ((pid = fork()) == 0) {
		int cfd = open(path, O_RDONLY);

		flock(cfd, LOCK_EX);
		usleep(300000);
		unlink(path);
		_exit(0); /* exit releases the lock */
	}
	fd = open(path, O_RDONLY);
	/* Until the child holds the lock: up to 10 s on a loaded machine. */
	for (i = 0; i < 1000 && flock(fd, LOCK_EX | LOCK_NB) == 0; i++) {
		flock(fd, LOCK_UN);
		usleep(10000);
	}
	close(fd);
	ck_assert_int_eq(spool_run(&cfg, &err), 0); /* waits for the lock, finds it gone */
	waitpid(pid, 0, 0);
	ck_assert_int_eq(mock_calls, 0);
}
END_TEST

/* ---- the worker ---- */

/* wait_empty - poll until q/ is empty or seconds pass */

static int wait_empty(double seconds)
{
	for (int i = 0; i < (int)(seconds * 50); i++) {
		if (count_dir(area, "q", 0) == 0)
			return 1;
		usleep(20000);
	}
	return 0;
}

/* attempts_reach - poll the listing until the only entry was tried n times or seconds pass */

static int attempts_reach(unsigned n, double seconds)
{
	struct buf out = BUF_INIT;
	int ok = 0;

	/* Polled, not slept: a loaded machine may start the worker late. */
	for (int i = 0; i < (int)(seconds * 50) && !ok; i++) {
		const char *p;

		buf_reset(&out);
		if (spool_list(&cfg, &out, &err) == 0 && out.data != NULL &&
		    (p = strstr(out.data, "attempts: ")) != NULL)
			ok = strtoul(p + 10, NULL, 10) >= n;
		if (!ok)
			usleep(20000);
	}
	buf_free(&out);
	return ok;
}

/* lock_free - can we take the area's worker lock? */

static int lock_free(void)
{
	char path[500];
	int fd, ok;

	snprintf(path, sizeof(path), "%s/lock", area);
	if ((fd = open(path, O_RDWR)) < 0)
		return 1;
	ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return ok;
}

START_TEST(kick_starts_a_worker_that_delivers_and_exits)
{
	store_one("W1", "s@example.com");
	store_one("W2", "s@example.com");
	spool_kick(&cfg);
	ck_assert(wait_empty(5));
	ck_assert_int_eq(sent_lines(), 2);
	for (int i = 0; i < 100 && !lock_free(); i++)
		usleep(20000);
	ck_assert(lock_free()); /* the worker has exited */
}
END_TEST

START_TEST(kick_with_an_empty_queue_starts_nothing)
{
	ck_assert_int_eq(spool_usable(&cfg, &err), 0);
	spool_kick(&cfg);
	ck_assert(lock_free());
	ck_assert_int_eq(sent_lines(), 0);
}
END_TEST

START_TEST(worker_retries_with_backoff_until_the_relay_answers)
{
	char flag[400];
	struct buf out = BUF_INIT;
	int fd;

	snprintf(flag, sizeof(flag), "%s/down", top);
	fd = open(flag, O_CREAT | O_WRONLY, 0600);
	close(fd);
	store_one("B1", "s@example.com");
	mock_mode = MOCK_DOWN_WHILE_FLAG;
	spool_kick(&cfg);
	ck_assert(attempts_reach(2, 10)); /* base 0.05 s: retried without a kick */
	ck_assert_int_eq(spool_list(&cfg, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out.data, "relay down (flag file)"));
	ck_assert(!lock_free());  /* a worker sleeps on it */
	unlink(flag);		  /* the relay is back */
	ck_assert(wait_empty(5)); /* delivered without any further call */
	ck_assert_int_eq(sent_lines(), 1);
	for (int i = 0; i < 200 && !lock_free(); i++)
		usleep(20000);
	ck_assert(lock_free()); /* the worker saw the empty queue and left */
	buf_free(&out);
}
END_TEST

START_TEST(a_kick_wakes_a_sleeping_worker)
{
	char flag[400];
	int fd;

	setenv("RELAYSHIM_RETRY_BASE", "60", 1); /* the next retry would be a minute away */
	snprintf(flag, sizeof(flag), "%s/down", top);
	fd = open(flag, O_CREAT | O_WRONLY, 0600);
	close(fd);
	store_one("K1", "s@example.com");
	mock_mode = MOCK_DOWN_WHILE_FLAG;
	spool_kick(&cfg);
	ck_assert(attempts_reach(1, 10)); /* tried once, now asleep for a minute */
	ck_assert_int_eq(count_dir(area, "q", 0), 1);
	ck_assert(!lock_free());
	unlink(flag);
	spool_kick(&cfg); /* e.g. a later synchronous delivery succeeded */
	ck_assert(wait_empty(3));
	ck_assert_int_eq(sent_lines(), 1);
	for (int i = 0; i < 200 && !lock_free(); i++)
		usleep(20000);
	ck_assert(lock_free());
}
END_TEST

/* worker_pid - the pid in the area's lock file, 0 if none */

static long worker_pid(void)
{
	char path[500], text[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/lock", area);
	if ((f = fopen(path, "r")) == 0)
		return 0;
	if (fgets(text, sizeof(text), f) == 0)
		text[0] = 0;
	fclose(f);
	return atol(text);
}

/* process_gone - exited (gone or a zombie waiting for init) */

static int process_gone(long pid)
{
	char path[64], line[256];
	FILE *f;
	int gone = 1;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == 0)
		return 1;
	if (fgets(line, sizeof(line), f)) {
		char *p = strrchr(line, ')');

		gone = p && p[1] == ' ' && p[2] == 'Z';
	}
	fclose(f);
	return gone;
}

START_TEST(the_worker_pid_is_recorded_and_the_worker_leaves_a_removed_spool)
{
	char flag[400], cmd[400];
	long pid;
	int fd;

	setenv("RELAYSHIM_RETRY_BASE", "60", 1);
	snprintf(flag, sizeof(flag), "%s/down", top);
	fd = open(flag, O_CREAT | O_WRONLY, 0600);
	close(fd);
	store_one("G1", "s@example.com");
	mock_mode = MOCK_DOWN_WHILE_FLAG;
	spool_kick(&cfg);
	pid = worker_pid(); /* there as soon as spool_kick() returns */
	ck_assert_int_gt(pid, 1);
	ck_assert(!process_gone(pid));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", qdir);
	ck_assert_int_eq(system(cmd), 0);
	for (int i = 0; i < 150 && !process_gone(pid); i++)
		usleep(20000);
	ck_assert(process_gone(pid));
}
END_TEST

static Suite *spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("spool");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, store_then_load_gives_back_envelope_and_bytes);
	tcase_add_test(tc, store_copies_a_body_held_in_a_file);
	tcase_add_test(tc, spool_directories_and_files_have_the_shared_modes);
	tcase_add_test(tc, made_ids_are_unique_and_safe);
	tcase_add_test(tc, concurrent_stores_with_one_id_keep_every_message);
	tcase_add_test(tc, an_unsafe_queue_id_is_replaced);
	tcase_add_test(tc, missing_parent_makes_the_spool_unusable);
	tcase_add_test(tc, an_area_open_to_others_is_left_alone_and_the_next_name_used);
	tcase_add_test(tc, entry_format_parses_back_to_the_same_envelope);
	tcase_add_test(tc, entry_parse_refuses_a_line_break_in_a_recipient);
	tcase_add_test(tc, entry_parse_refuses_a_header_claimed_over_64_mib);
	tcase_add_test(tc, entry_parse_refuses_more_than_1000_recipients);
	tcase_add_test(tc, a_fifo_and_a_directory_in_q_are_skipped_without_blocking);
	tcase_add_test(tc, a_spool_top_writable_by_others_without_the_sticky_bit_is_refused);
	tcase_add_test(tc, file_size_limit_gives_73_and_no_entry);
	tcase_add_test(tc, crash_after_tmp_write_leaves_no_visible_entry);
	tcase_add_test(tc, crash_after_fsync_leaves_no_visible_entry);
	tcase_add_test(tc, crash_after_rename_leaves_a_complete_entry);
	tcase_add_test(tc, crash_after_directory_fsync_leaves_a_complete_entry);
	tcase_add_test(tc, a_truncated_entry_is_never_delivered);
	tcase_add_test(tc, crash_before_sending_keeps_the_entry);
	tcase_add_test(tc, crash_after_the_relay_accepted_resends_once_the_documented_duplicate);
	tcase_add_test(tc, crash_after_removal_sends_nothing_again);
	tcase_add_test(tc, run_delivers_and_removes);
	tcase_add_test(tc, temporary_failure_keeps_the_message_with_attempts_and_error);
	tcase_add_test(tc, list_of_an_empty_queue_says_so);
	tcase_add_test(tc, three_temporary_failures_end_the_pass);
	tcase_add_test(tc, permanent_failure_moves_to_failed_and_notifies_the_sender);
	tcase_add_test(tc, a_configuration_error_keeps_the_message_queued);
	tcase_add_test(tc, a_message_with_the_null_sender_gets_no_notice);
	tcase_add_test(tc, a_notice_to_a_fixed_address_is_not_sent_about_a_notice);
	tcase_add_test(tc, max_age_moves_to_failed_without_trying);
	tcase_add_test(tc, partial_acceptance_retries_only_the_deferred_recipient);
	tcase_add_test(tc, deliver_one_entry_in_the_foreground);
	tcase_add_test(tc, a_locked_entry_is_not_sent_twice);
	tcase_add_test(tc, kick_starts_a_worker_that_delivers_and_exits);
	tcase_add_test(tc, kick_with_an_empty_queue_starts_nothing);
	tcase_add_test(tc, worker_retries_with_backoff_until_the_relay_answers);
	tcase_add_test(tc, a_kick_wakes_a_sleeping_worker);
	tcase_add_test(tc, the_worker_pid_is_recorded_and_the_worker_leaves_a_removed_spool);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
