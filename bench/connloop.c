/*++
 * NAME
 *	connloop 1
 * SUMMARY
 *	cost of a connect() that the shim must pass straight to libc
 * SYNOPSIS
 *	connloop [calls] [batches]
 * DESCRIPTION
 *	Calls connect(-1, 127.0.0.1:25, ...) "calls" times per batch
 *	(default 2000000) and prints the median nanoseconds per call over
 *	"batches" batches (default 7). The kernel answers EBADF without
 *	touching the network (~150 ns), so the difference between a run
 *	under LD_PRELOAD=librelayshim.so and a run without it is the
 *	shim's cost on the path every non-mail connect() takes. The
 *	address is the intercepted one on purpose: the shim must still
 *	leave a call on an invalid descriptor to the kernel.
 *
 *	Output: "ns_per_call=MEDIAN ns_min=MIN errno_ok=0|1" (errno_ok:
 *	every call failed with EBADF, i.e. errno was left as the kernel
 *	set it). On a shared machine use ns_min: the loop is pure CPU, so
 *	interference (preemption, cache pollution) can only add time.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* now_ns - monotonic clock in nanoseconds */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* cmp_double - qsort order */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin;
	long calls = argc > 1 ? atol(argv[1]) : 2000000;
	int batches = argc > 2 ? atoi(argv[2]) : 7;
	double *per_call;
	double t0;
	int errno_ok = 1;
	long i;
	int b;

	if (calls < 1 || batches < 1 || batches > 1000)
		return 2;
	per_call = calloc((size_t)batches, sizeof(double));
	if (per_call == NULL)
		return 2;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (b = 0; b < batches; b++) {
		t0 = now_ns();
		for (i = 0; i < calls; i++) {
			if (connect(-1, (struct sockaddr *)&sin, sizeof(sin)) != -1 ||
			    errno != EBADF)
				errno_ok = 0;
		}
		per_call[b] = (now_ns() - t0) / (double)calls;
	}
	qsort(per_call, (size_t)batches, sizeof(double), cmp_double);
	printf("ns_per_call=%.1f ns_min=%.1f errno_ok=%d\n", per_call[batches / 2], per_call[0],
	       errno_ok);
	return 0;
}
