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
 *	The mechanism (shim/README.md, research/shim.md design B):
 *	1. a one-shot listener on the target's loopback address, port 0;
 *	2. the helper is started with the listener as fd 0 and one end of a
 *	   socketpair as fd 1, a clean signal mask, default signal handlers,
 *	   no LD_PRELOAD, the environment captured when the library was
 *	   loaded plus RELAYSHIM_SHIM_ACCEPT; it is started detached, through
 *	   a short-lived middle process whose exit raises no SIGCHLD (THE
 *	   QUIET SPAWN below), or with posix_spawn if clone() is refused;
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
 *	   connect() (ORPHANED HELPERS below).
 *	Spawning before connecting means a helper that cannot be started
 *	leaves the application's socket untouched: connect() then fails with
 *	ECONNREFUSED and one line on stderr.
 *
 *	A socket that is not in the TCP CLOSE state (connecting or
 *	connected, e.g. the second connect() of the re-connect idiom of Ruby
 *	and Perl) is passed to the kernel untouched: Linux then answers from
 *	the socket's state (0, EALREADY or EISCONN) and ignores the address.
 *
 *	Configuration is read once, in the constructor (or on the first
 *	connect() if another constructor calls connect() before ours):
 *	php-fpm's clear_env empties the environment of workers later.
 *	Variables captured for the helper: every RELAYSHIM_*, the policy
 *	variables of SPEC section 2, and PATH, HOME, TZ, LANG, LC_ALL,
 *	TMPDIR, USER, LOGNAME, HOSTNAME.
 *
 *	A process whose environment holds RELAYSHIM_SHIM_ACCEPT (a helper
 *	started through /etc/ld.so.preload) intercepts nothing.
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
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Old glibc. Linked on glibc >= 2.34, dlsym would be bound to
 * dlsym@GLIBC_2.34, and a preloaded object with an unmet symbol version
 * stops the application from starting at all (research/shim.md 2.12).
 * Bind the original version, still exported by every glibc. With this,
 * the newest version needed is GLIBC_2.15 (posix_spawn); see README.md.
 */
#if defined(__GLIBC__) && defined(__x86_64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
#elif defined(__GLIBC__) && defined(__aarch64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
#endif

#define SHIM_EXPORT __attribute__((visibility("default")))
/* Code running on our own clone() stacks: ASan would warn about the stack switch. */
#define SHIM_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))
#define SHIM_MAX_TARGETS 32
#define SHIM_ENV_MARK "RELAYSHIM_SHIM_ACCEPT"

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*addclosefrom_fn)(posix_spawn_file_actions_t *, int);

/* One intercepted endpoint; addresses and port in network byte order. */
struct shim_target {
	int v6;	       /* [::1] */
	int whole_net; /* 127.0.0.1 stands for all of 127.0.0.0/8 */
	uint32_t v4;
	uint16_t port;
};

/* Written once by shim_init(), read-only afterwards. */
static struct shim_config {
	connect_fn real_connect;
	addclosefrom_fn addclosefrom; /* glibc >= 2.34, looked up at run time */
	int disabled;
	size_t ntargets;
	struct shim_target targets[SHIM_MAX_TARGETS];
	char *sendmail;
	char comm[16];	      /* the helper's /proc comm: basename, 15 bytes */
	char **envp;	      /* RELAYSHIM_SHIM_ACCEPT=1: detach by forking */
	char **envp_detached; /* RELAYSHIM_SHIM_ACCEPT=2: orphaned at birth */
	int posix_only;	      /* RELAYSHIM_SPAWN=posix (tests, debugging) */
} shim;

/* 0 = not initialised, 1 = being initialised, 2 = ready. */
static int shim_state;
/* Set once the PID 1 / subreaper warning was written. */
static int shim_reaper_warned;
/* Helpers re-parented to us (PID 1 or subreaper), to reap later; 0 = free slot. */
#define SHIM_MAX_ORPHANS 64
static pid_t shim_orphans[SHIM_MAX_ORPHANS];

