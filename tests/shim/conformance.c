/*++
 * NAME
 *	conformance 1
 * SUMMARY
 *	C conformance cases for librelayshim.so, one process per case
 * SYNOPSIS
 *	LD_PRELOAD=build/shim/librelayshim.so \
 *	RELAYSHIM_SENDMAIL=build/tests/tools/fake_bs \
 *	RELAYSHIM_FAKE_BS_DIR=/tmp/empty-dir conformance CASE
 *
 *	conformance list
 * DESCRIPTION
 *	Each case checks what an application can observe through the shim:
 *	return values, errno, socket flags and options, readiness through
 *	poll/select/epoll, children and zombies, and - through the records
 *	that tests/tools/fake_bs writes - what the helper inherited.
 *	"Untouched" cases compare the shim's answer with the raw system
 *	call's. tests/shim/run.sh runs every case in a fresh process and a
 *	fresh record directory. Exit status 0 = pass; the reason for a
 *	failure is printed on stderr.
 *--*/

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fail_at(__LINE__, __VA_ARGS__);                                            \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

static int report_fd = 2;
static char dir[1024];

/* fail_at - print why a case failed (on the saved stderr) */

static void fail_at(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_at(int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "conformance.c:%d: ", line);

	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof(msg) - (size_t)n - 2, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(msg) - 2)
		n = (int)sizeof(msg) - 2;
	msg[n++] = '\n';
	if (write(report_fd, msg, (size_t)n) < 0)
		(void)0;
}

/* addresses */

static socklen_t sa_make(struct sockaddr_storage *ss, const char *host, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(host, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, host, &s6->sin6_addr);
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &s4->sin_addr);
	return sizeof(*s4);
}

static int family_of(const char *host)
{
	return strchr(host, ':') ? AF_INET6 : AF_INET;
}

/* do_connect - the connect() under test (the shim's, when preloaded) */

static int do_connect(int fd, const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = sa_make(&ss, host, port);

	return connect(fd, (struct sockaddr *)&ss, len);
}

/* raw_connect - the system call, bypassing any interposer */

static int raw_connect(int fd, const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = sa_make(&ss, host, port);

	return (int)syscall(SYS_connect, fd, (struct sockaddr *)&ss, len);
}

/* listener - a real listener on host, port 0; returns fd, sets *port */

