/*++
 * NAME
 *	fuzz_smtp_reply 1
 * SUMMARY
 *	libFuzzer target: what the relay says (smtp_parse_reply,
 *	smtp_parse_ehlo) and what we send it (smtp_dot_stuff)
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_smtp_reply [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	The input is a byte stream from a relay. The target parses replies
 *	one after the other, as the client does with a pipelined answer,
 *	and reads the EHLO capabilities of every 2xx reply.
 *
 *	The same bytes, taken as a message in CRLF lines, are dot-stuffed
 *	in one piece and in chunks cut where the first byte says; the two
 *	results must be identical (a chunk boundary must never change the
 *	data on the wire), no line of the result may be a lone "." before
 *	the final dot, and unstuffing the result gives back the input.
 *
 *	Invariants of the parser: a consumed length is never larger than
 *	the input and always ends after a LF; the code is 200..599; the text
 *	holds at most SMTP_REPLY_LINES_MAX lines.
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <string.h>

#include "fuzz.h"
#include "smtp.h"

/* check_replies - parse the stream reply by reply */

static void check_replies(const char *data, size_t size)
{
	struct smtp_reply r;
	size_t pos = 0;

	smtp_reply_init(&r);
	while (pos < size) {
		ssize_t n = smtp_parse_reply(data + pos, size - pos, &r);

		if (n <= 0)
			break;
		fuzz_check((size_t)n <= size - pos, "consumed inside the input");
		fuzz_check(data[pos + (size_t)n - 1] == '\n', "a reply ends after LF");
		fuzz_check(r.code >= 200 && r.code <= 599, "reply code in range");
		fuzz_check(r.nlines >= 1 && r.nlines <= SMTP_REPLY_LINES_MAX, "line count bounded");
		fuzz_check(strlen(r.dsn) < sizeof(r.dsn), "dsn terminated");
		if (r.code / 100 == 2) {
			struct smtp_caps caps;

			memset(&caps, 0, sizeof(caps));
			smtp_parse_ehlo(&r, &caps);
			smtp_caps_free(&caps);
		}
		pos += (size_t)n;
	}
	smtp_reply_free(&r);
}

/* unstuff - undo dot-stuffing up to the final dot; -1 when there is none */

static int unstuff(const char *p, size_t len, struct buf *out)
{
	size_t pos = 0;

	while (pos < len) {
		const char *lf = memchr(p + pos, '\n', len - pos);
		size_t n;

		fuzz_check(lf != 0 && lf > p + pos && lf[-1] == '\r', "stuffed lines end in CRLF");
		n = (size_t)(lf - (p + pos)) + 1;
		if (n == 3 && p[pos] == '.')
			return pos + n == len ? 0 : -1;
		if (p[pos] == '.')
			buf_append(out, p + pos + 1, n - 1);
		else
			buf_append(out, p + pos, n);
		pos += n;
	}
	return -1;
}

/* check_dot_stuff - chunking never changes the output; unstuffing inverts it */

static void check_dot_stuff(const char *data, size_t size, size_t step)
{
	struct smtp_dot whole = {0}, parts = {0};
	struct buf a = BUF_INIT, b = BUF_INIT, back = BUF_INIT;
	struct buf lines = BUF_INIT;

	/* smtp_dot_stuff takes CRLF lines: normalise like the input reader does. */
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n' && !(i > 0 && data[i - 1] == '\r'))
			buf_putc(&lines, '\r');
		buf_putc(&lines, data[i]);
	}
	if (lines.len > 0 && lines.data[lines.len - 1] == '\r')
		buf_putc(&lines, '\n');
	smtp_dot_stuff(&whole, lines.data ? lines.data : "", lines.len, &a);
	smtp_dot_finish(&whole, &a);
	for (size_t off = 0; off < lines.len; off += step) {
		size_t n = lines.len - off < step ? lines.len - off : step;

		smtp_dot_stuff(&parts, lines.data + off, n, &b);
	}
	smtp_dot_finish(&parts, &b);
	fuzz_check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
		   "chunk boundaries do not change dot-stuffing");
	fuzz_check(unstuff(a.data, a.len, &back) == 0, "the only lone dot is the final one");
	/* What the relay reads back is our data, plus a CRLF if the last line lacked one. */
	fuzz_check(back.len >= lines.len &&
		       (lines.len == 0 || memcmp(back.data, lines.data, lines.len) == 0),
		   "unstuffing gives the data back");
	buf_free(&a);
	buf_free(&b);
	buf_free(&back);
	buf_free(&lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step = (size_t)fuzz_take(&data, &size) % 7 + 1;

	check_replies((const char *)data, size);
	check_dot_stuff((const char *)data, size, step);
	return 0;
}
