/*++
 * NAME
 *	bench_connect 1
 * SUMMARY
 *	nanoseconds the shim adds to a connect() it does not serve
 * SYNOPSIS
 *	LD_PRELOAD=build/shim/librelayshim.so bench_connect [port] [calls] [batches]
 * DESCRIPTION
 *	Calls connect(-1, 127.0.0.1:port) (default port 25, the intercepted
 *	one: a call on an invalid descriptor must still go straight to the
 *	kernel) through two entry points in alternating batches: connect()
 *	as the program binds it (the shim's, when preloaded) and libc's own
 *	connect() looked up in libc.so.6. The kernel fails both at once with
 *	EBADF (~150 ns), so the difference is the shim's cost; alternating
 *	batches in one process cancel the drift of a busy machine.
 *
 *	Output: "shim_ns=A libc_ns=B added_ns=A-B errno_ok=0|1" with the
 *	medians over the batches (default 2000000 calls x 15 batches).
 *	errno_ok=0 means a call through the shim did not fail with EBADF.
 *--*/

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

/* now_ns - monotonic clock in nanoseconds */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* cmp_double - qsort order */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

/* batch - ns per call of fn over calls calls; clears *ok on a wrong errno */

static double batch(connect_fn fn, const struct sockaddr_in *sin, long calls, int *ok)
{
	double t0 = now_ns();

	for (long i = 0; i < calls; i++)
		if (fn(-1, (const struct sockaddr *)sin, sizeof(*sin)) != -1 || errno != EBADF)
			*ok = 0;
	return (now_ns() - t0) / (double)calls;
}

/* bound_connect - connect() as this program binds it */

static int bound_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	return connect(fd, sa, len);
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 25;
	long calls = argc > 2 ? atol(argv[2]) : 2000000;
	int batches = argc > 3 ? atoi(argv[3]) : 15;
	struct sockaddr_in sin;
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	connect_fn libc_connect = libc ? (connect_fn)dlsym(libc, "connect") : NULL;
	double *with, *without;
	int ok = 1;
	int dummy = 1;

	if (libc_connect == NULL || calls < 1 || batches < 1 || batches > 1000) {
		fprintf(stderr, "usage: bench_connect [port] [calls] [batches]\n");
		return 2;
	}
	with = calloc((size_t)batches, sizeof(double));
	without = calloc((size_t)batches, sizeof(double));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	batch(bound_connect, &sin, calls / 10 + 1, &dummy); /* warm up */
	for (int b = 0; b < batches; b++) {
		with[b] = batch(bound_connect, &sin, calls, &ok);
		without[b] = batch(libc_connect, &sin, calls, &dummy);
	}
	qsort(with, (size_t)batches, sizeof(double), cmp_double);
	qsort(without, (size_t)batches, sizeof(double), cmp_double);
	printf("shim_ns=%.1f libc_ns=%.1f added_ns=%.1f errno_ok=%d\n", with[batches / 2],
	       without[batches / 2], with[batches / 2] - without[batches / 2], ok);
	return 0;
}
