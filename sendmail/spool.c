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
 *	knobs (crash points, backoff), the on-disk entry format, areas
 *	(per-user directories), the commit protocol (spool_store), delivery
 *	of one entry, passes over the queue, the worker, and the listing.
 *
 *	Entry file q/ID: a small text envelope, one "key value" per line
 *	(values %XX-escaped so no address can break the format), an empty
 *	line, then the header section, CRLF and the body, exactly as they
 *	go to the relay. The envelope states the header and body sizes, so
 *	a truncated file is recognised as corrupt rather than delivered.
 *
 *	State file q/ID.st: attempts, last and next try, last error, and the
 *	recipients already done (after a partial acceptance), replaced
 *	atomically by rename. It is advisory except for "done" lines, which
 *	are fsync'ed: losing them would resend to those recipients.
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
#include "net.h"
#include "spool.h"

#define SPOOL_MAGIC		"relayshim-spool 1"
#define SPOOL_STATE_MAGIC	"relayshim-state 1"
#define SPOOL_ENVELOPE_MAX	(16 * 1024 * 1024)	/* envelope text of one entry */
#define SPOOL_TMP_MAX_AGE	3600			/* seconds before tmp/ debris goes */
#define SPOOL_STREAK_MAX	3			/* temporary failures that end a pass */
#define SPOOL_COPY_CHUNK	(256 * 1024)

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

/* id_valid - a queue id is a safe file name without dots */

static int id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n >= SPOOL_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		      || c == '_' || c == '-'))
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

/* put_escaped - append s with controls, space, % and DEL as %XX */

static void put_escaped(struct buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c == '%' || c == 0x7f)
			buf_printf(out, "%%%02X", c);
		else
			buf_putc(out, c);
	}
}

/* put_field - one "key value" line */

static void put_field(struct buf *out, const char *key, const char *value)
{
	buf_puts(out, key);
	buf_putc(out, ' ');
	put_escaped(out, value);
	buf_putc(out, '\n');
}

/* unescape - decode %XX in [p, p+n) into a new string; NULL when malformed */

static char *unescape(const char *p, size_t n)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%') {
			int hi, lo;

			if (i + 2 >= n) {
				buf_free(&b);
				return 0;
			}
			hi = util_hex_value(p[i + 1]);
			lo = util_hex_value(p[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				buf_free(&b);
				return 0;
			}
			buf_putc(&b, hi * 16 + lo);
			i += 2;
		} else {
			buf_putc(&b, p[i]);
		}
	}
	if (b.data == 0)
		return util_strdup("");
	return buf_steal(&b);
}

/* One entry, as read from q/ID and q/ID.st. */
struct spool_entry {
	char id[SPOOL_ID_MAX];
	uid_t owner;
	double created;
	struct envelope env;
	unsigned long long header_len;
	unsigned long long body_len;
	unsigned long long data_off;	/* envelope text length: the header starts here */
	int has_8bit;
	int has_nul;
	unsigned long long longest;
	char *first_error;		/* reason given to spool_store() */
	/* q/ID.st */
	unsigned attempts;
	double last_try;
	double next_try;
	char *last_error;
	struct strlist done;		/* recipients finished after a partial acceptance */
};

/* entry_init - empty entry */

static void entry_init(struct spool_entry *e)
{
	memset(e, 0, sizeof(*e));
	envelope_init(&e->env);
}

/* entry_free - release everything */

static void entry_free(struct spool_entry *e)
{
	envelope_free(&e->env);
	free(e->first_error);
	free(e->last_error);
	strlist_free(&e->done);
	entry_init(e);
}

/* envelope_text - the envelope part of q/ID */

