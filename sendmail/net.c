/*++
 * NAME
 *	net 3
 * SUMMARY
 *	TCP connections with deadlines, buffered I/O over plain TCP or TLS
 * DESCRIPTION
 *	See net.h.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "net.h"
#include "tls.h"

/* Replies are short: 4095 + the NUL is one 4 KB buffer, where 16 KB made
 * buf_reserve() allocate 32 KB and touch a page more for every message. */
#define NET_READ_CHUNK 4095

/* net_now_ms - monotonic milliseconds */

long long net_now_ms(void)
{
	return deadline_now_ms(); /* the clock deadline_wait() measures against */
}

/* The process-wide end set by net_set_limit(); 0 = none. */
static long long net_limit_ms;

/* net_set_limit - no deadline later than limit_ms (0: no limit) */

void net_set_limit(long long limit_ms)
{
	net_limit_ms = limit_ms;
}

/* net_deadline - absolute deadline timeout_ms from now, clipped to the limit */

long long net_deadline(unsigned timeout_ms)
{
	long long d = net_now_ms() + (long long)timeout_ms;

	return net_limit_ms > 0 && d > net_limit_ms ? net_limit_ms : d;
}

/* tempfail - fill err for a temporary network failure */

static int tempfail(struct error *err, const char *text)
{
	err->temporary = 1;
	return error_set(err, EX_TEMPFAIL, "%s", text);
}

/* net_resolve - addresses of host:port */

int net_resolve(const char *host, unsigned port, struct addrinfo **res, struct error *err)
{
	struct addrinfo hints;
	char portstr[16];
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", port);
	/* An address literal needs no lookup and no AI_ADDRCONFIG netlink query. */
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(host, portstr, &hints, res) == 0)
		return 0;
	hints.ai_flags = AI_ADDRCONFIG;
	r = getaddrinfo(host, portstr, &hints, res);
	if (r == EAI_ADDRFAMILY || r == EAI_NONAME) {
		/* AI_ADDRCONFIG hides ::1 on hosts with only loopback IPv6. */
		hints.ai_flags = 0;
		r = getaddrinfo(host, portstr, &hints, res);
	}
	if (r == 0)
		return 0;
	err->temporary = (r == EAI_AGAIN || r == EAI_SYSTEM || r == EAI_MEMORY);
	if (r == EAI_NONAME || r == EAI_NODATA)
		/* A name that does not exist may exist later (DNS being set up). */
		err->temporary = 1;
	return error_set(err, EX_TEMPFAIL, "cannot resolve %s: %s", host,
			 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
}

/* net_conn_init - a closed connection */

void net_conn_init(struct net_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* net_sockaddr_is_loopback - 127.0.0.0/8, ::1 or ::ffff:127.x */

int net_sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			return sin6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* format_peer - "addr:port" or "[addr]:port" */

static void format_peer(char *dst, size_t size, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(dst, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(dst, size, "%s:%u", host, ntohs(sin->sin_port));
	} else {
		snprintf(dst, size, "?");
	}
}

/* ignore_sigpipe - a relay closing on us must be an error, not a death */

static void ignore_sigpipe(void)
{
	struct sigaction sa;

	/*
	 * Plain writes use MSG_NOSIGNAL, but OpenSSL writes with write(2):
	 * a relay that drops the connection mid-DATA would kill us with
	 * SIGPIPE before we could say what happened or queue the message.
	 * Only the default disposition is changed; a caller's handler stays.
	 */
	if (sigaction(SIGPIPE, 0, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		(void)sigaction(SIGPIPE, &sa, 0);
	}
}

/* net_connect - connect to one address within timeout_ms */

int net_connect(struct net_conn *c, const struct addrinfo *ai, unsigned timeout_ms,
		struct error *err)
{
	long long start = net_now_ms();
	long long deadline = net_deadline(timeout_ms);
	/* Less than timeout_ms under -q --deadline (net_set_limit): say what was waited. */
	long long waited = deadline - start < (long long)timeout_ms ? deadline - start : timeout_ms;
	int one = 1;
	int fd;
	int r;

	ignore_sigpipe();
	format_peer(c->peer, sizeof(c->peer), ai->ai_addr);
	c->loopback = net_sockaddr_is_loopback(ai->ai_addr);
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		err->temporary = 1;
		return error_set(err, EX_TEMPFAIL, "cannot connect to %s: socket: %s", c->peer,
				 strerror(errno));
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	do
		r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EINPROGRESS) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		r = deadline_wait(fd, POLLOUT, deadline);
		if (r == 0) {
			close(fd);
			err->temporary = 1;
			return error_set(err, EX_TEMPFAIL,
					 "cannot connect to %s: timed out after %lld ms", c->peer,
					 waited > 0 ? waited : 0);
		}
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr) {
			errno = soerr;
			r = -1;
		} else {
			r = 0;
		}
	}
	if (r < 0) {
		int e = errno;

		close(fd);
		err->temporary = 1;
		return error_set(err, EX_TEMPFAIL, "cannot connect to %s: %s", c->peer,
				 strerror(e));
	}
	c->fd = fd;
	buf_reset(&c->in);
	return 0;
}

/* net_fill - read at least one byte into c->in */

int net_fill(struct net_conn *c, long long deadline, struct error *err)
{
	ssize_t n;

	if (c->fd < 0)
		return tempfail(err, "connection already closed");
	buf_reserve(&c->in, NET_READ_CHUNK);
	if (c->tls) {
		n = tls_read(c->tls, c->in.data + c->in.len, NET_READ_CHUNK, deadline, err);
		if (n < 0)
			return err->status;
	} else {
		for (;;) {
			n = read(c->fd, c->in.data + c->in.len, NET_READ_CHUNK);
			if (n >= 0)
				break;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				err->temporary = 1;
				return error_set(err, EX_TEMPFAIL, "read error: %s",
						 strerror(errno));
			}
			int w = deadline_wait(c->fd, POLLIN, deadline);

			if (w == 0)
				return tempfail(err, "timed out");
			if (w < 0) {
				err->temporary = 1;
				return error_set(err, EX_TEMPFAIL, "poll: %s", strerror(errno));
			}
		}
	}
	if (n == 0)
		return tempfail(err, "connection closed by the relay");
	c->in.len += (size_t)n;
	c->in.data[c->in.len] = 0;
	return 0;
}

/* net_write - write all n bytes */

int net_write(struct net_conn *c, const void *p, size_t n, long long deadline, struct error *err)
{
	const char *cp = p;

	if (c->fd < 0)
		return tempfail(err, "connection already closed");
	if (c->tls)
		return tls_write(c->tls, p, n, deadline, err);
	while (n > 0) {
		ssize_t w = send(c->fd, cp, n, MSG_NOSIGNAL);

		if (w > 0) {
			cp += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = deadline_wait(c->fd, POLLOUT, deadline);

			if (r == 0)
				return tempfail(err, "timed out");
			if (r > 0)
				continue;
		}
		err->temporary = 1;
		return error_set(err, EX_TEMPFAIL, "write error: %s",
				 errno == EPIPE ? "connection closed by the relay"
						: strerror(errno));
	}
	return 0;
}

/* net_close - close the connection (idempotent) */

void net_close(struct net_conn *c)
{
	if (c->tls) {
		tls_close(c->tls);
		c->tls = 0;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	buf_free(&c->in);
}
