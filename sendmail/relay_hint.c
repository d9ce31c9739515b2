/*++
 * NAME
 *	relay_hint 3
 * SUMMARY
 *	what a relay's refusal says about the relay's configuration
 * SYNOPSIS
 *	See relay_hint.h.
 * DESCRIPTION
 *	The texts matched are Postfix's own (smtpd_check.c wording), as the
 *	relay images run Postfix with these restrictions: boky/postfix's
 *	smtpd_client_restrictions and ALLOWED_SENDER_DOMAINS list,
 *	juanluisbaptiste/postfix's mynetworks with Postfix's default
 *	smtpd_relay_restrictions (defer_unauth_destination: 454), and
 *	reject_unknown_recipient_domain without DNS (450 4.1.2). Matching
 *	is on words, not on codes alone: 4.7.1 is also what a greylisting
 *	or rate-limiting relay answers, and must not be blamed on mynetworks.
 *--*/

#include <ctype.h>
#include <string.h>

#include "relay_hint.h"

#define LINE_RECORD_SHORT 126  /* shorter lines cost no more in the queue file */
#define LINE_RECORD_PIECE 2048 /* Postfix line_length_limit: one record per piece */

/* contains - case-insensitive substring test */

static int contains(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = text; *p; p++) {
		size_t i = 0;

		while (i < n && p[i] &&
		       tolower((unsigned char)p[i]) == tolower((unsigned char)word[i]))
			i++;
		if (i == n)
			return 1;
	}
	return 0;
}

/* relay_hint_classify - which configuration a refusal points at */

enum relay_hint relay_hint_classify(const char *text)
{
	if (text == 0 || *text == 0)
		return RELAY_HINT_NONE;
	if (contains(text, "Relay access denied") || contains(text, "Client host rejected"))
		return RELAY_HINT_RELAY_ACCESS;
	/* Before the sender test: 450 4.1.8 "Sender address rejected: Domain not found". */
	if (contains(text, "Domain not found"))
		return RELAY_HINT_DNS;
	if (contains(text, "Sender address rejected") ||
	    contains(text, "Recipient address rejected: Access denied"))
		return RELAY_HINT_SENDER;
	if (contains(text, " 5.3.4 ") || contains(text, " 5.2.3 ") ||
	    contains(text, "message file too big") || contains(text, "size exceeds"))
		return RELAY_HINT_SIZE;
	return RELAY_HINT_NONE;
}

/* relay_hint_cause - the likely cause, for one log line */

const char *relay_hint_cause(enum relay_hint kind)
{
	switch (kind) {
	case RELAY_HINT_RELAY_ACCESS:
		return "this client's address is not in the relay's mynetworks"
		       " (juanluisbaptiste/postfix: SMTP_NETWORKS; boky/postfix: "
		       "POSTFIX_mynetworks)";
	case RELAY_HINT_SENDER:
		return "the relay refuses this sender"
		       " (boky/postfix: its ALLOWED_SENDER_DOMAINS does not list the sender's "
		       "domain)";
	case RELAY_HINT_DNS:
		return "the relay cannot resolve the domain (no DNS on the relay's network?)";
	case RELAY_HINT_SIZE:
		return "the message is over the relay's size limit (MESSAGE_SIZE_LIMIT)";
	case RELAY_HINT_NONE:
		break;
	}
	return "";
}

/* relay_hint_mark - a short word for the mailq listing */

const char *relay_hint_mark(enum relay_hint kind)
{
	switch (kind) {
	case RELAY_HINT_RELAY_ACCESS:
		return "mynetworks";
	case RELAY_HINT_SENDER:
		return "sender-domains";
	case RELAY_HINT_DNS:
		return "dns";
	case RELAY_HINT_SIZE:
		return "size";
	case RELAY_HINT_NONE:
		break;
	}
	return "";
}

/* line_extra - queue-file bytes of a line beyond its wire bytes (CRLF included) */

static unsigned long long line_extra(unsigned long long len)
{
	if (len < LINE_RECORD_SHORT)
		return 0;
	if (len <= LINE_RECORD_PIECE)
		return 1;
	return 3 * ((len + LINE_RECORD_PIECE - 1) / LINE_RECORD_PIECE);
}

/* lines_extra - line_extra over a CRLF text given in chunks; *cur carries a partial line */

static unsigned long long lines_extra(const char *p, size_t n, unsigned long long *cur)
{
	unsigned long long extra = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			/* The CR before the LF is not part of the record. */
			extra += line_extra(*cur ? *cur - 1 : 0);
			*cur = 0;
		} else {
			(*cur)++;
		}
	}
	return extra;
}

/* relay_hint_queue_size - the size Postfix's message_size_limit sees, on the high side */

unsigned long long relay_hint_queue_size(const struct message *msg, const struct envelope *env)
{
	unsigned long long size = message_size(msg) + RELAY_HINT_FIXED;
	unsigned long long cur = 0;

	if (env) {
		size += 2 * strlen(env->sender ? env->sender : "") + 64;
		for (size_t i = 0; i < env->rcpts.n; i++)
			size += 2 * strlen(env->rcpts.v[i]) + 64;
	}
	size += lines_extra(msg->header.data ? msg->header.data : "", msg->header.len, &cur);
	cur = 0;
	if (msg->body.fd < 0) {
		size += lines_extra(msg->body.mem.data ? msg->body.mem.data : "", msg->body.mem.len,
				    &cur);
	} else {
		char chunk[65536];
		unsigned long long off = 0;
		ssize_t got;

		while ((got = body_read(&msg->body, off, chunk, sizeof(chunk))) > 0) {
			size += lines_extra(chunk, (size_t)got, &cur);
			off += (unsigned long long)got;
		}
		if (got < 0)
			/* Unreadable now: assume the worst for every possible line. */
			return size + msg->body.len / LINE_RECORD_SHORT + 1;
	}
	return size + line_extra(cur);
}

/* relay_hint_too_big - relay_hint_queue_size() > limit, reading the body only when it matters */

int relay_hint_too_big(const struct message *msg, const struct envelope *env,
		       unsigned long long limit, unsigned long long *estimate)
{
	unsigned long long low = message_size(msg) + RELAY_HINT_FIXED;

	if (env) {
		low += 2 * strlen(env->sender ? env->sender : "") + 64;
		for (size_t i = 0; i < env->rcpts.n; i++)
			low += 2 * strlen(env->rcpts.v[i]) + 64;
	}
	*estimate = low;
	if (limit == 0)
		return 0;
	if (low > limit)
		return 1;
	/* At most one extra byte per 126 bytes of lines: below the limit even so? */
	if (low + message_size(msg) / LINE_RECORD_SHORT + 1 <= limit)
		return 0;
	*estimate = relay_hint_queue_size(msg, env);
	return *estimate > limit;
}
