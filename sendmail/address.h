#ifndef RELAYSHIM_ADDRESS_H
#define RELAYSHIM_ADDRESS_H

/*++
 * NAME
 *	address 3h
 * SUMMARY
 *	RFC 5322 address lists: parse, format, qualify, masquerade
 * SYNOPSIS
 *	#include "address.h"
 *
 *	enum address_kind { ADDRESS_MAILBOX, ADDRESS_GROUP_START, ADDRESS_GROUP_END };
 *	struct address { kind, display_name, addr_spec, spec_off, spec_len, angle };
 *	struct address_list { struct address *v; size_t n; size_t cap; };
 *
 *	void	address_parse_list(struct address_list *list, const char *value,
 *			size_t len);
 *	void	address_list_free(struct address_list *list);
 *	char	*address_first_spec(const char *text);
 *
 *	void	address_format_list(struct buf *out, const struct address_list *list);
 *	void	address_format_mailbox(struct buf *out, const char *display_name,
 *			const char *addr_spec);
 *	void	address_format_phrase(struct buf *out, const char *phrase);
 *	void	address_encode_phrase(struct buf *out, const char *phrase);
 *
 *	int	address_is_bare(const char *spec);
 *	const char *address_domain(const char *spec);
 *	size_t	address_local_len(const char *spec);
 *	char	*address_qualify(const char *spec, const char *domain);
 *	int	address_domain_matches(const char *domain, const char *parent);
 *	int	address_equal(const char *a, const char *b);
 *	char	*address_masquerade(const char *spec, const struct strlist *domains);
 * DESCRIPTION
 *	address_parse_list() appends to list the elements of an RFC 5322
 *	address-list header value (value, len: raw bytes after the colon,
 *	folding included): mailboxes with or without a display name,
 *	angle addresses (obsolete source routes dropped), groups
 *	("undisclosed-recipients:;" gives a GROUP_START and a GROUP_END),
 *	quoted strings, domain literals, comments (skipped; nesting is
 *	counted, not recursed into) and bare local names ("root"). Bytes
 *	>= 0x80 are ordinary atom bytes, so UTF-8 local parts and domains
 *	(RFC 6532) are kept intact. The parser never fails: hostile input
 *	(unbalanced quotes, comments or brackets, stray specials) gives a
 *	best-effort result in time linear in len.
 *
 *	For a mailbox, addr_spec is the address without comments or folding
 *	("" for "<>"), display_name the decoded phrase (quotes removed,
 *	runs of white space made one space) or NULL, and spec_off/spec_len
 *	the bytes of value the addr-spec was written in, so that a caller
 *	can replace just the address and leave the rest of the header
 *	byte-for-byte as it was. angle is non-zero for "<...>" forms.
 *	For a group start, display_name is the group name.
 *	All strings are owned by the list; address_list_free() releases
 *	them and leaves an empty list.
 *
 *	address_first_spec() returns (allocated) the addr-spec of the first
 *	mailbox in text ("a@b", "<a@b>", "Name <a@b>"), or NULL when there
 *	is none.
 *
 *	address_format_list() appends a list as a header value ("a@b,
 *	Name <c@d>, team: e@f;"); address_format_mailbox() one mailbox;
 *	address_format_phrase() a display name, quoted when needed.
 *	address_encode_phrase() is address_format_phrase() for a name that
 *	we put into a header ourselves (-F): a name with non-ASCII bytes
 *	becomes RFC 2047 "=?UTF-8?B?...?=" words, so the header stays 7-bit
 *	for relays without SMTPUTF8.
 *
 *	address_is_bare() is non-zero when spec has no "@" outside quoted
 *	strings. address_domain() returns the part after the last such "@"
 *	(pointing into spec), or NULL. address_local_len() is the length of
 *	the local part. address_qualify() returns a new string: spec, with
 *	"@domain" appended when spec is bare and not empty.
 *	address_domain_matches() is non-zero when domain equals parent or
 *	is a subdomain of it, ignoring ASCII case (a leading "." in parent
 *	is ignored). address_equal() compares two addr-specs: local parts
 *	exactly, domains ignoring ASCII case.
 *
 *	address_masquerade() applies Postfix masquerade_domains semantics
 *	(cleanup_masquerade.c): the list is tried left to right; an entry
 *	equal to the address's domain stops the search with no change; an
 *	entry that is a parent domain replaces the domain by the entry
 *	(lower-cased, like Postfix) unless it is an exclusion ("!domain";
 *	each "!" toggles), and stops the search. Returns the new address
 *	(allocated), or NULL when nothing changed.
 *--*/

#include <stddef.h>

#include "buf.h"
#include "util.h"

enum address_kind { ADDRESS_MAILBOX, ADDRESS_GROUP_START, ADDRESS_GROUP_END };

struct address {
	enum address_kind kind;
	char *display_name; /* decoded phrase / group name, or NULL */
	char *addr_spec;    /* mailbox only: "local@domain", "root", "" */
	size_t spec_off;    /* mailbox only: where addr_spec was written */
	size_t spec_len;
	int angle; /* written as <addr> */
};

struct address_list {
	struct address *v;
	size_t n;
	size_t cap;
};

#define ADDRESS_LIST_INIT                                                                          \
	{                                                                                          \
		0                                                                                  \
	}

void address_parse_list(struct address_list *list, const char *value, size_t len);
void address_list_free(struct address_list *list);
char *address_first_spec(const char *text);

void address_format_list(struct buf *out, const struct address_list *list);
void address_format_mailbox(struct buf *out, const char *display_name, const char *addr_spec);
void address_format_phrase(struct buf *out, const char *phrase);
void address_encode_phrase(struct buf *out, const char *phrase);

int address_is_bare(const char *spec);
const char *address_domain(const char *spec);
size_t address_local_len(const char *spec);
char *address_qualify(const char *spec, const char *domain);
int address_domain_matches(const char *domain, const char *parent);
int address_equal(const char *a, const char *b);
char *address_masquerade(const char *spec, const struct strlist *domains);

#endif