/*
 * ==================================================================
 * HELPERS
 * ==================================================================
 */

/* shim_log - one line on stderr, write(2) only */

static void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void shim_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;
	int saved = errno;

	memcpy(line, "relayshim: ", 11);
	va_start(ap, fmt);
	n = vsnprintf(line + 11, sizeof(line) - 12, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 12)
		n = (int)(sizeof(line) - 12);
	n += 11;
	line[n++] = '\n';
	/* Nothing sensible to do when stderr is gone. */
	if (write(2, line, (size_t)n) < 0)
		(void)0;
	errno = saved;
}

/* shim_real_connect - the next connect(), or the system call if none */

static int shim_real_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (shim.real_connect != NULL)
		return shim.real_connect(fd, addr, len);
	return (int)syscall(SYS_connect, fd, addr, len);
}

/* shim_close - close(2) keeping errno */

static void shim_close(int *fd)
{
	int saved = errno;

	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	errno = saved;
}

/* shim_move_up - move fd to a number >= 3, close-on-exec, closing the old one */

static int shim_move_up(int fd)
{
	/*
	 * A daemon with closed stdio gets our descriptors as 0-2, and
	 * posix_spawn's dup2(fd, fd) would then keep close-on-exec set.
	 */
	int up;

	if (fd >= 3)
		return fd;
	up = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return up;
}

/*
 * ==================================================================
 * CONFIGURATION
 * ==================================================================
 */

/* shim_parse_target - parse "127.0.0.1:25", "[::1]:25" or "localhost:25" */

static int shim_parse_target(const char *s, size_t n, struct shim_target *out, size_t *nout)
{
	char host[64];
	const char *colon;
	const char *port_s;
	size_t hlen;
	char *end;
	unsigned long port;
	struct in_addr a4;
	struct in6_addr a6;

	if (s[0] == '[') {
		const char *close_br = memchr(s, ']', n);

		if (close_br == NULL || close_br + 1 >= s + n || close_br[1] != ':')
			return -1;
		hlen = (size_t)(close_br - s - 1);
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, s + 1, hlen);
		port_s = close_br + 2;
	} else {
		colon = NULL;
		for (const char *p = s; p < s + n; p++)
			if (*p == ':')
				colon = p;
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - s);
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, s, hlen);
		port_s = colon + 1;
	}
	host[hlen] = 0;
	if (port_s >= s + n || *port_s < '0' || *port_s > '9')
		return -1;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno != 0 || end != s + n || port == 0 || port > 65535)
		return -1;

	memset(out, 0, 2 * sizeof(*out));
	out[0].port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0) {
		out[0].whole_net = 1;
		out[0].v4 = htonl(INADDR_LOOPBACK);
		out[1].port = out[0].port;
		out[1].v6 = 1;
		*nout = 2;
		return 0;
	}
	*nout = 1;
	if (inet_pton(AF_INET, host, &a4) == 1) {
		if ((ntohl(a4.s_addr) >> 24) != 127)
			return -1;
		out[0].v4 = a4.s_addr;
		out[0].whole_net = (a4.s_addr == htonl(INADDR_LOOPBACK));
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6)) {
			out[0].v6 = 1;
			return 0;
		}
		/* ::ffff:127.x written as IPv6: the same as its IPv4 form */
		if (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127) {
			memcpy(&out[0].v4, &a6.s6_addr[12], 4);
			out[0].whole_net = (out[0].v4 == htonl(INADDR_LOOPBACK));
			return 0;
		}
	}
	return -1;
}

/* shim_parse_intercept - fill shim.targets from RELAYSHIM_INTERCEPT */

