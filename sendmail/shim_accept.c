/*++
 * NAME
 *	shim_accept 3
 * SUMMARY
 *	the helper's side of the LD_PRELOAD shim: accept exactly the peer
 * SYNOPSIS
 *	#include "shim_accept.h"
 *
 *	int	shim_accept_requested(void);
 *	int	shim_accept(struct error *err);
 * DESCRIPTION
 *	See shim_accept.h and shim/README.md. This file uses libc only
 *	(plus error_set()), so that the shim's test helper
 *	tests/tools/fake_bs.c can include it as it is.
 *
 *	Why the helper accepts and not the shim: the shim spawns the helper
 *	before the application's socket connects, so a helper that cannot
 *	start leaves that socket untouched (connect() fails cleanly with
 *	ECONNREFUSED), and the application's connect() never waits for an
 *	accept().
 *
 *	Why the peer check: the listener is on a loopback port that any
 *	local process could connect to during its few microseconds of
 *	life; only the socket that triggered the helper may be served
 *	(relayshim(8) THE SHIM).
 * DIAGNOSTICS
 *	Failures are returned in struct error; nothing is printed here.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "shim_accept.h"
#include "util.h"

#define SHIM_ACCEPT_ENV "RELAYSHIM_SHIM_ACCEPT"
#define SHIM_ACCEPT_TIMEOUT_MS 10000

/* shim_accept_requested - were we started by librelayshim.so? */

int shim_accept_requested(void)
{
	const char *v = getenv(SHIM_ACCEPT_ENV);

	return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "2") == 0);
}

/* shim_accept_close_from - close every descriptor >= low */

static void shim_accept_close_from(int low)
{
	long max;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)low, ~0U, 0) == 0)
		return;
#endif
	/* Kernels before 5.9: the slow way, bounded. */
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = low; fd < max; fd++)
		close(fd);
}

/* shim_accept_ms_left - milliseconds until deadline, at least 0 */

static int shim_accept_ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : (int)ms;
}

/* shim_accept_wait - poll one descriptor for input until the deadline */

static int shim_accept_wait(int fd, const struct timespec *deadline)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int n;

	for (;;) {
		n = poll(&p, 1, shim_accept_ms_left(deadline));
		if (n > 0)
			return 0;
		if (n == 0)
			return -1;
		if (errno != EINTR)
			return -1;
	}
}

/* shim_accept_peer_text - "ADDRESS PORT\n" of a socket address, as the shim writes it */

static int shim_accept_peer_text(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int n;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		/* The shim shows ::ffff:127.0.0.1 as 127.0.0.1; so do we. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], host, sizeof(host));
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
	} else {
		return -1;
	}
	n = snprintf(out, outlen, "%s %u\n", host, port);
	return (n > 0 && (size_t)n < outlen) ? 0 : -1;
}

/* shim_accept_read_expected - read the expected peer line from the control socket */

static int shim_accept_read_expected(int ctl, char *buf, size_t size,
				     const struct timespec *deadline, struct error *err)
{
	size_t len = 0;
	ssize_t n;

	/* The line is written by our own shim and is short; a fixed bound is enough. */
	while (len < size - 1) {
		if (shim_accept_wait(ctl, deadline) != 0)
			return error_set(err, EX_TEMPFAIL,
					 "shim: no peer address from librelayshim.so within %d s",
					 SHIM_ACCEPT_TIMEOUT_MS / 1000);
		n = read(ctl, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set(err, EX_OSERR, "shim: cannot read the control socket: %s",
					 strerror(errno));
		if (n == 0)
			return error_set(
			    err, EX_NOINPUT,
			    "shim: the application's connect() failed or was abandoned");
		len += (size_t)n;
		buf[len] = 0;
		if (memchr(buf, '\n', len) != NULL)
			return 0;
	}
	return error_set(err, EX_PROTOCOL, "shim: malformed peer address from librelayshim.so");
}

/* shim_accept_peer - accept until the expected peer arrives; the connection or -1 */

static int shim_accept_peer(int lfd, const char *expected, const struct timespec *deadline,
			    struct error *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char got[INET6_ADDRSTRLEN + 16];
	int conn;

	for (;;) {
		if (shim_accept_wait(lfd, deadline) != 0) {
			error_set(err, EX_TEMPFAIL,
				  "shim: the application's connection did not arrive within %d s",
				  SHIM_ACCEPT_TIMEOUT_MS / 1000);
			return -1;
		}
		len = sizeof(ss);
		conn = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (conn < 0) {
			/* Aborted before we got to it, or a signal: look again. */
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				continue;
			error_set(err, EX_OSERR, "shim: accept: %s", strerror(errno));
			return -1;
		}
		if (shim_accept_peer_text(&ss, got, sizeof(got)) == 0 &&
		    strcmp(got, expected) == 0) {
			/* The -bs server expects an ordinary blocking stdin. */
			fcntl(conn, F_SETFL, fcntl(conn, F_GETFL) & ~O_NONBLOCK);
			return conn;
		}
		/* Somebody else's connection: not ours to serve. */
		close(conn);
	}
}

/* shim_accept - become the server of exactly the application's connection */

int shim_accept(struct error *err)
{
	const char *how = getenv(SHIM_ACCEPT_ENV);
	int detached = how != NULL && strcmp(how, "2") == 0;
	pid_t pid;

	unsetenv(SHIM_ACCEPT_ENV);

	/*
	 * Detach. "2": the shim started us orphaned already (its quiet
	 * clone() path). "1": we are the shim's posix_spawn child; it waits
	 * for this first process, which exits now; the child is re-parented
	 * to init (or the nearest subreaper), so the application is never
	 * left with a zombie of ours.
	 */
	pid = detached ? 0 : fork();
	if (pid < 0)
		return error_set(err, EX_OSERR, "shim: fork: %s", strerror(errno));
	if (pid > 0) {
		char line[32];
		int n = snprintf(line, sizeof(line), "PID %d\n", (int)pid);

		/*
		 * Tell the shim who serves: when the application is PID 1 or
		 * a subreaper, the child becomes its child again, and the
		 * shim reaps it (shim/README.md).
		 */
		if (send(1, line, (size_t)n, MSG_NOSIGNAL) < 0)
			(void)0;
		_exit(0);
	}
	setsid();
	shim_accept_close_from(3);
	return shim_accept_take(err);
}

/* shim_accept_conn - the expected peer from ctl, its connection from lfd; the connection or -1 */

int shim_accept_conn(int lfd, int ctl, struct error *err)
{
	struct timespec deadline;
	char expected[INET6_ADDRSTRLEN + 16];

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SHIM_ACCEPT_TIMEOUT_MS / 1000;

	/* Non-blocking listener: a connection reset between poll and accept must not hang us. */
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	if (shim_accept_read_expected(ctl, expected, sizeof(expected), &deadline, err) != 0)
		return -1;
	return shim_accept_peer(lfd, expected, &deadline, err);
}

/* shim_accept_take - shim_accept_conn() on fds 0 and 1, the connection put on both */

int shim_accept_take(struct error *err)
{
	int conn = shim_accept_conn(0, 1, err);
	int status;

	if (conn < 0)
		return err->status;
	if (dup2(conn, 0) < 0 || dup2(conn, 1) < 0) {
		status = error_set(err, EX_OSERR, "shim: dup2: %s", strerror(errno));
		close(conn);
		return status;
	}
	close(conn);
	return 0;
}
