/*++
 * NAME
 *	deadline 3
 * SUMMARY
 *	waiting for one descriptor until an absolute deadline
 * DESCRIPTION
 *	See deadline.h.
 *--*/

#include <errno.h>
#include <poll.h>
#include <time.h>

#include "deadline.h"

/* deadline_now_ms - monotonic milliseconds */

long long deadline_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* deadline_wait - poll one descriptor until ready or the deadline passes */

int deadline_wait(int fd, short events, long long deadline)
{
	struct pollfd pfd;

	for (;;) {
		long long left = deadline - deadline_now_ms();
		int r;

		if (left <= 0)
			return 0;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, left > 0x7fffffff ? 0x7fffffff : (int)left);
		if (r > 0)
			return 1; /* POLLERR/POLLHUP too: the next call reports it */
		if (r < 0 && errno != EINTR)
			return -1;
	}
}
