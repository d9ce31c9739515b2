/*++
 * NAME
 *	spool 3
 * SUMMARY
 *	the durable fallback queue: knobs, small I/O helpers, reading entries
 * SYNOPSIS
 *	#include "spool.h"
 *
 *	void	spool_make_id(char *id, size_t size);
 *	void	spool_set_transport(spool_transport_fn fn);
 *	void	spool_set_deadline(long long end_ms);
 *
 *	#include "spool_int.h"
 *
 *	(the knobs, I/O helpers and entry readers listed there)
 * DESCRIPTION
 *	See spool.h for the contract, the layout, the permission model and
 *	the crash-consistency argument, and spool_int.h for how the queue
 *	is split into files (areas, commit, notices, delivery of one entry,
 *	passes and worker, listing). This file holds what they all use:
 *	knobs (crash points, the clock, randomness, backoff), queue ids,
 *	small I/O helpers, and reading an entry.
 *
 *	Entry file q/ID and state file q/ID.st: their text is written and
 *	parsed by spool_entry.c (pure functions, fuzzed). The envelope
 *	states the header and body sizes, so a truncated file is recognised
 *	as corrupt rather than delivered. The state file is replaced
 *	atomically by rename; it is advisory except for "done" lines, which
 *	are fsync'ed: losing them would resend to those recipients.
 *
 *	Every file of an area is read through spool_open_owned(): another user's
 *	area is that user's to fill with FIFOs, directories, symlinks and
 *	forged entries (spool.h, TRUST).
 * DIAGNOSTICS
 *	Functions return 0 or a sysexits.h code with one line in err. The
 *	worker has no caller to report to: it logs with log_msg() and
 *	log_delivery().
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "spool_int.h"

spool_transport_fn spool_transport;

/* The end set by spool_set_deadline(), on the net_now_ms() clock; 0 = none. */
long long spool_deadline_ms;

/* ====================================================================
 * Knobs: crash points, time, randomness, backoff
 * ==================================================================== */

/* spool_crash_point - test-only: die here when RELAYSHIM_TEST_CRASH_AT names this step */

void spool_crash_point(const char *step)
{
	const char *want = getenv("RELAYSHIM_TEST_CRASH_AT");

	/* SIGKILL, not abort(): nothing may be flushed or cleaned up. */
	if (want && strcmp(want, step) == 0)
		raise(SIGKILL);
}

/* spool_set_transport - tests replace smtp_deliver() */

void spool_set_transport(spool_transport_fn fn)
{
	spool_transport = fn;
}

/* spool_set_deadline - sendmail -q --deadline: no delivery starts after end_ms */

void spool_set_deadline(long long end_ms)
{
	spool_deadline_ms = end_ms;
}

/* spool_time_is_up - past the point where a delivery may start? */

int spool_time_is_up(void)
{
	return spool_deadline_ms > 0 && net_now_ms() >= spool_deadline_ms;
}

/*
 * spool_lock_entry - flock() an entry; wait = block until it is free. Under a
 * deadline the wait is a poll, so an entry a worker holds (perhaps stuck on
 * a stalled relay) cannot keep -q past its end. Returns 0 or -1 (busy).
 */
int spool_lock_entry(int fd, int wait)
{
	for (;;) {
		if (flock(fd, wait && spool_deadline_ms == 0 ? LOCK_EX : LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK || !wait || spool_time_is_up())
			return -1;
		(void)poll(0, 0, 20);
	}
}

/* spool_now - wall-clock seconds with a fraction */

double spool_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* spool_random - 32 random bits (getrandom, falling back to the clock) */

unsigned spool_random(void)
{
	unsigned r;
	struct timespec ts;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
		return r;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16);
}

/* spool_retry_base - backoff base in seconds (RELAYSHIM_RETRY_BASE, default 30) */

double spool_retry_base(void)
{
	const char *s = getenv("RELAYSHIM_RETRY_BASE");
	char *end;
	double v;

	if (s == 0 || *s == 0)
		return 30.0;
	v = strtod(s, &end);
	if (*end != 0 || !(v > 0.0) || v > 86400.0)
		return 30.0;
	return v;
}

/* spool_backoff - delay before retry number n (n >= 1), with jitter */

double spool_backoff(unsigned n)
{
	double base = spool_retry_base();
	double cap = base * 120.0;
	double delay = base;

	while (n-- > 1 && delay < cap)
		delay *= 2.0;
	if (delay > cap)
		delay = cap;
	/* Jitter in [0.75, 1.25): 200 messages queued in the same second
	 * must not all hit the relay again in the same second. */
	return delay * (0.75 + (double)(spool_random() % 1000) / 2000.0);
}

/* ====================================================================
 * Small I/O helpers
 * ==================================================================== */

/* spool_pread_all - read exactly n bytes at off; -1 with errno, or EIO on a short file */

