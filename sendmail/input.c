/*++
 * NAME
 *	input 3
 * SUMMARY
 *	read a message from a caller
 * DESCRIPTION
 *	See input.h. Why the rules are what they are (the callers they come from):
 *	PHP mail() mixes CRLF and LF in one message; fail2ban's last line has
 *	no newline; mail(1) gives a regular file, nodemailer a socket; Symfony
 *	dot-stuffs when it calls us without -i and so needs the sendmail 8
 *	".." rule; Postfix and sendmail 8 both drop a leading mbox From_ line.
 *--*/

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "header.h"
#include "input.h"

#define READ_FIRST 4096 /* the first read: most messages fit (see input_read) */
#define READ_CHUNK (64 * 1024)
#define SPILL_WRITE_CHUNK (128 * 1024)

/* note_line - track 8-bit bytes, NULs and the longest line */

static void note_line(struct message *msg, const char *line, size_t len)
{
	if (len > msg->longest_line)
		msg->longest_line = len;
	/* This runs over every byte of every message: 8 bytes at a time, and
	 * memchr for NUL, instead of a byte loop (a third of a 25 MB message's
	 * CPU time went here). */
	if (!msg->has_8bit) {
		uint64_t acc = 0;
		size_t i = 0;

		for (; i + 8 <= len; i += 8) {
			uint64_t w;

			memcpy(&w, line + i, 8);
			acc |= w;
		}
		for (; i < len; i++)
			acc |= (unsigned char)line[i];
		if (acc & 0x8080808080808080ULL)
			msg->has_8bit = 1;
	}
	if (!msg->has_nul && memchr(line, 0, len) != 0)
		msg->has_nul = 1;
}

/* open_spill_file - an unlinked temporary file for a large body */

static int open_spill_file(struct error *err)
{
	const char *dir = getenv("TMPDIR");
	struct buf path = BUF_INIT;
	int fd;

	if (dir == 0 || *dir == 0)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		/* O_TMPFILE is missing on some file systems (overlayfs on old kernels). */
		buf_printf(&path, "%s/relayshim.XXXXXX", dir);
		fd = mkostemp(path.data, O_CLOEXEC);
		if (fd >= 0)
			unlink(path.data);
	}
	if (fd < 0)
		error_set(
		    err, EX_IOERR,
		    "cannot create a temporary file in %s for a large message: %s (set TMPDIR)",
		    dir, strerror(errno));
	buf_free(&path);
	return fd;
}

/* flush_spill - move pending body bytes to the spill file */

static int flush_spill(struct msgbuild *mb, struct error *err)
{
	if (util_write_all(mb->msg->body.fd, mb->wbuf.data, mb->wbuf.len) < 0)
		return error_set(err, EX_IOERR,
				 "cannot write the temporary copy of the message: %s",
				 strerror(errno));
	buf_reset(&mb->wbuf);
	return 0;
}

/* body_line - append one body line plus CRLF */

static int body_line(struct msgbuild *mb, const char *line, size_t len, struct error *err)
{
	struct body *body = &mb->msg->body;

	if (!mb->spilled) {
		buf_append(&body->mem, line, len);
		buf_append(&body->mem, "\r\n", 2);
		body->len += len + 2;
		if (body->mem.len < INPUT_SPILL_BYTES)
			return 0;
		if ((body->fd = open_spill_file(err)) < 0)
			return err->status;
		mb->spilled = 1;
		/* The in-memory part becomes the first write buffer. */
		mb->wbuf = body->mem;
		memset(&body->mem, 0, sizeof(body->mem));
		return flush_spill(mb, err);
	}
	buf_append(&mb->wbuf, line, len);
	buf_append(&mb->wbuf, "\r\n", 2);
	body->len += len + 2;
	if (mb->wbuf.len >= SPILL_WRITE_CHUNK)
		return flush_spill(mb, err);
	return 0;
}

/* msgbuild_init - start building msg */

void msgbuild_init(struct msgbuild *mb, struct message *msg)
{
	memset(mb, 0, sizeof(*mb));
	mb->msg = msg;
}

/* msgbuild_line - add one line (without its line ending) */