static void shim_parse_intercept(const char *spec)
{
	const char *p = spec;

	/* "none" or an empty value: intercept nothing (a way to switch off). */
	if (strcmp(spec, "none") == 0)
		return;
	while (*p) {
		const char *start;
		size_t n;
		size_t got;
		struct shim_target t[2];

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == 0)
			break;
		start = p;
		while (*p && *p != ' ' && *p != ',' && *p != '\t')
			p++;
		n = (size_t)(p - start);
		if (shim_parse_target(start, n, t, &got) != 0) {
			shim_log(
			    "RELAYSHIM_INTERCEPT: ignoring \"%.*s\" (use 127.0.0.1:25, [::1]:25 "
			    "or localhost:25; loopback addresses only)",
			    (int)(n > 100 ? 100 : n), start);
			continue;
		}
		for (size_t i = 0; i < got && shim.ntargets < SHIM_MAX_TARGETS; i++)
			shim.targets[shim.ntargets++] = t[i];
	}
}

/* shim_env_wanted - is this environment entry passed to the helper? */

static int shim_env_wanted(const char *entry)
{
	/* SPEC section 2 policy variables, and what a program expects to have. */
	static const char *const names[] = {"MASQUERADED_DOMAINS",
					    "OVERWRITE_FROM",
					    "SMTP_HEADER_TAG",
					    "ALWAYS_ADD_MISSING_HEADERS",
					    "ALLOWED_SENDER_DOMAINS",
					    "ALLOW_EMPTY_SENDER_DOMAINS",
					    "MESSAGE_SIZE_LIMIT",
					    "POSTFIX_message_size_limit",
					    "LOG_FORMAT",
					    "ANONYMIZE_EMAILS",
					    "DEBUG",
					    "PATH",
					    "HOME",
					    "TZ",
					    "LANG",
					    "LC_ALL",
					    "TMPDIR",
					    "USER",
					    "LOGNAME",
					    "HOSTNAME",
					    NULL};
	const char *eq = strchr(entry, '=');
	size_t n;

	if (eq == NULL)
		return 0;
	n = (size_t)(eq - entry);
	if (n == strlen(SHIM_ENV_MARK) && strncmp(entry, SHIM_ENV_MARK, n) == 0)
		return 0;
	if (strncmp(entry, "RELAYSHIM_", 10) == 0)
		return 1;
	for (size_t i = 0; names[i] != NULL; i++)
		if (strlen(names[i]) == n && strncmp(entry, names[i], n) == 0)
			return 1;
	return 0;
}

/* shim_capture_env - snapshot the helper's environment */

static int shim_capture_env(void)
{
	extern char **environ;
	size_t n = 0;
	size_t k = 0;

	for (char **e = environ; e != NULL && *e != NULL; e++)
		n++;
	shim.envp = calloc(n + 2, sizeof(char *));
	shim.envp_detached = calloc(n + 2, sizeof(char *));
	if (shim.envp == NULL || shim.envp_detached == NULL)
		return -1;
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		if (!shim_env_wanted(*e))
			continue;
		if ((shim.envp[k] = strdup(*e)) == NULL)
			return -1;
		shim.envp_detached[k] = shim.envp[k];
		k++;
	}
	shim.envp[k] = SHIM_ENV_MARK "=1";
	shim.envp_detached[k] = SHIM_ENV_MARK "=2";
	k++;
	shim.envp[k] = NULL;
	shim.envp_detached[k] = NULL;
	return 0;
}

/* shim_init - read the configuration once */

static void shim_init(void)
{
	const char *v;
	void *sym;

	/* RTLD_NEXT chains with other preloaded interposers (APM agents, faketime). */
	sym = dlsym(RTLD_NEXT, "connect");
	if (sym != NULL && sym != (void *)connect)
		shim.real_connect = (connect_fn)sym;
	shim.addclosefrom =
	    (addclosefrom_fn)dlsym(RTLD_DEFAULT, "posix_spawn_file_actions_addclosefrom_np");

	if (getenv(SHIM_ENV_MARK) != NULL) {
		shim.disabled = 1;
		return;
	}
	v = getenv("RELAYSHIM_SENDMAIL");
	shim.sendmail = strdup(v != NULL && *v != 0 ? v : "/usr/sbin/sendmail");
	if (shim.sendmail != NULL) {
		const char *base = strrchr(shim.sendmail, '/');

		snprintf(shim.comm, sizeof(shim.comm), "%s", base ? base + 1 : shim.sendmail);
	}
	v = getenv("RELAYSHIM_SPAWN");
	shim.posix_only = v != NULL && strcmp(v, "posix") == 0;
	v = getenv("RELAYSHIM_INTERCEPT");
	shim_parse_intercept(v != NULL ? v : "127.0.0.1:25 [::1]:25");
	if (shim.sendmail == NULL || shim_capture_env() != 0) {
		shim_log("out of memory while loading; intercepting nothing");
		shim.disabled = 1;
	}
}

