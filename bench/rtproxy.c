/*++
 * NAME
 *	rtproxy 1
 * SUMMARY
 *	TCP proxy that counts SMTP round trips per connection
 * SYNOPSIS
 *	rtproxy [-d microseconds] [-t] listen-port upstream-host upstream-port logfile
 * DESCRIPTION
 *	rtproxy listens on 127.0.0.1:listen-port, connects every
 *	accepted client to upstream and copies bytes both ways (one
 *	thread per connection). There is no netem on this machine, so
 *	instead of timing a delayed link it counts what a delay would
 *	multiply: round trips.
 *
 *	A round trip is a burst of server->client data that the client
 *	waited for: it starts when the server sends after the client did
 *	(or right after the connect: the greeting), and it is counted
 *	once the client reacts to it, with more data or by closing.
 *	So the 221 reply to QUIT counts only when the client's close
 *	arrives after the proxy delivered that reply; a client that sends
 *	QUIT and closes at once does not pay for it. Client events are
 *	handled before server events of the same poll() round so the
 *	order seen is the order in which the bytes were sent. Bytes are
 *	counted below TLS too, so STARTTLS handshakes count as they cost.
 *
 *	Counting direction changes alone depends on scheduling: a client
 *	that writes MAIL and RCPT in two writes without waiting may see
 *	the reply to MAIL slip in between. With -d, each server->client
 *	burst is held back that long (a link latency on the way back,
 *	like netem would give) and client data that arrived meanwhile is
 *	forwarded first: it was sent without waiting, so it is not a new
 *	round trip. With -d 1000 the counts are exact and repeatable.
 *
 *	With -t, every read is also logged ("# conn=N C|S bytes start"),
 *	to see where a client's round trips go.
 *
 *	When a connection ends, one line is appended to logfile:
 *	"conn=N rt=R c2s=BYTES s2c=BYTES". The number of lines is the
 *	number of relay connections a client used.
 *
 *	rtproxy prints "ready" on stdout once it listens and runs until
 *	killed.
 * DIAGNOSTICS
 *	Exit 2 on usage or setup errors.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define COPY_BUF_LEN 65536

struct conn {
	int client;
	int id;
};

static struct sockaddr_in upstream;
static int log_fd;
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int next_id;
static long delay_us;
static int trace;

/* write_all - copy everything, 0 or -1 */

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

/* trace_burst - with -t, log one line per read: direction, size, start */

static void trace_burst(int id, char dir, const char *p, ssize_t n)
{
	char line[160];
	int len, i, k;

	len = snprintf(line, sizeof(line), "# conn=%d %c %zd ", id, dir, n);
	if (len < 0 || (size_t)len >= sizeof(line))
		return;
	/* Printable start of the data (TLS records show as dots). */
	for (i = 0, k = len; i < n && i < 60 && k < (int)sizeof(line) - 2; i++)
		line[k++] = (p[i] >= 32 && p[i] < 127) ? p[i] : '.';
	line[k++] = '\n';
	pthread_mutex_lock(&id_lock);
	(void)write_all(log_fd, line, (size_t)k);
	pthread_mutex_unlock(&id_lock);
}

/* Per-connection state. */
struct link {
	int id;
	int client;
	int server;
	int client_open;
	int server_open;
	int client_writable;
	int server_turn; /* last data went server->client */
	int rt;
	size_t c2s;
	size_t s2c;
	char *cbuf; /* client->server data */
	char *sbuf; /* server->client data, held during the delay */
};

/* client_event - one read from the client: data or EOF */

static void client_event(struct link *l)
{
	ssize_t n;

	n = read(l->client, l->cbuf, COPY_BUF_LEN);
	if (n < 0 && errno == EINTR)
		return;
	/* Any client event after a delivered server burst completes a round trip. */
	if (l->server_turn)
		l->rt++;
	l->server_turn = 0;
	if (trace)
		trace_burst(l->id, 'C', l->cbuf, n);
	if (n > 0) {
		l->c2s += (size_t)n;
		if (write_all(l->server, l->cbuf, (size_t)n) < 0)
			l->server_open = 0;
	} else {
		l->client_open = 0;
		l->client_writable = 0;
		(void)shutdown(l->server, SHUT_WR);
	}
}

/* drain_client - handle client events already queued, without waiting */

