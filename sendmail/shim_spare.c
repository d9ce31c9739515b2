/*++
 * NAME
 *	shim_spare 3
 * SUMMARY
 *	a spare -bs helper: configured once, a waiting process per connection
 * SYNOPSIS
 *	#include "shim_spare.h"
 *
 *	int	shim_spare_requested(void);
 *	int	shim_spare_begin(struct error *err);
 *	void	shim_spare_serve(const char *const *files,
 *			int (*serve)(int conn, void *arg), void *arg);
 *	void	shim_spare_ready(void);
 * DESCRIPTION
 *	librelayshim.so starts a spare helper (shim/spare.c) as
 *	"sendmail -bs" with RELAYSHIM_SHIM_ACCEPT=3 and one end of an
 *	AF_UNIX SOCK_SEQPACKET socketpair as fd 0. What a helper the shim
 *	starts for a connection does before it can answer (exec, dynamic
 *	loading, the configuration, the passwd lookup) is then done once,
 *	before the connection exists, and the spare serves the
 *	application's connections one after the other.
 *
 *	shim_spare_requested() says whether this process is a spare.
 *
 *	shim_spare_begin() runs before the configuration is read: it
 *	removes RELAYSHIM_SHIM_ACCEPT from the environment (the queue
 *	worker a session starts must not see it), makes a session of its
 *	own, learns the application's pid from the
 *	socket's peer credentials and asks the kernel to attach the
 *	sender's credentials to every message.
 *
 *	shim_spare_serve() runs once the configuration is loaded and the
 *	caller's identity looked up, and returns when the spare is done.
 *	For each handoff (one byte "H" with two descriptors: a listener
 *	and a control socket, as a helper the shim starts gets them) it
 *	answers "Y", accepts exactly the application's connection
 *	(shim_accept_conn()) and calls serve() with it. When the session
 *	is over it answers "R": ready for the next. serve() calls
 *	shim_spare_ready() itself when the client says QUIT, before the
 *	goodbye goes out, so that an application that connects again as
 *	soon as it has read the goodbye finds the spare ready.
 *
 *	The spare answers "N" and is done when
 *	- the handoff does not carry the kernel's credentials of the
 *	  process that made the socketpair, with this spare's real user
 *	  and group IDs (another process, or one that changed its
 *	  identity since),
 *	- the descriptors are not a listening TCP socket and an AF_UNIX
 *	  stream socket,
 *	- a file in files (the configuration file, the password file) or
 *	  the sendmail program itself changed since the spare read it:
 *	  the next helper reads them afresh.
 *	It is done without a word after RELAYSHIM_SPARE seconds (default
 *	60) without a handoff, after SHIM_SPARE_MAX_SESSIONS sessions
 *	(no "R" after the last), and when the application has closed its
 *	end. When idle, it shuts its reading side first, so that the
 *	shim's next send fails at once rather than waiting for an answer.
 * SEE ALSO
 *	shim/README.md, "The spare helper"; shim_accept(3).
 * DIAGNOSTICS
 *	shim_spare_begin() returns a sysexits.h status and fills err
 *	when fd 0 is not such a socket or belongs to another user.
 *	A connection that does not arrive is logged as a warning.
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sysexits.h>
#include <unistd.h>

#include "log.h"
#include "shim_accept.h"
#include "shim_spare.h"
#include "util.h"

#define SHIM_SPARE_ENV "RELAYSHIM_SHIM_ACCEPT"
#define SHIM_SPARE_IDLE_ENV "RELAYSHIM_SPARE"
#define SHIM_SPARE_IDLE_DEFAULT 60
#define SHIM_SPARE_MAX_FILES 4
/* A fresh process now and then: nothing a session leaves behind can grow. */
#define SHIM_SPARE_MAX_SESSIONS 1000

