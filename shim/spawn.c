/*++
 * NAME
 *	spawn 3
 * SUMMARY
 *	start the helper detached; reap what the application must not see
 * SYNOPSIS
 *	#include "shim.h"
 *
 *	int	shim_spawn(int lfd, int ctl, pid_t *middle, pid_t *helper);
 *	int	shim_spawn_spare(int sock, pid_t *helper);
 *	void	shim_reap(pid_t middle);
 *
 *	int	shim_is_reaper(void);
 *	void	shim_warn_reaper(void);
 *	void	shim_reap_orphans(void);
 *	pid_t	shim_read_helper_pid(int ctl);
 *	void	shim_remember_orphan(pid_t pid);
 * DESCRIPTION
 *	shim_spawn() starts "RELAYSHIM_SENDMAIL -bs" with lfd as fd 0 and
 *	ctl as fd 1, the application's stderr, nothing else, an empty
 *	signal mask, default dispositions and the captured environment. It
 *	returns 0 or an errno value. The quiet spawn (below) leaves nothing
 *	to reap and sets *helper; the posix_spawn fallback sets *middle,
 *	the first process, which the caller reaps with shim_reap() once it
 *	has exited (the helper forks it off at once).
 *
 *	shim_spawn_spare() starts a spare helper (spare.c) the quiet way
 *	only, with sock as fds 0 and 1 and RELAYSHIM_SHIM_ACCEPT=3.
 *
 *	The other functions deal with helpers re-parented to an application
 *	that is PID 1 or a subreaper (see ORPHANED HELPERS).
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
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

#include "shim.h"

/* Code running on our own clone() stacks: ASan would warn about the stack switch. */
#define SHIM_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))

/*
 * The two clone() stacks of the last spawn, kept for the next one (NULL:
 * none kept). Mapping them afresh per connect() cost a page fault per
 * stack page the children touched, and unmapping them a TLB flush on
 * every CPU the children ran on; on a paravirtualised machine those
 * were the slowest steps of the application's connect() (bench/README.md,
 * row 6). One slot taken and given back atomically: concurrent spawns
 * map stacks of their own, and at most one pair (128 KB of address
 * space, a few resident pages) stays mapped.
 */
static char *shim_stack_cache;
#define SHIM_STACK_SIZE (64 * 1024)

/* Set once the PID 1 / subreaper warning was written. */
static int shim_reaper_warned;
/* Helpers re-parented to us (PID 1 or subreaper), to reap later; 0 = free slot. */
#define SHIM_MAX_ORPHANS 64
static pid_t shim_orphans[SHIM_MAX_ORPHANS];

/*
 * ==================================================================
 * POSIX_SPAWN (the fallback when clone() is refused)
 * ==================================================================
 */

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
 * ==================================================================
 * THE QUIET SPAWN
 * ==================================================================
 *
 * posix_spawn's child exits with SIGCHLD, which the
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
	char *const *envp;
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
	execve(shim.sendmail, c->argv, c->envp);
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

/* shim_stacks_get - the kept pair of clone() stacks, or a new one; NULL if none */

static char *shim_stacks_get(void)
{
	char *stacks = __atomic_exchange_n(&shim_stack_cache, NULL, __ATOMIC_ACQ_REL);

	if (stacks != NULL)
		return stacks;
	stacks = mmap(NULL, 2 * SHIM_STACK_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	return stacks == MAP_FAILED ? NULL : stacks;
}

/* shim_stacks_put - keep a pair of stacks for the next spawn, or unmap it */

static void shim_stacks_put(char *stacks)
{
	char *none = NULL;

	if (!__atomic_compare_exchange_n(&shim_stack_cache, &none, stacks, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		munmap(stacks, 2 * SHIM_STACK_SIZE);
}

/* shim_spawn_quiet - start the detached helper without the application seeing a child */

static int shim_spawn_quiet(int lfd, int ctl, char *const *envp, pid_t *helper)
{
	const size_t stack_size = SHIM_STACK_SIZE;
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
	if ((stacks = shim_stacks_get()) == NULL)
		return errno;
	memset(&c, 0, sizeof(c));
	c.lfd = lfd;
	c.ctl = ctl;
	c.argv = argv;
	c.envp = envp;
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
	/* Both children are gone from these stacks: the middle exited, the helper exec'd. */
	shim_stacks_put(stacks);
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

int shim_spawn(int lfd, int ctl, pid_t *middle, pid_t *helper)
{
	int rc = ENOSYS;

	*middle = -1;
	*helper = -1;
	if (!shim.posix_only)
		rc = shim_spawn_quiet(lfd, ctl, shim.envp_detached, helper);
	/* A seccomp filter or an odd kernel may refuse clone(): posix_spawn then. */
	if (rc == ENOSYS || rc == EPERM || rc == EINVAL)
		rc = shim_spawn_posix(lfd, ctl, middle);
	return rc;
}

/* shim_spawn_spare - start a spare helper (spare.c) on sock, quietly or not at all */

int shim_spawn_spare(int sock, pid_t *helper)
{
	*helper = -1;
	/* Only the quiet spawn: a spare must never be the application's child. */
	return shim_spawn_quiet(sock, sock, shim.envp_spare, helper);
}

/* shim_reap - wait for the helper's first process, which exits at once */

void shim_reap(pid_t pid)
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

int shim_is_reaper(void)
{
	int sub = 0;

	return getpid() == 1 || (prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub != 0);
}

/* shim_warn_reaper - warn once about the zombies of the last sessions */

void shim_warn_reaper(void)
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

void shim_reap_orphans(void)
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

pid_t shim_read_helper_pid(int ctl)
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

void shim_remember_orphan(pid_t pid)
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