static int listener(const char *host, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sa_make(&ss, host, 0);
	int fd = socket(family_of(host), SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0)
		return -1;
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* closed_port - a loopback port nobody listens on */

static int closed_port(void)
{
	int port;
	int fd = listener("127.0.0.1", &port);

	close(fd);
	return port;
}

/* I/O with timeouts, for blocking and non-blocking sockets alike */

static int wait_io(int fd, short ev, int ms)
{
	struct pollfd p = {.fd = fd, .events = ev};

	return poll(&p, 1, ms) == 1 ? 0 : -1;
}

static int send_all(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n;

		if (wait_io(fd, POLLOUT, 5000) != 0)
			return -1;
		n = send(fd, s, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return -1;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/* expect - read one (multi-line) reply and check its code */

static int expect(int fd, const char *code)
{
	char buf[2048];
	size_t len = 0;

	for (;;) {
		ssize_t n;
		char *line = buf;
		char *nl;

		if (wait_io(fd, POLLIN, 5000) != 0)
			return -1;
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = 0;
		/* the last complete line decides */
		while ((nl = strchr(line, '\n')) != NULL) {
			if (nl - line >= 4 && line[3] == ' ')
				return strncmp(line, code, 3) == 0 ? 0 : -1;
			line = nl + 1;
		}
		if (len >= sizeof(buf) - 1)
			return -1;
	}
}

/* session - one complete SMTP transaction */

static int session(int fd)
{
	if (expect(fd, "220") || send_all(fd, "EHLO conformance\r\n") || expect(fd, "250") ||
	    send_all(fd, "MAIL FROM:<app@example.com>\r\n") || expect(fd, "250") ||
	    send_all(fd, "RCPT TO:<rcpt@example.com>\r\n") || expect(fd, "250") ||
	    send_all(fd, "DATA\r\n") || expect(fd, "354") ||
	    send_all(fd, "Subject: conformance\r\n\r\nhello\r\n.\r\n") || expect(fd, "250") ||
	    send_all(fd, "QUIT\r\n") || expect(fd, "221"))
		return -1;
	return 0;
}

/* one_session - socket, connect to host:25, session, close */

static int one_session(const char *host)
{
	int fd = socket(family_of(host), SOCK_STREAM, 0);
	int rc;

	if (fd < 0)
		return -1;
	rc = do_connect(fd, host, 25) == 0 && session(fd) == 0 ? 0 : -1;
	close(fd);
	return rc;
}

/* records in the fake helper's directory */

static int count_files(const char *prefix, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && l >= strlen(suffix) &&
		    strcmp(e->d_name + l - strlen(suffix), suffix) == 0)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

static int wait_records(int n)
{
	for (int i = 0; i < 500; i++) {
		if (count_files("", ".rec") >= n)
			return count_files("", ".rec");
		usleep(10000);
	}
	return count_files("", ".rec");
}

/* first_record - contents of some PID.rec file */

static int first_record(char *out, size_t size)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[2048];
	int rc = -1;

	while (d && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (e->d_name[0] != '.' && l > 4 && strcmp(e->d_name + l - 4, ".rec") == 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			int fd = open(path, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, out, size - 1) : -1;

			if (fd >= 0)
				close(fd);
			out[n > 0 ? n : 0] = 0;
			rc = n > 0 ? 0 : -1;
			break;
		}
	}
	if (d)
		closedir(d);
	return rc;
}

/* children - count our children, and how many are zombies */

static int children(int *zombies)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	*zombies = 0;
	while (d && (e = readdir(d)) != NULL) {
		char path[300];
		char buf[512];
		char state;
		int ppid;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL) {
			char *p = strrchr(buf, ')');

			if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid()) {
				n++;
				if (state == 'Z')
					*zombies += 1;
			}
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

/* capture_stderr - send fd 2 to a file, keep the old one for reports */

static int capture_stderr(char *path, size_t size)
{
	int fd;

	snprintf(path, size, "%s/.stderr", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	report_fd = dup(2);
	dup2(fd, 2);
	close(fd);
	return 0;
}

static int file_text(const char *path, char *out, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, out, size - 1) : -1;

	if (fd >= 0)
		close(fd);
	out[n > 0 ? n : 0] = 0;
	return n >= 0 ? 0 : -1;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/*
 * ==================================================================
 * CASES
 * ==================================================================
 */

static int t_blocking_v4(void)
{
	CHECK(one_session("127.0.0.1") == 0, "session to 127.0.0.1:25 failed");
	CHECK(wait_records(1) == 1, "no helper record");
	return 0;
}

static int t_blocking_v6(void)
{
	CHECK(one_session("::1") == 0, "session to [::1]:25 failed");
	CHECK(wait_records(1) == 1, "no helper record");
	return 0;
}

static int t_v4mapped(void)
{
	CHECK(one_session("::ffff:127.0.0.1") == 0, "session to [::ffff:127.0.0.1]:25 failed");
	CHECK(wait_records(1) == 1, "no helper record");
	return 0;
}

static int t_loopback_net(void)
{
	CHECK(one_session("127.0.1.2") == 0, "session to 127.0.1.2:25 failed");
	CHECK(wait_records(1) == 1, "no helper record");
	return 0;
}

/* nonblocking - connect a non-blocking socket; 0 or EINPROGRESS */

static int nonblocking(const char *host, int *fd)
{
	*fd = socket(family_of(host), SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (do_connect(*fd, host, 25) == 0)
		return 0;
	return errno == EINPROGRESS ? 0 : -1;
}

static int so_error(int fd)
{
	int e = -1;
	socklen_t l = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0)
		return -1;
	return e;
}

static int t_nonblock_poll(void)
{
	int fd;

	CHECK(nonblocking("127.0.0.1", &fd) == 0, "connect: %s", strerror(errno));
	CHECK(wait_io(fd, POLLOUT, 5000) == 0, "never writable");
	CHECK(so_error(fd) == 0, "SO_ERROR %d", so_error(fd));
	CHECK(session(fd) == 0, "session failed");
	return 0;
}

static int t_nonblock_select(void)
{
	int fd;
	fd_set w;
	struct timeval tv = {5, 0};

	CHECK(nonblocking("::1", &fd) == 0, "connect: %s", strerror(errno));
	CHECK(fd < FD_SETSIZE, "fd too large for select");
	FD_ZERO(&w);
	FD_SET(fd, &w);
	CHECK(select(fd + 1, NULL, &w, NULL, &tv) == 1 && FD_ISSET(fd, &w), "select: not writable");
	CHECK(so_error(fd) == 0, "SO_ERROR %d", so_error(fd));
	CHECK(session(fd) == 0, "session failed");
	return 0;
}

static int epoll_case(int before)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLOUT, .data.fd = 0};
	struct epoll_event got;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int r;

	ev.data.fd = fd;
	/* Netty registers before connecting: a descriptor swap would lose this. */
	if (before)
		CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl ADD");
	r = do_connect(fd, "127.0.0.1", 25);
	CHECK(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
	if (!before)
		CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl ADD");
	CHECK(epoll_wait(ep, &got, 1, 5000) == 1 && (got.events & EPOLLOUT) && got.data.fd == fd,
	      "epoll_wait: not writable");
	CHECK(so_error(fd) == 0, "SO_ERROR");
	ev.events = EPOLLIN;
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0, "epoll_ctl MOD: %s (registration lost)",
	      strerror(errno));
	CHECK(epoll_wait(ep, &got, 1, 5000) == 1 && (got.events & EPOLLIN),
	      "no greeting via epoll");
	CHECK(session(fd) == 0, "session failed");
	return 0;
}

static int t_epoll_before(void)
{
	return epoll_case(1);
}

static int t_epoll_after(void)
{
	return epoll_case(0);
}

static int t_so_error(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int nb;

	CHECK(do_connect(fd, "127.0.0.1", 25) == 0, "connect: %s", strerror(errno));
	CHECK(so_error(fd) == 0, "SO_ERROR after blocking connect: %d", so_error(fd));
	CHECK(session(fd) == 0, "session failed");
	/* and a failing non-target connect still reports the kernel's error */
	nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int r = do_connect(nb, "127.0.0.1", closed_port());
	CHECK(r == 0 || errno == EINPROGRESS || errno == ECONNREFUSED, "connect: %s",
	      strerror(errno));
	if (r != 0 && errno == EINPROGRESS) {
		wait_io(nb, POLLOUT, 5000);
		CHECK(so_error(nb) == ECONNREFUSED, "SO_ERROR %d, want ECONNREFUSED", so_error(nb));
	}
	return 0;
}

/* reconnect_sequence - the Ruby/Perl idiom: connect again until done, then once more */

static int reconnect_sequence(int fd, const char *host, int port, int *second, int *third)
{
	int r;

	r = do_connect(fd, host, port);
	if (r != 0 && errno != EINPROGRESS)
		return -1;
	if (wait_io(fd, POLLOUT, 5000) != 0)
		return -1;
	r = do_connect(fd, host, port);
	*second = r == 0 ? 0 : errno;
	r = do_connect(fd, host, port);
	*third = r == 0 ? 0 : errno;
	return 0;
}

static int t_reconnect(void)
{
	int port;
	int l = listener("127.0.0.1", &port);
	int a = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int b = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int s2, s3, k2, k3;

	CHECK(l >= 0, "listener");
	CHECK(reconnect_sequence(a, "127.0.0.1", 25, &s2, &s3) == 0, "shim connect failed");
	CHECK(reconnect_sequence(b, "127.0.0.1", port, &k2, &k3) == 0, "kernel connect failed");
	CHECK(s2 == k2 && s3 == k3, "shim answered %s then %s, kernel %s then %s", strerror(s2),
	      strerror(s3), strerror(k2), strerror(k3));
	CHECK(session(a) == 0, "session after re-connect failed");
	CHECK(wait_records(1) == 1 && count_files("start.", "") == 1,
	      "re-connect started another helper");
	/* a blocking socket: the second connect says EISCONN, as the kernel does */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	int d = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(do_connect(c, "127.0.0.1", 25) == 0, "blocking connect");
	CHECK(raw_connect(d, "127.0.0.1", port) == 0, "kernel blocking connect");
	int rc = do_connect(c, "127.0.0.1", 25), ec = errno;
	int rd = do_connect(d, "127.0.0.1", port), ed = errno;

	CHECK(rc == rd && ec == ed, "second blocking connect: shim %d/%s, kernel %d/%s", rc,
	      strerror(ec), rd, strerror(ed));
	CHECK(session(c) == 0, "session failed");
	return 0;
}

static int t_errno_success(void)
{
	int port;
	int l = listener("127.0.0.1", &port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int other = socket(AF_INET, SOCK_STREAM, 0);

	errno = 4242;
	CHECK(do_connect(fd, "127.0.0.1", 25) == 0, "intercepted connect failed");
	CHECK(errno == 4242, "errno changed to %d on an intercepted success", errno);
	errno = 4343;
	CHECK(do_connect(other, "127.0.0.1", port) == 0, "direct connect failed");
	CHECK(errno == 4343, "errno changed to %d on a direct success", errno);
	CHECK(l >= 0 && session(fd) == 0, "session failed");
	return 0;
}

/* same_answer - the shim and the raw system call agree on a non-target call */

static int same_answer(const char *what, int fd1, int fd2, const struct sockaddr *sa, socklen_t len)
{
	int r1, e1, r2, e2;

	errno = 0;
	r1 = connect(fd1, sa, len);
	e1 = errno;
	errno = 0;
	r2 = (int)syscall(SYS_connect, fd2, sa, len);
	e2 = errno;
	if (r1 != r2 || e1 != e2) {
		fail_at(__LINE__, "%s: shim %d/%s, kernel %d/%s", what, r1, strerror(e1), r2,
			strerror(e2));
		return -1;
	}
	return 0;
}

static int t_errno_failures(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int devnull = open("/dev/null", O_RDONLY);
	int port = closed_port();

	len = sa_make(&ss, "127.0.0.1", 25);
	CHECK(same_answer("bad descriptor to 127.0.0.1:25", -1, -1, (struct sockaddr *)&ss, len) ==
		  0,
	      "-");
	CHECK(same_answer("not a socket to 127.0.0.1:25", devnull, devnull, (struct sockaddr *)&ss,
			  len) == 0,
	      "-");
	CHECK(same_answer("short length to 127.0.0.1:25", socket(AF_INET, SOCK_STREAM, 0),
			  socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&ss, 8) == 0,
	      "-");
	len = sa_make(&ss, "::1", 25);
	CHECK(same_answer("IPv4 socket to [::1]:25", socket(AF_INET, SOCK_STREAM, 0),
			  socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&ss, len) == 0,
	      "-");
	len = sa_make(&ss, "127.0.0.1", port);
	CHECK(same_answer("closed port", socket(AF_INET, SOCK_STREAM, 0),
			  socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&ss, len) == 0,
	      "-");
	CHECK(same_answer("NULL address", socket(AF_INET, SOCK_STREAM, 0),
			  socket(AF_INET, SOCK_STREAM, 0), NULL, 0) == 0,
	      "-");
	CHECK(count_files("start.", "") == 0, "a helper was started for a non-target call");
	return 0;
}

static int t_flags_preserved(void)
{
	int a = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int b = socket(AF_INET6, SOCK_STREAM, 0);
	int r = do_connect(a, "127.0.0.1", 25);

	CHECK(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
	CHECK(fcntl(a, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
	CHECK(fcntl(a, F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC lost");
	CHECK(do_connect(b, "::1", 25) == 0, "connect: %s", strerror(errno));
	CHECK(!(fcntl(b, F_GETFL) & O_NONBLOCK), "O_NONBLOCK appeared");
	CHECK(!(fcntl(b, F_GETFD) & FD_CLOEXEC), "FD_CLOEXEC appeared");
	CHECK(session(a) == 0 && session(b) == 0, "session failed");
	return 0;
}

static int t_tcp_nodelay(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	int v = 0;
	int ka = 0;
	socklen_t l = sizeof(v);

	/* curl sets TCP_NODELAY before connect(); Java's Socket after it */
	CHECK(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) == 0, "SO_KEEPALIVE");
	CHECK(do_connect(fd, "127.0.0.1", 25) == 0, "connect: %s", strerror(errno));
	CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0, "TCP_NODELAY: %s",
	      strerror(errno));
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l) == 0 && v == 1,
	      "TCP_NODELAY not set");
	l = sizeof(ka);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, &l) == 0 && ka == 1,
	      "SO_KEEPALIVE set before connect() was lost");
	CHECK(session(fd) == 0, "session failed");
	return 0;
}

static int t_getsockname(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 me, peer;
	socklen_t l = sizeof(me);
	int dom = 0;
	socklen_t dl = sizeof(dom);

	CHECK(do_connect(fd, "::1", 25) == 0, "connect: %s", strerror(errno));
	CHECK(getsockname(fd, (struct sockaddr *)&me, &l) == 0 && me.sin6_family == AF_INET6 &&
		  IN6_IS_ADDR_LOOPBACK(&me.sin6_addr) && me.sin6_port != 0,
	      "getsockname is not [::1]:port");
	l = sizeof(peer);
	CHECK(getpeername(fd, (struct sockaddr *)&peer, &l) == 0 && peer.sin6_family == AF_INET6 &&
		  IN6_IS_ADDR_LOOPBACK(&peer.sin6_addr),
	      "getpeername is not [::1]");
	CHECK(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) == 0 && dom == AF_INET6,
	      "SO_DOMAIN %d", dom);
	CHECK(session(fd) == 0, "session failed");
	return 0;
}

