/*++
 * NAME
 *	spool 3
 * SUMMARY
 *	the durable fallback queue and its detached retry worker
 * SYNOPSIS
 *	#include "spool.h"
 * DESCRIPTION
 *	See spool.h for the contract, the layout, the permission model and
 *	the crash-consistency argument. This file is organised as:
 *	knobs (crash points, backoff), reading entries, areas
 *	(per-user directories), the commit protocol (spool_store), delivery
 *	of one entry, passes over the queue, the worker, and the listing.
 *
 *	Entry file q/ID and state file q/ID.st: their text is written and
 *	parsed by spool_entry.c (pure functions, fuzzed). The envelope
 *	states the header and body sizes, so a truncated file is recognised
 *	as corrupt rather than delivered. The state file is replaced
 *	atomically by rename; it is advisory except for "done" lines, which
 *	are fsync'ed: losing them would resend to those recipients.
 *
 *	Every file of an area is read through open_owned(): another user's
 *	area is that user's to fill with FIFOs, directories, symlinks and
 *	forged entries (spool.h, TRUST).
 * DIAGNOSTICS
 *	Functions return 0 or a sysexits.h code with one line in err. The
 *	worker has no caller to report to: it logs with log_msg() and
 *	log_delivery().
 *--*/

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "header.h"
#include "net.h"
#include "relay_hint.h"
#include "rewrite.h"
#include "spool.h"
#include "spool_entry.h"

#define SPOOL_ENVELOPE_MAX                                                                         \
	(8 * 1024 * 1024)      /* envelope text of one entry: 1000                                 \
				* addresses of 2 KiB, escaped, fit */
#define SPOOL_TMP_MAX_AGE 3600 /* seconds before tmp/ debris goes */
#define SPOOL_STREAK_MAX 3     /* temporary failures that end a pass */
#define SPOOL_COPY_CHUNK (256 * 1024)
#define SPOOL_AREA_NAMES 8    /* "UID", "UID.1" ... "UID.7" */
#define SPOOL_AREA_BUDGET 200 /* delivery attempts per area and pass */
#define SPOOL_WARN_MAX 10     /* warnings of one kind per scan */

static spool_transport_fn spool_transport;

/* The end set by spool_set_deadline(), on the net_now_ms() clock; 0 = none. */
static long long spool_deadline_ms;

/* ====================================================================
 * Knobs: crash points, time, randomness, backoff
 * ==================================================================== */

/* spool_crash_point - test-only: die here when RELAYSHIM_TEST_CRASH_AT names this step */

static void spool_crash_point(const char *step)
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

static int spool_time_is_up(void)
{
	return spool_deadline_ms > 0 && net_now_ms() >= spool_deadline_ms;
}

/*
 * lock_entry - flock() an entry; wait = block until it is free. Under a
 * deadline the wait is a poll, so an entry a worker holds (perhaps stuck on
 * a stalled relay) cannot keep -q past its end. Returns 0 or -1 (busy).
 */
static int lock_entry(int fd, int wait)
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

static double spool_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* spool_random - 32 random bits (getrandom, falling back to the clock) */

static unsigned spool_random(void)
{
	unsigned r;
	struct timespec ts;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
		return r;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16);
}

/* spool_retry_base - backoff base in seconds (RELAYSHIM_RETRY_BASE, default 30) */

static double spool_retry_base(void)
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

static double spool_backoff(unsigned n)
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

/* pread_all - read exactly n bytes at off; -1 with errno, or EIO on a short file */

static int pread_all(int fd, void *p, size_t n, off_t off)
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

/* fsync_dir - fsync an open directory */

static int fsync_dir(int dirfd)
{
	return fsync(dirfd);
}

/* open_owned - open a plain file of owner at dirfd/name, never blocking, never following */

static int open_owned(int dirfd, const char *name, int flags, uid_t owner, struct stat *sb)
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

/* id_valid - a queue id is a safe file name without dots */

static int id_valid(const char *id)
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
 * Entry format: envelope text with %XX escapes
 * ==================================================================== */

/* envelope_text - the envelope part of q/ID for a message being stored */

static void envelope_text(struct buf *out, double created, const struct envelope *env,
			  const struct message *msg, const char *reason)
{
	struct spool_entry e;

	spool_entry_init(&e);
	e.created = created;
	e.env = *env; /* borrowed: not freed below */
	e.has_8bit = msg->has_8bit;
	e.has_nul = msg->has_nul;
	e.longest = msg->longest_line;
	e.first_error = (char *)reason;
	e.header_len = msg->header.len;
	e.body_len = msg->body.len;
	spool_entry_format(out, &e);
}

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
	int fd = open_owned(dirfd, name, O_RDONLY, owner, 0);

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

/* entry_read - parse q/ID (open as fd) and q/ID.st; -1 when q/ID is corrupt */

static int entry_read(int qdir, int fd, const char *id, struct spool_entry *e)
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

/* entry_message - the message of an entry: header in memory, body on the file */

