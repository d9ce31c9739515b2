/*++
 * NAME
 *	countsink 1
 * SUMMARY
 *	an SMTP sink that counts connections and Message-IDs
 * SYNOPSIS
 *	countsink port statsfile
 * DESCRIPTION
 *	The relay of the outage rows (bench/README.md, rows 9 and 10):
 *	listens on 127.0.0.1:port and serves every connection from one
 *	poll() loop, answering HELO/EHLO (PIPELINING, 8BITMIME), MAIL,
 *	RCPT, RSET, NOOP with 250, DATA with 354 and QUIT with 221, and
 *	replies to pipelined commands together. Of each message it reads
 *	the header section's Message-ID field and remembers a 64-bit hash
 *	of its value: a value seen before is a duplicate delivery.
 *
 *	It keeps: connections accepted, the peak number open at once,
 *	messages, distinct Message-IDs, duplicates, messages without a
 *	Message-ID, and the wall-clock times of the first and the last
 *	message. It rewrites statsfile (via a rename) with one line of
 *	key=value pairs whenever they changed, at most every 20 ms, so that
 *	a script can wait for a count: conns, peak, msgs, unique, dups,
 *	nomid, first, last (seconds since the epoch, with a fraction).
 *
 *	Prints "ready" once listening; runs until killed (SIGTERM writes
 *	the statistics a last time).
 * DIAGNOSTICS
 *	Exit 2 on usage or setup errors.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN 1024
#define IN_LEN 65536
#define OUT_LEN 4096
#define LINE_MAX_LEN 4096
#define ID_SLOTS (1u << 18) /* open addressing: room for 100 000 ids */

struct conn {
	int fd;
	char in[IN_LEN];
	size_t len;
	char out[OUT_LEN];
	size_t out_len;
	int in_data;   /* between 354 and the dot */
	int in_header; /* still in the message's header section */
	int has_mid;
};

static struct conn *conns[MAX_CONN];
static uint64_t *ids;
static unsigned long n_conns, n_open, peak, msgs, unique_ids, dups, nomid;
static double t_first, t_last;
static volatile sig_atomic_t stop;

/* now - wall-clock seconds */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* hash - FNV-1a, 64 bits, of the trimmed value */

static uint64_t hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h ? h : 1;
}

/* remember - add an id's hash; 1 if it was already there */

static int remember(uint64_t h)
{
	size_t i = (size_t)(h & (ID_SLOTS - 1));

	while (ids[i] != 0) {
		if (ids[i] == h)
			return 1;
		i = (i + 1) & (ID_SLOTS - 1);
	}
	ids[i] = h;
	return 0;
}

/* reply - queue a reply line */

static void reply(struct conn *c, const char *text)
{
	size_t n = strlen(text);

	if (c->out_len + n <= OUT_LEN) {
		memcpy(c->out + c->out_len, text, n);
		c->out_len += n;
	}
}

/* data_line - one line of DATA (without CRLF); 1 at the final dot */

static int data_line(struct conn *c, const char *p, size_t n)
{
	if (n == 1 && p[0] == '.') {
		double t = now();

		msgs++;
		if (!c->has_mid)
			nomid++;
		if (t_first == 0)
			t_first = t;
		t_last = t;
		return 1;
	}
	if (!c->in_header)
		return 0;
	if (n == 0) {
		c->in_header = 0;
		return 0;
	}
	if (n > 11 && strncasecmp(p, "Message-ID:", 11) == 0) {
		c->has_mid = 1;
		if (remember(hash(p + 11, n - 11)))
			dups++;
		else
			unique_ids++;
	}
	return 0;
}

/* command - one SMTP command line; -1 to close */

static int command(struct conn *c, const char *p, size_t n)
{
	if (n >= 4 && (strncasecmp(p, "EHLO", 4) == 0 || strncasecmp(p, "HELO", 4) == 0))
		reply(c, "250-countsink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n");
	else if (n >= 4 && strncasecmp(p, "DATA", 4) == 0) {
		c->in_data = 1;
		c->in_header = 1;
		c->has_mid = 0;
		reply(c, "354 go ahead\r\n");
	} else if (n >= 4 && strncasecmp(p, "QUIT", 4) == 0) {
		reply(c, "221 bye\r\n");
		return -1;
	} else
		reply(c, "250 ok\r\n");
	return 0;
}