static int t_bound_before(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_storage ss;
	socklen_t len = sa_make(&ss, "127.0.0.1", 0);
	struct sockaddr_in a, b;
	socklen_t l = sizeof(a);

	CHECK(bind(fd, (struct sockaddr *)&ss, len) == 0, "bind");
	getsockname(fd, (struct sockaddr *)&a, &l);
	CHECK(do_connect(fd, "127.0.0.1", 25) == 0, "connect: %s", strerror(errno));
	l = sizeof(b);
	getsockname(fd, (struct sockaddr *)&b, &l);
	CHECK(a.sin_port == b.sin_port, "local port changed from %d to %d", ntohs(a.sin_port),
	      ntohs(b.sin_port));
	CHECK(session(fd) == 0, "session failed");
	return 0;
}

static int t_v6only(void)
{
	int one = 1;
	int a = socket(AF_INET6, SOCK_STREAM, 0);
	int b = socket(AF_INET6, SOCK_STREAM, 0);
	int c = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_storage ss;
	socklen_t len = sa_make(&ss, "::ffff:127.0.0.1", 25);

	setsockopt(a, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	setsockopt(b, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	setsockopt(c, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	CHECK(do_connect(a, "::1", 25) == 0, "V6ONLY to [::1]:25: %s", strerror(errno));
	CHECK(session(a) == 0, "session failed");
	CHECK(same_answer("V6ONLY to ::ffff:127.0.0.1:25", b, c, (struct sockaddr *)&ss, len) == 0,
	      "-");
	CHECK(wait_records(1) == 1 && count_files("start.", "") == 1,
	      "a helper was started for the V6ONLY v4-mapped connect");
	return 0;
}

static int t_udp_untouched(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in peer;
	socklen_t l = sizeof(peer);

	CHECK(do_connect(fd, "127.0.0.1", 25) == 0, "UDP connect: %s", strerror(errno));
	CHECK(getpeername(fd, (struct sockaddr *)&peer, &l) == 0 && ntohs(peer.sin_port) == 25,
	      "UDP socket was redirected");
	usleep(100000);
	CHECK(count_files("start.", "") == 0, "a helper was started for UDP");
	return 0;
}

static int t_unix_untouched(void)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	int a = socket(AF_UNIX, SOCK_STREAM, 0);
	int b = socket(AF_UNIX, SOCK_STREAM, 0);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(un.sun_path, sizeof(un.sun_path), "%.90s/.sock", dir);
	CHECK(bind(l, (struct sockaddr *)&un, sizeof(un)) == 0 && listen(l, 4) == 0,
	      "unix listener");
	CHECK(connect(a, (struct sockaddr *)&un, sizeof(un)) == 0, "unix connect: %s",
	      strerror(errno));
	snprintf(un.sun_path, sizeof(un.sun_path), "%.90s/.missing", dir);
	CHECK(same_answer("unix connect to a missing path", b, c, (struct sockaddr *)&un,
			  sizeof(un)) == 0,
	      "-");
	CHECK(count_files("start.", "") == 0, "a helper was started for AF_UNIX");
	return 0;
}

/* direct_to - connect to a real listener and prove it was not redirected */

static int direct_to(const char *host)
{
	int port;
	int l = listener(host, &port);
	int fd = socket(family_of(host), SOCK_STREAM, 0);
	struct sockaddr_storage me, them;
	socklen_t l1 = sizeof(me), l2 = sizeof(them);
	int acc;

	if (l < 0 || do_connect(fd, host, port) != 0)
		return -1;
	acc = accept(l, (struct sockaddr *)&them, &l2);
	getsockname(fd, (struct sockaddr *)&me, &l1);
	if (acc < 0 || l1 != l2 || memcmp(&me, &them, l1) != 0)
		return -1;
	close(acc);
	close(fd);
	close(l);
	return 0;
}

static int t_other_targets_untouched(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int port = closed_port();

	CHECK(direct_to("127.0.0.1") == 0, "127.0.0.1:other port was not direct");
	CHECK(direct_to("::1") == 0, "[::1]:other port was not direct");
	CHECK(direct_to("127.0.0.2") == 0, "127.0.0.2:other port was not direct");
	len = sa_make(&ss, "127.0.0.1", port);
	CHECK(same_answer("closed port 127.0.0.1", socket(AF_INET, SOCK_STREAM, 0),
			  socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&ss, len) == 0,
	      "-");
	/* a non-loopback address on port 25: non-blocking, compare the immediate answer */
	len = sa_make(&ss, "192.0.2.1", 25);
	CHECK(same_answer("192.0.2.1:25 (TEST-NET)",
			  socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0),
			  socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), (struct sockaddr *)&ss,
			  len) == 0,
	      "-");
	CHECK(count_files("start.", "") == 0, "a helper was started for a non-target");
	return 0;
}

