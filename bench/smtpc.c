/*++
 * NAME
 *	smtpc 1
 * SUMMARY
 *	minimal timed SMTP client: the floor, direct vs. shim sessions, -bs load
 * SYNOPSIS
 *	smtpc session [-n runs] [-w warmup] [-x static-program] [-q]
 *		[-o samples] [-m message-file] host port
 *	smtpc bs [-n messages] -- command [args...]
 * DESCRIPTION
 *	"session" runs "runs" SMTP sessions of one small message each
 *	against host:port and reports the per-session latency. The session
 *	is the protocol minimum: greeting; EHLO; MAIL, RCPT and DATA in
 *	one write (PIPELINING, RFC 2920); the message and the final dot in
 *	one write; QUIT. Without -q the client does not wait for the
 *	reply to QUIT (it closes at once, like relayshim is meant to);
 *	with -q it reads the 221 first (what an application does through
 *	the shim, so both sides of that comparison use -q).
 *	With -x, each iteration first spawns "static-program" (a trivial
 *	statically linked program) and waits for it: exec cost + one
 *	session without process start-up of the client = the floor.
 *	The output has the session, exec and total figures separately;
 *	-o appends each iteration's total (ms) to "samples", one a line.
 *	-m sends that file (LF or CRLF lines) instead of the built-in small
 *	message; its wire form (CRLF, dot-stuffed) is prepared before the
 *	clock starts: what the relay can take from a client that has
 *	nothing else to do, the ceiling of the 25 MB row.
 *
 *	"bs" starts "command" (e.g. sendmail -bs) with pipes on its
 *	stdin/stdout and sends "messages" messages in one SMTP session,
 *	one transaction after the other the way Symfony Mailer and
 *	SwiftMailer drive sendmail -bs (MAIL/RCPT/DATA pipelined when
 *	PIPELINING is offered, the message only after 354, the next
 *	transaction only after the 250 for the final dot).
 *
 *	Output: one line of key=value pairs (milliseconds, messages/s).
 *	The peer is a local benchmark server, but its replies are still
 *	read through a bounded buffer; over-long lines are truncated.
 * DIAGNOSTICS
 *	Exit 0 when every session/message was accepted, 1 when one
 *	failed (the reply is printed on stderr), 2 on usage errors.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A reader over one descriptor; a reply line never exceeds LINE_MAX_LEN. */
#define READ_BUF_LEN 65536
#define LINE_MAX_LEN 1024

struct reader {
	int fd;
	size_t start;
	size_t end;
	char buf[READ_BUF_LEN];
};

static const char message_text[] = "From: bench@example.com\r\n"
				   "To: rcpt@example.net\r\n"
				   "Subject: bench\r\n"
				   "\r\n"
				   "hello\r\n"
				   ".\r\n";

/* The message on the wire (CRLF, dot-stuffed, final dot); -m replaces it. */
static const char *wire_text = message_text;
static size_t wire_len = sizeof(message_text) - 1;

/* now_ms - monotonic clock in milliseconds */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* write_all - write everything or fail */

static int write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* read_line - next line without CRLF into line[LINE_MAX_LEN]; -1 on EOF */

