/*++
 * NAME
 *	timer 1
 * SUMMARY
 *	run a command repeatedly and report latency, throughput and peak RSS
 * SYNOPSIS
 *	timer [-n runs] [-w warmup] [-j parallel] [-T seconds] [-i input]
 *		[-e errlog] [-o samples] -- command [args...]
 * DESCRIPTION
 *	timer starts "command" with posix_spawn(3) "runs" times, stdin
 *	opened afresh from "input" (default /dev/null) for each run,
 *	stdout to /dev/null, stderr appended to "errlog" (default
 *	/dev/null). With -j, "parallel" threads share the runs, each
 *	starting its next command as soon as its previous one exits:
 *	that is the throughput figure of a cron fleet or a worker pool.
 *	-T stops starting new runs once that many seconds have passed,
 *	so a slow peer (ssmtp sleeps 1 s per message) cannot blow the
 *	time budget; the report says how many runs were made.
 *
 *	Each run is timed from just before posix_spawn() to the return
 *	of wait4(), with CLOCK_MONOTONIC; the child's ru_maxrss comes
 *	from the same wait4(). Warm-up runs are not recorded.
 *
 *	Output: one line of key=value pairs on stdout:
 *	runs, fails (non-zero exit, signal, or could not be started: 127),
 *	status (of the last failure, or 0), wall_s (whole measured phase), rate (runs per
 *	second over wall_s), med_ms, p10_ms, p90_ms, min_ms, max_ms,
 *	rss_med_kb, rss_max_kb. With -o, every recorded run's latency
 *	(ms) is also appended to "samples", one per line, so that the
 *	caller can pool runs from several rounds.
 * DIAGNOSTICS
 *	Exit 0 when the measurement ran (even if runs failed: the caller
 *	reads "fails"), 2 on usage or system errors.
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct sample {
	double ms;
	long rss_kb;
};

static char **cmd_argv;
static const char *input_path = "/dev/null";
static const char *errlog_path = "/dev/null";
static const char *samples_path;
static int total_runs = 20;
static double time_limit_s = 0;
static double phase_start;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int next_run;
static int done_runs;	   /* runs that have a sample */
static int attempted_runs; /* including those that could not start */
static int failed_runs;
static int last_status;
static struct sample *samples;

/* now_s - monotonic clock in seconds */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* run_once - spawn the command once, wait, return status; fill sample;
   -1 when the command could not be started (no sample) */

static int run_once(struct sample *s)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = 0;
	struct rusage ru;
	double t0;
	int err;
	int fd;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, input_path, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, errlog_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	t0 = now_s();
	err = posix_spawnp(&pid, cmd_argv[0], &fa, NULL, cmd_argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err != 0) {
		/* Say why in the error log the caller reads; count a failed run. */
		if ((fd = open(errlog_path, O_WRONLY | O_APPEND | O_CREAT, 0600)) >= 0) {
			dprintf(fd, "timer: cannot start %s: %s\n", cmd_argv[0], strerror(err));
			close(fd);
		}
		return -1;
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("timer: wait4");
			exit(2);
		}
	}
	s->ms = (now_s() - t0) * 1e3;
	s->rss_kb = ru.ru_maxrss;
	return status;
}

/* worker - take runs from the shared counter until none are left */

