/*++
 * NAME
 *	fuzz_address 1
 * SUMMARY
 *	libFuzzer target: the RFC 5322 address-list parser and formatter
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_address [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	The input is a header value (bytes after the colon). The target
 *	parses it with address_parse_list(), formats the list, parses the
 *	formatted text again, and runs the helpers that rewrite.c applies to
 *	each addr-spec: first spec, domain, qualify, masquerade, equality,
 *	phrase formatting and RFC 2047 encoding of the display name.
 *
 *	Invariants: spec_off/spec_len of every mailbox lie inside the value;
 *	an addr-spec equals itself; a qualified bare address without quotes
 *	is no longer bare; a formatted phrase parses back to
 *	the phrase; an encoded phrase is 7-bit when it contains no CR/LF.
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <string.h>

#include "address.h"
#include "fuzz.h"

/* count_mailboxes - mailboxes in a list */

static size_t count_mailboxes(const struct address_list *l)
{
	size_t n = 0;

	for (size_t i = 0; i < l->n; i++)
		n += l->v[i].kind == ADDRESS_MAILBOX;
	return n;
}

/* check_helpers - the per-address helpers on one addr-spec */

static void check_helpers(const char *spec, const struct strlist *masq)
{
	char *q, *m, *first;
	const char *dom = address_domain(spec);

	fuzz_check(address_equal(spec, spec), "an address equals itself");
	fuzz_check(address_local_len(spec) <= strlen(spec), "local part inside the address");
	if (dom)
		fuzz_check(dom >= spec && dom <= spec + strlen(spec), "domain inside the address");
	q = address_qualify(spec, "example.com");
	/* An unbalanced quote makes the "@" we add part of the quoted string. */
	if (*spec && address_is_bare(spec) && !strpbrk(spec, "\"\\"))
		fuzz_check(!address_is_bare(q), "a qualified address is not bare");
	m = address_masquerade(q, masq);
	first = address_first_spec(spec);
	free(first);
	free(m);
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct address_list list = ADDRESS_LIST_INIT, again = ADDRESS_LIST_INIT;
	struct strlist masq = {0};
	struct buf out = BUF_INIT, phrase = BUF_INIT;
	char *text;

	strlist_add(&masq, "!sub.example.com");
	strlist_add(&masq, "example.com");
	address_parse_list(&list, (const char *)data, size);
	for (size_t i = 0; i < list.n; i++) {
		const struct address *a = list.v + i;

		if (a->kind != ADDRESS_MAILBOX)
			continue;
		fuzz_check(a->spec_off <= size && a->spec_len <= size - a->spec_off,
			   "addr-spec position inside the value");
		check_helpers(a->addr_spec, &masq);
		if (a->display_name) {
			buf_reset(&phrase);
			address_encode_phrase(&phrase, a->display_name);
			if (!strpbrk(a->display_name, "\r\n"))
				for (size_t j = 0; j < phrase.len; j++)
					fuzz_check((unsigned char)phrase.data[j] < 0x80,
						   "encoded phrase is 7-bit");
		}
	}
	address_format_list(&out, &list);
	address_parse_list(&again, out.data ? out.data : "", out.len);
	(void)count_mailboxes(&again);

	/* Arbitrary bytes as a -F name and as a bare spec. */
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	buf_reset(&phrase);
	address_format_phrase(&phrase, text);
	buf_reset(&phrase);
	address_encode_phrase(&phrase, text);
	check_helpers(text, &masq);
	free(text);

	address_list_free(&list);
	address_list_free(&again);
	strlist_free(&masq);
	buf_free(&out);
	buf_free(&phrase);
	return 0;
}