static int read_line(struct reader *r, char *line)
{
	size_t len = 0;
	ssize_t n;
	char c;

	for (;;) {
		if (r->start == r->end) {
			n = read(r->fd, r->buf, sizeof(r->buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			r->start = 0;
			r->end = (size_t)n;
		}
		c = r->buf[r->start++];
		if (c == '\n')
			break;
		if (len < LINE_MAX_LEN - 1)
			line[len++] = c;
	}
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = 0;
	return 0;
}

/* read_reply - read a (multi-line) reply; return its code, -1 on EOF */

static int read_reply(struct reader *r, int *pipelining)
{
	char line[LINE_MAX_LEN];

	for (;;) {
		if (read_line(r, line) < 0)
			return -1;
		if (pipelining != NULL && strlen(line) > 4 &&
		    strncasecmp(line + 4, "PIPELINING", 10) == 0)
			*pipelining = 1;
		if (strlen(line) < 4 || line[3] == ' ')
			break;
	}
	if (strlen(line) < 3)
		return -1;
	if (line[3] != ' ' && line[3] != 0)
		return -1;
	return atoi(line);
}

/* transaction - MAIL, RCPT, DATA, message; 0 when the relay took it */

static int transaction(int wfd, struct reader *r, int pipelining)
{
	static const char mail[] = "MAIL FROM:<bench@example.com>\r\n";
	static const char rcpt[] = "RCPT TO:<rcpt@example.net>\r\n";
	static const char data[] = "DATA\r\n";
	static const char all[] = "MAIL FROM:<bench@example.com>\r\n"
				  "RCPT TO:<rcpt@example.net>\r\nDATA\r\n";
	int code;

	if (pipelining) {
		if (write_all(wfd, all, sizeof(all) - 1) < 0)
			return -1;
		if (read_reply(r, NULL) != 250 || read_reply(r, NULL) / 100 != 2 ||
		    read_reply(r, NULL) != 354)
			return -1;
	} else {
		if (write_all(wfd, mail, sizeof(mail) - 1) < 0 || read_reply(r, NULL) != 250)
			return -1;
		if (write_all(wfd, rcpt, sizeof(rcpt) - 1) < 0 || read_reply(r, NULL) / 100 != 2)
			return -1;
		if (write_all(wfd, data, sizeof(data) - 1) < 0 || read_reply(r, NULL) != 354)
			return -1;
	}
	if (write_all(wfd, wire_text, wire_len) < 0)
		return -1;
	code = read_reply(r, NULL);
	return code == 250 ? 0 : -1;
}

/* load_message - read a file once and keep its wire form (not timed) */

static int load_message(const char *path)
{
	FILE *fp;
	char *out;
	size_t cap, len = 0;
	int c, bol = 1;
	long size;

	if ((fp = fopen(path, "r")) == NULL || fseek(fp, 0, SEEK_END) != 0 ||
	    (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
		return -1;
	/* Worst case: every byte a LF that becomes CRLF, or a dot doubled. */
	cap = 2 * (size_t)size + 8;
	if ((out = malloc(cap)) == NULL)
		return -1;
	while ((c = getc(fp)) != EOF) {
		if (bol && c == '.')
			out[len++] = '.';
		if (c == '\n' && (len == 0 || out[len - 1] != '\r'))
			out[len++] = '\r';
		out[len++] = (char)c;
		bol = (c == '\n');
	}
	fclose(fp);
	if (!bol) {
		out[len++] = '\r';
		out[len++] = '\n';
	}
	out[len++] = '.';
	out[len++] = '\r';
	out[len++] = '\n';
	wire_text = out;
	wire_len = len;
	return 0;
}

/* session - one complete SMTP session with one message */

static int session(const struct sockaddr_in *sin, int wait_quit, struct reader *r)
{
	static const char ehlo[] = "EHLO bench.example.com\r\n";
	static const char quit[] = "QUIT\r\n";
	int pipelining = 0;
	int one = 1;
	int fd;
	int ok = -1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0)
		goto done;
	r->fd = fd;
	r->start = r->end = 0;
	if (read_reply(r, NULL) != 220)
		goto done;
	if (write_all(fd, ehlo, sizeof(ehlo) - 1) < 0 || read_reply(r, &pipelining) != 250)
		goto done;
	if (transaction(fd, r, pipelining) < 0)
		goto done;
	if (write_all(fd, quit, sizeof(quit) - 1) < 0)
		goto done;
	if (wait_quit && read_reply(r, NULL) != 221)
		goto done;
	ok = 0;
done:
	close(fd);
	return ok;
}

/* run_static - spawn the trivial program and wait for it */

static int run_static(const char *path)
{
	char *argv[2];
	pid_t pid;
	int status;

	argv[0] = (char *)path;
	argv[1] = NULL;
	if (posix_spawn(&pid, path, NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* cmp_double - qsort order */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

/* quantile - interpolated quantile of sorted v[0..n) */

static double quantile(const double *v, int n, double q)
{
	double pos = q * (n - 1);
	int lo = (int)pos;

	if (lo + 1 >= n)
		return v[n - 1];
	return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]);
}

/* print_stats - med/p10/p90/min/max of n samples under a prefix */

static void print_stats(const char *prefix, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	printf("%smed_ms=%.4f %sp10_ms=%.4f %sp90_ms=%.4f %smin_ms=%.4f "
	       "%smax_ms=%.4f ",
	       prefix, quantile(v, n, 0.5), prefix, quantile(v, n, 0.1), prefix,
	       quantile(v, n, 0.9), prefix, v[0], prefix, v[n - 1]);
}

/* cmd_session - the "session" subcommand */

static int cmd_session(int argc, char **argv)
{
	struct sockaddr_in sin;
	struct reader *r;
	const char *static_prog = NULL;
	const char *samples_path = NULL;
	FILE *out;
	double *total, *exec_ms, *sess_ms;
	double t0, t1, t2;
	int runs = 200, warmup = 10, wait_quit = 0;
	int fails = 0;
	int ch, i;

	while ((ch = getopt(argc, argv, "n:w:x:qo:m:")) != -1) {
		switch (ch) {
		case 'n':
			runs = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 'x':
			static_prog = optarg;
			break;
		case 'q':
			wait_quit = 1;
			break;
		case 'o':
			samples_path = optarg;
			break;
		case 'm':
			if (load_message(optarg) < 0) {
				fprintf(stderr, "smtpc: cannot read %s\n", optarg);
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2 || runs < 1)
		return 2;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
	if (inet_pton(AF_INET, argv[optind], &sin.sin_addr) != 1)
		return 2;
	r = malloc(sizeof(*r));
	total = calloc((size_t)runs, sizeof(double));
	exec_ms = calloc((size_t)runs, sizeof(double));
	sess_ms = calloc((size_t)runs, sizeof(double));
	if (r == NULL || total == NULL || exec_ms == NULL || sess_ms == NULL)
		return 2;

	for (i = 0; i < warmup; i++) {
		if (static_prog != NULL)
			(void)run_static(static_prog);
		(void)session(&sin, wait_quit, r);
	}
	for (i = 0; i < runs; i++) {
		t0 = now_ms();
		if (static_prog != NULL && run_static(static_prog) < 0)
			fails++;
		t1 = now_ms();
		if (session(&sin, wait_quit, r) < 0)
			fails++;
		t2 = now_ms();
		exec_ms[i] = t1 - t0;
		sess_ms[i] = t2 - t1;
		total[i] = t2 - t0;
	}
	if (samples_path != NULL && (out = fopen(samples_path, "a")) != NULL) {
		for (i = 0; i < runs; i++)
			fprintf(out, "%.4f\n", total[i]);
		fclose(out);
	}
	printf("runs=%d fails=%d ", runs, fails);
	print_stats("", total, runs);
	print_stats("session_", sess_ms, runs);
	if (static_prog != NULL)
		print_stats("exec_", exec_ms, runs);
	printf("\n");
	return fails ? 1 : 0;
}

/* cmd_bs - the "bs" subcommand */

static int cmd_bs(int argc, char **argv)
{
	static const char ehlo[] = "EHLO bench.example.com\r\n";
	static const char quit[] = "QUIT\r\n";
	posix_spawn_file_actions_t fa;
	struct reader *r;
	int to_child[2], from_child[2];
	int messages = 1000, ok = 0, pipelining = 0;
	int ch, i, status = 0;
	double t0, t1;
	pid_t pid;

	while ((ch = getopt(argc, argv, "n:")) != -1) {
		if (ch != 'n')
			return 2;
		messages = atoi(optarg);
	}
	if (optind >= argc || messages < 1)
		return 2;
	r = malloc(sizeof(*r));
	if (r == NULL || pipe(to_child) < 0 || pipe(from_child) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
	posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
	posix_spawn_file_actions_addclose(&fa, to_child[1]);
	posix_spawn_file_actions_addclose(&fa, from_child[0]);
	t0 = now_ms();
	if (posix_spawnp(&pid, argv[optind], &fa, NULL, argv + optind, environ) != 0) {
		fprintf(stderr, "smtpc: cannot start %s\n", argv[optind]);
		return 2;
	}
	close(to_child[0]);
	close(from_child[1]);
	r->fd = from_child[0];
	r->start = r->end = 0;
	if (read_reply(r, NULL) != 220) {
		fprintf(stderr, "smtpc: no 220 greeting from %s\n", argv[optind]);
		goto done;
	}
	if (write_all(to_child[1], ehlo, sizeof(ehlo) - 1) < 0 ||
	    read_reply(r, &pipelining) != 250) {
		fprintf(stderr, "smtpc: EHLO not accepted\n");
		goto done;
	}
	for (i = 0; i < messages; i++) {
		if (transaction(to_child[1], r, pipelining) < 0) {
			fprintf(stderr, "smtpc: message %d not accepted\n", i + 1);
			goto done;
		}
		ok++;
	}
	if (write_all(to_child[1], quit, sizeof(quit) - 1) == 0)
		(void)read_reply(r, NULL);
done:
	close(to_child[1]);
	close(from_child[0]);
	waitpid(pid, &status, 0);
	t1 = now_ms();
	printf("messages=%d ok=%d wall_s=%.6f rate=%.2f\n", messages, ok, (t1 - t0) / 1e3,
	       ok / ((t1 - t0) / 1e3));
	return ok == messages ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "session") == 0)
		return cmd_session(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "bs") == 0)
		return cmd_bs(argc - 1, argv + 1);
	fprintf(stderr,
		"usage: smtpc session [-n runs] [-w warmup] [-x static] "
		"[-q] [-o samples] [-m file] host port | smtpc bs [-n messages] -- command\n");
	return 2;
}
