#ifndef RELAYSHIM_ANONYMIZE_H
#define RELAYSHIM_ANONYMIZE_H

/*++
 * NAME
 *	anonymize 3h
 * SUMMARY
 *	masking e-mail addresses for the log ([log] anonymize)
 * SYNOPSIS
 *	#include "anonymize.h"
 *
 *	struct anonymizer;
 *	int	anonymizer_parse(const char *spec, struct anonymizer **out,
 *			struct buf *why);
 *	void	anonymizer_free(struct anonymizer *an);
 *	void	anonymize_address(const struct anonymizer *an, struct buf *out,
 *			const char *addr, size_t len);
 *	void	anonymize_text(const struct anonymizer *an, struct buf *out,
 *			const char *text, size_t len);
 * DESCRIPTION
 *	anonymizer_parse() parses an [log] anonymize value with the
 *	semantics of boky/postfix's ANONYMIZE_EMAILS: "smart" (also
 *	"default", "true", "yes", "y", "1", "on"), "paranoid", "noop",
 *	"hash" with URL-encoded options after "?" (salt required; prefix,
 *	suffix, case_sensitive, short_sha, split), smart/paranoid with the
 *	option mask_symbol. "", "0", "no", "false", "off" mean off: *out is
 *	then NULL. Returns 0, or -1 with the reason (and the accepted
 *	values) in why. config.c uses it to validate the key;
 *	log.c to set up [log] anonymize.
 *
 *	anonymize_address() appends one address (no angle brackets) to out,
 *	masked; a value without "@" is appended unchanged, as are all
 *	values when an is NULL. anonymize_text() appends text with every
 *	address-like token masked (boky's matcher, message-id=<...> left
 *	alone).
 *--*/

#include <stddef.h>

struct buf;
struct anonymizer;

int anonymizer_parse(const char *spec, struct anonymizer **out, struct buf *why);
void anonymizer_free(struct anonymizer *an);
void anonymize_address(const struct anonymizer *an, struct buf *out, const char *addr, size_t len);
void anonymize_text(const struct anonymizer *an, struct buf *out, const char *text, size_t len);

#endif