static void drain_client(struct link *l)
{
	struct pollfd pfd;

	while (l->client_open) {
		pfd.fd = l->client;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			return;
		client_event(l);
	}
}

/* server_event - one read from the server: delay, then deliver */

static void server_event(struct link *l)
{
	ssize_t n;

	n = read(l->server, l->sbuf, COPY_BUF_LEN);
	if (n < 0 && errno == EINTR)
		return;
	if (trace)
		trace_burst(l->id, 'S', l->sbuf, n);
	if (n <= 0) {
		l->server_open = 0;
		(void)shutdown(l->client, SHUT_WR);
		return;
	}
	/*
	 * Emulate link latency on the way back: whatever the client sent
	 * meanwhile was sent without waiting for this reply, so it goes
	 * upstream first and does not count as a new round trip. This is
	 * what makes the count independent of scheduling luck.
	 */
	if (delay_us > 0 && l->client_open) {
		usleep((useconds_t)delay_us);
		drain_client(l);
	}
	/* Replies arriving after the client left are not waited for. */
	if (l->client_open)
		l->server_turn = 1;
	l->s2c += (size_t)n;
	if (l->client_writable && write_all(l->client, l->sbuf, (size_t)n) < 0)
		l->client_writable = 0;
}

/* relay - copy both ways, count round trips, log one line */

static void *relay(void *arg)
{
	struct conn *c = arg;
	struct link l;
	struct pollfd pfd[2];
	char line[128];
	int one = 1;
	int len;

	memset(&l, 0, sizeof(l));
	l.client = c->client;
	l.id = c->id;
	l.client_open = l.server_open = l.client_writable = 1;
	l.cbuf = malloc(COPY_BUF_LEN);
	l.sbuf = malloc(COPY_BUF_LEN);
	l.server = socket(AF_INET, SOCK_STREAM, 0);
	if (l.cbuf == NULL || l.sbuf == NULL || l.server < 0 ||
	    connect(l.server, (struct sockaddr *)&upstream, sizeof(upstream)) < 0)
		goto done;
	(void)setsockopt(l.server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(l.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	while (l.client_open || l.server_open) {
		pfd[0].fd = l.client_open ? l.client : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = l.server_open ? l.server : -1;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* Client first: see the header comment. */
		if (l.client_open && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			client_event(&l);
		else if (l.server_open && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			server_event(&l);
	}
	pthread_mutex_lock(&id_lock);
	len = snprintf(line, sizeof(line), "conn=%d rt=%d c2s=%zu s2c=%zu\n", c->id, l.rt, l.c2s,
		       l.s2c);
	if (len > 0 && (size_t)len < sizeof(line))
		(void)write_all(log_fd, line, (size_t)len);
	pthread_mutex_unlock(&id_lock);
done:
	if (l.server >= 0)
		close(l.server);
	close(c->client);
	free(l.cbuf);
	free(l.sbuf);
	free(c);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin;
	struct conn *c;
	pthread_t tid;
	int lfd, one = 1, fd;

	for (;;) {
		if (argc >= 3 && strcmp(argv[1], "-d") == 0) {
			delay_us = atol(argv[2]);
			argc -= 2;
			argv += 2;
		} else if (argc >= 2 && strcmp(argv[1], "-t") == 0) {
			trace = 1;
			argc -= 1;
			argv += 1;
		} else {
			break;
		}
	}
	if (argc != 5) {
		fprintf(stderr, "usage: rtproxy [-d usec] [-t] listen-port upstream-host "
				"upstream-port logfile\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&upstream, 0, sizeof(upstream));
	upstream.sin_family = AF_INET;
	upstream.sin_port = htons((unsigned short)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &upstream.sin_addr) != 1) {
		fprintf(stderr, "rtproxy: bad upstream address %s\n", argv[2]);
		return 2;
	}
	log_fd = open(argv[4], O_WRONLY | O_APPEND | O_CREAT, 0644);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (log_fd < 0 || lfd < 0) {
		perror("rtproxy");
		return 2;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 128) < 0) {
		perror("rtproxy: listen");
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		c = malloc(sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->client = fd;
		pthread_mutex_lock(&id_lock);
		c->id = ++next_id;
		pthread_mutex_unlock(&id_lock);
		if (pthread_create(&tid, NULL, relay, c) != 0) {
			close(fd);
			free(c);
			continue;
		}
		pthread_detach(tid);
	}
}