static void envelope_text(struct buf *out, double created, const struct envelope *env,
			  const struct message *msg, const char *reason)
{
	buf_puts(out, SPOOL_MAGIC "\n");
	buf_printf(out, "created %.6f\n", created);
	put_field(out, "sender", env->sender ? env->sender : "");
	for (size_t i = 0; i < env->rcpts.n; i++)
		put_field(out, "rcpt", env->rcpts.v[i]);
	if (env->dsn_notify)
		put_field(out, "notify", env->dsn_notify);
	if (env->dsn_ret)
		put_field(out, "ret", env->dsn_ret);
	if (env->dsn_envid)
		put_field(out, "envid", env->dsn_envid);
	buf_printf(out, "smtputf8 %d\n8bit %d\nnul %d\nlongest %zu\n", env->smtputf8 ? 1 : 0,
		   msg->has_8bit ? 1 : 0, msg->has_nul ? 1 : 0, msg->longest_line);
	if (reason && *reason)
		put_field(out, "error", reason);
	buf_printf(out, "header %zu\nbody %llu\n\n", msg->header.len, msg->body.len);
}

/* parse_ull - a decimal number filling the whole string */

static int parse_ull(const char *s, unsigned long long *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno || *end) ? -1 : 0;
}

/* parse_double - a number filling the whole string */

static int parse_double(const char *s, double *v)
{
	char *end;

	*v = strtod(s, &end);
	return (end == s || *end || !isfinite(*v)) ? -1 : 0;
}

/* envelope_parse - read the envelope text of q/ID; -1 when malformed */

static int envelope_parse(const char *p, size_t n, struct spool_entry *e)
{
	const char *end = p + n;
	int seen_header = 0, seen_body = 0, seen_sender = 0, seen_created = 0;
	size_t magic = sizeof(SPOOL_MAGIC) - 1;

	if (n < magic + 1 || memcmp(p, SPOOL_MAGIC "\n", magic + 1) != 0)
		return -1;
	p += magic + 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp;
		char key[16];
		char *val;
		unsigned long long num = 0;
		size_t klen;

		if (nl == 0)
			return -1;
		if (nl == p) {			/* the empty line ends the envelope */
			e->data_off = (unsigned long long)(nl + 1 - (end - n));
			break;
		}
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == 0 || (klen = (size_t)(sp - p)) >= sizeof(key))
			return -1;
		memcpy(key, p, klen);
		key[klen] = 0;
		if ((val = unescape(sp + 1, (size_t)(nl - sp - 1))) == 0)
			return -1;
		p = nl + 1;
		if (strcmp(key, "sender") == 0) {
			free(e->env.sender);
			e->env.sender = val;
			seen_sender = 1;
			continue;
		}
		if (strcmp(key, "rcpt") == 0) {
			strlist_add_nodup(&e->env.rcpts, val);
			continue;
		}
		if (strcmp(key, "notify") == 0 || strcmp(key, "ret") == 0
		    || strcmp(key, "envid") == 0 || strcmp(key, "error") == 0) {
			char **slot = key[0] == 'n' ? &e->env.dsn_notify
				      : key[0] == 'r' ? &e->env.dsn_ret
				      : key[1] == 'n' ? &e->env.dsn_envid
						      : &e->first_error;

			free(*slot);
			*slot = val;
			continue;
		}
		if (strcmp(key, "created") == 0) {
			int bad = parse_double(val, &e->created);

			free(val);
			if (bad)
				return -1;
			seen_created = 1;
			continue;
		}
		if (parse_ull(val, &num) != 0) {
			free(val);
			return -1;
		}
		free(val);
		if (strcmp(key, "smtputf8") == 0)
			e->env.smtputf8 = num != 0;
		else if (strcmp(key, "8bit") == 0)
			e->has_8bit = num != 0;
		else if (strcmp(key, "nul") == 0)
			e->has_nul = num != 0;
		else if (strcmp(key, "longest") == 0)
			e->longest = num;
		else if (strcmp(key, "header") == 0)
			e->header_len = num, seen_header = 1;
		else if (strcmp(key, "body") == 0)
			e->body_len = num, seen_body = 1;
		/* Unknown numeric keys are ignored: a newer writer may add some. */
	}
	if (e->data_off == 0 || !seen_header || !seen_body || !seen_sender || !seen_created
	    || e->env.rcpts.n == 0)
		return -1;
	return 0;
}

