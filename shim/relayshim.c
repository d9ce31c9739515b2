/*++
 * NAME
 *	relayshim 3
 * SUMMARY
 *	LD_PRELOAD connect() interposer: loopback SMTP served by sendmail -bs
 * SYNOPSIS
 *	LD_PRELOAD=/usr/lib/relayshim/librelayshim.so program ...
 *
 *	int	connect(int fd, const struct sockaddr *addr, socklen_t len);
 * DESCRIPTION
 *	Applications that speak SMTP to localhost:25 find nothing listening
 *	in an application container. This library interposes connect() (and
 *	nothing else). A TCP connect() to an endpoint of RELAYSHIM_INTERCEPT
 *	(default "127.0.0.1:25 [::1]:25") is served by a fresh
 *	"RELAYSHIM_SENDMAIL -bs" (default /usr/sbin/sendmail); every other
 *	call goes straight to the next connect() (dlsym(RTLD_NEXT)) with
 *	errno untouched.
 *
 *	The mechanism (shim/README.md):
 *	1. a one-shot listener on the target's loopback address, port 0;
 *	2. the helper is started with the listener as fd 0 and one end of a
 *	   socketpair as fd 1, a clean signal mask, default signal handlers,
 *	   no LD_PRELOAD, the environment captured when the library was
 *	   loaded plus RELAYSHIM_SHIM_ACCEPT; it is started detached, through
 *	   a short-lived middle process whose exit raises no SIGCHLD (the
 *	   quiet spawn, spawn.c), or with posix_spawn if clone() is refused;
 *	3. the application's own socket really connect()s to the listener,
 *	   so blocking, EINPROGRESS, poll/epoll (registered before or after),
 *	   SO_ERROR, TCP_NODELAY and getsockname() are the kernel's own;
 *	4. the socket's local address is sent to the helper over the
 *	   socketpair; the helper accepts exactly that peer and serves it
 *	   (sendmail/shim_accept.c);
 *	5. the application is left with no child, no zombie and no SIGCHLD
 *	   of ours (with the posix_spawn fallback: one SIGCHLD, for a first
 *	   process that the helper forks off and the shim reaps). If the
 *	   application is PID 1 or a subreaper, the helper is re-parented to
 *	   it; the shim then reaps finished helpers at the next intercepted
 *	   connect() (ORPHANED HELPERS in spawn.c).
 *	From a process's third session on, step 2 hands the listener and
 *	the socketpair's end to the process's spare helper, started after
 *	its second session and already configured, instead (spare.c).
 *	Spawning before connecting means a helper that cannot be started
 *	leaves the application's socket untouched: connect() then fails with
 *	ECONNREFUSED and one line on stderr.
 *
 *	A socket that is not in the TCP CLOSE state (connecting or
 *	connected, e.g. the second connect() of the re-connect idiom of Ruby
 *	and Perl) is passed to the kernel untouched: Linux then answers from
 *	the socket's state (0, EALREADY or EISCONN) and ignores the address.
 *
 *	Configuration is read once (config.c), in the constructor (or on the first
 *	connect() if another constructor calls connect() before ours):
 *	php-fpm's clear_env empties the environment of workers later.
 *	Variables captured for the helper: every RELAYSHIM_*, the policy
 *	variables of relayshim.conf(5) RELAY IMAGE VARIABLES, and PATH, HOME, TZ, LANG, LC_ALL,
 *	TMPDIR, USER, LOGNAME, HOSTNAME.
 *
 *	A process whose environment holds RELAYSHIM_SHIM_ACCEPT (a helper
 *	started through /etc/ld.so.preload) intercepts nothing; nor does a
 *	set-user-ID, set-group-ID or file-capability program (AT_SECURE),
 *	whose environment comes from an unprivileged caller.
 *	RELAYSHIM_SPAWN=posix forces the posix_spawn path (tests, debugging).
 * THREADS AND SIGNALS
 *	The shared state is the configuration, written once before any
 *	connect() can use it (an atomic once-flag, no pthread_once: that
 *	would pull in GLIBC_2.34), and the table of orphaned helpers (atomic
 *	slots). Intercepted calls otherwise use only their own descriptors,
 *	so any number of threads may connect at once. The calling thread
 *	blocks all signals for the few microseconds of clone().
 *	The non-intercepted path makes no system call, takes no lock,
 *	allocates nothing and leaves errno alone: it is async-signal-safe
 *	like connect() itself. The intercepted path allocates (mmap'd
 *	stacks, posix_spawn file actions) and is not async-signal-safe; a
 *	signal handler that connect()s to localhost:25 is not supported.
 * DIAGNOSTICS
 *	One line on stderr ("relayshim: ...") when a helper cannot be
 *	started, for an unusable RELAYSHIM_INTERCEPT entry, and once when
 *	the process is PID 1 or a child subreaper (the helpers of the last
 *	sessions stay zombies until the next intercepted connect()).
 * BUGS
 *	getpeername() shows the listener's ephemeral port, not 25.
 *	Statically linked programs, raw syscall(SYS_connect) and io_uring
 *	bypass any LD_PRELOAD (use sendmail -bd).
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "shim.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

/*
 * glibc declares connect() with a transparent union (__CONST_SOCKADDR_ARG)
 * for GNU C; musl with a plain pointer. Our definition must match.
 */
