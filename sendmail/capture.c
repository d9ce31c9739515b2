/*++
 * NAME
 *	capture 3
 * SUMMARY
 *	deliver into a Maildir instead of a relay
 * DESCRIPTION
 *	See capture.h for the contract. The file name follows the Maildir
 *	convention "time.M<usec>P<pid>Q<n>.host": unique per process and
 *	per delivery, so concurrent writers (a worker, a -bs session, a
 *	cron job) never collide and nothing needs a lock.
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "capture.h"

/* capture_fail - the one line for a failed file operation */

static int capture_fail(struct error *err, const char *what, const char *path)
{
	int e = errno;
	int status =
	    error_set(err, EX_TEMPFAIL, "maildir %s: cannot %s: %s", path, what, strerror(e));

	err->temporary = 1;
	return status;
}

/* make_dirs - path and its tmp/, new/, cur/ */

static int make_dirs(const char *maildir, struct error *err)
{
	static const char *const sub[] = {"", "/tmp", "/new", "/cur"};
	struct buf path = BUF_INIT;
	int status = 0;

	for (size_t i = 0; i < sizeof(sub) / sizeof(*sub) && status == 0; i++) {
		buf_reset(&path);
		buf_printf(&path, "%s%s", maildir, sub[i]);
		if (mkdir(buf_cstr(&path), 0755) != 0 && errno != EEXIST)
			status = capture_fail(err, "create the directory", buf_cstr(&path));
	}
	buf_free(&path);
	return status;
}

/* put_lf - append src with every CRLF turned into LF */

static void put_lf(struct buf *out, const char *src, size_t n, int *pending_cr)
{
	for (size_t i = 0; i < n; i++) {
		if (*pending_cr) {
			*pending_cr = 0;
			if (src[i] != '\n')
				buf_putc(out, '\r');
		}
		if (src[i] == '\r')
			*pending_cr = 1;
		else
			buf_putc(out, src[i]);
	}
}

/* flush_buf - write out and empty it */

static int flush_buf(int fd, struct buf *out)
{
	int rc = util_write_all(fd, out->data, out->len);

	buf_reset(out);
	return rc;
}

/* write_message - the envelope fields, then the message with LF line ends */

static int write_message(int fd, const struct envelope *env, const struct message *msg)
{
	struct buf out = BUF_INIT;
	char chunk[65536];
	unsigned long long off = 0;
	int pending_cr = 0;
	int rc = 0;

	buf_printf(&out, "Return-Path: <%s>\n", env->sender ? env->sender : "");
	buf_puts(&out, "Envelope-to: ");
	for (size_t i = 0; i < env->rcpts.n; i++)
		buf_printf(&out, "%s%s", i ? ",\n\t" : "", env->rcpts.v[i]);
	buf_putc(&out, '\n');
	if (msg->header.len)
		put_lf(&out, msg->header.data, msg->header.len, &pending_cr);
	put_lf(&out, "\r\n", 2, &pending_cr);
	while (rc == 0 && off < msg->body.len) {
		ssize_t n = body_read(&msg->body, off, chunk, sizeof(chunk));

		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			rc = -1;
			break;
		}
		off += (unsigned long long)n;
		put_lf(&out, chunk, (size_t)n, &pending_cr);
		if (out.len >= sizeof(chunk))
			rc = flush_buf(fd, &out);
	}
	if (pending_cr)
		buf_putc(&out, '\r');
	if (rc == 0)
		rc = flush_buf(fd, &out);
	buf_free(&out);
	return rc;
}

/* fsync_dir - make a rename durable */

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* capture_deliver - one message into maildir/new */

int capture_deliver(const char *maildir, const struct envelope *env, const struct message *msg,
		    char **name, struct error *err)
{
	static unsigned long serial;
	char host[256] = "localhost";
	struct buf base = BUF_INIT;
	struct buf tmp = BUF_INIT;
	struct buf final = BUF_INIT;
	struct buf dir = BUF_INIT;
	struct timeval tv;
	int status;
	int fd;

	*name = 0;
	if ((status = make_dirs(maildir, err)) != 0)
		return status;
	gettimeofday(&tv, 0);
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "localhost");
	/* Maildir: "/" and ":" in the host part are written as \057 and \072. */
	buf_printf(&base, "%lld.M%ldP%ldQ%lu.", (long long)tv.tv_sec, (long)tv.tv_usec,
		   (long)getpid(), ++serial);
	for (const char *p = host; *p; p++) {
		if (*p == '/')
			buf_puts(&base, "\\057");
		else if (*p == ':')
			buf_puts(&base, "\\072");
		else
			buf_putc(&base, *p);
	}
	buf_printf(&tmp, "%s/tmp/%s", maildir, buf_cstr(&base));
	buf_printf(&final, "%s/new/%s", maildir, buf_cstr(&base));
	buf_printf(&dir, "%s/new", maildir);

	fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		status = capture_fail(err, "create a file in tmp/", maildir);
		goto out;
	}
	if (write_message(fd, env, msg) != 0 || fsync(fd) != 0) {
		status = capture_fail(err, "write", buf_cstr(&tmp));
		close(fd);
		unlink(buf_cstr(&tmp));
		goto out;
	}
	if (close(fd) != 0) {
		status = capture_fail(err, "write", buf_cstr(&tmp));
		unlink(buf_cstr(&tmp));
		goto out;
	}
	if (rename(buf_cstr(&tmp), buf_cstr(&final)) != 0) {
		status = capture_fail(err, "move the file into new/", maildir);
		unlink(buf_cstr(&tmp));
		goto out;
	}
	if (fsync_dir(buf_cstr(&dir)) != 0) {
		/* The file is in new/ already: a reader sees it; only durability is unsure. */
		status = capture_fail(err, "sync", buf_cstr(&dir));
		goto out;
	}
	*name = buf_steal(&base);

out:
	buf_free(&base);
	buf_free(&tmp);
	buf_free(&final);
	buf_free(&dir);
	return status;
}

/* capture_check - can a message be written into maildir now? */

int capture_check(const char *maildir, struct error *err)
{
	static const char *const sub[] = {"/tmp", "/new"};
	struct buf path = BUF_INIT;
	int status;

	if ((status = make_dirs(maildir, err)) != 0)
		return status;
	for (size_t i = 0; i < sizeof(sub) / sizeof(*sub) && status == 0; i++) {
		buf_reset(&path);
		buf_printf(&path, "%s%s", maildir, sub[i]);
		if (access(buf_cstr(&path), W_OK | X_OK) != 0)
			status = capture_fail(err, "write into", buf_cstr(&path));
	}
	buf_free(&path);
	return status;
}
