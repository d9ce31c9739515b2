/*++
 * NAME
 *	spare 3
 * SUMMARY
 *	a helper started ahead of time, handed the next connection
 * SYNOPSIS
 *	#include "shim.h"
 *
 *	int	shim_spare_offer(int lfd, int ctl);
 *	int	shim_spare_confirm(void);
 *	void	shim_spare_start(void);
 * DESCRIPTION
 *	Starting "sendmail -bs" (exec, dynamic loading, configuration)
 *	is most of an intercepted session's cost. After the second
 *	session the shim starts a spare helper: "sendmail -bs" with
 *	RELAYSHIM_SHIM_ACCEPT=3 and one end of an AF_UNIX SOCK_SEQPACKET
 *	socketpair as fd 0. It loads its configuration once and then
 *	serves the connections it is handed, one after the other
 *	(sendmail/shim_spare.c), answering "R" when it is ready for the
 *	next.
 *
 *	shim_spare_offer() sends a connection's listener and control
 *	socket to the spare (SCM_RIGHTS) and returns 0; it returns -1,
 *	having changed nothing, when there is no usable spare or it is
 *	still serving another connection (another thread's), and the
 *	caller starts a helper as before. After an offer the caller
 *	connects and sends the peer address exactly as with a helper it
 *	started itself, keeping its own copies of both descriptors, and
 *	then calls shim_spare_confirm(), which waits for the spare's "Y"
 *	(it has come in the meantime as a rule) and returns 0. On any
 *	other answer, or none within 2 s, it returns -1: the caller then
 *	starts a helper on the same listener, in whose queue the
 *	application's connection waits, and on the same control socket,
 *	where the peer address waits.
 *
 *	shim_spare_start() starts a spare unless one exists, RELAYSHIM_SPARE
 *	is 0, this was the process's first session, or the last three
 *	spares ended without serving a connection (the application sends
 *	less often than a spare waits). It is called after a session's
 *	helper was started the usual way.
 * SECURITY
 *	The spare runs with the identity the process had when it was
 *	started. A spare is never used
 *	- by another process (a fork() child: its copy of the socket is
 *	  closed and it starts its own),
 *	- after the real or effective user or group ID or the
 *	  supplementary groups changed (a root master that switched to
 *	  www-data),
 *	- if the descriptor is no longer the socket we made (the
 *	  application closed it, or reused the number: compared by inode).
 *	The spare checks on its side, with credentials the kernel attaches
 *	(SO_PASSCRED), that every handoff comes from the process that
 *	made the socketpair, with the same real user and group IDs: code
 *	in a process that has given up root cannot make a root spare serve
 *	it.
 * DIAGNOSTICS
 *	None: a spare that is gone, stale or refuses is silently replaced
 *	by the usual start of a helper.
 *--*/

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "shim.h"

/* How long a handoff waits for the spare's answer before giving it up. */
#define SHIM_SPARE_ANSWER_MS 2000

/*
 * The spare, and what the process was when it was started. One slot:
 * SPARE_NONE, SPARE_BUSY (being started, used or dropped by one
 * thread), SPARE_READY (waiting for a connection) or SPARE_SERVING
 * (serving one: ready again once it has said "R"). Only the thread
 * that moved the state to BUSY touches the fields.
 */
enum { SPARE_NONE, SPARE_BUSY, SPARE_READY, SPARE_SERVING };
static int shim_spare_state;
/*
 * Spares in a row that ended without serving a connection. An
 * application that sends less often than a spare waits (or whose
 * seccomp filter refuses the handoff) would otherwise start one for
 * nothing after every session: after SHIM_SPARE_MAX_UNUSED, no more.
 */
#define SHIM_SPARE_MAX_UNUSED 3
static int shim_spare_unused;
/*
 * Sessions served by a helper started for them. The first never starts
 * a spare: a program that sends one mail and exits (a cron job's
 * script) would pay for a second start-up, in its connect() and on the
 * CPU its own helper needs, for nothing.
 */
static int shim_spare_helpers;
static struct {
	int fd;
	pid_t pid; /* of the application, at the start */
	uid_t uid, euid;
	gid_t gid, egid;
	uint64_t groups; /* a hash of the supplementary groups */
	uint64_t dev, ino;
	int served; /* it took a connection */
} shim_spare;

/* shim_spare_groups - a hash of the supplementary group list; 0: unknown */

static uint64_t shim_spare_groups(void)
{
	gid_t list[256];
	uint64_t h = 1469598103934665603ULL;
	int n = getgroups(256, list);

	/* More than 256 groups: unknown, and a spare is then never used. */
	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++)
		h = (h ^ (uint64_t)list[i]) * 1099511628211ULL;
	h ^= (uint64_t)n;
	return h != 0 ? h : 1;
}

/* shim_spare_inode - device and inode of fd; -1 if it is not open */

static int shim_spare_inode(int fd, uint64_t *dev, uint64_t *ino)
{
	struct stat st;

	/* The system call: glibc's fstat symbol would need GLIBC_2.33. */
	if (syscall(SYS_fstat, fd, &st) != 0)
		return -1;
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
	return 0;
}

/* shim_spare_drop - forget the spare; close the descriptor if it is still ours */

static void shim_spare_drop(void)
{
	uint64_t dev;
	uint64_t ino;

	if (shim_spare_inode(shim_spare.fd, &dev, &ino) == 0 && dev == shim_spare.dev &&
	    ino == shim_spare.ino)
		close(shim_spare.fd);
	shim_spare.fd = -1;
	if (!shim_spare.served)
		__atomic_add_fetch(&shim_spare_unused, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&shim_spare_state, SPARE_NONE, __ATOMIC_RELEASE);
}