static int entry_message(int fd, const struct spool_entry *e, struct message *msg)
{
	message_init(msg);
	if (e->header_len > SPOOL_ENTRY_HEADER_MAX) {
		errno = EFBIG;
		return -1;
	}
	buf_reserve(&msg->header, (size_t)e->header_len);
	if (pread_all(fd, msg->header.data, (size_t)e->header_len, (off_t)e->data_off) != 0)
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

/* ====================================================================
 * Areas: dir/UID with tmp/, q/, failed/
 * ==================================================================== */

struct spool_area {
	uid_t uid;
	int dir; /* dir/UID */
	int tmp;
	int q;
	int failed;
	char *path; /* "dir/UID", for messages */
};

/* area_init - nothing open */

static void area_init(struct spool_area *a)
{
	a->uid = 0;
	a->dir = a->tmp = a->q = a->failed = -1;
	a->path = 0;
}

/* area_close - close what is open */

static void area_close(struct spool_area *a)
{
	int *fds[] = {&a->dir, &a->tmp, &a->q, &a->failed};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(a->path);
	area_init(a);
}

/* open_dir_at - open a directory for *at() calls and fsync, refusing symlinks */

static int open_dir_at(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* spool_top_check - the spool directory's owner and mode, as postfix check does */

static int spool_top_check(const char *top, int fd, struct error *err)
{
	struct stat sb;

	if (fstat(fd, &sb) != 0)
		return error_set(err, EX_CANTCREAT, "cannot stat queue directory %s: %s", top,
				 strerror(errno));
	/* The owner of a directory may rename or remove anything in it,
	 * sticky bit or not: another user's spool is that user's to empty. */
	if (sb.st_uid != 0 && sb.st_uid != geteuid())
		return error_set(err, EX_CANTCREAT,
				 "queue directory %s is owned by uid %lu, neither root nor you; "
				 "refusing it (make it root's, mode 1733, or set [queue] dir)",
				 top, (unsigned long)sb.st_uid);
	/* Writable by others without the sticky bit: anyone may rename
	 * another user's area away and put their own in its place. */
	if ((sb.st_mode & 022) != 0 && (sb.st_mode & S_ISVTX) == 0)
		return error_set(err, EX_CANTCREAT,
				 "queue directory %s has mode %04o: writable by others without the "
				 "sticky bit; refusing it (chmod 1733 %s)",
				 top, (unsigned)(sb.st_mode & 07777), top);
	return 0;
}

/* spool_top_open - open (creating with mode 1733 if needed) the spool directory */

static int spool_top_open(const char *top, int create, struct error *err)
{
	int fd;

	if (top == 0 || *top == 0) {
		error_set(err, EX_CANTCREAT, "no queue directory configured (set [queue] dir)");
		return -1;
	}
	if (create && mkdir(top, 01733) == 0) {
		/* mkdir() obeys the umask; the sticky world-writable mode is
		 * the point (several users, no setuid), so set it outright. */
		if (chmod(top, 01733) != 0) {
			error_set(err, EX_CANTCREAT,
				  "cannot set mode 1733 on queue directory %s: %s", top,
				  strerror(errno));
			return -1;
		}
	} else if (create && errno != EEXIST) {
		error_set(err, EX_CANTCREAT,
			  "cannot create queue directory %s: %s (create it, mode 1733, or set "
			  "[queue] dir)",
			  top, strerror(errno));
		return -1;
	}
	/* O_PATH: in a 1733 directory we may not read (list), only search. */
	fd = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		error_set(err, EX_CANTCREAT, "cannot open queue directory %s: %s", top,
			  strerror(errno));
		return -1;
	}
	if (spool_top_check(top, fd, err) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* area_name - the k-th name user uid may keep an area under: "UID", "UID.1", ... */

static void area_name(char *out, size_t n, uid_t uid, unsigned k)
{
	if (k == 0)
		snprintf(out, n, "%lu", (unsigned long)uid);
	else
		snprintf(out, n, "%lu.%u", (unsigned long)uid, k);
}

/* area_quarantine - root moves a squatter's directory out of an area's name */

static void area_quarantine(int topfd, const char *top, const char *name, const struct stat *sb)
{
	char to[96];

	/* A dot name: no reader takes it for an area. Its owner keeps it and
	 * may remove it; root only frees the name for the user it belongs to. */
	snprintf(to, sizeof(to), ".squatter.%s.%lu.%ld", name, (unsigned long)sb->st_uid,
		 (long)time(0));
	if (renameat(topfd, name, topfd, to) == 0)
		log_msg(LOG_LEVEL_WARNING,
			"moved %s/%s (owner uid %lu, mode %04o) out of the way to %s/%s: an area "
			"belongs to the user it is named after, mode 0700",
			top, name, (unsigned long)sb->st_uid, (unsigned)(sb->st_mode & 07777), top,
			to);
}

/* area_open_named - open one area name; 1 = no such name (not created) */

static int area_open_named(int topfd, const char *top, const char *name, uid_t uid, int create,
			   int quarantine, struct spool_area *a, struct error *err)
{
	static const char *subs[] = {"tmp", "q", "failed"};
	struct stat sb;
	int made = 0;

	area_init(a);
	a->uid = uid;
	{
		struct buf path = BUF_INIT;

		buf_printf(&path, "%s/%s", top, name);
		a->path = buf_steal(&path);
	}
	if (create) {
		if (mkdirat(topfd, name, 0700) == 0) {
			int syncfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			made = 1;
			/* Best effort: in a 1733 directory only its owner can
			 * open it for fsync; the journal usually carries the
			 * mkdir with the first entry's fsync anyway. */
			if (syncfd >= 0) {
				(void)fsync(syncfd);
				close(syncfd);
			}
		} else if (errno != EEXIST) {
			error_set(err, EX_CANTCREAT,
				  "cannot create queue area %s: %s (the queue directory must be "
				  "writable by every submitting user: mode 1733)",
				  a->path, strerror(errno));
			goto fail;
		}
	}
	if ((a->dir = open_dir_at(topfd, name)) < 0) {
		if (errno == ENOENT && !create) {
			area_close(a);
			return 1;
		}
		error_set(err, EX_CANTCREAT, "cannot open queue area %s: %s", a->path,
			  strerror(errno));
		if (quarantine && fstatat(topfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			area_quarantine(topfd, top, name, &sb);
		goto fail;
	}
	if (fstat(a->dir, &sb) != 0 || sb.st_uid != uid || (sb.st_mode & 077) != 0) {
		/* Someone planted this directory for us, or opened it up:
		 * storing mail there could hand it to them. */
		error_set(err, EX_CANTCREAT,
			  "queue area %s is not owned by uid %lu with mode 0700; remove it or fix "
			  "its owner and mode",
			  a->path, (unsigned long)uid);
		if (quarantine && sb.st_uid != uid)
			area_quarantine(topfd, top, name, &sb);
		goto fail;
	}
	for (size_t i = 0; i < 3; i++) {
		int *slot = i == 0 ? &a->tmp : i == 1 ? &a->q : &a->failed;

		if (create && mkdirat(a->dir, subs[i], 0700) == 0)
			made = 1;
		if ((*slot = open_dir_at(a->dir, subs[i])) < 0) {
			error_set(err, EX_CANTCREAT, "cannot open %s/%s: %s", a->path, subs[i],
				  strerror(errno));
			goto fail;
		}
	}
	if (made)
		(void)fsync_dir(a->dir);
	return 0;
fail:
	area_close(a);
	return err->status ? err->status : EX_CANTCREAT;
}

/* area_open - the caller's usable area of uid; create = it is the caller's own and may be made */

static int area_open(const char *top, uid_t uid, int create, struct spool_area *a,
		     struct error *err)
{
	struct error first;
	int topfd, rc = 1;

	area_init(a);
	error_clear(&first);
	if ((topfd = spool_top_open(top, create, err)) < 0)
		return err->status;
	/* Anyone may create any name in a 1733 directory, so another user
	 * can take "UID" first. Root moves such a squatter away (and tries
	 * the name again); for everyone else the next names are tried, so
	 * that a squatter costs its victim nothing but a name. */
	for (unsigned k = 0; k < SPOOL_AREA_NAMES && rc != 0; k++) {
		char name[48];

		area_name(name, sizeof(name), uid, k);
		error_clear(err);
		rc = area_open_named(topfd, top, name, uid, create, create && geteuid() == 0, a,
				     err);
		if (rc != 0 && create && geteuid() == 0)
			rc = area_open_named(topfd, top, name, uid, create, 0, a, err);
		if (rc > 1 && first.status == 0)
			first = *err;
	}
	close(topfd);
	if (rc == 0) {
		if (first.status && create)
			log_msg(LOG_LEVEL_WARNING, "%s; using %s instead", first.text, a->path);
		return 0;
	}
	if (first.status) {
		*err = first;
		return err->status;
	}
	return error_set(err, EX_CANTCREAT, "no queue area for uid %lu in %s", (unsigned long)uid,
			 top);
}

/* area_adopt - root writes into another user's area: hand the file to its owner */

static void area_adopt(const struct spool_area *a, int fd)
{
	if (geteuid() == 0 && a->uid != 0)
		(void)!fchown(fd, a->uid, (gid_t)-1);
}

/* ====================================================================
 * Commit protocol
 * ==================================================================== */

/* spool_usable - can we store here at all? */

int spool_usable(const struct config *cfg, struct error *err)
{
	struct spool_area a;
	struct statvfs vfs;

	if (area_open(cfg->queue_dir, geteuid(), 1, &a, err) != 0)
		return err->status;
	if (fstatvfs(a.tmp, &vfs) == 0) {
		if (vfs.f_flag & ST_RDONLY) {
			error_set(err, EX_CANTCREAT,
				  "queue directory %s is on a read-only file system", a.path);
			area_close(&a);
			return err->status;
		}
		if (vfs.f_bavail == 0 || (vfs.f_files > 0 && vfs.f_favail == 0)) {
			error_set(err, EX_CANTCREAT,
				  "queue directory %s is full (no free space or inodes)", a.path);
			area_close(&a);
			return err->status;
		}
	}
	if (faccessat(a.tmp, ".", W_OK, AT_EACCESS) != 0) {
		error_set(err, EX_CANTCREAT, "cannot write to %s/tmp: %s", a.path, strerror(errno));
		area_close(&a);
		return err->status;
	}
	area_close(&a);
	return 0;
}

/* write_body - append the message body to fd */

static int write_body(int fd, const struct message *msg)
{
	char *chunk;
	unsigned long long off = 0;

	if (msg->body.fd < 0)
		return util_write_all(fd, msg->body.mem.data, (size_t)msg->body.len);
	chunk = util_malloc(SPOOL_COPY_CHUNK);
	while (off < msg->body.len) {
		ssize_t r = body_read(&msg->body, off, chunk, SPOOL_COPY_CHUNK);

		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			free(chunk);
			return -1;
		}
		if (util_write_all(fd, chunk, (size_t)r) != 0) {
			free(chunk);
			return -1;
		}
		off += (unsigned long long)r;
	}
	free(chunk);
	return 0;
}

/* commit_rename - move tmp/ID to q/ID without ever replacing an entry */

static int commit_rename(const struct spool_area *a, const char *from, const char *to)
{
	if (renameat2(a->tmp, from, a->q, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* File systems without RENAME_NOREPLACE: link() refuses to replace too. */
	if (linkat(a->tmp, from, a->q, to, 0) != 0)
		return -1;
	(void)unlinkat(a->tmp, from, 0);
	return 0;
}

/* store_in_area - the commit protocol proper */

static int store_in_area(const struct spool_area *a, const struct envelope *env,
			 const struct message *msg, const char *id, const char *reason,
			 struct error *err)
{
	struct buf text = BUF_INIT;
	int fd, saved;
	const char *what;

	envelope_text(&text, spool_now(), env, msg, reason);
	fd = openat(a->tmp, id, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		what = "create";
		goto fail_nofile;
	}
	what = "write";
	if (util_write_all(fd, text.data, text.len) != 0 ||
	    util_write_all(fd, msg->header.data ? msg->header.data : "", msg->header.len) != 0 ||
	    util_write_all(fd, "\r\n", 2) != 0 || write_body(fd, msg) != 0)
		goto fail;
	spool_crash_point("store-written");
	what = "fsync";
	if (fsync(fd) != 0)
		goto fail;
	spool_crash_point("store-fsynced");
	what = "close";
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	what = "commit";
	if (commit_rename(a, id, id) != 0)
		goto fail;
	spool_crash_point("store-renamed");
	what = "fsync the directory of";
	if (fsync_dir(a->q) != 0) {
		/* The entry is in place but maybe not durable: still an error,
		 * and the entry stays (delivering it later is harmless). */
		saved = errno;
		buf_free(&text);
		return error_set(err, EX_CANTCREAT, "cannot fsync queue directory %s/q: %s",
				 a->path, strerror(saved));
	}
	spool_crash_point("store-dirsynced");
	buf_free(&text);
	return 0;

fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	(void)unlinkat(a->tmp, id, 0);
	errno = saved;
fail_nofile:
	saved = errno;
	buf_free(&text);
	if (saved == EEXIST)
		return error_set(err, EX_CANTCREAT, "queue id %s is already in use in %s", id,
				 a->path);
	return error_set(err, EX_CANTCREAT, "cannot %s queue file %s/tmp/%s: %s%s", what, a->path,
			 id, strerror(saved),
			 saved == ENOSPC || saved == EFBIG || saved == EDQUOT
			     ? " (free space in the queue directory)"
			 : saved == EROFS || saved == EACCES ? " (make [queue] dir writable)"
							     : "");
}

/*
 * hint_first_time - a deferral that points at the relay's configuration
 * (relay_hint.h) is logged at error level when it first appears for a
 * message: otherwise it waits, at warning level, until max_age.
 */
static void hint_first_time(const char *id, const char *before, const char *now)
{
	enum relay_hint kind = relay_hint_classify(now);

	if (kind == RELAY_HINT_NONE || relay_hint_classify(before) == kind)
		return;
	log_msg(LOG_LEVEL_ERROR,
		"%s: the relay's configuration refuses this mail (%s), not the message; it stays"
		" queued until max_age: %s",
		id, relay_hint_mark(kind), now);
}

/* spool_store - durably store one message; 0 only when it is on disk */

int spool_store(const struct config *cfg, const struct envelope *env, const struct message *msg,
		const char *queue_id, const char *reason, struct error *err)
{
	struct spool_area a;
	struct sigaction ign, old;
	char id[SPOOL_ID_MAX];
	int rc;

	if (env->rcpts.n == 0)
		util_panic("spool_store: no recipients");
	if (area_open(cfg->queue_dir, geteuid(), 1, &a, err) != 0)
		return err->status;
	if (queue_id && id_valid(queue_id)) {
		snprintf(id, sizeof(id), "%s", queue_id);
	} else {
		spool_make_id(id, sizeof(id));
		if (queue_id)
			log_msg(LOG_LEVEL_WARNING,
				"queue id \"%s\" is not a safe file name; stored as %s", queue_id,
				id);
	}
	/* Under RLIMIT_FSIZE a write past the limit raises SIGXFSZ, whose
	 * default action kills us silently; we want EFBIG and exit 73. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGXFSZ, &ign, &old);
	rc = store_in_area(&a, env, msg, id, reason, err);
	if (rc == EX_CANTCREAT && strstr(err->text, "already in use") && queue_id) {
		/* Two processes chose one id (a caller-made id): keep the mail. */
		spool_make_id(id, sizeof(id));
		log_msg(LOG_LEVEL_WARNING, "queue id %s was taken; stored as %s", queue_id, id);
		error_clear(err);
		rc = store_in_area(&a, env, msg, id, reason, err);
	}
	sigaction(SIGXFSZ, &old, 0);
	area_close(&a);
	if (rc == 0)
		hint_first_time(id, 0, reason);
	return rc;
}

/* ====================================================================
 * State file, failure records, notices
 * ==================================================================== */

/* state_write - replace q/ID.st atomically; durable when recipients are done */

static void state_write(const struct spool_area *a, const struct spool_entry *e, int durable)
{
	struct buf text = BUF_INIT;
	char tmpname[SPOOL_ID_MAX + 32], stname[SPOOL_ID_MAX + 4];
	int fd;

	spool_state_format(&text, e);
	snprintf(tmpname, sizeof(tmpname), "%s.st.%ld", e->id, (long)getpid());
	snprintf(stname, sizeof(stname), "%s.st", e->id);
	(void)unlinkat(a->tmp, tmpname, 0);
	fd = openat(a->tmp, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	area_adopt(a, fd);
	if (util_write_all(fd, text.data, text.len) != 0 || (durable && fsync(fd) != 0)) {
		close(fd);
		(void)unlinkat(a->tmp, tmpname, 0);
		goto fail;
	}
	close(fd);
	if (renameat(a->tmp, tmpname, a->q, stname) != 0) {
		(void)unlinkat(a->tmp, tmpname, 0);
		goto fail;
	}
	if (durable)
		(void)fsync_dir(a->q);
	buf_free(&text);
	return;
fail:
	log_msg(LOG_LEVEL_WARNING, "%s: cannot record the delivery state in %s: %s", e->id, a->path,
		strerror(errno));
	buf_free(&text);
}

/* reason_file_safe - root appends only to a plain file of the area's owner */

static int reason_file_safe(const struct spool_area *a, int fd)
{
	struct stat sb;

	/* In another user's area a planted hard link (where
	 * protected_hardlinks is off) could make root append to any file. */
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1)
		return 0;
	return sb.st_uid == a->uid || sb.st_uid == geteuid();
}

/* reason_append - add one record to failed/ID.reason */

static void reason_append(const struct spool_area *a, const char *id, const char *text)
{
	char name[SPOOL_ID_MAX + 8];
	struct buf line = BUF_INIT;
	time_t now = time(0);
	struct tm tm;
	char when[32];
	int fd;

	snprintf(name, sizeof(name), "%s.reason", id);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_printf(&line, "%s %s\n", when, text);
	/* O_NONBLOCK: a FIFO planted under this name fails (ENXIO) instead of
	 * waiting for a reader; reason_file_safe() refuses anything else. */
	fd = openat(a->failed, name,
		    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd >= 0 && !reason_file_safe(a, fd)) {
		close(fd);
		fd = -1;
		errno = EPERM;
	}
	if (fd < 0 || util_write_all(fd, line.data, line.len) != 0 || fsync(fd) != 0)
		log_msg(LOG_LEVEL_WARNING, "%s: cannot write %s/failed/%s: %s", id, a->path, name,
			strerror(errno));
	if (fd >= 0) {
		area_adopt(a, fd);
		close(fd);
	}
	buf_free(&line);
}

/* rfc5322_date - "Wed, 25 Nov 2026 18:40:37 +0000", locale-independent */

static void rfc5322_date(struct buf *out, time_t t)
{
	static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	long off;

	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	buf_printf(out, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday], tm.tm_mday,
		   months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		   off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

/* notice_domain - the domain of MAILER-DAEMON */

static void notice_domain(const struct config *cfg, char *out, size_t n)
{
	if (cfg->domain && *cfg->domain) {
		snprintf(out, n, "%s", cfg->domain);
		return;
	}
	if (gethostname(out, n) != 0 || *out == 0)
		snprintf(out, n, "localhost");
	out[n - 1] = 0;
}

/* longest_line - longest CRLF-terminated line in b, without the CRLF */

static size_t longest_line(const struct buf *b)
{
	size_t best = 0, start = 0;

	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] == '\n') {
			size_t n = i - start;

			if (n > 0 && b->data[i - 1] == '\r')
				n--;
			if (n > best)
				best = n;
			start = i + 1;
		}
	return best;
}

/* notice_send - queue a failure notice about e (never about a notice) */

static void notice_send(const struct config *cfg, const struct spool_entry *e, int fd,
			const char *reason, const struct strlist *failed, const struct strlist *why)
{
	struct envelope nenv;
	struct message nmsg;
	struct error nerr;
	struct buf orig = BUF_INIT;
	char id[SPOOL_ID_MAX], domain[256];
	const char *to;
	int eightbit = e->has_8bit;

	if (cfg->bounce_to == 0 || *cfg->bounce_to == 0)
		return;
	/* The null sender marks a notice (RFC 5321 4.5.5): a notice about
	 * it could loop forever, as nullmailer's spool learned (issue #69). */
	if (e->env.sender == 0 || *e->env.sender == 0)
		return;
	to = strcmp(cfg->bounce_to, "sender") == 0 ? e->env.sender : cfg->bounce_to;
	notice_domain(cfg, domain, sizeof(domain));
	spool_make_id(id, sizeof(id));
	envelope_init(&nenv);
	nenv.sender = util_strdup("");
	strlist_add(&nenv.rcpts, to);
	message_init(&nmsg);
	buf_printf(&nmsg.header, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", domain);
	buf_printf(&nmsg.header, "To: <%s>\r\n", to);
	buf_puts(&nmsg.header, "Subject: Undelivered Mail Returned to Sender\r\nDate: ");
	rfc5322_date(&nmsg.header, time(0));
	buf_printf(&nmsg.header, "\r\nMessage-ID: <%s.notice@%s>\r\n", id, domain);
	buf_puts(&nmsg.header, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	buf_printf(&nmsg.header, "Content-Type: text/plain; charset=%s\r\n",
		   eightbit ? "utf-8" : "us-ascii");
	buf_printf(&nmsg.header, "Content-Transfer-Encoding: %s\r\n", eightbit ? "8bit" : "7bit");
	buf_printf(&nmsg.body.mem,
		   "This is relayshim on %s.\r\n\r\n"
		   "Your message could not be delivered to one or more recipients.\r\n\r\n"
		   "Queue ID: %s\r\nSender: <%s>\r\nReason: %s\r\n\r\nFailed recipients:\r\n",
		   domain, e->id, e->env.sender, reason);
	for (size_t i = 0; i < failed->n; i++)
		buf_printf(&nmsg.body.mem, "  <%s>%s%s\r\n", failed->v[i],
			   why && i < why->n ? ": " : "", why && i < why->n ? why->v[i] : "");
	buf_puts(&nmsg.body.mem, "\r\n--- The header of the message follows ---\r\n\r\n");
	if (e->header_len <= 1024 * 1024) {
		buf_reserve(&orig, (size_t)e->header_len);
		if (pread_all(fd, orig.data, (size_t)e->header_len, (off_t)e->data_off) == 0)
			buf_append(&nmsg.body.mem, orig.data, (size_t)e->header_len);
	}
	nmsg.body.len = nmsg.body.mem.len;
	nmsg.has_8bit = eightbit;
	nmsg.longest_line = longest_line(&nmsg.header);
	if (longest_line(&nmsg.body.mem) > nmsg.longest_line)
		nmsg.longest_line = longest_line(&nmsg.body.mem);
	if (spool_store(cfg, &nenv, &nmsg, id, 0, &nerr) != 0)
		log_msg(LOG_LEVEL_ERROR, "%s: cannot queue the failure notice to <%s>: %s", e->id,
			to, nerr.text);
	else
		log_msg(LOG_LEVEL_INFO, "%s: failure notice %s queued for <%s>", e->id, id, to);
	buf_free(&orig);
	envelope_free(&nenv);
	message_free(&nmsg);
}

/* log_result - one log_delivery() line */

static void log_result(enum log_level level, const struct spool_entry *e, const struct strlist *to,
		       const char *status, const char *relay, const char *dsn, const char *text)
{
	struct log_record rec;

	memset(&rec, 0, sizeof(rec));
	rec.level = level;
	rec.queue_id = e->id;
	rec.from = e->env.sender;
	rec.to = to;
	rec.relay = relay;
	rec.status = status;
	rec.dsn = dsn && *dsn ? dsn : 0;
	rec.delay = spool_now() - e->created;
	rec.size = e->header_len + 2 + e->body_len;
	rec.text = text;
	rec.uid = (unsigned long)e->owner; /* root's worker: the submitter, not root */
	rec.has_uid = 1;
	log_delivery(&rec);
}

/* entry_give_up - failed/ID + reason, error log, notice; keep = others still pending */

static void entry_give_up_notify(const struct config *cfg, const struct spool_area *a, int fd,
				 const struct spool_entry *e, const char *reason,
				 const struct strlist *failed, const struct strlist *why, int keep,
				 int notify)
{
	char stname[SPOOL_ID_MAX + 4];
	struct buf rec = BUF_INIT;

	/* Reason first: a crash before the move leaves the entry queued
	 * (retried, moved again later), never a message without a reason. */
	buf_puts(&rec, reason);
	for (size_t i = 0; i < failed->n; i++)
		buf_printf(&rec, "%s<%s>%s%s", i ? ", " : "; recipients: ", failed->v[i],
			   why && i < why->n ? " " : "", why && i < why->n ? why->v[i] : "");
	reason_append(a, e->id, rec.data);
	if (linkat(a->q, e->id, a->failed, e->id, 0) != 0 && errno != EEXIST)
		log_msg(LOG_LEVEL_WARNING, "%s: cannot link into %s/failed: %s", e->id, a->path,
			strerror(errno));
	(void)fsync_dir(a->failed);
	if (!keep) {
		snprintf(stname, sizeof(stname), "%s.st", e->id);
		(void)unlinkat(a->q, e->id, 0);
		(void)unlinkat(a->q, stname, 0);
		(void)fsync_dir(a->q);
	}
	log_msg(LOG_LEVEL_ERROR, "%s: delivery failed, moved to %s/failed: %s", e->id, a->path,
		rec.data);
	log_result(LOG_LEVEL_ERROR, e, failed, "bounced", 0, 0, reason);
	if (notify)
		notice_send(cfg, e, fd, reason, failed, why);
	buf_free(&rec);
}

/* entry_give_up - the same, with a failure notice per bounce_to */

static void entry_give_up(const struct config *cfg, const struct spool_area *a, int fd,
			  const struct spool_entry *e, const char *reason,
			  const struct strlist *failed, const struct strlist *why, int keep)
{
	entry_give_up_notify(cfg, a, fd, e, reason, failed, why, keep, 1);
}

/* ====================================================================
 * Delivering one entry
 * ==================================================================== */

enum entry_result {
	ENTRY_DONE,	     /* delivered and removed */
	ENTRY_DEFERRED,	     /* tried, temporary failure, still queued */
	ENTRY_FAILED,	     /* given up: failed/ */
	ENTRY_NOT_DUE,	     /* not tried: next_try in the future */
	ENTRY_BUSY,	     /* locked by another deliverer */
	ENTRY_GONE,	     /* vanished (delivered by someone else) */
	ENTRY_UNREADABLE,    /* not ours to read */
	ENTRY_LOCAL_FAULT,   /* could not be read: retried later, not the relay's fault */
	ENTRY_LEFT_TO_OWNER, /* another user's, only its owner's worker may send it */
};

/* The relay connection of one pass, and whether it could be opened at all. */
struct relay_link {
	struct smtp_session *session;
	int unreachable; /* the last attempt could not even connect */
};

/* failure_is_permanent - give up on the message? */

static int failure_is_permanent(const struct error *err)
{
	if (err->temporary)
		return 0;
	/* A configuration mistake (credentials over an unprotected link) or
	 * a local fault is fixed on our side: keep the mail until it is. */
	switch (err->status) {
	case EX_CONFIG:
	case EX_SOFTWARE:
	case EX_OSERR:
	case EX_OSFILE:
	case EX_IOERR:
	case EX_CANTCREAT:
		return 0;
	default:
		return 1;
	}
}

/* entry_send - one transaction, on the pass's relay session when there is one */

static int entry_send(const struct config *cfg, struct relay_link *link, const struct envelope *env,
		      const struct message *msg, struct smtp_result *res, struct error *err)
{
	if (link)
		link->unreachable = 0;
	if (spool_transport)
		return spool_transport(cfg, env, msg, res, err);
	if (link == 0)
		return smtp_deliver(cfg, env, msg, res, err);
	/*
	 * After an outage 200 messages go out over one connection, not 200.
	 * A relay that cannot be opened is down for every area, which no
	 * entry can cause: link->unreachable tells the pass so.
	 */
	return smtp_session_deliver(&link->session, cfg, env, msg, res, &link->unreachable, err);
}

/* entry_deliver - lock, load, send, and settle one entry */

/* entry_owner_name - the login name of an area's owner, for Received */

static void entry_owner_name(uid_t uid, char *out, size_t n)
{
	struct passwd *pw = getpwuid(uid);

	if (pw && pw->pw_name && *pw->pw_name)
		snprintf(out, n, "%s", pw->pw_name);
	else
		snprintf(out, n, "uid%lu", (unsigned long)uid);
}

/* trace_is_ours - a Received field as rewrite_message() writes it */

static int trace_is_ours(const struct header_field *f)
{
	size_t len;
	const char *v;

	if (!header_name_is(f, "Received"))
		return 0;
	v = header_value(f, &len);
	return memmem(v, len, "(relayshim)", 11) != 0;
}

/*
 * entry_revalidate - an entry of another user's area goes out only as that
 * user could have sent it through sendmail: the trace at its top is made
 * again for the area's owner (whose uid the area's fstat gave, whatever the
 * entry says), and the header repair, sender policy and size limit of the
 * submission path run again, with this process's configuration.
 */
static int entry_revalidate(const struct config *cfg, const struct spool_area *a,
			    const struct spool_entry *e, struct message *msg, struct envelope *env,
			    struct error *err)
{
	struct header h = HEADER_INIT;
	struct submit sub;
	char user[256], host[256];
	unsigned char rnd[16];
	double now = spool_now();
	time_t when;
	size_t i = 0;

	/* The owner's own sendmail put one Received (and a RelayTag above it)
	 * at the top; rewrite_message() makes both again. Anything forged
	 * below them stays what it is: text the user wrote. */
	header_parse(&h, msg->header.data ? msg->header.data : "", msg->header.len);
	while (i < h.n) {
		if (header_name_is(h.v + i, "RelayTag"))
			i++;
		else if (trace_is_ours(h.v + i))
			header_remove(&h, i);
		else
			break;
	}
	buf_reset(&msg->header);
	header_serialize(&h, &msg->header);
	header_free(&h);

	entry_owner_name(a->uid, user, sizeof(user));
	if (gethostname(host, sizeof(host) - 1) != 0 || *host == 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = 0;
	memset(&sub, 0, sizeof(sub));
	sub.bs_mode = 1; /* the envelope is the entry's */
	sub.user = user;
	sub.uid = (unsigned long)a->uid;
	sub.hostname = host;
	sub.queue_id = e->id;
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		for (size_t k = 0; k < sizeof(rnd); k++)
			rnd[k] = (unsigned char)spool_random();
	/* The submission's time, when the entry's claim is plausible. */
	when = e->created > 0 && e->created <= now ? (time_t)e->created : (time_t)now;
	return rewrite_message(cfg, &sub, msg, env, when, rnd, sizeof(rnd), err);
}

static enum entry_result entry_deliver(const struct config *cfg, const struct spool_area *a,
				       const char *id, int force, int wait_lock, double *next_due,
				       struct relay_link *link, struct error *err)
{
	struct spool_entry e;
	struct envelope denv;
	struct message msg;
	struct smtp_result res;
	struct stat fsb, psb;
	enum entry_result result;
	double now;
	int fd, rc, local_fault = 0;

	error_clear(err);
	fd = open_owned(a->q, id, O_RDONLY, a->uid, 0);
	if (fd < 0)
		return errno == ENOENT ? ENTRY_GONE : ENTRY_UNREADABLE;
	/* Anyone may flock() a file they can read: in another user's area
	 * waiting for the lock would let that user stop us forever. */
	if (a->uid != geteuid())
		wait_lock = 0;
	if (lock_entry(fd, wait_lock) != 0) {
		close(fd);
		return ENTRY_BUSY;
	}
	/* Locked, but maybe after the previous holder removed or replaced
	 * the entry: only the file still linked as q/ID is ours to send. */
	if (fstat(fd, &fsb) != 0 || fstatat(a->q, id, &psb, AT_SYMLINK_NOFOLLOW) != 0 ||
	    fsb.st_ino != psb.st_ino || fsb.st_dev != psb.st_dev) {
		close(fd);
		return ENTRY_GONE;
	}
	spool_entry_init(&e);
	if (entry_read(a->q, fd, id, &e) != 0) {
		struct strlist none = STRLIST_INIT;

		snprintf(e.id, sizeof(e.id), "%s", id);
		entry_give_up(cfg, a, fd, &e, "corrupt queue entry (unreadable envelope)", &none, 0,
			      0);
		spool_entry_free(&e);
		close(fd);
		error_set(err, EX_DATAERR, "queue entry %s is corrupt; moved to %s/failed", id,
			  a->path);
		return ENTRY_FAILED;
	}
	now = spool_now();
	if (!force && e.next_try > now) {
		if (e.next_try < *next_due)
			*next_due = e.next_try;
		spool_entry_free(&e);
		close(fd);
		return ENTRY_NOT_DUE;
	}
	/* An entry we could send but not remove (spool remounted read-only)
	 * would go out again at every pass: leave it alone until it can. */
	if (faccessat(a->q, ".", W_OK, AT_EACCESS) != 0) {
		log_msg(LOG_LEVEL_WARNING,
			"%s: not delivering: cannot remove it afterwards from %s/q: %s", id,
			a->path, strerror(errno));
		if (now + spool_retry_base() < *next_due)
			*next_due = now + spool_retry_base();
		spool_entry_free(&e);
		close(fd);
		return ENTRY_NOT_DUE;
	}
	if (cfg->queue_max_age_s > 0 && now - e.created > (double)cfg->queue_max_age_s) {
		struct buf why = BUF_INIT;
		struct strlist left = STRLIST_INIT;

		buf_printf(&why, "message expired after %.0f seconds in the queue (max_age %lu s)",
			   now - e.created, cfg->queue_max_age_s);
		if (e.last_error || e.first_error)
			buf_printf(&why, "; last error: %s",
				   e.last_error ? e.last_error : e.first_error);
		for (size_t i = 0; i < e.env.rcpts.n; i++)
			if (!strlist_contains_ci(&e.done, e.env.rcpts.v[i]))
				strlist_add(&left, e.env.rcpts.v[i]);
		entry_give_up(cfg, a, fd, &e, why.data, &left, 0, 0);
		error_set(err, EX_UNAVAILABLE, "%s: %s", id, why.data);
		buf_free(&why);
		strlist_free(&left);
		spool_entry_free(&e);
		close(fd);
		return ENTRY_FAILED;
	}

	/* The envelope for this attempt: recipients not done yet. */
	envelope_init(&denv);
	denv.sender = util_strdup(e.env.sender);
	for (size_t i = 0; i < e.env.rcpts.n; i++)
		if (!strlist_contains_ci(&e.done, e.env.rcpts.v[i]))
			strlist_add(&denv.rcpts, e.env.rcpts.v[i]);
	denv.dsn_notify = e.env.dsn_notify ? util_strdup(e.env.dsn_notify) : 0;
	denv.dsn_ret = e.env.dsn_ret ? util_strdup(e.env.dsn_ret) : 0;
	denv.dsn_envid = e.env.dsn_envid ? util_strdup(e.env.dsn_envid) : 0;
	denv.smtputf8 = e.env.smtputf8;
	smtp_result_init(&res);
	message_init(&msg);
	if (denv.rcpts.n == 0) {
		rc = 0; /* every recipient done: only the removal was missing */
	} else if (entry_message(fd, &e, &msg) != 0) {
		error_set(err, EX_IOERR, "cannot read queue entry %s/q/%s: %s", a->path, id,
			  strerror(errno));
		err->temporary = 1;
		rc = EX_IOERR;
		local_fault = 1;
	} else if (a->uid != geteuid() && *denv.sender == 0 && cfg->allowed_sender_domains.n > 0 &&
		   !cfg->allow_null_sender) {
		/* A failure notice its owner's worker queued: our policy would
		 * refuse the null sender and lose it; that worker sends it. */
		result = ENTRY_LEFT_TO_OWNER;
		goto done;
	} else if (a->uid != geteuid() &&
		   (rc = entry_revalidate(cfg, a, &e, &msg, &denv, err)) != 0) {
		/* Refused by our policy: nobody to notify but the sender it
		 * claims, who may never have written it. */
		struct strlist why = STRLIST_INIT;
		struct buf text = BUF_INIT;

		buf_printf(&text, "refused at delivery from %s: %s", a->path, err->text);
		for (size_t i = 0; i < denv.rcpts.n; i++)
			strlist_add(&why, err->text);
		if (err->temporary || !failure_is_permanent(err)) {
			local_fault = 1;
		} else {
			entry_give_up_notify(cfg, a, fd, &e, text.data, &denv.rcpts, &why, 0, 0);
			result = ENTRY_FAILED;
			strlist_free(&why);
			buf_free(&text);
			goto done;
		}
		strlist_free(&why);
		buf_free(&text);
	} else {
		spool_crash_point("deliver-before");
		rc = entry_send(cfg, link, &denv, &msg, &res, err);
	}

	if (rc == 0) {
		struct strlist accepted = STRLIST_INIT;

		spool_crash_point("deliver-after");
		smtp_result_accepted(&res, &denv, &accepted);
		if (accepted.n > 0)
			log_result(LOG_LEVEL_INFO, &e, &accepted, "sent", res.relay, res.dsn,
				   res.reply);
		if (res.deferred.n > 0) {
			/* Partial: remember who is done, retry the others. */
			for (size_t i = 0; i < accepted.n; i++)
				strlist_add(&e.done, accepted.v[i]);
			for (size_t i = 0; i < res.rejected.n; i++)
				strlist_add(&e.done, res.rejected.v[i]);
			e.attempts++;
			e.last_try = now;
			e.next_try = now + spool_backoff(e.attempts);
			hint_first_time(e.id, e.last_error ? e.last_error : e.first_error,
					res.deferred_replies.n ? res.deferred_replies.v[0] : 0);
			free(e.last_error);
			e.last_error =
			    util_strdup(res.deferred_replies.n ? res.deferred_replies.v[0]
							       : "recipient deferred");
			state_write(a, &e, 1);
			if (res.rejected.n > 0)
				entry_give_up(cfg, a, fd, &e, "recipients refused by the relay",
					      &res.rejected, &res.rejected_replies, 1);
			log_result(LOG_LEVEL_WARNING, &e, &res.deferred, "deferred", res.relay, 0,
				   e.last_error);
			error_set(err, EX_TEMPFAIL, "%s: %zu recipient(s) deferred: %s", id,
				  res.deferred.n, e.last_error);
			err->temporary = 1;
			result = ENTRY_DEFERRED;
		} else if (res.rejected.n > 0) {
			entry_give_up(cfg, a, fd, &e, "recipients refused by the relay",
				      &res.rejected, &res.rejected_replies, 0);
			result = ENTRY_DONE;
		} else {
			char stname[SPOOL_ID_MAX + 4];

			snprintf(stname, sizeof(stname), "%s.st", id);
			if (unlinkat(a->q, id, 0) != 0 && errno != ENOENT)
				log_msg(LOG_LEVEL_ERROR,
					"%s: delivered but cannot remove %s/q/%s: %s; "
					"it may be sent again",
					id, a->path, id, strerror(errno));
			(void)unlinkat(a->q, stname, 0);
			spool_crash_point("deliver-removed");
			/* Without this fsync a crash could bring the entry
			 * back and send it twice. */
			(void)fsync_dir(a->q);
			result = ENTRY_DONE;
		}
		strlist_free(&accepted);
	} else if (!failure_is_permanent(err)) {
		e.attempts++;
		e.last_try = now;
		e.next_try = now + spool_backoff(e.attempts);
		hint_first_time(e.id, e.last_error ? e.last_error : e.first_error, err->text);
		free(e.last_error);
		e.last_error = util_strdup(err->text);
		state_write(a, &e, 0);
		log_result(LOG_LEVEL_WARNING, &e, &denv.rcpts, "deferred", res.relay, 0, err->text);
		result = local_fault ? ENTRY_LOCAL_FAULT : ENTRY_DEFERRED;
	} else {
		struct strlist why = STRLIST_INIT;

		for (size_t i = 0; i < denv.rcpts.n; i++)
			strlist_add(&why, err->text);
		entry_give_up(cfg, a, fd, &e, err->text, &denv.rcpts, &why, 0);
		strlist_free(&why);
		result = ENTRY_FAILED;
	}
done:
	smtp_result_free(&res);
	message_free(&msg);
	envelope_free(&denv);
	spool_entry_free(&e);
	close(fd); /* releases the lock */
	return result;
}

/* ====================================================================
 * Passes over the queue
 * ==================================================================== */

/* list_ids - the committed ids in q/, oldest first (by mtime: ids need not sort) */

struct id_age {
	struct timespec mtime;
	char *id;
};

static int cmp_age(const void *x, const void *y)
{
	const struct id_age *a = x, *b = y;

	if (a->mtime.tv_sec != b->mtime.tv_sec)
		return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
	if (a->mtime.tv_nsec != b->mtime.tv_nsec)
		return a->mtime.tv_nsec < b->mtime.tv_nsec ? -1 : 1;
	return strcmp(a->id, b->id);
}

static void list_ids(const struct spool_area *a, struct strlist *ids, int tidy)
{
	int fd = openat(a->q, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	double now = spool_now();
	struct id_age *ages = 0;
	size_t n = 0, cap = 0;
	unsigned skipped = 0;

	if (fd < 0 || (d = fdopendir(fd)) == 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != 0) {
		char *dot = strchr(de->d_name, '.');
		struct stat sb;

		if (de->d_name[0] == '.')
			continue;
		if (dot == 0) {
			if (fstatat(a->q, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			/* Only the owner's plain files are entries. A FIFO, a
			 * directory, a symlink or a stranger's file is skipped,
			 * every pass, without being opened or retried. */
			if (!S_ISREG(sb.st_mode) || sb.st_uid != a->uid || !id_valid(de->d_name)) {
				skipped++;
				continue;
			}
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				ages = util_realloc(ages, cap * sizeof(*ages));
			}
			ages[n].mtime = sb.st_mtim;
			ages[n++].id = util_strdup(de->d_name);
		} else if (tidy && strcmp(dot, ".st") == 0) {
			/* A state file whose entry is gone: a crash between the two unlinks. */
			char id[SPOOL_ID_MAX];

			if ((size_t)(dot - de->d_name) < sizeof(id)) {
				memcpy(id, de->d_name, (size_t)(dot - de->d_name));
				id[dot - de->d_name] = 0;
				if (fstatat(a->q, id, &sb, AT_SYMLINK_NOFOLLOW) != 0 &&
				    errno == ENOENT)
					(void)unlinkat(a->q, de->d_name, 0);
			}
		}
	}
	closedir(d);
	if (skipped && tidy)
		log_msg(LOG_LEVEL_WARNING,
			"%s/q: skipped %u name(s) that are not plain files of uid %lu; remove them",
			a->path, skipped, (unsigned long)a->uid);
	if (n > 1)
		qsort(ages, n, sizeof(*ages), cmp_age);
	for (size_t i = 0; i < n; i++)
		strlist_add_nodup(ids, ages[i].id);
	free(ages);

	/* tmp/ debris from crashed writers: invisible, removed when old. */
	if (tidy && (fd = openat(a->tmp, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if ((d = fdopendir(fd)) == 0) {
			close(fd);
			return;
		}
		while ((de = readdir(d)) != 0) {
			struct stat sb;

			if (de->d_name[0] == '.')
				continue;
			if (fstatat(a->tmp, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    now - (double)sb.st_mtime > SPOOL_TMP_MAX_AGE)
				(void)unlinkat(a->tmp, de->d_name, 0);
		}
		closedir(d);
	}
}

/* uid_name - the uid of an area name ("UID" or "UID.k", see area_name), or -1 */

static long uid_name(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || v < 0 || v > (long)(uid_t)-1)
		return -1;
	if (*end == 0)
		return v;
	if (end[0] == '.' && end[1] >= '1' && end[1] < '0' + SPOOL_AREA_NAMES && end[2] == 0)
		return v;
	return -1;
}

/* scope_areas - the areas this process may handle: its own; all of them for root */

static int scope_areas(const struct config *cfg, struct spool_area **out, size_t *n, int tidy,
		       struct error *err)
{
	struct spool_area a;
	uid_t me = geteuid();
	unsigned refused = 0;
	DIR *d;
	struct dirent *de;
	int topfd;

	*out = 0;
	*n = 0;
	/* A missing spool holds nothing; a spool we must not trust is an error. */
	if (cfg->queue_dir == 0 || *cfg->queue_dir == 0 || access(cfg->queue_dir, F_OK) != 0)
		return 0;
	if ((topfd = spool_top_open(cfg->queue_dir, 0, err)) < 0)
		return err->status;
	if (me != 0) {
		/* Every name our areas may have: a squatter may hold the first. */
		for (unsigned k = 0; k < SPOOL_AREA_NAMES; k++) {
			char name[48];
			struct error ignored;

			area_name(name, sizeof(name), me, k);
			error_clear(&ignored);
			if (area_open_named(topfd, cfg->queue_dir, name, me, 0, 0, &a, &ignored) ==
			    0) {
				*out = util_realloc(*out, (*n + 1) * sizeof(a));
				(*out)[(*n)++] = a;
			}
		}
		close(topfd);
		return 0;
	}
	if ((d = opendir(cfg->queue_dir)) == 0) {
		close(topfd);
		return 0;
	}
	while ((de = readdir(d)) != 0) {
		long uid = uid_name(de->d_name);
		struct error aerr;

		if (uid < 0)
			continue;
		error_clear(&aerr);
		/* area_open_named() checks that the area belongs to its uid;
		 * in a pass (tidy) root moves a squatter out of the way. */
		if (area_open_named(topfd, cfg->queue_dir, de->d_name, (uid_t)uid, 0, tidy, &a,
				    &aerr) != 0) {
			/* One line per area, a bounded number per scan: a user
			 * who makes a million names gets a count, not a flood. */
			if (aerr.status && ++refused <= SPOOL_WARN_MAX && tidy)
				log_msg(LOG_LEVEL_WARNING, "skipping queue area: %s", aerr.text);
			continue;
		}
		*out = util_realloc(*out, (*n + 1) * sizeof(a));
		(*out)[(*n)++] = a;
	}
	closedir(d);
	close(topfd);
	if (refused > SPOOL_WARN_MAX && tidy)
		log_msg(LOG_LEVEL_WARNING, "skipped %u more queue area(s) in %s",
			refused - SPOOL_WARN_MAX, cfg->queue_dir);
	return 0;
}

/* scope_free - close the areas */

static void scope_free(struct spool_area *areas, size_t n)
{
	for (size_t i = 0; i < n; i++)
		area_close(&areas[i]);
	free(areas);
}

struct pass_stats {
	unsigned delivered;
	unsigned deferred;
	unsigned failed;
	unsigned remaining; /* entries left in scope after the pass */
	unsigned tried;
	unsigned streak;    /* consecutive connection failures */
	int aborted;	    /* stopped early: the relay looks down */
	double next_due;    /* earliest next_try of what is left */
	struct error last;  /* last delivery error */
	struct error scope; /* the spool itself was refused (spool_top_check) */
};

/*
 * run_pass - one pass over every area in scope; tried (may be NULL) = ids
 * already tried.
 *
 * Fairness: every area gets its turn in every pass. What one area holds
 * ends only that area's turn: SPOOL_STREAK_MAX temporary failures in a row
 * (its recipients' domains may be the ones failing), or SPOOL_AREA_BUDGET
 * attempts (the rest waits for the next pass, due at once). Entries that
 * cannot even be read (ENTRY_LOCAL_FAULT) count for nothing. Only a relay
 * that cannot be connected to, SPOOL_STREAK_MAX times in a row, ends the
 * whole pass: no entry can cause that.
 */
static void run_pass(const struct config *cfg, int force, int wait_lock, struct strlist *tried,
		     struct pass_stats *st)
{
	struct spool_area *areas;
	size_t nareas;
	struct error err;
	struct relay_link link = {0, 0}; /* one relay connection per pass */
	unsigned areas_ended = 0, areas_tried = 0;

	memset(st, 0, sizeof(*st));
	st->next_due = HUGE_VAL;
	if (scope_areas(cfg, &areas, &nareas, 1, &st->scope) != 0)
		return;
	for (size_t ai = 0; ai < nareas; ai++) {
		struct strlist ids = STRLIST_INIT;
		unsigned area_streak = 0, budget = SPOOL_AREA_BUDGET;
		int area_ended = 0, area_tried = 0;

		list_ids(&areas[ai], &ids, 1);
		for (size_t i = 0; i < ids.n; i++) {
			enum entry_result r;

			if (spool_time_is_up())
				st->aborted = 1; /* -q --deadline: what is left stays queued */
			if (st->aborted || area_ended ||
			    (tried && strlist_contains_ci(tried, ids.v[i]))) {
				st->remaining++;
				continue;
			}
			if (budget == 0) {
				/* This area had its share; the rest comes next pass. */
				st->remaining++;
				st->next_due = spool_now();
				continue;
			}
			r = entry_deliver(cfg, &areas[ai], ids.v[i], force, wait_lock,
					  &st->next_due, &link, &err);
			if (r != ENTRY_GONE && r != ENTRY_UNREADABLE && r != ENTRY_NOT_DUE &&
			    r != ENTRY_BUSY && r != ENTRY_LEFT_TO_OWNER) {
				budget--;
				area_tried = 1;
			}
			switch (r) {
			case ENTRY_DONE:
				st->delivered++;
				st->tried++;
				st->streak = 0;
				area_streak = 0;
				break;
			case ENTRY_DEFERRED:
				st->deferred++;
				st->tried++;
				st->remaining++;
				st->last = err;
				if (link.unreachable || spool_transport) {
					if (++st->streak >= SPOOL_STREAK_MAX)
						st->aborted = 1;
				} else {
					st->streak = 0;
				}
				if (++area_streak >= SPOOL_STREAK_MAX)
					area_ended = 1;
				break;
			case ENTRY_LOCAL_FAULT:
				st->deferred++;
				st->tried++;
				st->remaining++;
				st->last = err;
				break;
			case ENTRY_FAILED:
				st->failed++;
				st->tried++;
				st->streak = 0;
				area_streak = 0;
				st->last = err;
				break;
			case ENTRY_NOT_DUE:
				st->remaining++;
				break;
			case ENTRY_LEFT_TO_OWNER:
				break;
			case ENTRY_BUSY:
				/* In another user's area the lock holder is that
				 * user (its worker, or a flock() meant to keep us
				 * polling): not ours to wait for. */
				if (areas[ai].uid != geteuid())
					break;
				st->remaining++;
				if (st->next_due > spool_now() + 1.0)
					st->next_due = spool_now() + 1.0;
				break;
			case ENTRY_GONE:
			case ENTRY_UNREADABLE:
				break;
			}
			if (tried && r != ENTRY_GONE && r != ENTRY_UNREADABLE)
				strlist_add(tried, ids.v[i]);
		}
		areas_tried += area_tried;
		areas_ended += area_ended;
		strlist_free(&ids);
	}
	/* Every area that was tried ended on failures and nothing went out:
	 * the relay looks down; the worker backs off as a whole. */
	if (areas_tried > 0 && areas_ended == areas_tried && st->delivered == 0)
		st->aborted = 1;
	smtp_session_close(link.session);
	scope_free(areas, nareas);
}

/* scope_count - how many entries this process could deliver (stops at limit); own = our areas only
 */

static unsigned scope_count(const struct config *cfg, unsigned limit, int own)
{
	struct spool_area *areas;
	size_t nareas;
	struct error err;
	unsigned found = 0;

	error_clear(&err);
	if (scope_areas(cfg, &areas, &nareas, 0, &err) != 0)
		return 0;
	for (size_t ai = 0; ai < nareas && found < limit; ai++) {
		struct strlist ids = STRLIST_INIT;

		if (own && areas[ai].uid != geteuid())
			continue;
		list_ids(&areas[ai], &ids, 0);
		found += (unsigned)ids.n;
		strlist_free(&ids);
	}
	scope_free(areas, nareas);
	return found;
}

/* scope_nonempty - is anything queued that this process could deliver? */

static int scope_nonempty(const struct config *cfg)
{
	return scope_count(cfg, 1, 0) > 0;
}

/* spool_run - sendmail -q: everything now, in the foreground */

int spool_run(const struct config *cfg, struct error *err)
{
	struct strlist tried = STRLIST_INIT;
	struct pass_stats st;
	struct error last;
	unsigned left;

	error_clear(err);
	error_clear(&last);
	/* Repeat while passes make progress: a pass may queue notices, and
	 * an area's budget leaves the rest of it to the next pass. */
	for (;;) {
		run_pass(cfg, 1, 1, &tried, &st);
		if (st.scope.status) {
			strlist_free(&tried);
			*err = st.scope;
			return err->status;
		}
		if (st.last.text[0])
			last = st.last;
		if (st.aborted || st.tried == 0)
			break;
	}
	strlist_free(&tried);
	/* What is left after the last pass (a fresh look, tried or not). */
	if ((left = scope_count(cfg, ~0U, 0)) == 0)
		return 0;
	error_set(err, EX_TEMPFAIL, "%u message(s) remain in the queue%s%s", left,
		  last.text[0] ? "; last error: " : "", last.text);
	err->temporary = 1;
	return EX_TEMPFAIL;
}

/* spool_deliver - deliver one entry of our own area now */

int spool_deliver(const struct config *cfg, const char *queue_id, struct error *err)
{
	struct spool_area a;
	double next_due = HUGE_VAL;
	enum entry_result r;

	if (area_open(cfg->queue_dir, geteuid(), 0, &a, err) != 0)
		return err->status;
	r = entry_deliver(cfg, &a, queue_id, 1, 1, &next_due, 0, err);
	area_close(&a);
	switch (r) {
	case ENTRY_DONE:
		return 0;
	case ENTRY_DEFERRED:
	case ENTRY_LOCAL_FAULT:
		return EX_TEMPFAIL;
	case ENTRY_FAILED:
		return err->status ? err->status : EX_UNAVAILABLE;
	case ENTRY_GONE:
		/* Already delivered by a worker that got there first: fine. */
		return 0;
	default:
		err->temporary = 1;
		return error_set(err, EX_TEMPFAIL, "queue entry %s is busy; it stays queued",
				 queue_id);
	}
}

/* spool_load - one entry of our own area (tests and tools) */

int spool_load(const struct config *cfg, const char *queue_id, struct envelope *env,
	       struct message *msg, struct error *err)
{
	struct spool_area a;
	struct spool_entry e;
	int fd;

	if (!id_valid(queue_id))
		return error_set(err, EX_NOINPUT, "bad queue id \"%s\"", queue_id);
	if (area_open(cfg->queue_dir, geteuid(), 0, &a, err) != 0)
		return err->status;
	fd = open_owned(a.q, queue_id, O_RDONLY, a.uid, 0);
	if (fd < 0) {
		error_set(err, EX_NOINPUT, "no queue entry %s in %s: %s", queue_id, a.path,
			  strerror(errno));
		area_close(&a);
		return err->status;
	}
	spool_entry_init(&e);
	if (entry_read(a.q, fd, queue_id, &e) != 0 || entry_message(fd, &e, msg) != 0) {
		error_set(err, EX_DATAERR, "queue entry %s/q/%s is corrupt", a.path, queue_id);
		message_free(msg);
		spool_entry_free(&e);
		close(fd);
		area_close(&a);
		return err->status;
	}
	*env = e.env;
	envelope_init(&e.env);
	spool_entry_free(&e);
	close(fd);
	area_close(&a);
	return 0;
}

/* ====================================================================
 * The retry worker
 * ==================================================================== */

/* kick_size - how many kicks the area's kick file has seen */

static off_t kick_size(int dirfd)
{
	struct stat sb;

	return fstatat(dirfd, "kick", &sb, AT_SYMLINK_NOFOLLOW) == 0 ? sb.st_size : 0;
}

/* kick_worker - tell a running worker to retry now: one byte more in "kick" */

static void kick_worker(int dirfd)
{
	int fd =
	    openat(dirfd, "kick", O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd >= 0) {
		(void)!write(fd, "k", 1);
		close(fd);
	}
}

/* worker_sleep - sleep until wake or a kick: 1 kicked, 0 time, -1 the area was removed */

static int worker_sleep(int dirfd, double wake, off_t *seen)
{
	double step = spool_retry_base() < 1.0 ? spool_retry_base() : 1.0;

	if (step < 0.05)
		step = 0.05;
	for (;;) {
		double left = wake - spool_now();
		struct timespec ts;
		off_t k;

		struct stat sb;

		if ((k = kick_size(dirfd)) != *seen) {
			*seen = k;
			return 1;
		}
		/* Someone removed the spool under us: nothing left to do. */
		if (fstat(dirfd, &sb) != 0 || sb.st_nlink == 0)
			return -1;
		if (left <= 0)
			return 0;
		if (left > step)
			left = step;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, 0);
	}
}

/* worker_relock - after letting go of the lock: take it again if work arrived */

static int worker_relock(const struct config *cfg, int dirfd)
{
	int fd;

	/* A submitter that committed while we held the lock only kicked
	 * the file; its message is ours unless another worker has started.
	 * Only our own areas count: another user's entry that a pass left
	 * (locked by that user, say) is that user's worker's to deliver,
	 * and must not keep ours alive. */
	if (scope_count(cfg, 1, 1) == 0)
		return -1;
	fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* worker_main - deliver, sleep, repeat; return when nothing is left */

static void worker_main(const struct config *cfg, int dirfd, int lockfd)
{
	struct pass_stats st;
	unsigned idle_rounds = 0;
	int force = 0;
	off_t seen = kick_size(dirfd);

	for (;;) {
		double wake;

		if (seen > 65536) {
			/* Keep the kick file small; a kick lost here only waits for the backoff. */
			int kfd =
			    openat(dirfd, "kick", O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);

			if (kfd >= 0)
				close(kfd);
			seen = kick_size(dirfd);
		}
		run_pass(cfg, force, 0, 0, &st);
		if (st.remaining == 0) {
			force = 0;
			close(lockfd);
			if ((lockfd = worker_relock(cfg, dirfd)) < 0)
				return;
			/* New work arrived meanwhile; should anything else keep the
			 * queue non-empty without a pass seeing it, do not spin. */
			if (st.tried == 0 && worker_sleep(dirfd, spool_now() + 0.05, &seen) < 0)
				return;
			continue;
		}
		if (st.aborted) {
			/* The relay looks down: back off as a whole, not per message.
			 * A pass forced by a kick does not count: 200 submitters
			 * kicking during an outage must not push the next retry to
			 * the cap. */
			if (!force || idle_rounds == 0)
				idle_rounds++;
			wake = spool_now() + spool_backoff(idle_rounds);
		} else {
			idle_rounds = 0;
			wake = st.next_due;
		}
		if (wake == HUGE_VAL)
			wake = spool_now() + spool_retry_base();
		if ((force = worker_sleep(dirfd, wake, &seen)) < 0)
			return;
	}
}

/* worker_detach - become a daemon child: stdio on /dev/null, fds above last closed */

static void worker_detach(int last)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	sigset_t none;

	/* The caller's stdout/stderr may be a pipe someone reads to EOF
	 * (cron, PHP proc_open): holding it would hang them for days. */
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > last)
			close(null);
	}
	if (close_range((unsigned)last + 1, ~0U, 0) != 0) {
		long max = sysconf(_SC_OPEN_MAX);

		for (long fd = last + 1; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
			close((int)fd);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGHUP, SIG_IGN);
	umask(077);
	(void)!chdir("/");
}

/*
 * worker_title - the worker outlives the submission that started it: its
 * command line (sender, recipients) must not stay visible in ps for hours.
 * The argv strings lie in one block that /proc/PID/cmdline shows; glibc's
 * program_invocation_name points at its start. Overwrite it in place
 * (what setproctitle() does), after checking that it is that block.
 */
static void worker_title(uid_t uid)
{
	struct buf cmdline = BUF_INIT;
	char *start = program_invocation_name;
	char title[64];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return;
	for (;;) {
		buf_reserve(&cmdline, 4096);
		r = read(fd, cmdline.data + cmdline.len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		cmdline.len += (size_t)r;
	}
	close(fd);
	if (start && cmdline.len > 1 && memcmp(start, cmdline.data, cmdline.len) == 0) {
		snprintf(title, sizeof(title), "sendmail: queue worker (uid %lu)",
			 (unsigned long)uid);
		memset(start, 0, cmdline.len);
		memcpy(start, title,
		       strlen(title) < cmdline.len - 1 ? strlen(title) : cmdline.len - 1);
	}
	buf_free(&cmdline);
}

/* spool_kick - start a worker unless one runs; never blocks */

void spool_kick(const struct config *cfg)
{
	struct spool_area a;
	struct error err;
	struct config wcfg;
	char *abs;
	int lockfd;
	pid_t pid;

	/* This runs after every successful delivery, queue in use or not: an
	 * empty queue must cost one look, not a lock and two scans. Something
	 * committed right after this look kicks the queue itself. */
	if (!scope_nonempty(cfg))
		return;
	/* No area yet: nothing of ours is queued. Do not create one. */
	if (area_open(cfg->queue_dir, geteuid(), 0, &a, &err) != 0)
		return;
	for (;;) {
		lockfd = openat(a.dir, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (lockfd < 0) {
			area_close(&a);
			return;
		}
		if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
			/* A worker runs: make it look now. */
			close(lockfd);
			kick_worker(a.dir);
			area_close(&a);
			return;
		}
		if (scope_nonempty(cfg))
			break;
		close(lockfd);
		/* Something may have been committed (and only kicked) while we
		 * held the lock: look once more now that it is released. */
		if (!scope_nonempty(cfg)) {
			area_close(&a);
			return;
		}
	}
	/* The worker outlives our cwd: it needs an absolute queue path. */
	abs = realpath(cfg->queue_dir, 0);
	if (abs == 0) {
		close(lockfd);
		area_close(&a);
		return;
	}
	fflush(0);
	pid = fork();
	if (pid < 0) {
		log_msg(LOG_LEVEL_WARNING, "cannot start the queue worker: %s", strerror(errno));
	} else if (pid == 0) {
		/* Double fork + setsid: no zombie for our caller, no controlling tty. */
		setsid();
		pid = fork();
		if (pid != 0) {
			/* The worker's pid is in the lock file before our caller
			 * returns (tools and tests find the worker by it). */
			char pidtext[32];
			int n = snprintf(pidtext, sizeof(pidtext), "%ld\n", (long)pid);

			if (pid > 0 && ftruncate(lockfd, 0) == 0)
				(void)!pwrite(lockfd, pidtext, (size_t)n, 0);
			_exit(0);
		}
		wcfg = *cfg;
		wcfg.queue_dir = abs;
		/* Keep the lock and the area's directory, as fds 3 and 4;
		 * everything else goes. The copies at >= 10 step out of the
		 * way of dup2(), and the lock lives on in fd 3 (flock belongs
		 * to the open file description, shared by dups). */
		{
			int hilock = fcntl(lockfd, F_DUPFD, 10);
			int hidir = fcntl(a.dir, F_DUPFD, 10);

			if (hilock < 0 || hidir < 0 || dup2(hilock, 3) < 0 || dup2(hidir, 4) < 0)
				_exit(0);
			worker_detach(4);
			worker_title(geteuid());
			log_setup(&wcfg);
			worker_main(&wcfg, 4, 3);
		}
		_exit(0);
	} else {
		while (waitpid(pid, 0, 0) < 0 && errno == EINTR)
			;
	}
	free(abs);
	close(lockfd);
	area_close(&a);
}

/* ====================================================================
 * Listing (-bp, mailq)
 * ==================================================================== */

/* put_age - "3d4h", "2h13m", "5m12s", "42s" */

static void put_age(struct buf *out, double secs)
{
	unsigned long s = secs > 0 ? (unsigned long)secs : 0;

	if (s >= 86400)
		buf_printf(out, "%lud%luh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		buf_printf(out, "%luh%lum", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		buf_printf(out, "%lum%lus", s / 60, s % 60);
	else
		buf_printf(out, "%lus", s);
}

/* count_failed - entries in failed/ (files without a dot) */

static unsigned count_failed(const struct spool_area *a)
{
	int fd = openat(a->failed, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	unsigned n = 0;

	if (fd < 0 || (d = fdopendir(fd)) == 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)) != 0)
		if (de->d_name[0] != '.' && strchr(de->d_name, '.') == 0)
			n++;
	closedir(d);
	return n;
}

/* spool_walk - every entry in scope, for queue_status.c; failed/ entries counted */

int spool_walk(const struct config *cfg, int brief, spool_visit_fn visit, void *ctx,
	       unsigned *failed, struct error *err)
{
	struct spool_area *areas;
	size_t nareas;

	error_clear(err);
	*failed = 0;
	if (scope_areas(cfg, &areas, &nareas, 0, err) != 0)
		return err->status;
	for (size_t ai = 0; ai < nareas; ai++) {
		struct strlist ids = STRLIST_INIT;

		list_ids(&areas[ai], &ids, 0);
		*failed += count_failed(&areas[ai]);
		for (size_t i = 0; i < ids.n; i++) {
			struct spool_entry e;
			struct spool_info info;
			struct stat sb;
			int fd;

			if (brief) {
				/* The file's time stands for its creation: no read. */
				if (fstatat(areas[ai].q, ids.v[i], &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
				    !S_ISREG(sb.st_mode) || sb.st_uid != areas[ai].uid)
					continue;
				memset(&info, 0, sizeof(info));
				info.id = ids.v[i];
				info.owner = (unsigned long)areas[ai].uid;
				info.created =
				    (double)sb.st_mtim.tv_sec + (double)sb.st_mtim.tv_nsec / 1e9;
				visit(ctx, &info);
				continue;
			}
			/* A FIFO a user planted in their q/ must not hang root's probe. */
			fd = open_owned(areas[ai].q, ids.v[i], O_RDONLY, areas[ai].uid, &sb);
			if (fd < 0)
				continue;
			memset(&info, 0, sizeof(info));
			info.id = ids.v[i];
			info.owner = (unsigned long)areas[ai].uid;
			spool_entry_init(&e);
			if (entry_read(areas[ai].q, fd, ids.v[i], &e) != 0) {
				/* Counted, with its file's age: a pass moves it to failed/. */
				info.corrupt = 1;
				info.created =
				    (double)sb.st_mtim.tv_sec + (double)sb.st_mtim.tv_nsec / 1e9;
			} else {
				info.created = e.created;
				info.attempts = e.attempts;
				info.next_try = e.next_try;
				info.last_error = e.last_error ? e.last_error : e.first_error;
				info.sender = e.env.sender;
				for (size_t r = 0; r < e.env.rcpts.n; r++)
					if (!strlist_contains_ci(&e.done, e.env.rcpts.v[r]))
						info.rcpts++;
				info.size = e.header_len + 2 + e.body_len;
			}
			close(fd);
			visit(ctx, &info);
			spool_entry_free(&e);
		}
		strlist_free(&ids);
	}
	scope_free(areas, nareas);
	return 0;
}

/* spool_list - the -bp listing */

int spool_list(const struct config *cfg, struct buf *out, struct error *err)
{
	struct spool_area *areas;
	size_t nareas;
	unsigned count = 0, failed = 0;
	unsigned long long bytes = 0;
	double now = spool_now();
	int root = geteuid() == 0;

	error_clear(err);
	if (scope_areas(cfg, &areas, &nareas, 0, err) != 0)
		return err->status;
	for (size_t ai = 0; ai < nareas; ai++) {
		struct strlist ids = STRLIST_INIT;

		list_ids(&areas[ai], &ids, 0);
		failed += count_failed(&areas[ai]);
		for (size_t i = 0; i < ids.n; i++) {
			struct spool_entry e;
			struct buf tmp = BUF_INIT;
			unsigned long long size;
			int fd = open_owned(areas[ai].q, ids.v[i], O_RDONLY, areas[ai].uid, 0);
			const char *lasterr;

			if (fd < 0)
				continue;
			spool_entry_init(&e);
			if (entry_read(areas[ai].q, fd, ids.v[i], &e) != 0) {
				buf_printf(out,
					   "%-24s (corrupt entry, will be moved to failed/)\n\n",
					   ids.v[i]);
				spool_entry_free(&e);
				close(fd);
				continue;
			}
			close(fd);
			size = e.header_len + 2 + e.body_len;
			count++;
			bytes += size;
			buf_printf(out, "%-24s %9llu  ", e.id, size);
			put_age(&tmp, now - e.created);
			buf_printf(out, "%-7s <", tmp.data);
			buf_put_sanitized(out, e.env.sender, strlen(e.env.sender));
			buf_putc(out, '>');
			lasterr = e.last_error ? e.last_error : e.first_error;
			/* A deferral that only the relay's configuration can fix. */
			if (relay_hint_classify(lasterr) != RELAY_HINT_NONE)
				buf_printf(out, "  !relay-config:%s",
					   relay_hint_mark(relay_hint_classify(lasterr)));
			buf_putc(out, '\n');
			buf_printf(out, "    attempts: %u", e.attempts);
			if (e.next_try > now) {
				buf_reset(&tmp);
				put_age(&tmp, e.next_try - now);
				buf_printf(out, ", next try in %s", tmp.data);
			} else {
				buf_puts(out, ", due now");
			}
			if (root) {
				struct passwd *pw = getpwuid(areas[ai].uid);

				if (pw)
					buf_printf(out, ", owner: %s", pw->pw_name);
				else
					buf_printf(out, ", owner: uid %lu",
						   (unsigned long)areas[ai].uid);
			}
			buf_putc(out, '\n');
			lasterr = e.last_error ? e.last_error : e.first_error;
			if (lasterr) {
				buf_puts(out, "    last error: ");
				buf_put_sanitized(out, lasterr, strlen(lasterr));
				buf_putc(out, '\n');
			}
			for (size_t r = 0; r < e.env.rcpts.n; r++) {
				buf_puts(out, "    to: <");
				buf_put_sanitized(out, e.env.rcpts.v[r], strlen(e.env.rcpts.v[r]));
				buf_puts(out, strlist_contains_ci(&e.done, e.env.rcpts.v[r])
						  ? "> (done)\n"
						  : ">\n");
			}
			buf_putc(out, '\n');
			buf_free(&tmp);
			spool_entry_free(&e);
		}
		strlist_free(&ids);
	}
	scope_free(areas, nareas);
	if (count == 0)
		buf_puts(out, "Mail queue is empty\n");
	else
		buf_printf(out, "-- %u message%s, %llu bytes in the queue\n", count,
			   count == 1 ? "" : "s", bytes);
	if (failed > 0)
		buf_printf(out, "-- %u message%s given up on, in %s/<uid>/failed\n", failed,
			   failed == 1 ? "" : "s", cfg->queue_dir);
	return 0;
}
