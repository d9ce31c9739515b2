/*++
 * NAME
 *	fuzz_smtpd 1
 * SUMMARY
 *	libFuzzer target: the -bs command stream (smtpd_serve)
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_smtpd [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	The first byte chooses the session: AUTH accepted or off, a size
 *	limit, DSN offered, what the fake delivery answers and whether it
 *	fails. The rest is what the client sends; it is read from a memory
 *	file (so the whole stream is there at once, as with a pipelining
 *	client) and the replies go to /dev/null. Small limits make the bounds
 *	reachable: 256-byte command lines, 4 KiB data lines, 8 recipients.
 *
 *	Invariants, for every message handed to the delivery: the sender and
 *	recipients contain no CR, LF or NUL; there is at least one recipient
 *	and no more than the limit; the header and the body are CRLF lines
 *	(every LF after a CR: a bare LF ended a line, a lone CR stayed data,
 *	SMTP smuggling cannot split what the relay sees); no body line is
 *	longer than the data line limit; with a size limit the message fits;
 *	no more messages are delivered than the stream holds "\r\n.\r\n"
 *	sequences (only that ends DATA: a bare-LF dot cannot start a second,
 *	smuggled transaction).
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "smtpd.h"

#define LINE_MAX_FUZZ 256
#define DATA_LINE_MAX_FUZZ 4096
#define RCPT_MAX_FUZZ 8

static const char *const answers[] = {
    "250 2.0.0 Ok: queued as FUZZ",
    "451 4.3.0 try later",
    "550 5.7.1 no\r\n",
    "250-multi\r\n250 line",
    "garbage",
    "",
};

static int answer;
static int fail;
static size_t delivered;

/* check_crlf - every LF after a CR */

static void check_crlf(const char *p, size_t len, const char *what)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] == '\n')
			fuzz_check(i > 0 && p[i - 1] == '\r', what);
}

/* fake_deliver - check the transaction, answer without a relay */

static int fake_deliver(void *ctx, struct envelope *env, struct message *msg, struct buf *reply)
{
	const struct config *cfg = ctx;
	char *body = malloc(msg->body.len + 1);
	size_t start = 0;

	fuzz_check(env->sender != 0 && strpbrk(env->sender, "\r\n") == 0, "sender clean");
	fuzz_check(env->rcpts.n >= 1 && env->rcpts.n <= RCPT_MAX_FUZZ, "recipient count");
	for (size_t i = 0; i < env->rcpts.n; i++)
		fuzz_check(strpbrk(env->rcpts.v[i], "\r\n") == 0, "recipient clean");
	fuzz_check(memchr(env->sender, 0, strlen(env->sender) + 1) ==
		       env->sender + strlen(env->sender),
		   "sender is a string");
	check_crlf(msg->header.data, msg->header.len, "header lines end in CRLF");
	fuzz_check(body_read(&msg->body, 0, body, msg->body.len) == (ssize_t)msg->body.len,
		   "body readable");
	check_crlf(body, msg->body.len, "body lines end in CRLF");
	for (size_t i = 0; i < msg->body.len; i++)
		if (body[i] == '\n') {
			fuzz_check(i - start <= DATA_LINE_MAX_FUZZ + 1, "data line bounded");
			start = i + 1;
		}
	if (cfg->max_size)
		fuzz_check(message_size(msg) <= cfg->max_size + 2, "size limit holds");
	free(body);
	delivered++;
	buf_puts(reply, answers[answer]);
	return fail;
}

/* count_ends - "\r\n.\r\n" sequences in the stream (overlapping ones too) */

static size_t count_ends(const uint8_t *p, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i + 5 <= len; i++)
		n += memcmp(p + i, "\r\n.\r\n", 5) == 0;
	return n;
}

static int fake_has_dsn(void *ctx)
{
	(void)ctx;
	return answer & 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int o = fuzz_take(&data, &size);
	struct config cfg;
	struct smtpd_limits lim;
	struct smtpd_ops ops = {fake_deliver, fake_has_dsn, 0, 0};
	struct error err;
	int in, out;

	fuzz_quiet_log();
	memset(&cfg, 0, sizeof(cfg));
	cfg.smtpd_auth = (o & 1) ? SMTPD_AUTH_ACCEPT : SMTPD_AUTH_OFF;
	cfg.max_size = (o & 2) ? 2048 : 0;
	cfg.helo = (char *)"fuzz.test";
	answer = ((o >> 2) & 7) % 6;
	fail = (o >> 5) & 1;
	smtpd_limits_default(&lim);
	lim.line_max = LINE_MAX_FUZZ;
	lim.data_line_max = DATA_LINE_MAX_FUZZ;
	lim.rcpt_max = RCPT_MAX_FUZZ;
	lim.idle_timeout_ms = 1000;
	error_clear(&err);
	in = fuzz_memfd(data, size);
	out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	delivered = 0;
	(void)smtpd_serve_limits(in, out, &cfg, &lim, &ops, &cfg, &err);
	fuzz_check(delivered <= count_ends(data, size), "every message ended at CRLF.CRLF");
	close(in);
	close(out);
	return 0;
}