static int t_fork_after_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int status;
	pid_t pid;

	CHECK(do_connect(fd, "127.0.0.1", 25) == 0, "connect: %s", strerror(errno));
	pid = fork();
	if (pid == 0)
		_exit(session(fd) == 0 ? 0 : 1);
	close(fd);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "session in the forked child failed");
	CHECK(wait_records(1) == 1, "no helper record");
	return 0;
}

static int posix_spawn_mode(void)
{
	const char *v = getenv("RELAYSHIM_SPAWN");

	return v != NULL && strcmp(v, "posix") == 0;
}

static volatile sig_atomic_t sigchld_seen;
static volatile sig_atomic_t sigchld_reaped;

static void on_sigchld(int sig)
{
	int saved = errno;

	(void)sig;
	sigchld_seen++;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		sigchld_reaped++;
	errno = saved;
}

static int sessions_then_no_zombies(int n)
{
	int z;

	for (int i = 0; i < n; i++)
		CHECK(one_session(i % 2 ? "::1" : "127.0.0.1") == 0, "session %d failed", i);
	CHECK(wait_records(n) == n, "only %d of %d helper records", count_files("", ".rec"), n);
	usleep(50000);
	children(&z);
	CHECK(z == 0, "%d zombie children", z);
	return 0;
}