/* state_parse - read q/ID.st; unknown or malformed lines are ignored (advisory) */

static void state_parse(const char *p, size_t n, struct spool_entry *e)
{
	const char *end = p + n;
	size_t magic = sizeof(SPOOL_STATE_MAGIC) - 1;

	if (n < magic + 1 || memcmp(p, SPOOL_STATE_MAGIC "\n", magic + 1) != 0)
		return;
	p += magic + 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp;
		char *val;
		double d;

		if (nl == 0)
			break;
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == 0 || (val = unescape(sp + 1, (size_t)(nl - sp - 1))) == 0) {
			p = nl + 1;
			continue;
		}
#define KEY_IS(k) ((size_t)(sp - p) == sizeof(k) - 1 && memcmp(p, k, sizeof(k) - 1) == 0)
		if (KEY_IS("attempts") && parse_double(val, &d) == 0 && d >= 0 && d < 1e9)
			e->attempts = (unsigned)d;
		else if (KEY_IS("last_try") && parse_double(val, &d) == 0)
			e->last_try = d;
		else if (KEY_IS("next_try") && parse_double(val, &d) == 0)
			e->next_try = d;
		else if (KEY_IS("error")) {
			free(e->last_error);
			e->last_error = val;
			val = 0;
		} else if (KEY_IS("done")) {
			strlist_add_nodup(&e->done, val);
			val = 0;
		}
#undef KEY_IS
		free(val);
		p = nl + 1;
	}
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
			errno = EIO;			/* no empty line: truncated */
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

static int read_small_file(int dirfd, const char *name, struct buf *out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

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
	if (fstat(fd, &sb) != 0 || read_envelope_text(fd, &text) != 0
	    || envelope_parse(text.data, text.len, e) != 0)
		goto out;
	e->owner = sb.st_uid;
	/* A file shorter than its envelope promises was cut short: corrupt. */
	if ((unsigned long long)sb.st_size != e->data_off + e->header_len + 2 + e->body_len)
		goto out;
	e->next_try = e->created;
	snprintf(stname, sizeof(stname), "%s.st", id);
	if (read_small_file(qdir, stname, &st) == 0 && st.len > 0)
		state_parse(st.data, st.len, e);
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
	if (e->header_len > SPOOL_ENVELOPE_MAX * 4ULL) {
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
	int dir;			/* dir/UID */
	int tmp;
	int q;
	int failed;
	char *path;			/* "dir/UID", for messages */
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
			error_set(err, EX_CANTCREAT, "cannot set mode 1733 on queue directory %s: %s",
				  top, strerror(errno));
			return -1;
		}
	} else if (create && errno != EEXIST) {
		error_set(err, EX_CANTCREAT,
			  "cannot create queue directory %s: %s (create it, mode 1733, or set [queue] dir)",
			  top, strerror(errno));
		return -1;
	}
	/* O_PATH: in a 1733 directory we may not read (list), only search. */
	fd = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		error_set(err, EX_CANTCREAT, "cannot open queue directory %s: %s", top,
			  strerror(errno));
	return fd;
}

/* area_open - open dir/UID; create = it is the caller's own and may be made */

static int area_open(const char *top, uid_t uid, int create, struct spool_area *a,
		     struct error *err)
{
	static const char *subs[] = {"tmp", "q", "failed"};
	char name[32];
	struct stat sb;
	int topfd, made = 0;

