#ifndef RELAYSHIM_RELAY_HINT_H
#define RELAYSHIM_RELAY_HINT_H

/*++
 * NAME
 *	relay_hint 3h
 * SUMMARY
 *	what a relay's refusal says about the relay's configuration, and
 *	how the relay counts a message against its size limit
 * SYNOPSIS
 *	#include "relay_hint.h"
 *
 *	enum relay_hint relay_hint_classify(const char *text);
 *	const char *relay_hint_cause(enum relay_hint kind);
 *	const char *relay_hint_mark(enum relay_hint kind);
 *
 *	unsigned long long relay_hint_queue_size(const struct message *msg,
 *			const struct envelope *env);
 *	int	relay_hint_too_big(const struct message *msg,
 *			const struct envelope *env, unsigned long long limit,
 *			unsigned long long *estimate);
 * DESCRIPTION
 *	Some refusals are not about the message but about how the relay
 *	container was set up, and they are 4xx: the mail would sit in the
 *	queue until max_age with nobody told. relay_hint_classify() reads a
 *	relay reply, or any error text that quotes one, and says which
 *	kind it is:
 * .IP RELAY_HINT_RELAY_ACCESS
 *	"454 4.7.1 <x>: Relay access denied" or "Client host rejected":
 *	this client's address is not in the relay's mynetworks
 *	(juanluisbaptiste/postfix: SMTP_NETWORKS; boky/postfix:
 *	POSTFIX_mynetworks).
 * .IP RELAY_HINT_SENDER
 *	"Sender address rejected" (4.7.x, 5.7.x, 4.1.x other than domain
 *	not found), and boky/postfix's "Recipient address rejected: Access
 *	denied", which is what its ALLOWED_SENDER_DOMAINS check answers at
 *	RCPT for a sender outside the list.
 * .IP RELAY_HINT_DNS
 *	"Domain not found" (450 4.1.2 for a recipient, 450 4.1.8 for the
 *	sender): the relay cannot resolve the domain, usually because it has
 *	no DNS (an internal network).
 * .IP RELAY_HINT_SIZE
 *	5.3.4, 5.2.3, "message file too big", "size exceeds": the relay's
 *	message_size_limit (MESSAGE_SIZE_LIMIT).
 * .PP
 *	relay_hint_cause() is the likely cause as a phrase for a log line
 *	("the relay's mynetworks does not include this client"); "" for
 *	RELAY_HINT_NONE. relay_hint_mark() is a short word for the mailq
 *	listing ("mynetworks", "sender-domains", "dns", "size").
 *
 *	relay_hint_queue_size() estimates, on the high side, the size
 *	Postfix compares with message_size_limit: not the bytes on the wire
 *	but its queue file. Measured with Postfix 3.7 (limit 100000, one
 *	recipient, short host names): the largest message accepted was
 *	99139 wire bytes with lines under 126 bytes, 98812 with 300-byte
 *	lines. Every line is a record of one type byte and a length of 1
 *	byte (under 128) or 2 bytes (under 16384) instead of the CRLF, and
 *	lines over line_length_limit (2048) are split into several records;
 *	the fixed part (envelope records, the relay's own Received header,
 *	client name and address attributes) was 861 bytes, and each further
 *	recipient about 67 bytes. The estimate is wire size + 2048 fixed
 *	(room for longer host names and a relay that prepends header lines
 *	such as RelayTag) + 2 * address + 64 per recipient and for the
 *	sender + 1 per line of 126 bytes or more + 3 per 2048-byte piece of
 *	a longer line; the header and the body are read (body_read) for the
 *	line lengths.
 *
 *	relay_hint_too_big() says whether that estimate exceeds limit (0:
 *	no limit) and stores it in *estimate; it reads the body only when
 *	the line records could decide, so a message far from the limit
 *	costs nothing.
 *
 *	Everything here is pure (no network, no clock); unit tests call it.
 *--*/

#include "message.h"

enum relay_hint {
	RELAY_HINT_NONE,
	RELAY_HINT_RELAY_ACCESS, /* the relay's mynetworks */
	RELAY_HINT_SENDER,	 /* the relay's sender policy (ALLOWED_SENDER_DOMAINS) */
	RELAY_HINT_DNS,		 /* the relay cannot resolve a domain */
	RELAY_HINT_SIZE,	 /* the relay's message_size_limit */
};

#define RELAY_HINT_FIXED 2048 /* queue-file bytes besides the message lines */

enum relay_hint relay_hint_classify(const char *text);
const char *relay_hint_cause(enum relay_hint kind);
const char *relay_hint_mark(enum relay_hint kind);
unsigned long long relay_hint_queue_size(const struct message *msg, const struct envelope *env);
int relay_hint_too_big(const struct message *msg, const struct envelope *env,
		       unsigned long long limit, unsigned long long *estimate);

#endif