#if defined(__CONST_SOCKADDR_ARG) && defined(__GNUC__) && defined(__USE_GNU) &&                    \
    !defined(__cplusplus)
#define SHIM_SOCKADDR_ARG __CONST_SOCKADDR_ARG
#define SHIM_SOCKADDR_UNION 1
#else
#define SHIM_SOCKADDR_ARG const struct sockaddr *
#endif

/* shim_real_connect - the next connect(), or the system call if none */

static int shim_real_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (shim.real_connect != NULL)
		return shim.real_connect(fd, addr, len);
	return (int)syscall(SYS_connect, fd, addr, len);
}

/*
 * ==================================================================
 * MATCHING (the fast path: no system call, no errno write)
 * ==================================================================
 */

/* shim_match_v4 - is this IPv4 address and port intercepted? */

static int shim_match_v4(uint32_t addr, uint16_t port)
{
	for (size_t i = 0; i < shim.ntargets; i++) {
		const struct shim_target *t = &shim.targets[i];

		if (t->port != port || t->v6)
			continue;
		if (t->whole_net ? (ntohl(addr) >> 24) == 127 : t->v4 == addr)
			return 1;
	}
	return 0;
}

/* shim_match_v6 - is this IPv6 address (::1 or ::ffff:127.x) and port intercepted? */

static int shim_match_v6(const struct in6_addr *a, uint16_t port)
{
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		uint32_t v4;

		memcpy(&v4, &a->s6_addr[12], 4);
		return shim_match_v4(v4, port);
	}
	if (!IN6_IS_ADDR_LOOPBACK(a))
		return 0;
	for (size_t i = 0; i < shim.ntargets; i++)
		if (shim.targets[i].v6 && shim.targets[i].port == port)
			return 1;
	return 0;
}

/* shim_is_target - does this connect() address belong to us? */

static int shim_is_target(const struct sockaddr *addr, socklen_t len)
{
	sa_family_t family;

	if (shim.disabled || shim.ntargets == 0 || addr == NULL ||
	    len < (socklen_t)sizeof(struct sockaddr_in))
		return 0;
	memcpy(&family, &addr->sa_family, sizeof(family));
	if (family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, addr, sizeof(sin));
		return shim_match_v4(sin.sin_addr.s_addr, sin.sin_port);
	}
	if (family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, addr, sizeof(sin6));
		return shim_match_v6(&sin6.sin6_addr, sin6.sin6_port);
	}
	return 0;
}

/*
 * ==================================================================
 * REDIRECTION
 * ==================================================================
 */

/* shim_socket_is_fresh - may this socket be redirected? */