/* shim_spare_is_ours - was the spare started by this process, as it is now? */

static int shim_spare_is_ours(void)
{
	uint64_t dev;
	uint64_t ino;

	return shim_spare.groups != 0 && shim_spare.pid == getpid() && shim_spare.uid == getuid() &&
	       shim_spare.euid == geteuid() && shim_spare.gid == getgid() &&
	       shim_spare.egid == getegid() && shim_spare.groups == shim_spare_groups() &&
	       shim_spare_inode(shim_spare.fd, &dev, &ino) == 0 && dev == shim_spare.dev &&
	       ino == shim_spare.ino;
}

/* shim_spare_answer - wait for the spare's one-byte answer: 0 for "Y" */

static int shim_spare_answer(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c = 0;
	int n;

	do
		n = poll(&p, 1, SHIM_SPARE_ANSWER_MS);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	do
		n = (int)recv(fd, &c, 1, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n == 1 && c == 'Y' ? 0 : -1;
}

/* shim_spare_offer - send lfd and ctl to the spare; 0 if sent (shim_spare_confirm() next) */

int shim_spare_offer(int lfd, int ctl)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} u;
	struct msghdr m;
	struct cmsghdr *c;
	struct iovec iov;
	char tag = 'H';
	int expected = SPARE_READY;
	int fds[2] = {lfd, ctl};
	int saved = errno;
	ssize_t n;

	if (!__atomic_compare_exchange_n(&shim_spare_state, &expected, SPARE_BUSY, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		expected = SPARE_SERVING;
		if (!__atomic_compare_exchange_n(&shim_spare_state, &expected, SPARE_BUSY, 0,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return -1;
	}
	if (!shim_spare_is_ours()) {
		shim_spare_drop();
		errno = saved;
		return -1;
	}
	if (expected == SPARE_SERVING) {
		char said = 0;

		do
			n = recv(shim_spare.fd, &said, 1, MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		/* Still serving another thread's connection: a helper of our own, now. */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			__atomic_store_n(&shim_spare_state, SPARE_SERVING, __ATOMIC_RELEASE);
			errno = saved;
			return -1;
		}
		if (n != 1 || said != 'R') {
			shim_spare_drop();
			errno = saved;
			return -1;
		}
	}
	memset(&m, 0, sizeof(m));
	memset(&u, 0, sizeof(u));
	iov.iov_base = &tag;
	iov.iov_len = 1;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = sizeof(u.buf);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	do
		n = sendmsg(shim_spare.fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	/* The spare ended (EPIPE, ECONNREFUSED): a helper of our own serves this connection. */
	if (n != 1) {
		shim_spare_drop();
		errno = saved;
		return -1;
	}
	errno = saved;
	return 0;
}

/*
 * shim_spare_confirm - 0 if the spare answered "Y" to the offer. Else
 * the spare is dropped (whatever it received is closed with it) and
 * the caller, which still holds the listener with the application's
 * connection waiting in it, starts a helper of its own.
 */

int shim_spare_confirm(void)
{
	int saved = errno;

	if (shim_spare_answer(shim_spare.fd) != 0) {
		shim_spare_drop();
		errno = saved;
		return -1;
	}
	shim_spare.served = 1;
	__atomic_store_n(&shim_spare_unused, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&shim_spare_state, SPARE_SERVING, __ATOMIC_RELEASE);
	errno = saved;
	return 0;
}

/* shim_spare_start - start a spare helper unless there is one */

void shim_spare_start(void)
{
	int expected = SPARE_NONE;
	int pair[2] = {-1, -1};
	int on = 1;
	int saved = errno;
	pid_t helper = -1;

	if (shim.spare_off || shim.posix_only ||
	    __atomic_add_fetch(&shim_spare_helpers, 1, __ATOMIC_RELAXED) < 2 ||
	    __atomic_load_n(&shim_spare_unused, __ATOMIC_RELAXED) >= SHIM_SPARE_MAX_UNUSED ||
	    !__atomic_compare_exchange_n(&shim_spare_state, &expected, SPARE_BUSY, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	/*
	 * SO_PASSCRED on our end too: the kernel then attaches our
	 * credentials to every message, even one sent before the spare has
	 * set the option on its end.
	 */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0 ||
	    (pair[0] = shim_move_up(pair[0])) < 0 || (pair[1] = shim_move_up(pair[1])) < 0 ||
	    setsockopt(pair[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0 ||
	    shim_spare_inode(pair[0], &shim_spare.dev, &shim_spare.ino) != 0 ||
	    shim_spawn_spare(pair[1], &helper) != 0) {
		shim_close(&pair[0]);
		shim_close(&pair[1]);
		__atomic_store_n(&shim_spare_state, SPARE_NONE, __ATOMIC_RELEASE);
		errno = saved;
		return;
	}
	shim_close(&pair[1]);
	if (shim_is_reaper())
		shim_remember_orphan(helper);
	shim_spare.fd = pair[0];
	shim_spare.pid = getpid();
	shim_spare.uid = getuid();
	shim_spare.euid = geteuid();
	shim_spare.gid = getgid();
	shim_spare.egid = getegid();
	shim_spare.groups = shim_spare_groups();
	shim_spare.served = 0;
	__atomic_store_n(&shim_spare_state, SPARE_READY, __ATOMIC_RELEASE);
	errno = saved;
}
