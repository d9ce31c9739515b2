/* test_util - allocation, panics, string lists, the error record (contract in util.h) */

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

static struct buf out;
static struct strlist l;

static void teardown(void)
{
	buf_free(&out);
	strlist_free(&l);
}

START_TEST(allocating_zero_bytes_gives_a_pointer_to_free)
{
	void *a = util_malloc(0);
	void *c = util_calloc(0, 0);
	void *r = util_realloc(0, 0);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(r);
	free(a);
	free(c);
	free(r);
}
END_TEST

START_TEST(calloc_memory_is_zeroed)
{
	unsigned char *p = util_calloc(100, 3);

	for (size_t i = 0; i < 300; i++)
		ck_assert_int_eq(p[i], 0);
	free(p);
}
END_TEST

START_TEST(strndup_stops_at_n_or_at_the_nul)
{
	char *a = util_strndup("abcdef", 3);
	char *b = util_strndup("ab", 10);
	char *c = util_strndup("abc", 0);
	char *d = util_strdup("");

	ck_assert_str_eq(a, "abc");
	ck_assert_str_eq(b, "ab");
	ck_assert_str_eq(c, "");
	ck_assert_str_eq(d, "");
	free(a);
	free(b);
	free(c);
	free(d);
}
END_TEST

START_TEST(out_of_memory_exits_71_with_one_line)
{
	util_oom();
}
END_TEST

START_TEST(panic_aborts)
{
	util_panic("impossible state %d", 1);
}
END_TEST

START_TEST(strlist_add_copies_the_string)
{
	char s[] = "alice@example.org";

	strlist_add(&l, s);
	s[0] = 'X';
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.v[0], "alice@example.org");
	ck_assert_ptr_ne(l.v[0], s);
}
END_TEST

START_TEST(strlist_add_nodup_takes_ownership_of_the_pointer)
{
	char *s = util_strdup("bob@example.org");

	strlist_add_nodup(&l, s);
	ck_assert_ptr_eq(l.v[0], s); /* freed by strlist_free in teardown */
}
END_TEST

START_TEST(strlist_vector_is_always_null_terminated)
{
	char name[32];

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		strlist_add(&l, name);
		ck_assert_uint_eq(l.n, (size_t)i + 1);
		ck_assert_ptr_null(l.v[l.n]);
		ck_assert_uint_gt(l.cap, l.n);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		ck_assert_str_eq(l.v[i], name);
	}
}
END_TEST

START_TEST(strlist_contains_ci_ignores_case_only)
{
	strlist_add(&l, "Root");
	strlist_add(&l, "postmaster");
	ck_assert(strlist_contains_ci(&l, "ROOT"));
	ck_assert(strlist_contains_ci(&l, "PostMaster"));
	ck_assert(!strlist_contains_ci(&l, "roo"));
	ck_assert(!strlist_contains_ci(&l, "roots"));
	ck_assert(!strlist_contains_ci(&l, ""));
}
END_TEST

START_TEST(empty_strlist_contains_nothing_and_frees_cleanly)
{
	struct strlist e = STRLIST_INIT;

	ck_assert(!strlist_contains_ci(&e, "x"));
	strlist_free(&e);
	ck_assert_ptr_null(e.v);
	ck_assert_uint_eq(e.n, 0);
}
END_TEST

START_TEST(strlist_free_leaves_a_reusable_empty_list)
{
	strlist_add(&l, "a");
	strlist_free(&l);
	ck_assert_ptr_null(l.v);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_uint_eq(l.cap, 0);
	strlist_add(&l, "b");
	ck_assert_str_eq(l.v[0], "b");
}
END_TEST

START_TEST(strlist_growth_that_would_overflow_exits_71)
{
	struct strlist huge = {0, SIZE_MAX / 4 - 1, SIZE_MAX / 4};

	strlist_add_nodup(&huge, 0);
}
END_TEST

START_TEST(error_set_returns_its_status_and_formats_the_text)
{
	struct error err;

	error_clear(&err);
	ck_assert_int_eq(error_set(&err, EX_USAGE, "bad option -%c", 'q'), EX_USAGE);
	ck_assert_int_eq(err.status, EX_USAGE);
	ck_assert_str_eq(err.text, "bad option -q");
}
END_TEST

