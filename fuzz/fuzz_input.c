/*++
 * NAME
 *	fuzz_input 1
 * SUMMARY
 *	libFuzzer target: the message reader (input_read, msgbuild_line)
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_input [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	The first byte chooses the mode: bit 0 is -i (ignore dots), bit 1
 *	feeds the lines to msgbuild_line() directly (the -bs DATA path) instead
 *	of input_read() over a memory file. The rest is the message.
 *
 *	Invariants checked on every input: the header section is made of
 *	CRLF-terminated lines without any bare CR-LF confusion (no LF that is
 *	not preceded by CR), the body length matches what body_read() returns
 *	and the body ends in CRLF when it is not empty, the header never
 *	grows past INPUT_MAX_HEADER_BYTES plus one line, and header_parse()
 *	sees every line the builder kept as a field or its continuation (one
 *	grammar: "BCC : x" is a field on both sides).
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "header.h"
#include "input.h"

/* check_crlf_lines - every LF is preceded by CR and the text ends in CRLF */

static void check_crlf_lines(const char *p, size_t len, const char *what)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] == '\n')
			fuzz_check(i > 0 && p[i - 1] == '\r', what);
	if (len > 0)
		fuzz_check(len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n', what);
}

/* check_message - invariants of a built message */

static void check_message(struct message *msg)
{
	struct header h = HEADER_INIT;
	char *body;
	ssize_t n;

	check_crlf_lines(msg->header.data, msg->header.len, "header lines end in CRLF");
	header_parse(&h, msg->header.data ? msg->header.data : "", msg->header.len);
	for (size_t i = 0; i < h.n; i++)
		fuzz_check(h.v[i].name_len > 0, "every kept header line is a field for header.c");
	header_free(&h);
	body = malloc(msg->body.len + 1);
	n = body_read(&msg->body, 0, body, msg->body.len);
	fuzz_check(n == (ssize_t)msg->body.len, "body_read returns the whole body");
	check_crlf_lines(body, msg->body.len, "body lines end in CRLF");
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int mode = fuzz_take(&data, &size);
	struct message msg;
	struct error err;
	int rc;

	fuzz_quiet_log();
	message_init(&msg);
	error_clear(&err);
	if (mode & 2) {
		struct msgbuild mb;
		const char *p = (const char *)data, *end = p + size, *nl;

		msgbuild_init(&mb, &msg);
		rc = 0;
		while (rc == 0 && p < end) {
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == 0)
				nl = end;
			/* msgbuild_line takes lines without their ending, like smtpd gives them. */
			rc = msgbuild_line(&mb, p, (size_t)(nl - p - (nl > p && nl[-1] == '\r')),
					   &err);
			p = nl + 1;
		}
		if (rc == 0)
			rc = msgbuild_finish(&mb, &err);
		else
			msgbuild_abort(&mb);
	} else {
		int fd = fuzz_memfd(data, size);

		rc = input_read(fd, mode & 1, &msg, &err);
		close(fd);
	}
	if (rc == 0)
		check_message(&msg);
	message_free(&msg);
	return 0;
}