static int t_sigchld_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigchld; /* no SA_RESTART, like the lab's raw handler */
	sigaction(SIGCHLD, &sa, NULL);
	if (sessions_then_no_zombies(5))
		return 1;
	/* posix_spawn (the fallback) costs one SIGCHLD per mail; the clone() path none. */
	if (!posix_spawn_mode())
		CHECK(sigchld_seen == 0 && sigchld_reaped == 0,
		      "the application saw %d SIGCHLD and reaped %d children of ours",
		      (int)sigchld_seen, (int)sigchld_reaped);
	return 0;
}

static int t_sigchld_ignored(void)
{
	signal(SIGCHLD, SIG_IGN);
	return sessions_then_no_zombies(5);
}

static int t_no_zombie(void)
{
	int z;
	int n;

	if (sessions_then_no_zombies(10))
		return 1;
	n = children(&z);
	CHECK(n == 0, "%d children left", n);
	return 0;
}

/* reaper_case - as PID 1 or subreaper: finished helpers are reaped at the next connect */

static int reaper_case(const char *warning)
{
	char path[1100];
	char text[4096];
	int z;

	capture_stderr(path, sizeof(path));
	for (int i = 0; i < 4; i++) {
		CHECK(one_session(i % 2 ? "::1" : "127.0.0.1") == 0, "session %d failed", i);
		CHECK(wait_records(i + 1) == i + 1, "helper record %d missing", i + 1);
		/* until every helper of ours has exited (it does just after its record) */
		for (int t = 0, n = children(&z); t < 500 && n != z; t++, n = children(&z))
			usleep(10000);
	}
	children(&z);
	CHECK(z <= 1, "%d zombie helpers: only the last session's may be left", z);
	file_text(path, text, sizeof(text));
	CHECK(strstr(text, warning) != NULL && count_lines(text) == 1,
	      "want exactly one warning mentioning \"%s\", got: %s", warning, text);
	return 0;
}

static int t_pid1(void)
{
	CHECK(getpid() == 1, "not PID 1 (run under unshare --pid --fork --mount-proc)");
	return reaper_case("PID 1");
}

static int t_subreaper(void)
{
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, "PR_SET_CHILD_SUBREAPER");
	return reaper_case("subreaper");
}

static int t_helper_missing(void)
{
	char path[1100];
	char text[4096];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;
	int l = listener("127.0.0.1", &port);
	int r;

	capture_stderr(path, sizeof(path));
	r = do_connect(fd, "127.0.0.1", 25);
	CHECK(r == -1 && errno == ECONNREFUSED, "connect gave %d/%s, want ECONNREFUSED", r,
	      strerror(errno));
	file_text(path, text, sizeof(text));
	CHECK(count_lines(text) == 1 && strstr(text, "relayshim:") && strstr(text, "cannot start"),
	      "want one log line, got: %s", text);
	/* the application's socket was left untouched: it can still connect elsewhere */
	CHECK(l >= 0 && do_connect(fd, "127.0.0.1", port) == 0,
	      "socket unusable after the refused connect: %s", strerror(errno));
	return 0;
}

