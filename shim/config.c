/*++
 * NAME
 *	config 3
 * SUMMARY
 *	the shim's configuration, read once, and its small utilities
 * SYNOPSIS
 *	#include "shim.h"
 *
 *	struct shim_config shim;
 *	void	shim_init_once(void);
 *	void	shim_log(const char *fmt, ...);
 *	void	shim_close(int *fd);
 *	int	shim_move_up(int fd);
 * DESCRIPTION
 *	The constructor reads RELAYSHIM_INTERCEPT, RELAYSHIM_SENDMAIL,
 *	RELAYSHIM_SPAWN and RELAYSHIM_SPARE, resolves the next connect(), and snapshots the
 *	environment the helper will get (relayshim.c has the list). In a
 *	set-user-ID, set-group-ID or file-capability process (AT_SECURE) it
 *	reads nothing and intercepts nothing. If
 *	another library's constructor calls connect() before ours ran,
 *	shim_ensure_init() (shim.h) does the same from there, exactly once.
 *
 *	shim_log() writes one "relayshim: ..." line on stderr with write(2).
 *	shim_close() closes and sets the descriptor to -1, keeping errno.
 *	shim_move_up() moves a descriptor to a number >= 3 (close-on-exec).
 * DIAGNOSTICS
 *	A bad RELAYSHIM_INTERCEPT entry is ignored with one line on stderr;
 *	out of memory while loading disables the shim with one line.
 *--*/

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "shim.h"

/*
 * Old glibc. Linked on glibc >= 2.34, dlsym would be bound to
 * dlsym@GLIBC_2.34, and a preloaded object with an unmet symbol version
 * stops the application from starting at all ("version `GLIBC_2.34'
 * not found" from the dynamic loader).
 * Bind the original version, still exported by every glibc. With this,
 * the newest version needed is GLIBC_2.16 (getauxval); see README.md.
 */
#if defined(__GLIBC__) && defined(__x86_64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
#elif defined(__GLIBC__) && defined(__aarch64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
#endif

struct shim_config shim;

/* 0 = not initialised, 1 = being initialised, 2 = ready. */
int shim_state;

/* shim_log - one line on stderr, write(2) only */

void shim_log(const char *fmt, ...)
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

/* shim_close - close(2) keeping errno */

void shim_close(int *fd)
{
	int saved = errno;

	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	errno = saved;
}

/* shim_move_up - move fd to a number >= 3, close-on-exec, closing the old one */

int shim_move_up(int fd)
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

/* shim_parse_port - "25" into *port; -1 unless 1-65535 and nothing else */

static int shim_parse_port(const char *s, const char *end, unsigned long *port)
{
	unsigned long v = 0;

	if (s >= end)
		return -1;
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return -1;
	}
	if (v == 0)
		return -1;
	*port = v;
	return 0;
}

/*
 * shim_parse_target - one endpoint, with the syntax of sendmail -bd
 * (endpoint_parse() in sendmail/endpoint.c): "127.0.0.1:25", "[::1]:25", "localhost:25";
 * without a port, 25: "127.0.0.1", "[::1]", "::1", "localhost".
 */

static int shim_parse_target(const char *s, size_t n, struct shim_target *out, size_t *nout)
{
	char host[64];
	const char *end = s + n;
	const char *host_end = end;
	const char *colon = NULL;
	int colons = 0;
	size_t hlen;
	unsigned long port = 25;
	struct in_addr a4;
	struct in6_addr a6;

	if (s[0] == '[') {
		const char *close_br = memchr(s, ']', n);

		if (close_br == NULL)
			return -1;
		if (close_br + 1 < end &&
		    (close_br[1] != ':' || shim_parse_port(close_br + 2, end, &port) != 0))
			return -1;
		s++;
		host_end = close_br;
	} else {
		for (const char *p = s; p < end; p++)
			if (*p == ':') {
				colon = p;
				colons++;
			}
		/* One colon: host:port. More: a bare IPv6 address, port 25. */
		if (colons == 1) {
			if (shim_parse_port(colon + 1, end, &port) != 0)
				return -1;
			host_end = colon;
		}
	}
	hlen = (size_t)(host_end - s);
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = 0;

	memset(out, 0, 2 * sizeof(*out));
	out[0].port = htons((uint16_t)port);
	if (strcasecmp(host, "localhost") == 0) {
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

	/* An empty value intercepts nothing (a way to switch the shim off). */
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
	/* relayshim.conf(5) RELAY IMAGE VARIABLES, and what a program expects to have. */
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
	shim.envp_spare = calloc(n + 2, sizeof(char *));
	if (shim.envp == NULL || shim.envp_detached == NULL || shim.envp_spare == NULL)
		return -1;
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		if (!shim_env_wanted(*e))
			continue;
		if ((shim.envp[k] = strdup(*e)) == NULL)
			return -1;
		shim.envp_detached[k] = shim.envp[k];
		shim.envp_spare[k] = shim.envp[k];
		k++;
	}
	shim.envp[k] = SHIM_ENV_MARK "=1";
	shim.envp_detached[k] = SHIM_ENV_MARK "=2";
	shim.envp_spare[k] = SHIM_ENV_MARK "=3";
	k++;
	shim.envp[k] = NULL;
	shim.envp_detached[k] = NULL;
	shim.envp_spare[k] = NULL;
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

	/*
	 * Set-user-ID, set-group-ID and file-capability programs (the
	 * kernel's AT_SECURE) get the shim from /etc/ld.so.preload but their
	 * environment from an unprivileged caller, who would choose the
	 * program started as the helper, with the privileged program's
	 * rights. The dynamic loader ignores LD_PRELOAD there for the same
	 * reason; intercept nothing, read no variable (README.md, "Set-ID
	 * programs").
	 */
	if (getauxval(AT_SECURE) != 0) {
		shim.disabled = 1;
		return;
	}
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
	/* The spare's idle time is the helper's to read; "0" here means none at all. */
	v = getenv("RELAYSHIM_SPARE");
	shim.spare_off = v != NULL && strcmp(v, "0") == 0;
	v = getenv("RELAYSHIM_INTERCEPT");
	shim_parse_intercept(v != NULL ? v : "127.0.0.1:25 [::1]:25");
	if (shim.sendmail == NULL || shim_capture_env() != 0) {
		shim_log("out of memory while loading; intercepting nothing");
		shim.disabled = 1;
	}
}

/* shim_init_once - run shim_init() exactly once, from any thread (see shim_ensure_init) */

void shim_init_once(void)
{
	int expected = 0;
	int saved;

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