/* What a file was when the spare read it. */
struct stamp {
	int present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

static pid_t spare_app;	  /* the application's pid, from the socket */
static int spare_idle_ms; /* RELAYSHIM_SPARE */
static char spare_exe[PATH_MAX];
static const char *spare_files[SHIM_SPARE_MAX_FILES];
static struct stamp spare_stamps[SHIM_SPARE_MAX_FILES];
static int spare_ready_said; /* "R" sent for this session, or none is due */

/* shim_spare_requested - started by the shim as a spare? */

int shim_spare_requested(void)
{
	const char *v = getenv(SHIM_SPARE_ENV);

	return v != NULL && strcmp(v, "3") == 0;
}

/* shim_spare_begin - our application, and the kernel's credentials on every message */

int shim_spare_begin(struct error *err)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	const char *v = getenv(SHIM_SPARE_IDLE_ENV);
	char *end;
	long idle = SHIM_SPARE_IDLE_DEFAULT;
	int type = 0;
	int on = 1;
	int null;

	unsetenv(SHIM_SPARE_ENV);
	if (v != NULL && *v != 0) {
		idle = strtol(v, &end, 10);
		if (*end != 0 || idle < 0 || idle > 86400)
			idle = SHIM_SPARE_IDLE_DEFAULT;
	}
	spare_idle_ms = (int)idle * 1000;
	setsid();
	len = sizeof(type);
	if (getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET)
		return error_set(err, EX_USAGE,
				 "shim: a spare helper needs the shim's socket as fd 0");
	len = sizeof(cr);
	if (getsockopt(0, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || cr.pid <= 0)
		return error_set(err, EX_OSERR, "shim: no peer credentials on fd 0: %s",
				 strerror(errno));
	/* The socketpair's maker runs with our effective user ID: the shim started us. */
	if (cr.uid != geteuid())
		return error_set(err, EX_NOPERM, "shim: the spare's socket belongs to uid %lu",
				 (unsigned long)cr.uid);
	spare_app = cr.pid;
	if (setsockopt(0, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0)
		return error_set(err, EX_OSERR, "shim: SO_PASSCRED: %s", strerror(errno));
	/* fd 1 was the same socket: the spare itself writes nothing on stdout. */
	if ((null = open("/dev/null", O_WRONLY)) >= 0) {
		dup2(null, 1);
		if (null > 2)
			close(null);
	}
	return 0;
}

/* stamp_of - what path is now; a missing file is a stamp too */

static void stamp_of(const char *path, struct stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0)
		return;
	s->present = 1;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
	s->ctime = st.st_ctim;
}

/* stamp_same - two stamps of one file */

static int stamp_same(const struct stamp *a, const struct stamp *b)
{
	return a->present == b->present && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* spare_stale - did the configuration or the program change since we read it? */

static int spare_stale(void)
{
	struct stamp now;
	struct stamp running;

	for (size_t i = 0; i < SHIM_SPARE_MAX_FILES && spare_files[i] != NULL; i++) {
		stamp_of(spare_files[i], &now);
		if (!stamp_same(&now, &spare_stamps[i]))
			return 1;
	}
	/* An upgrade replaced the program: /proc/self/exe is still the old one. */
	if (spare_exe[0] != 0) {
		stamp_of(spare_exe, &now);
		stamp_of("/proc/self/exe", &running);
		if (!now.present || now.dev != running.dev || now.ino != running.ino)
			return 1;
	}
	return 0;
}

/* spare_answer - one byte to the shim; it may have gone */

static void spare_answer(char c)
{
	if (send(0, &c, 1, MSG_NOSIGNAL) < 0)
		(void)0;
}

/* spare_refuse - close what a refused handoff brought, say "N"; the spare is done */

static int spare_refuse(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	spare_answer('N');
	return -1;
}

/* is_listener - a listening TCP socket */

static int is_listener(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || v != 1)
		return 0;
	len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == 0 &&
	       (v == AF_INET || v == AF_INET6);
}

/* is_unix_stream - an AF_UNIX stream socket */

static int is_unix_stream(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0 || v != AF_UNIX)
		return 0;
	len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0 && v == SOCK_STREAM;
}

/*
 * spare_take - wait for one handoff. 0: taken, *lfd the listener and
 * *ctl the control socket. -1: this spare is done (idle, the
 * application gone, or a handoff refused).
 */

