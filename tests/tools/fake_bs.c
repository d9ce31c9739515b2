/*++
 * NAME
 *	fake_bs 1
 * SUMMARY
 *	stand-in for "sendmail -bs" in the shim's conformance tests
 * SYNOPSIS
 *	RELAYSHIM_SENDMAIL=build/tests/tools/fake_bs
 *	RELAYSHIM_FAKE_BS_DIR=/tmp/dir
 * DESCRIPTION
 *	Started by librelayshim.so like the real helper: it runs the same
 *	accept step (sendmail/shim_accept.c, included below), then speaks
 *	just enough SMTP on stdin/stdout (220, EHLO/HELO, MAIL, RCPT, DATA,
 *	RSET, NOOP, QUIT; 250 for everything else) and records what it saw
 *	in RELAYSHIM_FAKE_BS_DIR (the shim passes RELAYSHIM_* variables on):
 *
 *	start.PID	created first thing, before the accept step, so a
 *			test can tell that a helper was started at all;
 *	PID.rec		written (atomically, by rename) when the session
 *			ends: parent pid, every open descriptor and what it
 *			points to (after the accept step), blocked and
 *			ignored signals, whether LD_PRELOAD was set, the
 *			names of the environment variables, the envelope of
 *			each transaction, the number of messages;
 *	fail.PID	the accept step failed (its error text).
 *
 *	The conformance tests (tests/shim/conformance.c) read these files.
 *--*/

#include <dirent.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "../../sendmail/shim_accept.c"

/* error_set - the one piece of util.c that shim_accept.c needs */

int error_set(struct error *err, int status, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->temporary = 0;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return status;
}

static char rec[65536];
static size_t rec_len;

/* note - append one formatted line to the record */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (rec_len >= sizeof(rec) - 2)
		return;
	va_start(ap, fmt);
	n = vsnprintf(rec + rec_len, sizeof(rec) - rec_len - 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		rec_len +=
		    (size_t)n < sizeof(rec) - rec_len - 1 ? (size_t)n : sizeof(rec) - rec_len - 1;
	rec[rec_len++] = '\n';
}

/* write_file - write text to dir/name atomically */

static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char tmp[4096];
	char path[4096];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, text, len) < 0)
		(void)0;
	close(fd);
	rename(tmp, path);
}

/* note_environment - descriptors, signals, preload and variables after the accept step */

static void note_environment(void)
{
	extern char **environ;
	char path[300];
	char target[512];
	char line[512];
	DIR *d;
	struct dirent *e;
	FILE *f;
	const char *pre = getenv("LD_PRELOAD");
	int dfd;

	note("ppid=%d", (int)getppid());
	note("ld_preload=%s", pre ? pre : "unset");
	d = opendir("/proc/self/fd");
	dfd = d ? dirfd(d) : -1;
	while (d && (e = readdir(d)) != NULL) {
		ssize_t n;

		if (e->d_name[0] == '.' || atoi(e->d_name) == dfd)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = 0;
		note("fd=%s %s", e->d_name, target);
	}
	if (d)
		closedir(d);
	f = fopen("/proc/self/status", "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "SigBlk:", 7) == 0 || strncmp(line, "SigIgn:", 7) == 0) {
			line[strcspn(line, "\n")] = 0;
			note("%s", line);
		}
	}
	if (f)
		fclose(f);
	for (char **v = environ; *v; v++)
		note("env=%.*s", (int)strcspn(*v, "="), *v);
}

/* reader - buffered line reader on fd 0 */

static char in[65536];
static size_t in_len;
static size_t in_pos;

static int read_line(char *out, size_t size)
{
	size_t n = 0;

	for (;;) {
		if (in_pos == in_len) {
			ssize_t r = read(0, in, sizeof(in));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return n > 0 ? (int)n : -1;
			in_len = (size_t)r;
			in_pos = 0;
		}
		char c = in[in_pos++];

		if (n < size - 1)
			out[n++] = c;
		if (c == '\n')
			break;
	}
	out[n] = 0;
	return (int)n;
}

/* reply - one SMTP reply */

static void reply(const char *text)
{
	size_t len = strlen(text);

	if (write(1, text, len) < 0)
		(void)0;
}

int main(void)
{
	const char *dir = getenv("RELAYSHIM_FAKE_BS_DIR");
	struct error err;
	char name[64];
	char line[4096];
	int messages = 0;
	long bytes = 0;

	if (dir == NULL)
		dir = "/tmp";
	/* Started as a spare helper (shim/spare.c): not this stand-in's job. */
	if (getenv("RELAYSHIM_SHIM_ACCEPT") != NULL &&
	    strcmp(getenv("RELAYSHIM_SHIM_ACCEPT"), "3") == 0)
		return 69;
	snprintf(name, sizeof(name), "start.%d", (int)getpid());
	write_file(dir, name, "", 0);
	if (shim_accept_requested() && shim_accept(&err) != 0) {
		snprintf(name, sizeof(name), "fail.%d", (int)getpid());
		write_file(dir, name, err.text, strlen(err.text));
		return err.status;
	}
	note_environment();
	signal(SIGPIPE, SIG_IGN);
	/* One write per reply: without this, pipelined replies wait for a delayed ACK. */
	setsockopt(1, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	reply("220 fake.invalid ESMTP fake_bs\r\n");
	while (read_line(line, sizeof(line)) >= 0) {
		char verb[5] = {0};

		for (int i = 0; i < 4 && line[i] && line[i] != '\r' && line[i] != '\n'; i++)
			verb[i] = (char)(line[i] & ~0x20);
		if (strcmp(verb, "EHLO") == 0) {
			reply("250-fake.invalid\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
		} else if (strcmp(verb, "MAIL") == 0 || strcmp(verb, "RCPT") == 0) {
			line[strcspn(line, "\r\n")] = 0;
			note("%s", line);
			reply("250 2.1.0 Ok\r\n");
		} else if (strcmp(verb, "DATA") == 0) {
			reply("354 End data with <CR><LF>.<CR><LF>\r\n");
			while (read_line(line, sizeof(line)) >= 0) {
				if (strcmp(line, ".\r\n") == 0 || strcmp(line, ".\n") == 0)
					break;
				bytes += (long)strlen(line);
			}
			messages++;
			reply("250 2.0.0 Ok: queued as FAKE\r\n");
		} else if (strcmp(verb, "QUIT") == 0) {
			reply("221 2.0.0 Bye\r\n");
			break;
		} else {
			reply("250 2.0.0 Ok\r\n");
		}
	}
	note("messages=%d", messages);
	note("bytes=%ld", bytes);
	snprintf(name, sizeof(name), "%d.rec", (int)getpid());
	write_file(dir, name, rec, rec_len);
	return 0;
}
