/*++
 * NAME
 *	spool_commit 3
 * SUMMARY
 *	the commit protocol: one message stored durably in the queue
 * SYNOPSIS
 *	#include "spool_int.h"
 *
 *	int	spool_usable(const struct config *cfg, struct error *err);
 *	int	spool_store(const struct config *cfg, const struct envelope *env,
 *			const struct message *msg, const char *queue_id,
 *			const char *reason, struct error *err);
 *	void	spool_hint_first_time(const char *id, const char *before, const char *now);
 * DESCRIPTION
 *	spool_store() writes the entry to tmp/ID (envelope text from
 *	spool_entry.c, header, CRLF, body), fsyncs it, renames it to q/ID
 *	without ever replacing an entry (RENAME_NOREPLACE, or link()), and
 *	fsyncs q/: only then is the message acknowledged. A crash at any
 *	step leaves either no entry or a whole one; RELAYSHIM_TEST_CRASH_AT
 *	names the steps (spool_crash_point()). spool_usable() is documented
 *	in spool.h.
 *
 *	spool_hint_first_time() logs, at error level, a deferral that points at the
 *	relay's configuration (relay_hint.h) the first time it appears for a
 *	message.
 * DIAGNOSTICS
 *	0 or EX_CANTCREAT with one line in err.
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sysexits.h>
#include <unistd.h>

#include "relay_hint.h"
#include "spool_int.h"

/* ====================================================================
 * Commit protocol
 * ==================================================================== */

/* spool_usable - can we store here at all? */
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

int spool_usable(const struct config *cfg, struct error *err)
{
	struct spool_area a;
	struct statvfs vfs;

	if (spool_area_open(cfg->queue_dir, geteuid(), 1, &a, err) != 0)
		return err->status;
	if (fstatvfs(a.tmp, &vfs) == 0) {
		if (vfs.f_flag & ST_RDONLY) {
			error_set(err, EX_CANTCREAT,
				  "queue directory %s is on a read-only file system", a.path);
			spool_area_close(&a);
			return err->status;
		}
		if (vfs.f_bavail == 0 || (vfs.f_files > 0 && vfs.f_favail == 0)) {
			error_set(err, EX_CANTCREAT,
				  "queue directory %s is full (no free space or inodes)", a.path);
			spool_area_close(&a);
			return err->status;
		}
	}
	if (faccessat(a.tmp, ".", W_OK, AT_EACCESS) != 0) {
		error_set(err, EX_CANTCREAT, "cannot write to %s/tmp: %s", a.path, strerror(errno));
		spool_area_close(&a);
		return err->status;
	}
	spool_area_close(&a);
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
	if (spool_fsync_dir(a->q) != 0) {
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
 * spool_hint_first_time - a deferral that points at the relay's configuration
 * (relay_hint.h) is logged at error level when it first appears for a
 * message: otherwise it waits, at warning level, until max_age.
 */
void spool_hint_first_time(const char *id, const char *before, const char *now)
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
	if (spool_area_open(cfg->queue_dir, geteuid(), 1, &a, err) != 0)
		return err->status;
	if (queue_id && spool_id_valid(queue_id)) {
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
	spool_area_close(&a);
	if (rc == 0)
		spool_hint_first_time(id, 0, reason);
	return rc;
}