static void *worker(void *unused)
{
	struct sample s;
	int status;
	int slot;

	(void)unused;
	for (;;) {
		pthread_mutex_lock(&lock);
		if (next_run >= total_runs ||
		    (time_limit_s > 0 && now_s() - phase_start > time_limit_s)) {
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		next_run++;
		pthread_mutex_unlock(&lock);

		status = run_once(&s);

		pthread_mutex_lock(&lock);
		attempted_runs++;
		if (status == -1) {
			failed_runs++;
			last_status = 127;
			pthread_mutex_unlock(&lock);
			continue;
		}
		slot = done_runs++;
		samples[slot] = s;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			failed_runs++;
			last_status =
			    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		pthread_mutex_unlock(&lock);
	}
}

/* cmp_ms - qsort order on latency */

static int cmp_ms(const void *a, const void *b)
{
	double x = ((const struct sample *)a)->ms;
	double y = ((const struct sample *)b)->ms;

	return (x > y) - (x < y);
}

/* cmp_rss - qsort order on peak RSS */

static int cmp_rss(const void *a, const void *b)
{
	long x = ((const struct sample *)a)->rss_kb;
	long y = ((const struct sample *)b)->rss_kb;

	return (x > y) - (x < y);
}

/* quantile - linear interpolation between closest ranks of sorted data */

static double quantile(const struct sample *v, int n, double q)
{
	double pos = q * (n - 1);
	int lo = (int)pos;
	double frac = pos - lo;

	if (lo + 1 >= n)
		return v[n - 1].ms;
	return v[lo].ms + frac * (v[lo + 1].ms - v[lo].ms);
}

/* usage - one line, exit 2 */

static void usage(void)
{
	fprintf(stderr, "usage: timer [-n runs] [-w warmup] [-j parallel] "
			"[-T seconds] [-i input] [-e errlog] [-o samples] -- command [args]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int warmup = 0;
	int parallel = 1;
	pthread_t *threads;
	struct sample s;
	double wall;
	long rss_med;
	FILE *out;
	int ch;
	int i;

	while ((ch = getopt(argc, argv, "n:w:j:T:i:e:o:")) != -1) {
		switch (ch) {
		case 'n':
			total_runs = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 'j':
			parallel = atoi(optarg);
			break;
		case 'T':
			time_limit_s = atof(optarg);
			break;
		case 'i':
			input_path = optarg;
			break;
		case 'e':
			errlog_path = optarg;
			break;
		case 'o':
			samples_path = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || total_runs < 1 || parallel < 1 || warmup < 0)
		usage();
	cmd_argv = argv + optind;
	samples = calloc((size_t)total_runs, sizeof(*samples));
	threads = calloc((size_t)parallel, sizeof(*threads));
	if (samples == NULL || threads == NULL) {
		perror("timer: calloc");
		return 2;
	}

	for (i = 0; i < warmup; i++)
		(void)run_once(&s);

	phase_start = now_s();
	for (i = 0; i < parallel; i++)
		if (pthread_create(&threads[i], NULL, worker, NULL) != 0) {
			perror("timer: pthread_create");
			return 2;
		}
	for (i = 0; i < parallel; i++)
		pthread_join(threads[i], NULL);
	wall = now_s() - phase_start;

	if (done_runs == 0) {
		printf("runs=%d fails=%d status=%d wall_s=%.6f\n", attempted_runs, failed_runs,
		       last_status, wall);
		return 0;
	}
	if (samples_path != NULL && (out = fopen(samples_path, "a")) != NULL) {
		for (i = 0; i < done_runs; i++)
			fprintf(out, "%.4f\n", samples[i].ms);
		fclose(out);
	}
	qsort(samples, (size_t)done_runs, sizeof(*samples), cmp_rss);
	rss_med = samples[done_runs / 2].rss_kb;
	printf("rss_med_kb=%ld rss_max_kb=%ld ", rss_med, samples[done_runs - 1].rss_kb);
	qsort(samples, (size_t)done_runs, sizeof(*samples), cmp_ms);
	printf("runs=%d fails=%d status=%d wall_s=%.6f rate=%.2f med_ms=%.4f "
	       "p10_ms=%.4f p90_ms=%.4f min_ms=%.4f max_ms=%.4f\n",
	       attempted_runs, failed_runs, last_status, wall, done_runs / wall,
	       quantile(samples, done_runs, 0.5), quantile(samples, done_runs, 0.1),
	       quantile(samples, done_runs, 0.9), samples[0].ms, samples[done_runs - 1].ms);
	return 0;
}