	area_init(a);
	a->uid = uid;
	if ((topfd = spool_top_open(top, create, err)) < 0)
		return err->status;
	snprintf(name, sizeof(name), "%lu", (unsigned long)uid);
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
		error_set(err, EX_CANTCREAT, "cannot open queue area %s: %s", a->path,
			  strerror(errno));
		goto fail;
	}
	if (fstat(a->dir, &sb) != 0 || sb.st_uid != uid || (sb.st_mode & 077) != 0) {
		/* Someone planted this directory for us, or opened it up:
		 * storing mail there could hand it to them. */
		error_set(err, EX_CANTCREAT,
			  "queue area %s is not owned by uid %lu with mode 0700; remove it or fix "
			  "its owner and mode",
			  a->path, (unsigned long)uid);
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
	close(topfd);
	return 0;
fail:
	close(topfd);
	area_close(a);
	return err->status;
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
			error_set(err, EX_CANTCREAT, "queue directory %s is on a read-only file system",
				  a.path);
			area_close(&a);
			return err->status;
		}
		if (vfs.f_bavail == 0 || (vfs.f_files > 0 && vfs.f_favail == 0)) {
			error_set(err, EX_CANTCREAT, "queue directory %s is full (no free space or inodes)",
				  a.path);
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
	if (util_write_all(fd, text.data, text.len) != 0
	    || util_write_all(fd, msg->header.data ? msg->header.data : "", msg->header.len) != 0
	    || util_write_all(fd, "\r\n", 2) != 0 || write_body(fd, msg) != 0)
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
			log_msg(LOG_LEVEL_WARNING, "queue id \"%s\" is not a safe file name; stored as %s",
				queue_id, id);
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

	buf_puts(&text, SPOOL_STATE_MAGIC "\n");
	buf_printf(&text, "attempts %u\nlast_try %.6f\nnext_try %.6f\n", e->attempts, e->last_try,
		   e->next_try);
	if (e->last_error)
		put_field(&text, "error", e->last_error);
	for (size_t i = 0; i < e->done.n; i++)
		put_field(&text, "done", e->done.v[i]);
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
	fd = openat(a->failed, name, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
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
		log_msg(LOG_LEVEL_ERROR, "%s: cannot queue the failure notice to <%s>: %s", e->id, to,
			nerr.text);
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
	rec.uid = (unsigned long)e->owner;	/* root's worker: the submitter, not root */
	rec.has_uid = 1;
	log_delivery(&rec);
}

/* entry_give_up - failed/ID + reason, error log, notice; keep = others still pending */

static void entry_give_up(const struct config *cfg, const struct spool_area *a, int fd,
			  const struct spool_entry *e, const char *reason,
			  const struct strlist *failed, const struct strlist *why, int keep)
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
	notice_send(cfg, e, fd, reason, failed, why);
	buf_free(&rec);
}

/* ====================================================================
 * Delivering one entry
 * ==================================================================== */

enum entry_result {
	ENTRY_DONE,			/* delivered and removed */
	ENTRY_DEFERRED,			/* tried, temporary failure, still queued */
	ENTRY_FAILED,			/* given up: failed/ */
	ENTRY_NOT_DUE,			/* not tried: next_try in the future */
	ENTRY_BUSY,			/* locked by another deliverer */
	ENTRY_GONE,			/* vanished (delivered by someone else) */
	ENTRY_UNREADABLE,		/* not ours to read */
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

static int entry_send(const struct config *cfg, struct smtp_session **session,
		      const struct envelope *env, const struct message *msg, struct smtp_result *res,
		      struct error *err)
{
	int rc;

	if (spool_transport)
		return spool_transport(cfg, env, msg, res, err);
	if (session == 0)
		return smtp_deliver(cfg, env, msg, res, err);
	/* After an outage 200 messages go out over one connection, not 200. */
	if (*session && !smtp_session_usable(*session)) {
		smtp_session_close(*session);
		*session = 0;
	}
	if (*session == 0 && (rc = smtp_session_open(session, cfg, err)) != 0)
		return rc;
	rc = smtp_session_send(*session, env, msg, res, err);
	if (rc != 0 && (err->temporary || !smtp_session_usable(*session))) {
		/* The next message starts afresh, with relay failover. */
		smtp_session_close(*session);
		*session = 0;
	}
	return rc;
}

/* entry_deliver - lock, load, send, and settle one entry */

static enum entry_result entry_deliver(const struct config *cfg, const struct spool_area *a,
				       const char *id, int force, int wait_lock, double *next_due,
				       struct smtp_session **session, struct error *err)
{
	struct spool_entry e;
	struct envelope denv;
	struct message msg;
	struct smtp_result res;
	struct stat fsb, psb;
	enum entry_result result;
	double now;
	int fd, rc;

