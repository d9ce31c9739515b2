/*++
 * NAME
 *	setuid_connect 1
 * SUMMARY
 *	a set-user-ID (set-group-ID, file-capability) program that connects to 127.0.0.1:25
 * SYNOPSIS
 *	setuid_connect
 * DESCRIPTION
 *	Stands in for a privileged program that sends mail over SMTP to
 *	localhost, in a system whose /etc/ld.so.preload lists the shim:
 *	tests/integration/test_shim_setuid.py installs a copy of it
 *	set-user-ID root, set-group-ID root or with a file capability in a
 *	private mount namespace
 *	and runs it as an unprivileged user who set RELAYSHIM_SENDMAIL.
 *
 *	It prints its credentials ("ids RUID EUID RGID EGID", then "capeff
 *	HEX", the effective capabilities from /proc/self/status), connects a
 *	TCP socket to 127.0.0.1:25 and prints "connect ok" or "connect
 *	failed: ERRNO-TEXT". After a successful connect it waits (20 s at
 *	most) until the peer sends something or goes away, so that a helper
 *	the shim started has finished before the program exits, and prints
 *	"peer done".
 * DIAGNOSTICS
 *	Exit 0 whatever the connect's outcome (the caller reads the lines),
 *	1 when no socket can be made.
 *--*/

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * make SAN=1: the process carries the ASan runtime (this program, or the
 * shim's through /etc/ld.so.preload). A set-group-ID process cannot read
 * its own /proc/self/environ, so ASAN_OPTIONS never reaches the runtime,
 * and LeakSanitizer cannot work in a non-dumpable process: turn it off here.
 */
int __lsan_is_turned_off(void) __attribute__((used, visibility("default")));

int __lsan_is_turned_off(void)
{
	return 1;
}

/* print_capeff - "capeff HEX": the effective capabilities (a file-capability copy) */

static void print_capeff(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "CapEff:\t", 8) == 0)
			printf("capeff %s", line + 8);
	fclose(f);
}

int main(void)
{
	struct sockaddr_in sin;
	struct pollfd pfd;
	char buf[512];
	int fd;

	printf("ids %d %d %d %d\n", (int)getuid(), (int)geteuid(), (int)getgid(), (int)getegid());
	print_capeff();
	fflush(stdout);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		printf("socket failed: %s\n", strerror(errno));
		return 1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		printf("connect failed: %s\n", strerror(errno));
		return 0;
	}
	printf("connect ok\n");
	fflush(stdout);
	/* A helper that never accepts resets the connection when it exits. */
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 20000) > 0 && read(fd, buf, sizeof(buf)) < 0)
		(void)0;
	printf("peer done\n");
	close(fd);
	return 0;
}