static int shim_socket_is_fresh(int fd, sa_family_t target_family, int mapped)
{
	int val;
	socklen_t len;
	struct tcp_info ti;

	len = sizeof(val);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &val, &len) != 0 || val != SOCK_STREAM)
		return 0;
	len = sizeof(val);
	/* SCTP also makes SOCK_STREAM sockets; MPTCP falls back to TCP. */
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &val, &len) != 0 ||
	    (val != IPPROTO_TCP && val != 262 /* IPPROTO_MPTCP */))
		return 0;
	len = sizeof(val);
	/* A family mismatch is the kernel's error to report, not ours. */
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &val, &len) != 0 || val != target_family)
		return 0;
	/* ::ffff:127.x on a V6ONLY socket fails natively (ENETUNREACH). */
	if (mapped) {
		len = sizeof(val);
		if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &val, &len) != 0 || val != 0)
			return 0;
	}
	/*
	 * Connecting or connected: Linux answers a connect() from the
	 * socket's state alone (0, EALREADY, EISCONN) and ignores the
	 * address, which is exactly "the kernel's answer" for the
	 * re-connect idiom.
	 */
	len = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state != TCP_CLOSE)
		return 0;
	return 1;
}

/* shim_listen - one-shot loopback listener; fills the address to connect to */

static int shim_listen(const struct sockaddr *target, struct sockaddr_storage *to, socklen_t *tolen)
{
	struct sockaddr_in6 t6;
	struct sockaddr_in l4;
	struct sockaddr_in6 l6;
	socklen_t len;
	int lfd = -1;
	int v6 = 0;
	int mapped = 0;

	memset(&l4, 0, sizeof(l4));
	memset(&l6, 0, sizeof(l6));
	l4.sin_family = AF_INET;
	l6.sin6_family = AF_INET6;
	if (target->sa_family == AF_INET) {
		memcpy(&l4, target, sizeof(l4));
	} else {
		memcpy(&t6, target, sizeof(t6));
		if (IN6_IS_ADDR_V4MAPPED(&t6.sin6_addr)) {
			mapped = 1;
			memcpy(&l4.sin_addr, &t6.sin6_addr.s6_addr[12], 4);
		} else {
			v6 = 1;
			l6.sin6_addr = in6addr_loopback;
		}
	}
	l4.sin_port = 0;

	if (v6) {
		lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd >= 0 && bind(lfd, (struct sockaddr *)&l6, sizeof(l6)) != 0) {
			/* IPv6 off in the container: serve [::1] through ::ffff:127.0.0.1. */
			shim_close(&lfd);
			v6 = 0;
			mapped = 1;
			l4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		}
	}
	if (!v6) {
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd >= 0 && bind(lfd, (struct sockaddr *)&l4, sizeof(l4)) != 0)
			shim_close(&lfd);
	}
	if (lfd < 0)
		return -1;
	/* A few slots: a stray local connection must not crowd out ours. */
	if (listen(lfd, 8) != 0)
		goto fail;
	if (v6) {
		len = sizeof(l6);
		if (getsockname(lfd, (struct sockaddr *)&l6, &len) != 0)
			goto fail;
		memcpy(to, &l6, sizeof(l6));
		*tolen = sizeof(l6);
	} else {
		len = sizeof(l4);
		if (getsockname(lfd, (struct sockaddr *)&l4, &len) != 0)
			goto fail;
		if (mapped) {
			memset(&l6, 0, sizeof(l6));
			l6.sin6_family = AF_INET6;
			l6.sin6_port = l4.sin_port;
			l6.sin6_addr.s6_addr[10] = 0xff;
			l6.sin6_addr.s6_addr[11] = 0xff;
			memcpy(&l6.sin6_addr.s6_addr[12], &l4.sin_addr, 4);
			memcpy(to, &l6, sizeof(l6));
			*tolen = sizeof(l6);
		} else {
			memcpy(to, &l4, sizeof(l4));
			*tolen = sizeof(l4);
		}
	}
	return shim_move_up(lfd);

fail:
	shim_close(&lfd);
	return -1;
}

/* shim_peer_text - "ADDRESS PORT\n" of a local address, v4-mapped shown as IPv4 */

static int shim_peer_text(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int n;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], host, sizeof(host));
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
	} else {
		return -1;
	}
	if (port == 0)
		return -1;
	n = snprintf(out, outlen, "%s %u\n", host, port);
	return (n > 0 && (size_t)n < outlen) ? n : -1;
}

/* shim_intercept - serve one connect() to an intercepted endpoint */