	error_clear(err);
	fd = openat(a->q, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? ENTRY_GONE : ENTRY_UNREADABLE;
	if (lock_entry(fd, wait_lock) != 0) {
		close(fd);
		return ENTRY_BUSY;
	}
	/* Locked, but maybe after the previous holder removed or replaced
	 * the entry: only the file still linked as q/ID is ours to send. */
	if (fstat(fd, &fsb) != 0 || fstatat(a->q, id, &psb, AT_SYMLINK_NOFOLLOW) != 0
	    || fsb.st_ino != psb.st_ino || fsb.st_dev != psb.st_dev) {
		close(fd);
		return ENTRY_GONE;
	}
	entry_init(&e);
	if (entry_read(a->q, fd, id, &e) != 0) {
		struct strlist none = STRLIST_INIT;

		snprintf(e.id, sizeof(e.id), "%s", id);
		entry_give_up(cfg, a, fd, &e, "corrupt queue entry (unreadable envelope)", &none, 0, 0);
		entry_free(&e);
		close(fd);
		error_set(err, EX_DATAERR, "queue entry %s is corrupt; moved to %s/failed", id, a->path);
		return ENTRY_FAILED;
	}
	now = spool_now();
	if (!force && e.next_try > now) {
		if (e.next_try < *next_due)
			*next_due = e.next_try;
		entry_free(&e);
		close(fd);
		return ENTRY_NOT_DUE;
	}
	/* An entry we could send but not remove (spool remounted read-only)
	 * would go out again at every pass: leave it alone until it can. */
	if (faccessat(a->q, ".", W_OK, AT_EACCESS) != 0) {
		log_msg(LOG_LEVEL_WARNING, "%s: not delivering: cannot remove it afterwards from %s/q: %s",
			id, a->path, strerror(errno));
		if (now + spool_retry_base() < *next_due)
			*next_due = now + spool_retry_base();
		entry_free(&e);
		close(fd);
		return ENTRY_NOT_DUE;
	}
	if (cfg->queue_max_age_s > 0 && now - e.created > (double)cfg->queue_max_age_s) {
		struct buf why = BUF_INIT;
		struct strlist left = STRLIST_INIT;

		buf_printf(&why, "message expired after %.0f seconds in the queue (max_age %lu s)",
			   now - e.created, cfg->queue_max_age_s);
		if (e.last_error || e.first_error)
			buf_printf(&why, "; last error: %s", e.last_error ? e.last_error : e.first_error);
		for (size_t i = 0; i < e.env.rcpts.n; i++)
			if (!strlist_contains_ci(&e.done, e.env.rcpts.v[i]))
				strlist_add(&left, e.env.rcpts.v[i]);
		entry_give_up(cfg, a, fd, &e, why.data, &left, 0, 0);
		error_set(err, EX_UNAVAILABLE, "%s: %s", id, why.data);
		buf_free(&why);
		strlist_free(&left);
		entry_free(&e);
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
		rc = 0;				/* every recipient done: only the removal was missing */
	} else if (entry_message(fd, &e, &msg) != 0) {
		error_set(err, EX_IOERR, "cannot read queue entry %s/q/%s: %s", a->path, id,
			  strerror(errno));
		err->temporary = 1;
		rc = EX_IOERR;
	} else {
		spool_crash_point("deliver-before");
		rc = entry_send(cfg, session, &denv, &msg, &res, err);
	}

	if (rc == 0) {
		struct strlist accepted = STRLIST_INIT;

		spool_crash_point("deliver-after");
		for (size_t i = 0; i < denv.rcpts.n; i++)
			if (!strlist_contains_ci(&res.rejected, denv.rcpts.v[i])
			    && !strlist_contains_ci(&res.deferred, denv.rcpts.v[i]))
				strlist_add(&accepted, denv.rcpts.v[i]);
		if (accepted.n > 0)
			log_result(LOG_LEVEL_INFO, &e, &accepted, "sent", res.relay, res.dsn, res.reply);
		if (res.deferred.n > 0) {
			/* Partial: remember who is done, retry the others. */
			for (size_t i = 0; i < accepted.n; i++)
				strlist_add(&e.done, accepted.v[i]);
			for (size_t i = 0; i < res.rejected.n; i++)
				strlist_add(&e.done, res.rejected.v[i]);
			e.attempts++;
			e.last_try = now;
			e.next_try = now + spool_backoff(e.attempts);
			free(e.last_error);
			e.last_error = util_strdup(res.deferred_replies.n ? res.deferred_replies.v[0]
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
			entry_give_up(cfg, a, fd, &e, "recipients refused by the relay", &res.rejected,
				      &res.rejected_replies, 0);
			result = ENTRY_DONE;
		} else {
			char stname[SPOOL_ID_MAX + 4];

			snprintf(stname, sizeof(stname), "%s.st", id);
			if (unlinkat(a->q, id, 0) != 0 && errno != ENOENT)
				log_msg(LOG_LEVEL_ERROR, "%s: delivered but cannot remove %s/q/%s: %s; "
					"it may be sent again", id, a->path, id, strerror(errno));
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
		free(e.last_error);
		e.last_error = util_strdup(err->text);
		state_write(a, &e, 0);
		log_result(LOG_LEVEL_WARNING, &e, &denv.rcpts, "deferred", res.relay, 0, err->text);
		result = ENTRY_DEFERRED;
	} else {
		struct strlist why = STRLIST_INIT;

		for (size_t i = 0; i < denv.rcpts.n; i++)
			strlist_add(&why, err->text);
		entry_give_up(cfg, a, fd, &e, err->text, &denv.rcpts, &why, 0);
		strlist_free(&why);
		result = ENTRY_FAILED;
	}
	smtp_result_free(&res);
	message_free(&msg);
	envelope_free(&denv);
	entry_free(&e);
	close(fd);				/* releases the lock */
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
				if (fstatat(a->q, id, &sb, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
					(void)unlinkat(a->q, de->d_name, 0);
			}
		}
	}
	closedir(d);
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
			if (fstatat(a->tmp, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0
			    && now - (double)sb.st_mtime > SPOOL_TMP_MAX_AGE)
				(void)unlinkat(a->tmp, de->d_name, 0);
		}
		closedir(d);
	}
}

/* uid_name - a directory name that is a uid, or -1 */

static long uid_name(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	return (*end || v < 0) ? -1 : v;
}

/* scope_areas - the areas this process may handle: its own; all of them for root */

static void scope_areas(const struct config *cfg, struct spool_area **out, size_t *n)
{
	struct error err;
	struct spool_area a;
	uid_t me = geteuid();
	DIR *d;
	struct dirent *de;

	*out = 0;
	*n = 0;
	if (me != 0) {
		if (area_open(cfg->queue_dir, me, 0, &a, &err) == 0) {
			*out = util_malloc(sizeof(a));
			(*out)[(*n)++] = a;
		}
		return;
	}
	if (cfg->queue_dir == 0 || (d = opendir(cfg->queue_dir)) == 0)
		return;
	while ((de = readdir(d)) != 0) {
		long uid = uid_name(de->d_name);

		if (uid < 0)
			continue;
		/* area_open() checks that dir/N belongs to uid N. */
		if (area_open(cfg->queue_dir, (uid_t)uid, 0, &a, &err) != 0) {
			log_msg(LOG_LEVEL_WARNING, "skipping queue area: %s", err.text);
			continue;
		}
		*out = util_realloc(*out, (*n + 1) * sizeof(a));
		(*out)[(*n)++] = a;
	}
	closedir(d);
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
	unsigned remaining;		/* entries left in scope after the pass */
	unsigned tried;
	unsigned streak;		/* consecutive temporary failures */
	int aborted;			/* stopped early: the relay looks down */
	double next_due;		/* earliest next_try of what is left */
	struct error last;		/* last delivery error */
};

/* run_pass - one pass over every area in scope; tried (may be NULL) = ids already tried */

static void run_pass(const struct config *cfg, int force, int wait_lock, struct strlist *tried,
		     struct pass_stats *st)
{
	struct spool_area *areas;
	size_t nareas;
	struct error err;
	struct smtp_session *session = 0;	/* one relay connection per pass */

