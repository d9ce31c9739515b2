/*
 * test_shim_accept - the helper's side of the shim (contract in shim_accept.h):
 * it serves exactly the peer the control socket names, closes any other
 * connection unanswered, and gives up cleanly when the peer never comes
 *
 * shim_accept() rearranges fds 0 and 1 and closes every descriptor >= 3
 * (Check's own pipes included), so each test runs it in a child made here
 * and looks at what that child says: on the accepted connection when it
 * serves ("served pid=N inherited=closed env=unset"), on fd 2 (a pipe
 * read here) and in its exit status when it fails.
 */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "shim_accept.h"
#include "util.h"

static int listener = -1;	  /* the helper's fd 0 */
static int ctl[2] = {-1, -1};	  /* ctl[0] here (the shim's end), ctl[1] the helper's fd 1 */
static int diag[2] = {-1, -1};	  /* the helper's fd 2 */
static struct sockaddr_in target; /* the listener's address */

/* loopback - 127.0.0.1:port */

static struct sockaddr_in loopback(unsigned port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	return sin;
}

/* client - a TCP socket bound to 127.0.0.1 (its port in *port), 5 s read timeout */

static int client(unsigned *port)
{
	struct sockaddr_in sin = loopback(0);
	socklen_t len = sizeof(sin);
	struct timeval tv = {5, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* connect_target - connect fd to the helper's listener */

static void connect_target(int fd)
{
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&target, sizeof(target)), 0);
}

/* read_line - what arrives on fd up to EOF or a newline, "" on EOF at once */

static const char *read_line(int fd)
{
	static char b[256];
	size_t len = 0;
	ssize_t n;

	while (len < sizeof(b) - 1 && (n = read(fd, b + len, sizeof(b) - 1 - len)) > 0) {
		len += (size_t)n;
		if (memchr(b, '\n', len))
			break;
	}
	b[len] = 0;
	return b;
}

/* helper - fork a process that runs shim_accept() as "sendmail -bs" would */

static pid_t helper(const char *mode)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct error err;
		int inherited;
		int r;

		memset(&err, 0, sizeof(err));
		dup2(listener, 0);
		dup2(ctl[1], 1);
		dup2(diag[1], 2);
		/* An application descriptor without close-on-exec. */
		inherited = fcntl(2, F_DUPFD, 40);
		setenv("RELAYSHIM_SHIM_ACCEPT", mode, 1);
		r = shim_accept(&err);
		if (r != 0) {
			dprintf(2, "%s\n", err.text);
			_exit(r);
		}
		dprintf(1, "served pid=%d inherited=%s env=%s\n", (int)getpid(),
			fcntl(inherited, F_GETFD) < 0 && errno == EBADF ? "closed" : "open",
			getenv("RELAYSHIM_SHIM_ACCEPT") ? "set" : "unset");
		_exit(0);
	}
	close(ctl[1]);
	ctl[1] = -1;
	close(diag[1]);
	diag[1] = -1;
	return pid;
}

/* exit_status - the exit status of pid, which must exit */

static int exit_status(pid_t pid)
{
	int st;

	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void setup(void)
{
	socklen_t len = sizeof(target);

	target = loopback(0);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(listener, (struct sockaddr *)&target, sizeof(target)), 0);
	ck_assert_int_eq(listen(listener, 8), 0);
	ck_assert_int_eq(getsockname(listener, (struct sockaddr *)&target, &len), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, ctl), 0);
	ck_assert_int_eq(pipe(diag), 0);
	unsetenv("RELAYSHIM_SHIM_ACCEPT");
}

static void teardown(void)
{
	close(listener);
	close(ctl[0]);
	close(diag[0]);
}

