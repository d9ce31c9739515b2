/* test_fuzz_regressions - replay every fuzz target's regressions and seed corpus
 *
 * The libFuzzer targets (fuzz/fuzz_*.c) are compiled in here with their entry
 * points renamed, so the inputs that once crashed (fuzz/regressions/<target>/)
 * and the seed corpora (fuzz/corpus/<target>/) run on every make check, with
 * gcc or clang, with or without SAN=1, even where clang's libFuzzer is missing.
 * A finding is an abort (fuzz_check) or a sanitizer report; the SIGABRT
 * handler names the input first. Inputs are found relative to the top of the
 * tree: the current directory, or $RELAYSHIM_TOP.
 */

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LLVMFuzzerTestOneInput fuzz_input_one
#include "../../fuzz/fuzz_input.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_header_one
#include "../../fuzz/fuzz_header.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_address_one
#include "../../fuzz/fuzz_address.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_rewrite_one
#include "../../fuzz/fuzz_rewrite.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_smtp_reply_one
#include "../../fuzz/fuzz_smtp_reply.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_smtpd_one
#include "../../fuzz/fuzz_smtpd.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_config_one
#include "../../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_cmdline_one
#include "../../fuzz/fuzz_cmdline.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_spool_entry_one
#include "../../fuzz/fuzz_spool_entry.c"
#undef LLVMFuzzerTestOneInput

typedef int (*fuzz_fn)(const uint8_t *, size_t);

static char replaying[4096];

/* on_abort - name the input that broke an invariant, then die as before */

static void on_abort(int sig)
{
	static const char pfx[] = "fuzz regression failed on ";

	(void)!write(2, pfx, sizeof(pfx) - 1);
	(void)!write(2, replaying, strlen(replaying));
	(void)!write(2, "\n", 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* top - the top of the source tree */

static const char *top(void)
{
	const char *t = getenv("RELAYSHIM_TOP");

	return t && *t ? t : ".";
}

/* read_file - the whole file, or NULL */

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;

	if (f == 0)
		return 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	*len = b.len;
	return (uint8_t *)buf_steal(&b);
}

/* replay_dir - run fn over every file of dir; returns how many ran, -1 if no dir */

static long replay_dir(const char *dir, fuzz_fn fn)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long n = 0;

	if (d == 0)
		return -1;
	signal(SIGABRT, on_abort);
	while ((e = readdir(d)) != 0) {
		uint8_t *data;
		size_t len = 0;

		if (e->d_name[0] == '.')
			continue;
		snprintf(replaying, sizeof(replaying), "%s/%s", dir, e->d_name);
		if ((data = read_file(replaying, &len)) == 0)
			continue;
		fn(data, len);
		free(data);
		n++;
	}
	closedir(d);
	signal(SIGABRT, SIG_DFL);
	return n;
}

/* replay - regressions (may be absent) and corpus (must exist) of one target */

static void replay(const char *target, fuzz_fn fn)
{
	char dir[1024];
	long n;

	snprintf(dir, sizeof(dir), "%s/fuzz/regressions/%s", top(), target);
	(void)replay_dir(dir, fn);
	snprintf(dir, sizeof(dir), "%s/fuzz/corpus/%s", top(), target);
	n = replay_dir(dir, fn);
	ck_assert_msg(
	    n > 0, "no seed corpus in %s (run from the top of the tree or set RELAYSHIM_TOP)", dir);
}

START_TEST(fuzz_input_corpus_and_regressions_replay_clean)
{
	replay("fuzz_input", fuzz_input_one);
}
END_TEST

START_TEST(fuzz_header_corpus_and_regressions_replay_clean)
{
	replay("fuzz_header", fuzz_header_one);
}
END_TEST

START_TEST(fuzz_address_corpus_and_regressions_replay_clean)
{
	replay("fuzz_address", fuzz_address_one);
}
END_TEST

START_TEST(fuzz_rewrite_corpus_and_regressions_replay_clean)
{
	replay("fuzz_rewrite", fuzz_rewrite_one);
}
END_TEST

START_TEST(fuzz_smtp_reply_corpus_and_regressions_replay_clean)
{
	replay("fuzz_smtp_reply", fuzz_smtp_reply_one);
}
END_TEST

START_TEST(fuzz_smtpd_corpus_and_regressions_replay_clean)
{
	replay("fuzz_smtpd", fuzz_smtpd_one);
}
END_TEST

START_TEST(fuzz_config_corpus_and_regressions_replay_clean)
{
	replay("fuzz_config", fuzz_config_one);
}
END_TEST

START_TEST(fuzz_cmdline_corpus_and_regressions_replay_clean)
{
	replay("fuzz_cmdline", fuzz_cmdline_one);
}
END_TEST

START_TEST(fuzz_spool_entry_corpus_and_regressions_replay_clean)
{
	replay("fuzz_spool_entry", fuzz_spool_entry_one);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fuzz_regressions");
	TCase *tc = tcase_create("replay");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, fuzz_input_corpus_and_regressions_replay_clean);
	tcase_add_test(tc, fuzz_header_corpus_and_regressions_replay_clean);
	tcase_add_test(tc, fuzz_address_corpus_and_regressions_replay_clean);
	tcase_add_test(tc, fuzz_rewrite_corpus_and_regressions_replay_clean);
	tcase_add_test(tc, fuzz_smtp_reply_corpus_and_regressions_replay_clean);
	tcase_add_test(tc, fuzz_smtpd_corpus_and_regressions_replay_clean);
	tcase_add_test(tc, fuzz_config_corpus_and_regressions_replay_clean);
	tcase_add_test(tc, fuzz_cmdline_corpus_and_regressions_replay_clean);
	tcase_add_test(tc, fuzz_spool_entry_corpus_and_regressions_replay_clean);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