	memset(st, 0, sizeof(*st));
	st->next_due = HUGE_VAL;
	scope_areas(cfg, &areas, &nareas);
	for (size_t ai = 0; ai < nareas; ai++) {
		struct strlist ids = STRLIST_INIT;

		list_ids(&areas[ai], &ids, 1);
		for (size_t i = 0; i < ids.n; i++) {
			enum entry_result r;

			if (spool_time_is_up())
				st->aborted = 1;	/* -q --deadline: what is left stays queued */
			if (st->aborted || (tried && strlist_contains_ci(tried, ids.v[i]))) {
				st->remaining++;
				continue;
			}
			r = entry_deliver(cfg, &areas[ai], ids.v[i], force, wait_lock, &st->next_due,
					  &session, &err);
			switch (r) {
			case ENTRY_DONE:
				st->delivered++;
				st->tried++;
				st->streak = 0;
				break;
			case ENTRY_DEFERRED:
				st->deferred++;
				st->tried++;
				st->remaining++;
				st->last = err;
				if (++st->streak >= SPOOL_STREAK_MAX)
					st->aborted = 1;
				break;
			case ENTRY_FAILED:
				st->failed++;
				st->tried++;
				st->streak = 0;
				st->last = err;
				break;
			case ENTRY_NOT_DUE:
				st->remaining++;
				break;
			case ENTRY_BUSY:
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
		strlist_free(&ids);
	}
	smtp_session_close(session);
	scope_free(areas, nareas);
}

/* scope_nonempty - is anything queued that this process could deliver? */

static int scope_nonempty(const struct config *cfg)
{
	struct spool_area *areas;
	size_t nareas;
	int found = 0;

	scope_areas(cfg, &areas, &nareas);
	for (size_t ai = 0; ai < nareas && !found; ai++) {
		struct strlist ids = STRLIST_INIT;

		list_ids(&areas[ai], &ids, 0);
		found = ids.n > 0;
		strlist_free(&ids);
	}
	scope_free(areas, nareas);
	return found;
}

/* spool_run - sendmail -q: everything now, in the foreground */

int spool_run(const struct config *cfg, struct error *err)
{
	struct strlist tried = STRLIST_INIT;
	struct pass_stats st;
	struct error last;

	error_clear(err);
	error_clear(&last);
	/* Repeat while passes make progress: a pass may queue notices. */
	for (;;) {
		run_pass(cfg, 1, 1, &tried, &st);
		if (st.last.text[0])
			last = st.last;
		if (st.aborted || st.tried == 0)
			break;
	}
	strlist_free(&tried);
	/* What is left after the last pass (a fresh look, tried or not). */
	if (!scope_nonempty(cfg))
		return 0;
	{
		struct spool_area *areas;
		size_t nareas;
		unsigned left = 0;

		scope_areas(cfg, &areas, &nareas);
		for (size_t ai = 0; ai < nareas; ai++) {
			struct strlist ids = STRLIST_INIT;

			list_ids(&areas[ai], &ids, 0);
			left += (unsigned)ids.n;
			strlist_free(&ids);
		}
		scope_free(areas, nareas);
		error_set(err, EX_TEMPFAIL, "%u message(s) remain in the queue%s%s", left,
			  last.text[0] ? "; last error: " : "", last.text);
	}
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
		return EX_TEMPFAIL;
	case ENTRY_FAILED:
		return err->status ? err->status : EX_UNAVAILABLE;
	case ENTRY_GONE:
		/* Already delivered by a worker that got there first: fine. */
		return 0;
	default:
		err->temporary = 1;
		return error_set(err, EX_TEMPFAIL, "queue entry %s is busy; it stays queued", queue_id);
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
	fd = openat(a.q, queue_id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		error_set(err, EX_NOINPUT, "no queue entry %s in %s: %s", queue_id, a.path,
			  strerror(errno));
		area_close(&a);
		return err->status;
	}
	entry_init(&e);
	if (entry_read(a.q, fd, queue_id, &e) != 0 || entry_message(fd, &e, msg) != 0) {
		error_set(err, EX_DATAERR, "queue entry %s/q/%s is corrupt", a.path, queue_id);
		message_free(msg);
		entry_free(&e);
		close(fd);
		area_close(&a);
		return err->status;
	}
	*env = e.env;
	envelope_init(&e.env);
	entry_free(&e);
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
	int fd = openat(dirfd, "kick", O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);

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
	 * the file; its message is ours unless another worker has started. */
	if (!scope_nonempty(cfg))
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
			int kfd = openat(dirfd, "kick", O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);

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

int spool_walk(const struct config *cfg, spool_visit_fn visit, void *ctx, unsigned *failed,
	       struct error *err)
{
	struct spool_area *areas;
	size_t nareas;

	error_clear(err);
	*failed = 0;
	scope_areas(cfg, &areas, &nareas);
	for (size_t ai = 0; ai < nareas; ai++) {
		struct strlist ids = STRLIST_INIT;

		list_ids(&areas[ai], &ids, 0);
		*failed += count_failed(&areas[ai]);
		for (size_t i = 0; i < ids.n; i++) {
			struct spool_entry e;
			struct spool_info info;
			struct stat sb;
			int fd = openat(areas[ai].q, ids.v[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

			if (fd < 0)
				continue;
			memset(&info, 0, sizeof(info));
			info.id = ids.v[i];
			info.owner = (unsigned long)areas[ai].uid;
			entry_init(&e);
			if (entry_read(areas[ai].q, fd, ids.v[i], &e) != 0) {
				/* Counted with its file's age: it is in q/ until a pass moves it. */
				info.corrupt = 1;
				info.created = fstat(fd, &sb) == 0 ? (double)sb.st_mtime : spool_now();
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
			entry_free(&e);
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
	scope_areas(cfg, &areas, &nareas);
	for (size_t ai = 0; ai < nareas; ai++) {
		struct strlist ids = STRLIST_INIT;

		list_ids(&areas[ai], &ids, 0);
		failed += count_failed(&areas[ai]);
		for (size_t i = 0; i < ids.n; i++) {
			struct spool_entry e;
			struct buf tmp = BUF_INIT;
			unsigned long long size;
			int fd = openat(areas[ai].q, ids.v[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			const char *lasterr;

			if (fd < 0)
				continue;
			entry_init(&e);
			if (entry_read(areas[ai].q, fd, ids.v[i], &e) != 0) {
				buf_printf(out, "%-24s (corrupt entry, will be moved to failed/)\n\n",
					   ids.v[i]);
				entry_free(&e);
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
			util_sanitize(out, e.env.sender, strlen(e.env.sender));
			buf_puts(out, ">\n");
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
					buf_printf(out, ", owner: uid %lu", (unsigned long)areas[ai].uid);
			}
			buf_putc(out, '\n');
			lasterr = e.last_error ? e.last_error : e.first_error;
			if (lasterr) {
				buf_puts(out, "    last error: ");
				util_sanitize(out, lasterr, strlen(lasterr));
				buf_putc(out, '\n');
			}
			for (size_t r = 0; r < e.env.rcpts.n; r++) {
				buf_puts(out, "    to: <");
				util_sanitize(out, e.env.rcpts.v[r], strlen(e.env.rcpts.v[r]));
				buf_puts(out, strlist_contains_ci(&e.done, e.env.rcpts.v[r])
						  ? "> (done)\n"
						  : ">\n");
			}
			buf_putc(out, '\n');
			buf_free(&tmp);
			entry_free(&e);
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