/* threads: N sessions per thread while noise threads do unrelated connects */

/* A mutex, not atomics, so that helgrind understands the test itself. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_noise;
static int noise_port;
static int thread_failures;

static void count_failure(void)
{
	pthread_mutex_lock(&shared_lock);
	thread_failures++;
	pthread_mutex_unlock(&shared_lock);
}

static int noise_stopped(void)
{
	int v;

	pthread_mutex_lock(&shared_lock);
	v = stop_noise;
	pthread_mutex_unlock(&shared_lock);
	return v;
}

static void *session_thread(void *arg)
{
	long n = (long)arg;

	for (long i = 0; i < n; i++) {
		const char *host = i % 3 == 0	? "127.0.0.1"
				   : i % 3 == 1 ? "::1"
						: "::ffff:127.0.0.1";

		if (one_session(host) != 0)
			count_failure();
	}
	return NULL;
}

static void *noise_thread(void *arg)
{
	(void)arg;
	while (!noise_stopped()) {
		int t = socket(AF_INET, SOCK_STREAM, 0);
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		int saved;

		errno = 77;
		if (do_connect(-1, "127.0.0.1", noise_port) != -1 || errno != EBADF)
			count_failure();
		if (do_connect(t, "127.0.0.1", noise_port) != 0)
			count_failure();
		saved = errno = 78;
		if (do_connect(u, "127.0.0.1", 25) != 0 || errno != saved)
			count_failure();
		close(t);
		close(u);
	}
	return NULL;
}

static void *accept_thread(void *arg)
{
	int l = (int)(long)arg;

	for (;;) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			break;
		close(c);
	}
	return NULL;
}

static int t_threads(void)
{
	const char *s = getenv("CONFORMANCE_SESSIONS");
	long per = s ? atol(s) : 50;
	pthread_t th[8], noise[2], acc;
	int l = listener("127.0.0.1", &noise_port);

	CHECK(l >= 0, "listener");
	pthread_create(&acc, NULL, accept_thread, (void *)(long)l);
	for (int i = 0; i < 2; i++)
		pthread_create(&noise[i], NULL, noise_thread, NULL);
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, session_thread, (void *)per);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_lock(&shared_lock);
	stop_noise = 1;
	pthread_mutex_unlock(&shared_lock);
	for (int i = 0; i < 2; i++)
		pthread_join(noise[i], NULL);
	shutdown(l, SHUT_RDWR);
	pthread_join(acc, NULL);
	CHECK(thread_failures == 0, "%d failures", thread_failures); /* threads joined */
	CHECK(wait_records((int)(8 * per)) == (int)(8 * per), "only %d of %ld helper records",
	      count_files("", ".rec"), 8 * per);
	return 0;
}

static int t_helper_inherits_nothing(void)
{
	char rec[65536];
	int pipefd[2];
	int devnull = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
	int port;
	int l = listener("127.0.0.1", &port);
	sigset_t block;
	char *p;

	CHECK(devnull >= 3 && pipe(pipefd) == 0 && l >= 0, "setup");
	fcntl(l, F_SETFD, 0); /* a listening socket without FD_CLOEXEC too */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	signal(SIGHUP, SIG_IGN);
	CHECK(one_session("127.0.0.1") == 0, "session failed");
	CHECK(wait_records(1) == 1 && first_record(rec, sizeof(rec)) == 0, "no helper record");
	for (p = rec; (p = strstr(p, "fd=")) != NULL; p += 3) {
		int n = atoi(p + 3);

		CHECK(n <= 2, "helper has descriptor %d: %.60s", n, p);
	}
	CHECK(strstr(rec, "fd=0 socket:") && strstr(rec, "fd=1 socket:"),
	      "helper's stdin/stdout are not the connection:\n%s", rec);
	CHECK(strstr(rec, "ld_preload=unset"), "helper has LD_PRELOAD");
	CHECK(strstr(rec, "SigBlk:\t0000000000000000"), "helper inherited a signal mask");
	p = strstr(rec, "SigIgn:\t");
	CHECK(p != NULL, "no SigIgn");
	unsigned long long ign = strtoull(p + 8, NULL, 16);

	CHECK(!(ign & (1ULL << (SIGHUP - 1))), "helper inherited SIGHUP ignored");
	p = strstr(rec, "ppid=");
	CHECK(p && atoi(p + 5) != getpid(), "helper is still our child");
	return 0;
}

static int t_helper_environment(void)
{
	char rec[65536];

	/* php-fpm's clear_env: the configuration was captured at load time */
	clearenv();
	setenv("RELAYSHIM_SENDMAIL", "/nonexistent", 1);
	CHECK(one_session("127.0.0.1") == 0, "session after clearenv() failed");
	CHECK(wait_records(1) == 1 && first_record(rec, sizeof(rec)) == 0, "no helper record");
	CHECK(strstr(rec, "env=RELAYSHIM_FAKE_BS_DIR\n"), "RELAYSHIM_* variable not passed on");
	CHECK(strstr(rec, "env=MASQUERADED_DOMAINS\n"), "policy variable not passed on");
	CHECK(!strstr(rec, "env=CONFORMANCE_SECRET"), "unrelated variable leaked to the helper");
	CHECK(!strstr(rec, "env=LD_PRELOAD"), "LD_PRELOAD passed to the helper");
	CHECK(!strstr(rec, "env=RELAYSHIM_SHIM_ACCEPT"), "accept marker left in the environment");
	return 0;
}