static int shim_intercept(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	struct sockaddr_storage to;
	socklen_t tolen = 0;
	char peer[INET6_ADDRSTRLEN + 16];
	int saved = errno;
	int lfd = -1;
	int pair[2] = {-1, -1};
	pid_t pid = -1;
	pid_t helper = -1;
	int rc;
	int err;
	int result;
	int mapped = 0;
	int reaper;
	int spare;

	if (addr->sa_family == AF_INET6) {
		struct sockaddr_in6 t6;

		memcpy(&t6, addr, sizeof(t6));
		mapped = IN6_IS_ADDR_V4MAPPED(&t6.sin6_addr);
	}
	if (!shim_socket_is_fresh(fd, addr->sa_family, mapped)) {
		errno = saved;
		return shim_real_connect(fd, addr, addrlen);
	}
	reaper = shim_is_reaper();
	if (reaper) {
		shim_warn_reaper();
		shim_reap_orphans();
	}

	if ((lfd = shim_listen(addr, &to, &tolen)) < 0) {
		err = errno;
		shim_log("cannot create a loopback listener (%s); connect() refused",
			 strerror(err));
		goto refuse;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0 ||
	    (pair[0] = shim_move_up(pair[0])) < 0 || (pair[1] = shim_move_up(pair[1])) < 0) {
		err = errno;
		shim_log("cannot create a socketpair (%s); connect() refused", strerror(err));
		goto refuse;
	}
	/* The spare helper if there is one (spare.c), else one started now. */
	spare = shim_spare_offer(lfd, pair[1]) == 0;
	if (!spare && (rc = shim_spawn(lfd, pair[1], &pid, &helper)) != 0) {
		shim_log("cannot start %s -bs (%s); connect() refused", shim.sendmail,
			 strerror(rc));
		goto refuse;
	}
	/* The helper holds the listener now; if it dies, our connect is refused. */
	if (!spare) {
		shim_close(&lfd);
		shim_close(&pair[1]);
	}

	result = shim_real_connect(fd, (struct sockaddr *)&to, tolen);
	err = errno;
	/*
	 * 0, EINPROGRESS or EINTR: the SYN is on its way and the local
	 * port is bound; tell the helper which peer is ours. Otherwise
	 * closing the control socket tells it to give up.
	 */
	if (result == 0 || err == EINPROGRESS || err == EINTR) {
		int n = shim_peer_text(fd, peer, sizeof(peer));

		/* MSG_NOSIGNAL: a helper that died must not SIGPIPE the application. */
		if (n > 0 && send(pair[0], peer, (size_t)n, MSG_NOSIGNAL) != n)
			(void)0;
	}
	/*
	 * The spare's answer has come meanwhile, as a rule. If it did not
	 * take the connection, which waits in the listener's queue, a
	 * helper of our own takes it, with the peer address waiting on
	 * the control socket.
	 */
	if (spare && shim_spare_confirm() != 0) {
		spare = 0;
		if ((rc = shim_spawn(lfd, pair[1], &pid, &helper)) != 0)
			shim_log("cannot start %s -bs (%s); connection closed", shim.sendmail,
				 strerror(rc));
	}
	shim_close(&lfd);
	shim_close(&pair[1]);
	if (pid > 0)
		shim_reap(pid);
	/* A spare's serving process is its child, not ours: nothing to reap. */
	if (reaper && !spare)
		shim_remember_orphan(helper > 0 ? helper : shim_read_helper_pid(pair[0]));
	shim_close(&pair[0]);
	/* The next connect() finds a helper started ahead of time. */
	if (!spare)
		shim_spare_start();
	errno = result == 0 ? saved : err;
	return result;

refuse:
	shim_close(&lfd);
	shim_close(&pair[0]);
	shim_close(&pair[1]);
	errno = ECONNREFUSED;
	return -1;
}

/*
 * ==================================================================
 * CONNECT
 * ==================================================================
 */

/* connect - the one interposed function */

SHIM_EXPORT int connect(int fd, SHIM_SOCKADDR_ARG arg, socklen_t len)
{
#ifdef SHIM_SOCKADDR_UNION
	const struct sockaddr *addr = arg.__sockaddr__;
#else
	const struct sockaddr *addr = arg;
#endif

	shim_ensure_init();
	/* A negative descriptor is the kernel's EBADF to give: no need to look further. */
	if (fd < 0 || !shim_is_target(addr, len))
		return shim_real_connect(fd, addr, len);
	return shim_intercept(fd, addr, len);
}
