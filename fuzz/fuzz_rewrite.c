/*++
 * NAME
 *	fuzz_rewrite 1
 * SUMMARY
 *	libFuzzer target: the rewrite pipeline end to end
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_rewrite [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	Two option bytes choose the submission (-t, -bs, -f, -F, argv
 *	recipients) and the configuration (masquerading, aliases, senders,
 *	from override, tag, Received, missing headers, allowed domains,
 *	max_size); the rest is the message, built with the same message
 *	builder the readers use. rewrite_message() runs with a fixed time
 *	and fixed random bytes.
 *
 *	Invariants on success: the header is CRLF lines and parses into
 *	fields of which none is Bcc, Resent-Bcc or Content-Length; with a
 *	tag there is exactly one RelayTag; no envelope address contains CR,
 *	LF or NUL; there is at least one recipient; the size limit holds.
 *	On failure the status is one of those rewrite.h documents.
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <string.h>
#include <sysexits.h>

#include "fuzz.h"
#include "header.h"
#include "input.h"
#include "rewrite.h"

#define NOW ((time_t)1700000000)

static const unsigned char rnd[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static const char *const senders[] = {0,
				      "",
				      "root",
				      "user@example.com",
				      "a@local\r\nBcc: x@y",
				      "\"q u\"@example.com",
				      "\xc3\xa9@ex\xc3\xa4mple.com",
				      "<>"};
static const char *const fullnames[] = {
    0, "Root", "J\xc3\xb6rg", "x\r\nBcc: y@z", "\"quoted\" (c) <a>", ""};

/* no_breaks - an envelope address must not carry a line break */

static int no_breaks(const char *s)
{
	return strpbrk(s, "\r\n") == 0;
}

/* build - the message from the fuzz bytes, lines split at LF */

static int build(struct message *msg, const uint8_t *data, size_t size, struct error *err)
{
	struct msgbuild mb;
	const char *p = (const char *)data, *end = p + size, *nl;
	int rc = 0;

	msgbuild_init(&mb, msg);
	while (rc == 0 && p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == 0)
			nl = end;
		rc = msgbuild_line(&mb, p, (size_t)(nl - p - (nl > p && nl[-1] == '\r')), err);
		p = nl + 1;
	}
	if (rc == 0)
		return msgbuild_finish(&mb, err);
	msgbuild_abort(&mb);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int o1 = fuzz_take(&data, &size), o2 = fuzz_take(&data, &size);
	struct config cfg;
	struct submit sub;
	struct message msg;
	struct envelope env;
	struct error err;
	struct map_entry aliases[2], sendermap[1];
	struct header h = HEADER_INIT;
	int rc;

	fuzz_quiet_log();
	memset(&cfg, 0, sizeof(cfg));
	memset(&sub, 0, sizeof(sub));
	memset(aliases, 0, sizeof(aliases));
	memset(sendermap, 0, sizeof(sendermap));
	message_init(&msg);
	envelope_init(&env);
	error_clear(&err);

	cfg.domain = (char *)"example.com";
	cfg.envelope_from = (o2 & 1) ? ENVFROM_USER : ENVFROM_HEADER;
	cfg.add_missing_headers = (o2 >> 1) & 1;
	cfg.received = (o2 >> 2) & 1;
	cfg.header_tag = (o2 & 8) ? (char *)"fuzz-tag" : 0;
	cfg.from = (o2 & 16) ? (char *)"\"Your Name\" <noreply@example.com>" : 0;
	cfg.max_size = (o2 & 32) ? 4096 : 0;
	if (o2 & 64) {
		strlist_add(&cfg.masquerade_domains, "!keep.example.com");
		strlist_add(&cfg.masquerade_domains, "example.com");
	}
	if (o2 & 128)
		strlist_add(&cfg.allowed_sender_domains, "example.com");
	aliases[0].key = (char *)"root";
	strlist_add(&aliases[0].values, "admin@example.com");
	strlist_add(&aliases[0].values, "ops");
	aliases[1].key = (char *)"*";
	strlist_add(&aliases[1].values, "catchall@example.com");
	cfg.aliases = aliases;
	cfg.naliases = (o1 & 64) ? 2 : 1;
	sendermap[0].key = (char *)"www-data";
	strlist_add(&sendermap[0].values, "web@example.com");
	cfg.senders = sendermap;
	cfg.nsenders = 1;

	sub.extract_recipients = o1 & 1;
	sub.bs_mode = (o1 >> 1) & 1;
	sub.sender = senders[(o1 >> 2) & 7];
	sub.fullname = fullnames[((unsigned)o1 >> 5) % 6];
	sub.user = "www-data";
	sub.uid = 33;
	sub.hostname = "fuzzhost";
	sub.queue_id = "FUZZ01";
	if (o1 & 128) {
		strlist_add(&sub.rcpts, "root");
		strlist_add(&sub.rcpts, "Someone@Example.COM");
	}
	if (sub.bs_mode) {
		env.sender = util_strdup("bs@example.com");
		strlist_add(&env.rcpts, "rcpt@example.org");
	}

	if (build(&msg, data, size, &err) == 0) {
		rc = rewrite_message(&cfg, &sub, &msg, &env, NOW, rnd, sizeof(rnd), &err);
		if (rc == 0) {
			header_parse(&h, msg.header.data ? msg.header.data : "", msg.header.len);
			fuzz_check(header_find(&h, "Bcc", 0) < 0, "no Bcc");
			fuzz_check(header_find(&h, "Resent-Bcc", 0) < 0, "no Resent-Bcc");
			fuzz_check(header_find(&h, "Content-Length", 0) < 0, "no Content-Length");
			if (cfg.header_tag) {
				long t = header_find(&h, "RelayTag", 0);

				fuzz_check(t == 0 && header_find(&h, "RelayTag", 1) < 0,
					   "exactly one RelayTag, first");
			}
			for (size_t i = 0; i < msg.header.len; i++)
				if (msg.header.data[i] == '\n')
					fuzz_check(i > 0 && msg.header.data[i - 1] == '\r',
						   "header lines end in CRLF");
			fuzz_check(env.sender && no_breaks(env.sender),
				   "sender without line break");
			fuzz_check(env.rcpts.n > 0, "at least one recipient");
			for (size_t i = 0; i < env.rcpts.n; i++)
				fuzz_check(no_breaks(env.rcpts.v[i]),
					   "recipient without line break");
			if (cfg.max_size)
				fuzz_check(message_size(&msg) <= cfg.max_size, "size limit holds");
		} else {
			fuzz_check(rc == EX_DATAERR || rc == EX_USAGE || rc == EX_NOPERM ||
				       rc == EX_CONFIG,
				   "documented status");
		}
	}

	header_free(&h);
	message_free(&msg);
	envelope_free(&env);
	strlist_free(&sub.rcpts);
	strlist_free(&aliases[0].values);
	strlist_free(&aliases[1].values);
	strlist_free(&sendermap[0].values);
	strlist_free(&cfg.masquerade_domains);
	strlist_free(&cfg.allowed_sender_domains);
	return 0;
}