static int t_closed_stdio(void)
{
	int fd;

	report_fd = dup(2);
	close(0);
	close(1);
	close(2);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd == 0, "socket is fd %d, want 0", fd);
	CHECK(do_connect(fd, "127.0.0.1", 25) == 0, "connect with closed stdio: %s",
	      strerror(errno));
	CHECK(session(fd) == 0, "session failed");
	CHECK(wait_records(1) == 1, "no helper record");
	return 0;
}

/* spawn_helper - start the helper by hand the way the shim does (no shim involved) */

static pid_t spawn_helper(int lfd, int ctl)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	char env_dir[1100];
	char *envp[3];
	char *argv[3];
	const char *path = getenv("RELAYSHIM_SENDMAIL");
	pid_t pid;

	(void)environ;
	snprintf(env_dir, sizeof(env_dir), "RELAYSHIM_FAKE_BS_DIR=%s", dir);
	envp[0] = (char *)"RELAYSHIM_SHIM_ACCEPT=1";
	envp[1] = env_dir;
	envp[2] = NULL;
	argv[0] = (char *)path;
	argv[1] = (char *)"-bs";
	argv[2] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, lfd, 0);
	posix_spawn_file_actions_adddup2(&fa, ctl, 1);
	if (path == NULL || posix_spawn(&pid, path, &fa, NULL, argv, envp) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

/* local_line - "ADDRESS PORT\n" of a socket's local address, as the shim sends it */

static int local_line(int fd, char *out, size_t size)
{
	struct sockaddr_in sin;
	socklen_t l = sizeof(sin);
	char host[INET_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&sin, &l) != 0)
		return -1;
	inet_ntop(AF_INET, &sin.sin_addr, host, sizeof(host));
	return snprintf(out, size, "%s %d\n", host, ntohs(sin.sin_port));
}

static int t_helper_serves_only_its_peer(void)
{
	int port;
	int l = listener("127.0.0.1", &port);
	int ctl[2];
	int stray = socket(AF_INET, SOCK_STREAM, 0);
	int mine = socket(AF_INET, SOCK_STREAM, 0);
	char line[128];
	char c;
	pid_t pid;
	int n;

	CHECK(l >= 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) == 0, "setup");
	pid = spawn_helper(l, ctl[1]);
	CHECK(pid > 0, "cannot start the helper");
	close(l);
	close(ctl[1]);
	/* Another local process gets to the listener first. */
	CHECK(raw_connect(stray, "127.0.0.1", port) == 0, "stray connect: %s", strerror(errno));
	CHECK(raw_connect(mine, "127.0.0.1", port) == 0, "connect: %s", strerror(errno));
	n = local_line(mine, line, sizeof(line));
	CHECK(n > 0 && write(ctl[0], line, (size_t)n) == n, "control write");
	close(ctl[0]);
	waitpid(pid, NULL, 0);
	CHECK(session(mine) == 0, "the helper did not serve its peer");
	CHECK(wait_io(stray, POLLIN, 5000) == 0, "stray connection neither served nor closed");
	n = (int)recv(stray, &c, 1, 0);
	CHECK(n <= 0, "the helper talked to a stray connection");
	return 0;
}

static int t_helper_gives_up_when_abandoned(void)
{
	int port;
	int l = listener("127.0.0.1", &port);
	int ctl[2];
	pid_t pid;

	CHECK(l >= 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) == 0, "setup");
	pid = spawn_helper(l, ctl[1]);
	CHECK(pid > 0, "cannot start the helper");
	close(l);
	close(ctl[1]);
	/* The application's connect() failed: the shim closes the control socket unwritten. */
	close(ctl[0]);
	waitpid(pid, NULL, 0);
	for (int i = 0; i < 500 && count_files("fail.", "") == 0; i++)
		usleep(10000);
	CHECK(count_files("fail.", "") == 1, "the helper did not give up");
	CHECK(count_files("", ".rec") == 0, "the helper served something");
	return 0;
}

/* served - does a connect to host:port reach the (fake) helper? 1 yes, 0 refused, -1 odd */

static int served(const char *host, int port)
{
	int fd = socket(family_of(host), SOCK_STREAM, 0);
	int raw = socket(family_of(host), SOCK_STREAM, 0);
	int r;

	/* nothing may really listen there, or the answer proves nothing */
	if (raw_connect(raw, host, port) == 0 || errno != ECONNREFUSED)
		return -1;
	close(raw);
	r = do_connect(fd, host, port);
	if (r != 0) {
		r = errno == ECONNREFUSED ? 0 : -1;
	} else {
		r = session(fd) == 0 ? 1 : -1;
	}
	close(fd);
	return r;
}

static int intercept_list_checks(void)
{
	CHECK(served("127.0.0.1", 2525) == 1, "localhost:2525 does not cover 127.0.0.1");
	CHECK(served("127.9.9.9", 2525) == 1, "localhost:2525 does not cover 127.0.0.0/8");
	CHECK(served("::1", 2525) == 1, "localhost:2525 does not cover [::1]");
	CHECK(served("::1", 2587) == 1, "[::1]:2587 not served");
	CHECK(served("127.0.0.1", 2587) == 0, "[::1]:2587 also served 127.0.0.1");
	CHECK(served("127.0.0.5", 2526) == 1, "127.0.0.5:2526 not served");
	CHECK(served("::ffff:127.0.0.5", 2526) == 1, "127.0.0.5:2526 not served as v4-mapped");
	CHECK(served("127.0.0.6", 2526) == 0, "127.0.0.5:2526 also served 127.0.0.6");
	CHECK(served("127.0.0.8", 25) == 1, "127.0.0.8 (no port: 25) not served");
	CHECK(served("127.0.0.1", 25) == 0, "the default list still applies");
	return 0;
}

