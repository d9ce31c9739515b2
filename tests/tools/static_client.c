/*++
 * NAME
 *	static_client 1
 * SUMMARY
 *	a tiny SMTP client, meant to be linked statically (gcc -static)
 * SYNOPSIS
 *	static_client HOST PORT FROM TO SUBJECT
 * DESCRIPTION
 *	Stands in for a statically linked program (a Go binary) that
 *	LD_PRELOAD cannot reach: tests/integration/test_bs.py builds it with
 *	gcc -static and sends one message through "sendmail -bd". HOST is a
 *	numeric address (127.0.0.1 or ::1). The dialogue goes to stderr.
 * DIAGNOSTICS
 *	Exit 0 when the message was accepted (250 after the final dot),
 *	1 on any other reply or error, 2 on usage errors.
 *--*/

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char inbuf[8192];
static size_t inlen;

/* read_reply - one complete reply; returns its code, or -1 */

static int read_reply(int fd)
{
	for (;;) {
		char *line = inbuf;
		char *nl;

		while ((nl = memchr(line, '\n', inlen - (size_t)(line - inbuf))) != NULL) {
			size_t n = (size_t)(nl - line) + 1;

			fprintf(stderr, "S: %.*s", (int)n, line);
			if (n >= 4 && line[3] != '-') {
				int code = atoi(line);

				memmove(inbuf, nl + 1, inlen - (size_t)(nl + 1 - inbuf));
				inlen -= (size_t)(nl + 1 - inbuf);
				return code;
			}
			line = nl + 1;
		}
		if (inlen == sizeof(inbuf))
			return -1;
		{
			ssize_t r = read(fd, inbuf + inlen, sizeof(inbuf) - inlen);

			if (r <= 0)
				return -1;
			inlen += (size_t)r;
		}
	}
}

/* say - send one command line (or data) */

static int say(int fd, const char *text)
{
	size_t n = strlen(text);

	fprintf(stderr, "C: %s", text);
	return write(fd, text, n) == (ssize_t)n ? 0 : -1;
}

/* step - send a command, expect a reply class */

static int step(int fd, const char *text, int want)
{
	if (text && say(fd, text) < 0)
		return -1;
	return read_reply(fd) / 100 == want ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr *sa;
	socklen_t salen;
	char line[1024];
	int fd;

	if (argc != 6) {
		fprintf(stderr, "usage: static_client HOST PORT FROM TO SUBJECT\n");
		return 2;
	}
	/* No getaddrinfo(): in a static binary it would need glibc's NSS modules at run time. */
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, argv[1], &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((unsigned short)atoi(argv[2]));
		sa = (struct sockaddr *)&sin;
		salen = sizeof(sin);
	} else if (inet_pton(AF_INET6, argv[1], &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((unsigned short)atoi(argv[2]));
		sa = (struct sockaddr *)&sin6;
		salen = sizeof(sin6);
	} else {
		return 2;
	}
	fd = socket(sa->sa_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, sa, salen) < 0) {
		perror("connect");
		return 1;
	}
	if (step(fd, NULL, 2) < 0 || step(fd, "EHLO static.client\r\n", 2) < 0)
		return 1;
	snprintf(line, sizeof(line), "MAIL FROM:<%s>\r\n", argv[3]);
	if (step(fd, line, 2) < 0)
		return 1;
	snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", argv[4]);
	if (step(fd, line, 2) < 0 || step(fd, "DATA\r\n", 3) < 0)
		return 1;
	snprintf(line, sizeof(line),
		 "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nsent by a static binary\r\n.\r\n",
		 argv[3], argv[4], argv[5]);
	if (step(fd, line, 2) < 0)
		return 1;
	step(fd, "QUIT\r\n", 2);
	close(fd);
	return 0;
}
