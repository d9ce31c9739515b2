/*++
 * NAME
 *	spool_notice 3
 * SUMMARY
 *	state files, failure records, failure notices and delivery log lines
 * SYNOPSIS
 *	#include "spool_int.h"
 *
 *	void	spool_state_write(const struct spool_area *a, const struct spool_entry *e,
 *			int durable);
 *	void	spool_log_result(enum log_level level, const struct spool_entry *e,
 *			const struct strlist *to, const char *status,
 *			const char *relay, const char *dsn, const char *text);
 *	void	spool_give_up(const struct config *cfg, const struct spool_area *a,
 *			int fd, const struct spool_entry *e, const char *reason,
 *			const struct strlist *failed, const struct strlist *why,
 *			int keep);
 *	void	spool_give_up_notify(..., int keep, int notify);
 * DESCRIPTION
 *	spool_state_write() replaces q/ID.st atomically (tmp/ and rename); durable
 *	(fsync'ed) when recipients were done: losing those lines would send
 *	to them again.
 *
 *	spool_give_up() records why in failed/ID.reason, links the entry
 *	into failed/, removes it from q/ unless keep (other recipients still
 *	pending), logs, and queues a failure notice per bounce_to (never
 *	about a notice: null sender). spool_give_up_notify() lets the caller
 *	leave out the notice.
 *
 *	spool_log_result() writes one log_delivery() line for an entry.
 * DIAGNOSTICS
 *	None returned: the worker has no caller to report to. Failures are
 *	logged with log_msg().
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "spool_int.h"

/* ====================================================================
 * State file, failure records, notices
 * ==================================================================== */

/* spool_state_write - replace q/ID.st atomically; durable when recipients are done */

void spool_state_write(const struct spool_area *a, const struct spool_entry *e, int durable)
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
	spool_area_adopt(a, fd);
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
		(void)spool_fsync_dir(a->q);
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
		spool_area_adopt(a, fd);
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
		if (spool_pread_all(fd, orig.data, (size_t)e->header_len, (off_t)e->data_off) == 0)
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

/* spool_log_result - one log_delivery() line */

void spool_log_result(enum log_level level, const struct spool_entry *e, const struct strlist *to,
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

/* spool_give_up - failed/ID + reason, error log, notice; keep = others still pending */

void spool_give_up_notify(const struct config *cfg, const struct spool_area *a, int fd,
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
	(void)spool_fsync_dir(a->failed);
	if (!keep) {
		snprintf(stname, sizeof(stname), "%s.st", e->id);
		(void)unlinkat(a->q, e->id, 0);
		(void)unlinkat(a->q, stname, 0);
		(void)spool_fsync_dir(a->q);
	}
	log_msg(LOG_LEVEL_ERROR, "%s: delivery failed, moved to %s/failed: %s", e->id, a->path,
		rec.data);
	spool_log_result(LOG_LEVEL_ERROR, e, failed, "bounced", 0, 0, reason);
	if (notify)
		notice_send(cfg, e, fd, reason, failed, why);
	buf_free(&rec);
}

/* spool_give_up - the same, with a failure notice per bounce_to */

void spool_give_up(const struct config *cfg, const struct spool_area *a, int fd,
		   const struct spool_entry *e, const char *reason, const struct strlist *failed,
		   const struct strlist *why, int keep)
{
	spool_give_up_notify(cfg, a, fd, e, reason, failed, why, keep, 1);
}