static int t_intercept_list(void)
{
	/*
	 * run.sh: RELAYSHIM_INTERCEPT="LocalHost:2525, [::1]:2587 127.0.0.5:2526 127.0.0.8
	 * bogus 10.0.0.1:25"
	 */
	char path[1100];
	char text[4096];
	int status;
	pid_t pid;

	if (getenv("CONFORMANCE_CHILD"))
		return intercept_list_checks();
	/* The list is parsed when the library loads: watch a fresh process's stderr. */
	snprintf(path, sizeof(path), "%s/.stderr", dir);
	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 2);
		setenv("CONFORMANCE_CHILD", "1", 1);
		execl("/proc/self/exe", "conformance", "intercept_list", (char *)NULL);
		_exit(127);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork");
	file_text(path, text, sizeof(text));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", text);
	CHECK(count_lines(text) == 2 && strstr(text, "\"bogus\"") &&
		  strstr(text, "\"10.0.0.1:25\""),
	      "want one warning for each bad entry, got: %s", text);
	return 0;
}

static int t_intercept_empty(void)
{
	/* run.sh: RELAYSHIM_INTERCEPT= (set, empty) */
	CHECK(served("127.0.0.1", 25) == 0, "127.0.0.1:25 served with RELAYSHIM_INTERCEPT empty");
	CHECK(served("::1", 25) == 0, "[::1]:25 served with RELAYSHIM_INTERCEPT empty");
	CHECK(count_files("start.", "") == 0, "a helper was started");
	return 0;
}

static int t_ipv6_disabled(void)
{
	/* run.sh: in a network namespace whose loopback has no ::1 */
	int raw = socket(AF_INET6, SOCK_STREAM, 0);
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 me;
	socklen_t l = sizeof(me);

	CHECK(raw_connect(raw, "::1", 25) != 0, "::1 is usable here: the case proves nothing");
	/* a client without fallback to 127.0.0.1 (swaks) is still served */
	CHECK(do_connect(fd, "::1", 25) == 0, "connect to [::1]:25 without ::1: %s",
	      strerror(errno));
	CHECK(getsockname(fd, (struct sockaddr *)&me, &l) == 0 && me.sin6_family == AF_INET6,
	      "not an IPv6 socket any more");
	CHECK(session(fd) == 0, "session failed");
	return 0;
}

static int t_helper_intercepts_nothing(void)
{
	/*
	 * run.sh: RELAYSHIM_SHIM_ACCEPT=1 in the environment, as in a helper
	 * that loaded the shim through /etc/ld.so.preload: it must not serve
	 * its own relay connection to itself.
	 */
	CHECK(served("127.0.0.1", 25) == 0, "a helper intercepted 127.0.0.1:25");
	CHECK(count_files("start.", "") == 0, "a helper started another helper");
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(void);
} cases[] = {
    {"blocking_v4", t_blocking_v4},
    {"blocking_v6", t_blocking_v6},
    {"v4mapped", t_v4mapped},
    {"loopback_net", t_loopback_net},
    {"nonblock_poll", t_nonblock_poll},
    {"nonblock_select", t_nonblock_select},
    {"epoll_before_connect", t_epoll_before},
    {"epoll_after_connect", t_epoll_after},
    {"so_error", t_so_error},
    {"reconnect_idiom", t_reconnect},
    {"errno_preserved_on_success", t_errno_success},
    {"errno_untouched_on_failures", t_errno_failures},
    {"flags_preserved", t_flags_preserved},
    {"tcp_options", t_tcp_nodelay},
    {"getsockname", t_getsockname},
    {"bound_before_connect", t_bound_before},
    {"ipv6_v6only", t_v6only},
    {"udp_untouched", t_udp_untouched},
    {"unix_untouched", t_unix_untouched},
    {"other_targets_untouched", t_other_targets_untouched},
    {"fork_after_connect", t_fork_after_connect},
    {"sigchld_handler", t_sigchld_handler},
    {"sigchld_ignored", t_sigchld_ignored},
    {"pid1", t_pid1},
    {"subreaper", t_subreaper},
    {"helper_missing", t_helper_missing},
    {"threads", t_threads},
    {"helper_inherits_nothing", t_helper_inherits_nothing},
    {"helper_environment", t_helper_environment},
    {"closed_stdio", t_closed_stdio},
    {"no_zombie", t_no_zombie},
    {"helper_serves_only_its_peer", t_helper_serves_only_its_peer},
    {"helper_gives_up_when_abandoned", t_helper_gives_up_when_abandoned},
    {"intercept_list", t_intercept_list},
    {"intercept_empty", t_intercept_empty},
    {"ipv6_disabled", t_ipv6_disabled},
    {"helper_intercepts_nothing", t_helper_intercepts_nothing},
};

int main(int argc, char **argv)
{
	const char *d = getenv("RELAYSHIM_FAKE_BS_DIR");

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s", d ? d : "/tmp");
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	for (size_t i = 0; argc == 2 && i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strcmp(argv[1], cases[i].name) == 0)
			return cases[i].fn();
	fprintf(stderr, "usage: conformance list | CASE\n");
	return 2;
}
