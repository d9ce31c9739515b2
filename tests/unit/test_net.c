/* test_net - TCP connections with deadlines against loopback peers (contract in net.h) */

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "net.h"

static struct net_conn conn;
static struct error err;
static int listener = -1;
static unsigned port;

/* listen_loopback - a listening socket on 127.0.0.1, port chosen by the kernel */

static int listen_loopback(int backlog, unsigned *portp)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (backlog >= 0)
		ck_assert_int_eq(listen(fd, backlog), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*portp = ntohs(sin.sin_port);
	return fd;
}

/* connect_to - net_resolve() and net_connect() to host:port */

static int connect_to(const char *host, unsigned p, unsigned timeout_ms)
{
	struct addrinfo *ai;
	int r;

	ck_assert_msg(net_resolve(host, p, &ai, &err) == 0, "%s", err.text);
	r = net_connect(&conn, ai, timeout_ms, &err);
	freeaddrinfo(ai);
	return r;
}

/* peer - net_connect() to the listener, accept; the server's end */

static int peer(void)
{
	int fd;

	ck_assert_msg(connect_to("127.0.0.1", port, 5000) == 0, "%s", err.text);
	fd = accept(listener, 0, 0);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static void setup(void)
{
	net_conn_init(&conn);
	memset(&err, 0, sizeof(err));
	listener = listen_loopback(16, &port);
}

static void teardown(void)
{
	net_close(&conn);
	if (listener >= 0)
		close(listener);
	net_set_limit(0);
}

START_TEST(connects_to_a_loopback_listener)
{
	char want[64];
	int s = peer();

	snprintf(want, sizeof(want), "127.0.0.1:%u", port);
	ck_assert_str_eq(conn.peer, want);
	ck_assert_int_eq(conn.loopback, 1);
	ck_assert_int_ge(conn.fd, 0);
	ck_assert_ptr_null(conn.tls);
	close(s);
}
END_TEST

START_TEST(short_reads_accumulate_in_the_buffer)
{
	int s = peer();
	long long deadline = net_deadline(5000);

	/* A reply in three pieces: each net_fill() appends what has arrived. */
	ck_assert_int_eq(write(s, "22", 2), 2);
	ck_assert_int_eq(net_fill(&conn, deadline, &err), 0);
	ck_assert_uint_eq(conn.in.len, 2);
	ck_assert_int_eq(write(s, "0 ready", 7), 7);
	while (conn.in.len < 9)
		ck_assert_msg(net_fill(&conn, deadline, &err) == 0, "%s", err.text);
	ck_assert_int_eq(write(s, "\r\n", 2), 2);
	while (conn.in.len < 11)
		ck_assert_msg(net_fill(&conn, deadline, &err) == 0, "%s", err.text);
	/* NUL-terminated, so a line can be searched with strstr(). */
	ck_assert_str_eq(conn.in.data, "220 ready\r\n");
	ck_assert_uint_eq(conn.in.len, 11);
	close(s);
}
END_TEST

START_TEST(a_silent_peer_times_out_at_the_deadline)
{
	int s = peer();
	long long start = net_now_ms();

	ck_assert_int_eq(net_fill(&conn, start + 100, &err), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_str_eq(err.text, "timed out");
	ck_assert_int_ge(net_now_ms() - start, 100);
	ck_assert_int_lt(net_now_ms() - start, 2000);
	close(s);
}
END_TEST

START_TEST(the_process_limit_caps_every_deadline)
{
	int s = peer();
	long long start = net_now_ms();

	net_set_limit(start + 100);
	ck_assert_int_le(net_deadline(60000), start + 100);
	ck_assert_int_eq(net_fill(&conn, net_deadline(60000), &err), EX_TEMPFAIL);
	ck_assert_str_eq(err.text, "timed out");
	ck_assert_int_lt(net_now_ms() - start, 2000);
	net_set_limit(0);
	ck_assert_int_ge(net_deadline(60000), net_now_ms() + 59000);
	close(s);
}
END_TEST

START_TEST(a_closed_connection_is_a_temporary_error)
{
	int s = peer();

	close(s);
	ck_assert_int_eq(net_fill(&conn, net_deadline(5000), &err), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_str_eq(err.text, "connection closed by the relay");
}
END_TEST

START_TEST(a_refused_port_is_a_temporary_error_naming_the_peer)
{
	unsigned closed_port;
	/* Bound, not listening: the kernel answers the SYN with a reset. */
	int fd = listen_loopback(-1, &closed_port);
	char want[128];

	ck_assert_int_eq(connect_to("127.0.0.1", closed_port, 5000), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	snprintf(want, sizeof(want), "cannot connect to 127.0.0.1:%u: Connection refused",
		 closed_port);
	ck_assert_str_eq(err.text, want);
	ck_assert_int_eq(conn.fd, -1);
	close(fd);
}
END_TEST

START_TEST(a_connect_that_never_completes_times_out)
{
	unsigned full_port;
	int fd = listen_loopback(0, &full_port);
	int filler[8];
	int nfill = 0;
	struct sockaddr_in sin;
	long long start;

	/*
	 * A listener whose accept queue is full drops further SYNs, so a
	 * connect() to it stays in progress: fill the queue first.
	 */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(full_port);
	for (; nfill < 2; nfill++) {
		filler[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(filler[nfill], (struct sockaddr *)&sin, sizeof(sin));
	}
	start = net_now_ms();
	ck_assert_int_eq(connect_to("127.0.0.1", full_port, 200), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_msg(strstr(err.text, "timed out after 200 ms") != 0, "%s", err.text);
	ck_assert_int_ge(net_now_ms() - start, 200);
	ck_assert_int_lt(net_now_ms() - start, 2000);
	while (nfill > 0)
		close(filler[--nfill]);
	close(fd);
}
END_TEST

/* pattern - the byte at offset i of the large write */

static char pattern(size_t i)
{
	return (char)(i * 7 + (i >> 12));
}

START_TEST(a_large_write_completes_while_the_peer_reads)
{
	enum { N = 8 << 20 };
	char *data = malloc(N);
	int s = peer();
	pid_t pid;
	long long deadline = net_deadline(20000);

	for (size_t i = 0; i < N; i++)
		data[i] = pattern(i);
	/*
	 * The peer reads in a child, so net_write() meets full socket buffers
	 * and partial sends; it checks every byte and answers "ok" or "bad".
	 */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char b[4096];
		ssize_t n;
		size_t off = 0;
		int good = 1;

		while ((n = read(s, b, sizeof(b))) > 0)
			for (ssize_t i = 0; i < n; i++, off++)
				good &= b[i] == pattern(off);
		good &= off == N;
		_exit(write(s, good ? "ok\n" : "bad\n", good ? 3 : 4) > 0 ? 0 : 1);
	}
	close(s);
	ck_assert_msg(net_write(&conn, data, N, deadline, &err) == 0, "%s", err.text);
	shutdown(conn.fd, SHUT_WR);
	while (strchr(conn.in.data ? conn.in.data : "", '\n') == 0)
		ck_assert_msg(net_fill(&conn, deadline, &err) == 0, "%s", err.text);
	ck_assert_str_eq(conn.in.data, "ok\n");
	ck_assert_int_eq(waitpid(pid, 0, 0), pid);
	free(data);
}
END_TEST

START_TEST(a_peer_that_never_reads_times_the_write_out)
{
	enum { N = 64 << 20 };
	char *data = calloc(1, N);
	int s = peer();
	long long start = net_now_ms();

	ck_assert_int_eq(net_write(&conn, data, N, start + 200, &err), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_str_eq(err.text, "timed out");
	ck_assert_int_ge(net_now_ms() - start, 200);
	ck_assert_int_lt(net_now_ms() - start, 2000);
	close(s);
	free(data);
}
END_TEST

START_TEST(writing_to_a_reset_connection_fails_without_sigpipe)
{
	struct linger lg = {1, 0};
	int s = peer();

	ck_assert_int_eq(signal(SIGPIPE, SIG_DFL) != SIG_ERR, 1);
	/* SO_LINGER 0: close() sends a reset, not a FIN. */
	ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(s);
	ck_assert_int_eq(net_fill(&conn, net_deadline(5000), &err), EX_TEMPFAIL);
	ck_assert_str_eq(err.text, "read error: Connection reset by peer");
	error_clear(&err);
	ck_assert_int_eq(net_write(&conn, "QUIT\r\n", 6, net_deadline(5000), &err), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_str_eq(err.text, "write error: connection closed by the relay");
}
END_TEST

START_TEST(close_is_idempotent_and_io_after_it_fails)
{
	int s = peer();

	net_close(&conn);
	ck_assert_int_eq(conn.fd, -1);
	net_close(&conn);
	ck_assert_int_eq(net_fill(&conn, net_deadline(1000), &err), EX_TEMPFAIL);
	ck_assert_str_eq(err.text, "connection already closed");
	ck_assert_int_eq(net_write(&conn, "x", 1, net_deadline(1000), &err), EX_TEMPFAIL);
	ck_assert_str_eq(err.text, "connection already closed");
	close(s);
}
END_TEST

START_TEST(ipv6_peers_are_bracketed)
{
	struct sockaddr_in6 sin6;
	socklen_t len = sizeof(sin6);
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	char want[64];

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) != 0) {
		/* No IPv6 on this host: nothing to test. */
		if (fd >= 0)
			close(fd);
		return;
	}
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin6, &len), 0);
	ck_assert_msg(connect_to("::1", ntohs(sin6.sin6_port), 5000) == 0, "%s", err.text);
	snprintf(want, sizeof(want), "[::1]:%u", ntohs(sin6.sin6_port));
	ck_assert_str_eq(conn.peer, want);
	ck_assert_int_eq(conn.loopback, 1);
	close(fd);
}
END_TEST

/* sa - a sockaddr for an address literal */

static const struct sockaddr *sa(const char *literal, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(literal, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, literal, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, literal, &sin->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

START_TEST(loopback_is_127_slash_8_and_its_ipv6_forms)
{
	struct sockaddr_storage ss;

	ck_assert_int_eq(net_sockaddr_is_loopback(sa("127.0.0.1", &ss)), 1);
	ck_assert_int_eq(net_sockaddr_is_loopback(sa("127.200.3.4", &ss)), 1);
	ck_assert_int_eq(net_sockaddr_is_loopback(sa("::1", &ss)), 1);
	ck_assert_int_eq(net_sockaddr_is_loopback(sa("::ffff:127.0.0.2", &ss)), 1);
	ck_assert_int_eq(net_sockaddr_is_loopback(sa("128.0.0.1", &ss)), 0);
	ck_assert_int_eq(net_sockaddr_is_loopback(sa("10.127.0.1", &ss)), 0);
	ck_assert_int_eq(net_sockaddr_is_loopback(sa("::ffff:10.0.0.1", &ss)), 0);
	ck_assert_int_eq(net_sockaddr_is_loopback(sa("::2", &ss)), 0);
}
END_TEST

START_TEST(address_literals_resolve_without_a_lookup)
{
	struct addrinfo *ai;

	ck_assert_int_eq(net_resolve("127.0.0.1", 2525, &ai, &err), 0);
	ck_assert_int_eq(ai->ai_family, AF_INET);
	ck_assert_int_eq(ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port), 2525);
	freeaddrinfo(ai);
	ck_assert_int_eq(net_resolve("::1", 25, &ai, &err), 0);
	ck_assert_int_eq(ai->ai_family, AF_INET6);
	freeaddrinfo(ai);
}
END_TEST

static Suite *net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("loopback");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, connects_to_a_loopback_listener);
	tcase_add_test(tc, short_reads_accumulate_in_the_buffer);
	tcase_add_test(tc, a_silent_peer_times_out_at_the_deadline);
	tcase_add_test(tc, the_process_limit_caps_every_deadline);
	tcase_add_test(tc, a_closed_connection_is_a_temporary_error);
	tcase_add_test(tc, a_refused_port_is_a_temporary_error_naming_the_peer);
	tcase_add_test(tc, a_connect_that_never_completes_times_out);
	tcase_add_test(tc, a_large_write_completes_while_the_peer_reads);
	tcase_add_test(tc, a_peer_that_never_reads_times_the_write_out);
	tcase_add_test(tc, writing_to_a_reset_connection_fails_without_sigpipe);
	tcase_add_test(tc, close_is_idempotent_and_io_after_it_fails);
	tcase_add_test(tc, ipv6_peers_are_bracketed);
	tcase_add_test(tc, loopback_is_127_slash_8_and_its_ipv6_forms);
	tcase_add_test(tc, address_literals_resolve_without_a_lookup);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(net_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