int spool_pread_all(int fd, void *p, size_t n, off_t off)
{
	char *cp = p;

	while (n > 0) {
		ssize_t r = pread(fd, cp, n, off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		cp += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* spool_fsync_dir - fsync an open directory */

int spool_fsync_dir(int dirfd)
{
	return fsync(dirfd);
}

/* spool_opendir - a directory stream over dirfd's directory, dirfd kept; 0 on error */

DIR *spool_opendir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return 0;
	if ((d = fdopendir(fd)) == 0)
		close(fd);
	return d;
}

/* spool_open_owned - open a plain file of owner at dirfd/name, never blocking, never following */

int spool_open_owned(int dirfd, const char *name, int flags, uid_t owner, struct stat *sb)
{
	struct stat local;
	int fd;

	if (sb == 0)
		sb = &local;
	/* Another user may have put a FIFO, a directory or a symlink under
	 * this name: O_NONBLOCK keeps open() from waiting for a FIFO's other
	 * end, and the fstat() refuses anything but that owner's plain file
	 * (a hard link to a file of someone else is not the owner's). */
	fd = openat(dirfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode) || sb->st_uid != owner) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

/* spool_id_valid - a queue id is a safe file name without dots */

int spool_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n >= SPOOL_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* spool_make_id - time, pid and randomness in hex: unique and sortable */

void spool_make_id(char *id, size_t size)
{
	static unsigned seq;
	static pid_t seq_pid;
	struct timespec ts;

	/* time + pid is unique across processes; a sequence number (from a
	 * random start, fresh in every process) separates the ids one
	 * process makes within one microsecond. */
	if (seq_pid != getpid()) {
		seq_pid = getpid();
		seq = spool_random();
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, size, "%08llX%05lX%06lX%04X", (unsigned long long)ts.tv_sec,
		 (unsigned long)(ts.tv_nsec / 1000), (unsigned long)seq_pid & 0xffffffUL,
		 seq++ & 0xffffU);
}

/* ====================================================================
 * Reading entries
 * ==================================================================== */

/* read_envelope_text - the bytes of q/ID up to and including the empty line */

static int read_envelope_text(int fd, struct buf *out)
{
	off_t off = 0;

	for (;;) {
		ssize_t r;
		size_t from = out->len > 0 ? out->len - 1 : 0;
		char *hit;

		buf_reserve(out, 8192);
		r = pread(fd, out->data + out->len, 8192, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO; /* no empty line: truncated */
			return -1;
		}
		out->len += (size_t)r;
		out->data[out->len] = 0;
		off += r;
		/* From one byte before the new ones: "\n\n" may straddle reads. */
		if ((hit = memmem(out->data + from, out->len - from, "\n\n", 2)) != 0) {
			buf_truncate(out, (size_t)(hit - out->data) + 2);
			return 0;
		}
		if (out->len > SPOOL_ENVELOPE_MAX) {
			errno = EFBIG;
			return -1;
		}
	}
}

/* read_small_file - a whole small file at dirfd/name; -1 with errno */

static int read_small_file(int dirfd, const char *name, uid_t owner, struct buf *out)
{
	int fd = spool_open_owned(dirfd, name, O_RDONLY, owner, 0);

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r;

		buf_reserve(out, 4096);
		r = read(fd, out->data + out->len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int saved = errno;

			close(fd);
			errno = saved;
			return r < 0 ? -1 : 0;
		}
		out->len += (size_t)r;
		out->data[out->len] = 0;
		if (out->len > SPOOL_ENVELOPE_MAX) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
	}
}

/* spool_read_entry - parse q/ID (open as fd) and q/ID.st; -1 when q/ID is corrupt */

int spool_read_entry(int qdir, int fd, const char *id, struct spool_entry *e)
{
	struct buf text = BUF_INIT;
	struct buf st = BUF_INIT;
	struct stat sb;
	char stname[SPOOL_ID_MAX + 4];
	int rc = -1;

	snprintf(e->id, sizeof(e->id), "%s", id);
	if (fstat(fd, &sb) != 0 || read_envelope_text(fd, &text) != 0 ||
	    spool_entry_parse(text.data, text.len, e) != 0)
		goto out;
	e->owner = sb.st_uid;
	/* A file shorter than its envelope promises was cut short: corrupt. */
	if ((unsigned long long)sb.st_size != e->data_off + e->header_len + 2 + e->body_len)
		goto out;
	e->next_try = e->created;
	snprintf(stname, sizeof(stname), "%s.st", id);
	if (read_small_file(qdir, stname, sb.st_uid, &st) == 0 && st.len > 0)
		spool_state_parse(st.data, st.len, e);
	rc = 0;
out:
	buf_free(&text);
	buf_free(&st);
	return rc;
}

/* spool_read_message - the message of an entry: header in memory, body on the file */

int spool_read_message(int fd, const struct spool_entry *e, struct message *msg)
{
	message_init(msg);
	if (e->header_len > SPOOL_ENTRY_HEADER_MAX) {
		errno = EFBIG;
		return -1;
	}
	buf_reserve(&msg->header, (size_t)e->header_len);
	if (spool_pread_all(fd, msg->header.data, (size_t)e->header_len, (off_t)e->data_off) != 0)
		return -1;
	msg->header.len = (size_t)e->header_len;
	msg->header.data[msg->header.len] = 0;
	/* A dup: message_free() closes it, and the flock on fd must survive. */
	if ((msg->body.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -1;
	msg->body.fd_offset = e->data_off + e->header_len + 2;
	msg->body.len = e->body_len;
	msg->has_8bit = e->has_8bit;
	msg->has_nul = e->has_nul;
	msg->longest_line = (size_t)e->longest;
	return 0;
}