int msgbuild_line(struct msgbuild *mb, const char *line, size_t len, struct error *err)
{
	struct message *msg = mb->msg;

	note_line(msg, line, len);
	switch (mb->state) {
	case 0:
		mb->state = 1;
		/* mbox "From " envelope line: Postfix skip_from_, sendmail 8 eatfrom. */
		if (!mb->keep_from_line && len >= 5 && memcmp(line, "From ", 5) == 0)
			return 0;
		/* FALLTHROUGH */
	case 1:
		if (len == 0) {
			mb->state = 2;
			return 0;
		}
		/* header.c's grammar, so rewrite.c sees the same fields we kept. */
		if (msg->header.len < INPUT_MAX_HEADER_BYTES &&
		    (header_field_name(line, len, 0) > 0 ||
		     (header_is_continuation(line, len) && msg->header.len > 0))) {
			buf_append(&msg->header, line, len);
			buf_append(&msg->header, "\r\n", 2);
			return 0;
		}
		mb->state = 2;
		return body_line(mb, line, len, err);
	default:
		return body_line(mb, line, len, err);
	}
}

/* msgbuild_finish - flush what is pending */

int msgbuild_finish(struct msgbuild *mb, struct error *err)
{
	int rc = 0;

	if (mb->spilled && mb->wbuf.len > 0)
		rc = flush_spill(mb, err);
	buf_free(&mb->wbuf);
	return rc;
}

/* msgbuild_abort - drop a half-built message */

void msgbuild_abort(struct msgbuild *mb)
{
	buf_free(&mb->wbuf);
	message_free(mb->msg);
}

/* take_line - one input line: strip LF and one CR before it, apply dot rules */

static int take_line(struct msgbuild *mb, const char *line, size_t len, int ignore_dots, int *done,
		     struct error *err)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (!ignore_dots && len > 0 && line[0] == '.') {
		if (len == 1) {
			*done = 1;
			return 0;
		}
		if (line[1] == '.') {
			line++;
			len--;
		}
	}
	return msgbuild_line(mb, line, len, err);
}

/* line_too_long - the INPUT_LINE_MAX error (a CR before the LF is not counted) */

static int line_too_long(size_t lineno, struct error *err)
{
	return error_set(err, EX_DATAERR,
			 "line %zu of the message is longer than %d bytes; encode long lines "
			 "(quoted-printable or base64) before sending",
			 lineno, INPUT_LINE_MAX);
}

/* input_read - read a whole message from fd */

int input_read(int fd, int ignore_dots, struct message *msg, struct error *err)
{
	struct msgbuild mb;
	struct buf partial = BUF_INIT;
	size_t size = READ_FIRST;
	char *chunk = util_malloc(size);
	size_t lineno = 1;
	int done = 0;
	int rc = 0;

	msgbuild_init(&mb, msg);
	while (!done) {
		ssize_t n = read(fd, chunk, size);
		const char *p, *end, *nl;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = error_set(err, EX_IOERR,
				       "cannot read the message from standard input: %s",
				       strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		p = chunk;
		end = chunk + n;
		while (!done && p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != 0) {
			/* One CR before the LF belongs to the line ending. */
			if (partial.len + (size_t)(nl - p) > INPUT_LINE_MAX + 1) {
				rc = line_too_long(lineno, err);
				goto out;
			}
			lineno++;
			if (partial.len > 0) {
				buf_append(&partial, p, (size_t)(nl - p));
				rc = take_line(&mb, partial.data, partial.len, ignore_dots, &done,
					       err);
				buf_reset(&partial);
			} else {
				rc = take_line(&mb, p, (size_t)(nl - p), ignore_dots, &done, err);
			}
			if (rc)
				goto out;
			p = nl + 1;
		}
		if (!done && p < end) {
			/* Memory stays bounded: a line never grows past the limit. */
			if (partial.len + (size_t)(end - p) > INPUT_LINE_MAX + 1) {
				rc = line_too_long(lineno, err);
				goto out;
			}
			buf_append(&partial, p, (size_t)(end - p));
		}
		/* A small message needs no 64 KB buffer: its end page is a page
		 * fault (~10 us) on every cron mail. A larger one gets it after the
		 * first full read (the chunk is consumed: its tail is in partial). */
		if ((size_t)n == size && size < READ_CHUNK) {
			free(chunk);
			size = READ_CHUNK;
			chunk = util_malloc(size);
		}
	}
	/* A last line without a newline is delivered (fail2ban's printf has none). */
	if (!done && partial.len > 0)
		rc = take_line(&mb, partial.data, partial.len, ignore_dots, &done, err);
	if (rc == 0)
		rc = msgbuild_finish(&mb, err);
out:
	if (rc)
		msgbuild_abort(&mb);
	buf_free(&partial);
	free(chunk);
	return rc;
}