/* shim_ensure_init - run shim_init() exactly once, from any thread */

static void shim_ensure_init(void)
{
	int expected = 0;
	int saved;

	if (__atomic_load_n(&shim_state, __ATOMIC_ACQUIRE) == 2)
		return;
	if (__atomic_compare_exchange_n(&shim_state, &expected, 1, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		saved = errno;
		shim_init();
		errno = saved;
		__atomic_store_n(&shim_state, 2, __ATOMIC_RELEASE);
		return;
	}
	while (__atomic_load_n(&shim_state, __ATOMIC_ACQUIRE) != 2)
		sched_yield();
}

/* shim_constructor - read the configuration while the environment is intact */

__attribute__((constructor)) static void shim_constructor(void)
{
	shim_ensure_init();
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

/* shim_spawn_posix - start the helper with posix_spawn (the fallback) */

static int shim_spawn_posix(int lfd, int ctl, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	sigset_t all;
	char *argv[3];
	int rc;

	argv[0] = shim.sendmail;
	argv[1] = (char *)"-bs";
	argv[2] = NULL;
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		return rc;
	if ((rc = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	sigemptyset(&none);
	sigfillset(&all);
	/*
	 * A blocked SIGALRM or an ignored SIGTERM inherited from the
	 * application's thread would break the helper's timeouts and
	 * shutdown, hence an empty mask and default dispositions.
	 */
	if ((rc = posix_spawn_file_actions_adddup2(&fa, lfd, 0)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, ctl, 1)) != 0 ||
	    (shim.addclosefrom != NULL && (rc = shim.addclosefrom(&fa, 3)) != 0) ||
	    (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
	    (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0 ||
	    (rc = posix_spawnattr_setflags(&attr,
					   POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0)
		goto done;
	rc = posix_spawn(pid, shim.sendmail, &fa, &attr, argv, shim.envp);
done:
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/*
 * The quiet spawn. posix_spawn's child exits with SIGCHLD, which the
 * application would see once per mail (a handler without SA_RESTART turns
 * it into EINTR elsewhere; a waitpid(-1) loop reaps a pid it never
 * created). Linux resets the exit signal to SIGCHLD on execve(), so a
 * quiet child cannot be the exec'd helper itself; instead:
 *
 *   application --clone(VM|VFORK, exit signal 0)--> middle
 *   middle      --clone(VM|VFORK, SIGCHLD)--------> helper --execve--> sendmail
 *
 * The middle never execs and exits as soon as the helper has exec'd: its
 * exit raises no signal, and only our wait with __WALL sees it. The
 * helper is orphaned at birth and re-parented to init (or the nearest
 * subreaper), so it runs with RELAYSHIM_SHIM_ACCEPT=2: already detached,
 * no fork needed. As in glibc's posix_spawn: CLONE_VM|CLONE_VFORK children
 * on stacks of their own, all signals blocked around clone(), every
 * handler reset to SIG_DFL in the helper before its signals are unblocked,
 * then only system calls until execve(). The calling thread is suspended
 * until the middle has exited.
 */

struct shim_child {
	int lfd;
	int ctl;
	int err;	    /* errno of a failed clone or exec, written by the children */
	pid_t helper;	    /* written by the middle */
	char *helper_stack; /* top of the helper's stack */
	char *const *argv;
};

/* shim_helper_main - the helper before execve: shares our memory, system calls only */

SHIM_NO_SANITIZE static int shim_helper_main(void *arg)
{
	struct shim_child *c = arg;
	struct sigaction dfl;
	sigset_t none;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	/* The application's handlers must never run here (EINVAL for glibc's own signals). */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	if (dup2(c->lfd, 0) < 0 || dup2(c->ctl, 1) < 0) {
		c->err = errno;
		_exit(127);
	}
#ifdef SYS_close_range
	syscall(SYS_close_range, 3U, ~0U, 0U);
#endif
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(shim.sendmail, c->argv, shim.envp_detached);
	c->err = errno;
	_exit(127);
}

/* shim_middle_main - start the helper, note its pid, exit without a signal */

SHIM_NO_SANITIZE static int shim_middle_main(void *arg)
{
	struct shim_child *c = arg;
	pid_t helper;

	helper = clone(shim_helper_main, c->helper_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, c);
	if (helper < 0)
		c->err = errno;
	else
		c->helper = helper;
	_exit(0);
}

/* shim_spawn_quiet - start the detached helper without the application seeing a child */

static int shim_spawn_quiet(int lfd, int ctl, pid_t *helper)
{
	const size_t stack_size = 64 * 1024;
	struct shim_child c;
	char *argv[3];
	sigset_t all;
	sigset_t old;
	char *stacks;
	pid_t middle;
	int err;

	argv[0] = shim.sendmail;
	argv[1] = (char *)"-bs";
	argv[2] = NULL;
	stacks = mmap(NULL, 2 * stack_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stacks == MAP_FAILED)
		return errno;
	memset(&c, 0, sizeof(c));
	c.lfd = lfd;
	c.ctl = ctl;
	c.argv = argv;
	/* Stacks grow down on every architecture we build for. */
	c.helper_stack = stacks + 2 * stack_size;
	sigfillset(&all);
	/* sigprocmask acts on the calling thread (pthread_sigmask would need GLIBC_2.32). */
	sigprocmask(SIG_SETMASK, &all, &old);
	middle = clone(shim_middle_main, stacks + stack_size, CLONE_VM | CLONE_VFORK, &c);
	err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (middle > 0)
		while (waitpid(middle, NULL, __WALL) < 0 && errno == EINTR)
			;
	munmap(stacks, 2 * stack_size);
	if (middle < 0)
		return err;
	if (c.err != 0) {
		/* The helper's exec failed and it exited; collect it if it became ours. */
		if (c.helper > 0)
			waitpid(c.helper, NULL, __WALL | WNOHANG);
		return c.err;
	}
	*helper = c.helper;
	return 0;
}

/* shim_spawn - start the helper; *middle: a first process left to reap, or -1 */

static int shim_spawn(int lfd, int ctl, pid_t *middle, pid_t *helper)
{
	int rc = ENOSYS;

	*middle = -1;
	*helper = -1;
	if (!shim.posix_only)
		rc = shim_spawn_quiet(lfd, ctl, helper);
	/* A seccomp filter or an odd kernel may refuse clone(): posix_spawn then. */
	if (rc == ENOSYS || rc == EPERM || rc == EINVAL)
		rc = shim_spawn_posix(lfd, ctl, middle);
	return rc;
}

/* shim_reap - wait for the helper's first process, which exits at once */

static void shim_reap(pid_t pid)
{
	int saved = errno;

	/*
	 * __WALL: the quiet child has no exit signal. ECHILD: for a
	 * posix_spawn child, the application's SIGCHLD handler or SIG_IGN
	 * got it first.
	 */
	while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
		;
	errno = saved;
}

/*
 * ==================================================================
 * ORPHANED HELPERS (the application is PID 1 or a subreaper)
 * ==================================================================
 *
 * The detached helper is re-parented to the nearest subreaper or PID 1.
 * When that is the application (node or php-fpm as a container's PID 1
 * without --init), every finished helper would stay its zombie forever.
 * The helper's first process reports the serving child's pid on the
 * control socket; the shim remembers it and reaps finished helpers at
 * the next intercepted connect(), so at most the helpers of the last
 * sessions remain zombies. Before reaping, /proc confirms that the pid is
 * still our child and runs the helper program, so that a pid the
 * application reaped and reused for a child of its own is never touched.
 */

/* shim_is_reaper - are orphans re-parented to this process? */

static int shim_is_reaper(void)
{
	int sub = 0;

	return getpid() == 1 || (prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub != 0);
}

/* shim_warn_reaper - warn once about the zombies of the last sessions */

static void shim_warn_reaper(void)
{
	if (__atomic_exchange_n(&shim_reaper_warned, 1, __ATOMIC_RELAXED) == 0)
		shim_log("this process is PID 1 or a child subreaper: finished sendmail helpers "
			 "are reaped at the next intercepted connect() only (run it under an init, "
			 "e.g. docker run --init)");
}

/* shim_orphan_state - 1: our finished helper, 0: our helper still running, -1: not ours */

static int shim_orphan_state(pid_t pid)
{
	char path[64];
	char buf[512];
	char *open_paren;
	char *close_paren;
	char state;
	int ppid;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* "pid (comm) S ppid ...": comm may contain anything, even ")". */
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (open_paren == NULL || close_paren == NULL || close_paren < open_paren)
		return -1;
	*close_paren = 0;
	if (strcmp(open_paren + 1, shim.comm) != 0 ||
	    sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2 || ppid != getpid())
		return -1;
	return state == 'Z' ? 1 : 0;
}

/* shim_reap_orphans - reap the finished helpers we were left with */

static void shim_reap_orphans(void)
{
	for (size_t i = 0; i < SHIM_MAX_ORPHANS; i++) {
		pid_t pid = __atomic_exchange_n(&shim_orphans[i], 0, __ATOMIC_ACQ_REL);
		int state;

		if (pid <= 0)
			continue;
		state = shim_orphan_state(pid);
		if (state == 1)
			waitpid(pid, NULL, WNOHANG);
		else if (state == 0)
			__atomic_store_n(&shim_orphans[i], pid, __ATOMIC_RELEASE);
	}
}

/* shim_read_helper_pid - the pid a posix_spawn'd helper reported, or -1 */

static pid_t shim_read_helper_pid(int ctl)
{
	char line[32];
	ssize_t n;
	long pid;

	/* The first process wrote the line before exiting, and we reaped it. */
	n = recv(ctl, line, sizeof(line) - 1, MSG_DONTWAIT);
	if (n < 5 || memcmp(line, "PID ", 4) != 0)
		return -1;
	line[n] = 0;
	pid = strtol(line + 4, NULL, 10);
	return pid > 1 ? (pid_t)pid : -1;
}

/* shim_remember_orphan - keep a helper's pid to reap it once it has finished */

static void shim_remember_orphan(pid_t pid)
{
	if (pid <= 1)
		return;
	for (size_t i = 0; i < SHIM_MAX_ORPHANS; i++) {
		pid_t zero = 0;

		if (__atomic_compare_exchange_n(&shim_orphans[i], &zero, (pid_t)pid, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return;
	}
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
	if ((rc = shim_spawn(lfd, pair[1], &pid, &helper)) != 0) {
		shim_log("cannot start %s -bs (%s); connect() refused", shim.sendmail,
			 strerror(rc));
		goto refuse;
	}
	/* The helper holds the listener now; if it dies, our connect is refused. */
	shim_close(&lfd);
	shim_close(&pair[1]);

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
	if (pid > 0)
		shim_reap(pid);
	if (reaper)
		shim_remember_orphan(helper > 0 ? helper : shim_read_helper_pid(pair[0]));
	shim_close(&pair[0]);
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

SHIM_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG arg, socklen_t len)
{
#if defined(__GNUC__) && defined(__USE_GNU) && !defined(__cplusplus)
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
