/*++
 * NAME
 *	fastsink 1
 * SUMMARY
 *	an SMTP sink that discards DATA as fast as it can read
 * SYNOPSIS
 *	fastsink port
 * DESCRIPTION
 *	Postfix's smtp-sink reads DATA record by record and tops out
 *	around 110-125 MB/s on the benchmark machine: slower than the
 *	≥ 300 MB/s bench/README.md targets for relayshim for a 25 MB message. To see
 *	what the clients themselves can do, the 25 MB row is also run
 *	against this sink: it listens on 127.0.0.1:port, serves each
 *	connection in its own thread, answers HELO/EHLO (PIPELINING,
 *	8BITMIME, SIZE), MAIL, RCPT, DATA, RSET, NOOP, QUIT with 2xx/3xx,
 *	and during DATA reads 256 KB at a time, looking only for the
 *	CRLF.CRLF that ends the message (also across reads). Replies to
 *	pipelined commands are sent together, once no more input is
 *	buffered. Nothing is stored, nothing is checked: a benchmark
 *	fixture, not a server.
 *
 *	Prints "ready" once listening; runs until killed.
 * DIAGNOSTICS
 *	Exit 2 on usage or setup errors.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_BUF_LEN (256 * 1024)
#define OUT_BUF_LEN 4096

struct session {
	int fd;
	char *in;
	size_t start; /* unread input is in[start..end) */
	size_t end;
	char out[OUT_BUF_LEN];
	size_t out_len;
};

/* flush - send the collected replies */

static int flush(struct session *s)
{
	size_t off = 0;
	ssize_t n;

	while (off < s->out_len) {
		n = write(s->fd, s->out + off, s->out_len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	s->out_len = 0;
	return 0;
}

/* reply - queue one reply; flushed when no input is pending */

static int reply(struct session *s, const char *text)
{
	size_t len = strlen(text);

	if (s->out_len + len > sizeof(s->out) && flush(s) < 0)
		return -1;
	memcpy(s->out + s->out_len, text, len);
	s->out_len += len;
	return 0;
}

/* fill - read more input; flush replies first when none is buffered */

static int fill(struct session *s)
{
	ssize_t n;

	if (s->start == s->end) {
		s->start = s->end = 0;
		if (s->out_len > 0 && flush(s) < 0)
			return -1;
	} else if (s->start > 0) {
		memmove(s->in, s->in + s->start, s->end - s->start);
		s->end -= s->start;
		s->start = 0;
	}
	if (s->end == IN_BUF_LEN)
		s->end = s->start = 0; /* over-long line: drop it */
	for (;;) {
		n = read(s->fd, s->in + s->end, IN_BUF_LEN - s->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		s->end += (size_t)n;
		return 0;
	}
}

/* next_line - NUL-terminated command line without CRLF, or NULL at EOF */

static char *next_line(struct session *s)
{
	char *nl;
	char *line;

	for (;;) {
		nl = memchr(s->in + s->start, '\n', s->end - s->start);
		if (nl != NULL)
			break;
		if (fill(s) < 0)
			return NULL;
	}
	line = s->in + s->start;
	s->start = (size_t)(nl - s->in) + 1;
	*nl = 0;
	if (nl > line && nl[-1] == '\r')
		nl[-1] = 0;
	return line;
}

/* skip_data - discard input up to and including CRLF.CRLF */

static int skip_data(struct session *s)
{
	/* The terminator may start at the very beginning (empty message). */
	static const char term[] = "\r\n.\r\n";
	size_t matched = 2; /* as if a CRLF preceded the data */
	char c;

	for (;;) {
		while (s->start < s->end) {
			c = s->in[s->start++];
			if (c == term[matched]) {
				if (++matched == 5)
					return 0;
			} else {
				matched = (c == '\r') ? 1 : 0;
				/* Fast path: jump to the next CR. */
				if (matched == 0) {
					char *cr =
					    memchr(s->in + s->start, '\r', s->end - s->start);

					s->start = cr ? (size_t)(cr - s->in) : s->end;
				}
			}
		}
		if (fill(s) < 0)
			return -1;
	}
}

/* serve - one SMTP session */

static void *serve(void *arg)
{
	struct session *s = arg;
	char *line;

	if (s->in == NULL || reply(s, "220 fastsink ESMTP\r\n") < 0)
		goto done;
	while ((line = next_line(s)) != NULL) {
		if (strncasecmp(line, "EHLO", 4) == 0) {
			reply(s, "250-fastsink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
				 "250-SIZE 0\r\n250 ENHANCEDSTATUSCODES\r\n");
		} else if (strncasecmp(line, "HELO", 4) == 0) {
			reply(s, "250 fastsink\r\n");
		} else if (strncasecmp(line, "DATA", 4) == 0) {
			reply(s, "354 go ahead\r\n");
			if (flush(s) < 0 || skip_data(s) < 0)
				break;
			reply(s, "250 2.0.0 discarded\r\n");
		} else if (strncasecmp(line, "QUIT", 4) == 0) {
			reply(s, "221 2.0.0 bye\r\n");
			break;
		} else {
			reply(s, "250 2.0.0 ok\r\n");
		}
	}
	(void)flush(s);
done:
	close(s->fd);
	free(s->in);
	free(s);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin;
	struct session *s;
	pthread_t tid;
	int lfd, fd, one = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: fastsink port\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0) {
		perror("fastsink: socket");
		return 2;
	}
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 128) < 0) {
		perror("fastsink: listen");
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s = calloc(1, sizeof(*s));
		if (s == NULL) {
			close(fd);
			continue;
		}
		s->fd = fd;
		s->in = malloc(IN_BUF_LEN);
		if (pthread_create(&tid, NULL, serve, s) != 0) {
			close(fd);
			free(s->in);
			free(s);
			continue;
		}
		pthread_detach(tid);
	}
}