static int spare_take(int *lfd, int *ctl)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
	} u;
	struct pollfd p = {.fd = 0, .events = POLLIN};
	struct ucred cr;
	struct msghdr m;
	struct iovec iov;
	int fds[4];
	size_t nfds = 0;
	int have_cred = 0;
	int flags = MSG_CMSG_CLOEXEC;
	char tag = 0;
	ssize_t n;
	int r;

	do
		r = poll(&p, 1, spare_idle_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		/* Idle: refuse further sends, then take what came just before. */
		shutdown(0, SHUT_RD);
		flags |= MSG_DONTWAIT;
	} else if (r < 0) {
		return -1;
	}
	memset(&m, 0, sizeof(m));
	iov.iov_base = &tag;
	iov.iov_len = 1;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = sizeof(u.buf);
	do
		n = recvmsg(0, &m, flags);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k && nfds < 4; i++)
				memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		} else if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(cr))) {
			memcpy(&cr, CMSG_DATA(c), sizeof(cr));
			have_cred = 1;
		}
	}
	/*
	 * The kernel vouches for these: only the application itself, with
	 * the real IDs it had when it started us, may hand us a
	 * connection to serve as its user.
	 */
	if (!have_cred || cr.pid != spare_app || cr.uid != getuid() || cr.gid != getgid()) {
		log_msg(LOG_LEVEL_WARNING,
			"shim: a spare helper of pid %ld (uid %lu) refused a connection handed "
			"over by pid %ld (uid %lu)",
			(long)spare_app, (unsigned long)getuid(), have_cred ? (long)cr.pid : -1L,
			have_cred ? (unsigned long)cr.uid : 0UL);
		return spare_refuse(fds, nfds);
	}
	if ((m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0 || n != 1 || tag != 'H' || nfds != 2 ||
	    !is_listener(fds[0]) || !is_unix_stream(fds[1])) {
		log_msg(LOG_LEVEL_WARNING, "shim: a spare helper refused a malformed handoff");
		return spare_refuse(fds, nfds);
	}
	if (spare_stale()) {
		log_msg(LOG_LEVEL_DEBUG, "shim: the configuration or the program changed since the "
					 "spare helper started: a new helper serves");
		return spare_refuse(fds, nfds);
	}
	spare_answer('Y');
	*lfd = fds[0];
	*ctl = fds[1];
	return 0;
}

/* shim_spare_ready - tell the shim that the session is over (once per session) */

void shim_spare_ready(void)
{
	if (spare_ready_said)
		return;
	spare_ready_said = 1;
	spare_answer('R');
}

/* shim_spare_serve - serve the application's connections until the spare is done */

void shim_spare_serve(const char *const *files, int (*serve)(int conn, void *arg), void *arg)
{
	struct error err;
	ssize_t n;
	size_t k = 0;

	for (size_t i = 0; files[i] != NULL; i++)
		if (*files[i] != 0 && k < SHIM_SPARE_MAX_FILES) {
			spare_files[k] = files[i];
			stamp_of(files[i], &spare_stamps[k++]);
		}
	if ((n = readlink("/proc/self/exe", spare_exe, sizeof(spare_exe) - 1)) > 0)
		spare_exe[n] = 0;
	else
		spare_exe[0] = 0;

	for (int sessions = 1;; sessions++) {
		int lfd;
		int ctl;
		int conn;

		if (spare_take(&lfd, &ctl) != 0)
			return;
		/* After the last session the spare ends without "R". */
		spare_ready_said = sessions >= SHIM_SPARE_MAX_SESSIONS;
		conn = shim_accept_conn(lfd, ctl, &err);
		close(lfd);
		close(ctl);
		if (conn >= 0) {
			(void)serve(conn, arg);
			close(conn);
		} else if (err.status != EX_NOINPUT) {
			log_msg(LOG_LEVEL_WARNING, "%s", err.text);
		}
		if (sessions >= SHIM_SPARE_MAX_SESSIONS)
			return;
		shim_spare_ready();
	}
}
