#ifndef RELAYSHIM_REWRITE_H
#define RELAYSHIM_REWRITE_H

/*++
 * NAME
 *	rewrite 3h
 * SUMMARY
 *	the message processing pipeline: sender, recipients, header repair,
 *	masquerading, aliases, tags and policy
 * SYNOPSIS
 *	#include "rewrite.h"
 *
 *	int	rewrite_message(const struct config *cfg, const struct submit *sub,
 *			struct message *msg, struct envelope *env, time_t now,
 *			const unsigned char *random, size_t nrandom,
 *			struct error *err);
 *	void	rewrite_explain(const struct config *cfg, const char *addr,
 *			struct buf *out);
 *	void	rewrite_explain_host(const struct config *cfg, const char *hostname,
 *			const char *addr, struct buf *out);
 * DESCRIPTION
 *	rewrite_message() turns what the caller gave us (sub, msg) into
 *	the envelope and header that go to the relay, in this order (each
 *	step sees the result of the one before):
 * .IP 1.
 *	envelope sender: sub->sender (-f/-r; "" or "<>" = null sender),
 *	else the [senders] entry of sub->user, else per envelope_from;
 *	a bare name (or a name at a local domain: localhost,
 *	localhost.localdomain, sub->hostname) is qualified with
 *	cfg->domain; then masquerade_domains; then [rewrite] from forces it.
 * .IP 2.
 *	recipients: sub->rcpts plus, with sub->extract_recipients, To, Cc,
 *	Bcc (Resent-To, Resent-Cc, Resent-Bcc instead when any Resent-
 *	header is present); bare names through [aliases] ("*" = catch-all),
 *	then qualified; duplicates removed (domain case-insensitive).
 *	Envelope recipients are never masqueraded.
 * .IP 3.
 *	headers: bare addresses in address headers qualified, masquerading
 *	of sender and recipient headers, the [rewrite] from override of
 *	From:, missing Date, Message-ID and From added (add_missing_headers),
 *	Bcc, Resent-Bcc and Content-Length removed.
 * .IP 4.
 *	Received (when cfg->received) and exactly one RelayTag (when
 *	header_tag is set; any RelayTag already present is removed) are
 *	prepended, RelayTag first.
 * .IP 5.
 *	policy: the envelope sender's domain against
 *	allowed_sender_domains, then max_size.
 * .PP
 *	With sub->bs_mode the envelope was given by MAIL and RCPT: steps
 *	1 and 2 are skipped and env is used as it is.
 *
 *	now is used for Date and Received; random (at least 8 bytes, 16
 *	recommended) makes the Message-ID. Nothing here reads the clock,
 *	the environment or the network, so tests and fuzzers call it
 *	directly.
 *
 *	On success msg->header is replaced by the rewritten header, env
 *	holds the sender, the recipients, the DSN parameters of sub and
 *	env->smtputf8.
 *
 *	rewrite_explain() appends, for -bv, one line for addr describing
 *	the chain alias -> qualification -> masquerade.
 *	rewrite_explain_host() does the same and also treats hostname as a
 *	local domain, as rewrite_message() does with sub->hostname.
 * DIAGNOSTICS
 *	rewrite_message() returns 0, or a sysexits.h status with one line
 *	in err: EX_DATAERR (65) for CR or LF in -f/-F, a message larger
 *	than max_size or more than REWRITE_RCPT_MAX recipients after aliases
 *	and duplicates (the -bs server refuses the 1001st RCPT itself,
 *	SMTPD_RCPT_MAX; Postfix's smtpd_recipient_limit is 1000 too, so a
 *	longer list would be cut by the relay), EX_CONFIG (78) for CR or
 *	LF in [rewrite] from or header_tag, EX_USAGE (64) when there are no
 *	recipients, EX_NOPERM (77) when the sender is not in
 *	allowed_sender_domains.
 *--*/

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "message.h"
#include "util.h"

#define REWRITE_RCPT_MAX 1000 /* envelope recipients per message */

int rewrite_message(const struct config *cfg, const struct submit *sub, struct message *msg,
		    struct envelope *env, time_t now, const unsigned char *random, size_t nrandom,
		    struct error *err);
void rewrite_explain(const struct config *cfg, const char *addr, struct buf *out);
void rewrite_explain_host(const struct config *cfg, const char *hostname, const char *addr,
			  struct buf *out);

#endif