START_TEST(error_set_truncates_long_text_to_the_record)
{
	struct error err;
	char big[3000];

	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	error_clear(&err);
	ck_assert_int_eq(error_set(&err, EX_TEMPFAIL, "%s", big), EX_TEMPFAIL);
	ck_assert_uint_eq(strlen(err.text), sizeof(err.text) - 1);
}
END_TEST

START_TEST(error_clear_means_no_error)
{
	struct error err;

	memset(&err, 0x55, sizeof(err));
	error_clear(&err);
	ck_assert_int_eq(err.status, 0);
	ck_assert_int_eq(err.temporary, 0);
	ck_assert_str_eq(err.text, "");
}
END_TEST

START_TEST(next_item_splits_on_commas_spaces_and_tabs)
{
	const char *p = " ,syslog,\tstderr  file:/x ,";
	const char *item;
	size_t n;

	item = util_next_item(&p, &n);
	ck_assert_int_eq((int)n, 6);
	ck_assert_mem_eq(item, "syslog", 6);
	item = util_next_item(&p, &n);
	ck_assert_mem_eq(item, "stderr", n);
	ck_assert_uint_eq(n, 6);
	item = util_next_item(&p, &n);
	ck_assert_uint_eq(n, 7);
	ck_assert_mem_eq(item, "file:/x", 7);
	ck_assert_ptr_null(util_next_item(&p, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(util_next_item(&p, &n));
}
END_TEST

START_TEST(next_item_of_an_empty_list_is_null)
{
	const char *p = "";
	const char *q = " , \t";
	size_t n = 99;

	ck_assert_ptr_null(util_next_item(&p, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(util_next_item(&q, &n));
}
END_TEST

START_TEST(hex_value_of_every_byte)
{
	for (int c = 0; c < 256; c++) {
		int want = c >= '0' && c <= '9'	  ? c - '0'
			   : c >= 'a' && c <= 'f' ? c - 'a' + 10
			   : c >= 'A' && c <= 'F' ? c - 'A' + 10
						  : -1;

		ck_assert_int_eq(util_hex_value(c), want);
	}
}
END_TEST

START_TEST(has_control_is_c0_and_del_only)
{
	for (int c = 1; c < 256; c++) {
		char s[] = {'a', (char)c, 'b', 0};

		ck_assert_int_eq(util_has_control(s) != 0, c < 0x20 || c == 0x7f);
	}
	ck_assert_int_eq(util_has_control(""), 0);
	ck_assert_int_eq(util_has_control("<a@b>, \"x\" \xc3\xa9"), 0);
}
END_TEST

/* The pipe reader: slow, so the writer blocks and is interrupted often. */

#define PIPE_BYTES (1024 * 1024)

static int pipe_rd;
static unsigned char *received;
static size_t nreceived;
static volatile sig_atomic_t ticks;

static void *reader(void *arg)
{
	sigset_t block;
	ssize_t r;

	(void)arg;
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &block, 0);
	while ((r = read(pipe_rd, received + nreceived, 777)) > 0) {
		nreceived += (size_t)r;
		if (nreceived % 7 == 0)
			usleep(50);
	}
	return 0;
}

static void tick(int sig)
{
	(void)sig;
	ticks++;
}

START_TEST(write_all_delivers_every_byte_through_short_writes_and_eintr)
{
	struct sigaction sa;
	struct itimerval it = {{0, 200}, {0, 200}};
	unsigned char *data = malloc(PIPE_BYTES);
	pthread_t t;
	int fds[2];

	received = calloc(1, PIPE_BYTES + 1000);
	nreceived = 0;
	for (size_t i = 0; i < PIPE_BYTES; i++)
		data[i] = (unsigned char)(i * 131 + (i >> 11));
	ck_assert_int_eq(pipe(fds), 0);
	(void)fcntl(fds[1], F_SETPIPE_SZ, 4096);
	pipe_rd = fds[0];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tick; /* no SA_RESTART: blocked writes come back short or EINTR */
	sigaction(SIGALRM, &sa, 0);
	ck_assert_int_eq(pthread_create(&t, 0, reader, 0), 0);
	setitimer(ITIMER_REAL, &it, 0);
	ck_assert_int_eq(util_write_all(fds[1], data, PIPE_BYTES), 0);
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, 0);
	close(fds[1]);
	pthread_join(t, 0);
	close(fds[0]);
	ck_assert_int_gt(ticks, 0);
	ck_assert_uint_eq(nreceived, PIPE_BYTES);
	ck_assert_mem_eq(received, data, PIPE_BYTES);
	free(data);
	free(received);
}
END_TEST

START_TEST(write_all_of_nothing_succeeds)
{
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(util_write_all(fds[1], "", 0), 0);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(write_all_to_a_closed_pipe_fails_with_errno)
{
	int fds[2];

	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[0]);
	errno = 0;
	ck_assert_int_eq(util_write_all(fds[1], "lost", 4), -1);
	ck_assert_int_eq(errno, EPIPE);
	close(fds[1]);
}
END_TEST

START_TEST(dl_open_fills_every_slot)
{
	size_t (*my_strlen)(const char *) = 0;
	int (*my_abs)(int) = 0;
	const char *const names[] = {"strlen", "abs"};
	void *const slots[] = {&my_strlen, &my_abs};
	char why[256] = "";

	ck_assert_int_eq(util_dl_open("libc.so.6", RTLD_NOW, names, slots, 2, why, sizeof(why)), 0);
	ck_assert_ptr_nonnull(my_strlen);
	ck_assert_uint_eq(my_strlen("four"), 4);
	ck_assert_int_eq(my_abs(-3), 3);
}
END_TEST

START_TEST(dl_open_names_the_missing_symbol)
{
	void (*fp)(void) = 0;
	const char *const names[] = {"relayshim_no_such_symbol"};
	void *const slots[] = {&fp};
	char why[256] = "";

	ck_assert_int_eq(util_dl_open("libc.so.6", RTLD_NOW, names, slots, 1, why, sizeof(why)),
			 -1);
	ck_assert_str_eq(why, "libc.so.6 lacks relayshim_no_such_symbol");
	ck_assert_ptr_null(fp);
}
END_TEST

START_TEST(dl_open_names_the_missing_library)
{
	char why[256] = "";

	ck_assert_int_eq(
	    util_dl_open("librelayshim-nope.so.9", RTLD_NOW, 0, 0, 0, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "cannot load librelayshim-nope.so.9: "));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, 0, teardown);
	tcase_add_test(tc, allocating_zero_bytes_gives_a_pointer_to_free);
	tcase_add_test(tc, calloc_memory_is_zeroed);
	tcase_add_test(tc, strndup_stops_at_n_or_at_the_nul);
	tcase_add_exit_test(tc, out_of_memory_exits_71_with_one_line, EX_OSERR);
	tcase_add_test_raise_signal(tc, panic_aborts, SIGABRT);
	tcase_add_test(tc, strlist_add_copies_the_string);
	tcase_add_test(tc, strlist_add_nodup_takes_ownership_of_the_pointer);
	tcase_add_test(tc, strlist_vector_is_always_null_terminated);
	tcase_add_test(tc, strlist_contains_ci_ignores_case_only);
	tcase_add_test(tc, empty_strlist_contains_nothing_and_frees_cleanly);
	tcase_add_test(tc, strlist_free_leaves_a_reusable_empty_list);
	tcase_add_exit_test(tc, strlist_growth_that_would_overflow_exits_71, EX_OSERR);
	tcase_add_test(tc, error_set_returns_its_status_and_formats_the_text);
	tcase_add_test(tc, error_set_truncates_long_text_to_the_record);
	tcase_add_test(tc, error_clear_means_no_error);
	tcase_add_test(tc, next_item_splits_on_commas_spaces_and_tabs);
	tcase_add_test(tc, next_item_of_an_empty_list_is_null);
	tcase_add_test(tc, hex_value_of_every_byte);
	tcase_add_test(tc, has_control_is_c0_and_del_only);
	tcase_add_test(tc, write_all_delivers_every_byte_through_short_writes_and_eintr);
	tcase_add_test(tc, write_all_of_nothing_succeeds);
	tcase_add_test(tc, write_all_to_a_closed_pipe_fails_with_errno);
	tcase_add_test(tc, dl_open_fills_every_slot);
	tcase_add_test(tc, dl_open_names_the_missing_symbol);
	tcase_add_test(tc, dl_open_names_the_missing_library);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