START_TEST(serves_the_named_peer_and_refuses_another_socket)
{
	unsigned app_port, other_port;
	int app = client(&app_port);
	int other = client(&other_port);
	char line[64];
	char want[128];
	pid_t pid;

	pid = helper("2");
	/*
	 * Another local socket connects first and so is first in the accept
	 * queue; then the shim names the application's socket, which connects.
	 */
	connect_target(other);
	snprintf(line, sizeof(line), "127.0.0.1 %u\n", app_port);
	ck_assert_int_eq(write(ctl[0], line, strlen(line)), (ssize_t)strlen(line));
	connect_target(app);
	snprintf(want, sizeof(want), "served pid=%d inherited=closed env=unset\n", (int)pid);
	ck_assert_str_eq(read_line(app), want);
	/* The other socket was closed unanswered: EOF, not a greeting. */
	ck_assert_str_eq(read_line(other), "");
	ck_assert_int_eq(exit_status(pid), 0);
	close(app);
	close(other);
}
END_TEST

START_TEST(mode_1_detaches_and_says_who_serves)
{
	unsigned app_port;
	int app = client(&app_port);
	char line[64];
	char want[128];
	pid_t first, server;
	int st;

	/* The server is re-parented to us, not to init, so we can reap it. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	first = helper("1");
	ck_assert_int_eq(sscanf(read_line(ctl[0]), "PID %d\n", &server), 1);
	ck_assert_int_ne(server, first);
	/* The first process exits at once: the shim waits for it. */
	ck_assert_int_eq(exit_status(first), 0);
	snprintf(line, sizeof(line), "127.0.0.1 %u\n", app_port);
	ck_assert_int_eq(write(ctl[0], line, strlen(line)), (ssize_t)strlen(line));
	connect_target(app);
	snprintf(want, sizeof(want), "served pid=%d inherited=closed env=unset\n", server);
	ck_assert_str_eq(read_line(app), want);
	ck_assert_int_eq(waitpid(server, &st, 0), server);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(app);
}
END_TEST

START_TEST(an_abandoned_connect_is_ex_noinput)
{
	pid_t pid = helper("2");

	/* The shim closes the control socket without naming a peer. */
	close(ctl[0]);
	ctl[0] = -1;
	ck_assert_int_eq(exit_status(pid), EX_NOINPUT);
	ck_assert_str_eq(read_line(diag[0]),
			 "shim: the application's connect() failed or was abandoned\n");
}
END_TEST

START_TEST(a_line_without_an_end_is_malformed)
{
	char junk[200];
	pid_t pid = helper("2");

	memset(junk, '1', sizeof(junk));
	ck_assert_int_eq(write(ctl[0], junk, sizeof(junk)), (ssize_t)sizeof(junk));
	ck_assert_int_eq(exit_status(pid), EX_PROTOCOL);
	ck_assert_str_eq(read_line(diag[0]), "shim: malformed peer address from librelayshim.so\n");
}
END_TEST

START_TEST(requested_only_by_1_or_2)
{
	ck_assert_int_eq(shim_accept_requested(), 0);
	setenv("RELAYSHIM_SHIM_ACCEPT", "1", 1);
	ck_assert_int_eq(shim_accept_requested(), 1);
	setenv("RELAYSHIM_SHIM_ACCEPT", "2", 1);
	ck_assert_int_eq(shim_accept_requested(), 1);
	setenv("RELAYSHIM_SHIM_ACCEPT", "0", 1);
	ck_assert_int_eq(shim_accept_requested(), 0);
	setenv("RELAYSHIM_SHIM_ACCEPT", "", 1);
	ck_assert_int_eq(shim_accept_requested(), 0);
	setenv("RELAYSHIM_SHIM_ACCEPT", "12", 1);
	ck_assert_int_eq(shim_accept_requested(), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shim_accept");
	TCase *tc = tcase_create("accept");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, serves_the_named_peer_and_refuses_another_socket);
	tcase_add_test(tc, mode_1_detaches_and_says_who_serves);
	tcase_add_test(tc, an_abandoned_connect_is_ex_noinput);
	tcase_add_test(tc, a_line_without_an_end_is_malformed);
	tcase_add_test(tc, requested_only_by_1_or_2);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