/* flush - send the queued replies (blocking: they are small) */

static int flush(struct conn *c)
{
	size_t off = 0;

	while (off < c->out_len) {
		ssize_t w = write(c->fd, c->out + off, c->out_len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	c->out_len = 0;
	return 0;
}

/* serve - handle what a connection sent; -1 to close it */

static int serve(struct conn *c)
{
	ssize_t r = read(c->fd, c->in + c->len, IN_LEN - c->len);
	size_t start = 0;
	int rc = 0;

	if (r < 0 && errno == EINTR)
		return 0;
	if (r <= 0)
		return -1;
	c->len += (size_t)r;
	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->len - start);
		size_t n;

		if (nl == 0)
			break;
		n = (size_t)(nl - (c->in + start));
		if (n > 0 && c->in[start + n - 1] == '\r')
			n--;
		if (c->in_data) {
			if (data_line(c, c->in + start, n)) {
				c->in_data = 0;
				reply(c, "250 queued\r\n");
			}
		} else if (command(c, c->in + start, n) < 0) {
			rc = -1;
		}
		start = (size_t)(nl - c->in) + 1;
		if (rc < 0)
			break;
	}
	memmove(c->in, c->in + start, c->len - start);
	c->len -= start;
	if (c->len == IN_LEN) /* an overlong line: drop it */
		c->len = 0;
	if (flush(c) < 0)
		return -1;
	return rc;
}

/* write_stats - replace statsfile with the current figures */

static void write_stats(const char *path)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == 0)
		return;
	fprintf(f,
		"conns=%lu peak=%lu msgs=%lu unique=%lu dups=%lu nomid=%lu first=%.6f "
		"last=%.6f\n",
		n_conns, peak, msgs, unique_ids, dups, nomid, t_first, t_last);
	fclose(f);
	rename(tmp, path);
}

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct pollfd pfd[MAX_CONN + 1];
	int lfd, one = 1;
	unsigned long sig_last = ~0UL;
	double written = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: countsink port statsfile\n");
		return 2;
	}
	if ((ids = calloc(ID_SLOTS, sizeof(*ids))) == 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 512) != 0) {
		perror("countsink");
		return 2;
	}
	write_stats(argv[2]);
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		nfds_t n = 0;
		unsigned long sig;

		pfd[n].fd = lfd;
		pfd[n++].events = POLLIN;
		for (int i = 0; i < MAX_CONN; i++)
			if (conns[i]) {
				pfd[n].fd = conns[i]->fd;
				pfd[n++].events = POLLIN;
			}
		if (poll(pfd, n, 20) < 0 && errno != EINTR)
			break;
		for (nfds_t k = 1; k < n; k++) {
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			for (int i = 0; i < MAX_CONN; i++) {
				if (conns[i] && conns[i]->fd == pfd[k].fd) {
					if (serve(conns[i]) < 0) {
						close(conns[i]->fd);
						free(conns[i]);
						conns[i] = 0;
						n_open--;
					}
					break;
				}
			}
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(lfd, 0, 0, SOCK_CLOEXEC);

			if (fd >= 0) {
				int slot = -1;

				for (int i = 0; i < MAX_CONN && slot < 0; i++)
					if (conns[i] == 0)
						slot = i;
				if (slot < 0 || (conns[slot] = calloc(1, sizeof(struct conn))) == 0) {
					close(fd);
				} else {
					conns[slot]->fd = fd;
					n_conns++;
					if (++n_open > peak)
						peak = n_open;
					reply(conns[slot], "220 countsink ESMTP\r\n");
					if (flush(conns[slot]) < 0) {
						close(fd);
						free(conns[slot]);
						conns[slot] = 0;
						n_open--;
					}
				}
			}
		}
		sig = n_conns * 1000003UL + msgs * 7919UL + peak + dups * 31UL;
		if (sig != sig_last && now() - written >= 0.02) {
			write_stats(argv[2]);
			sig_last = sig;
			written = now();
		}
	}
	write_stats(argv[2]);
	return 0;
}
