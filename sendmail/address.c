/*++
 * NAME
 *	address 3
 * SUMMARY
 *	RFC 5322 address lists: parse, format, qualify, masquerade
 * DESCRIPTION
 *	See address.h. The parser is a tokenizer (atoms, quoted strings,
 *	domain literals, single-character specials; white space and
 *	comments are skipped but remembered as "space before this token")
 *	driving a flat loop over list elements. Nothing recurses: comment
 *	nesting is a counter, and every byte is looked at a bounded number
 *	of times, so a header of 10 000 nested comments or 10 000
 *	recipients costs linear time.
 *
 *	We are lenient where real mail is sloppy (RFC 5322 section 4
 *	obsolete syntax, unbalanced brackets, bare local names from cron
 *	and logwatch) because a sendmail must not refuse a message for its
 *	header syntax; the relay decides what it accepts.
 *--*/

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"

/*
 * Tokens. A special is one of the RFC 5322 specials that structure an
 * address list; everything else that is not white space, a comment, a
 * quoted string or a domain literal is an atom byte (bytes >= 0x80
 * included: RFC 6532 UTF-8 addresses stay intact).
 */
enum token_type { TOK_END, TOK_ATOM, TOK_QSTRING, TOK_DLITERAL, TOK_SPECIAL };

struct token {
	enum token_type type;
	size_t off; /* first byte of the token */
	size_t len;
	int space_before; /* white space or a comment precedes it */
};

struct tokens {
	struct token *v;
	size_t n;
	size_t cap;
};

/* is_space - folding white space; CR and LF only occur as folding here */

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* is_special - RFC 5322 specials that delimit atoms */

static int is_special(unsigned char c)
{
	return strchr("<>@,;:.", c) != 0 && c != 0;
}

/* is_atom_byte - anything that is not space, special or a delimiter */

static int is_atom_byte(unsigned char c)
{
	return !is_space(c) && !is_special(c) && c != '(' && c != '"' && c != '[';
}

/* skip_delimited - skip a quoted string or domain literal starting at s[i] */

static size_t skip_delimited(const char *s, size_t len, size_t i, char close)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len) {
			i++;
			continue;
		}
		if (s[i] == close)
			return i + 1;
	}
	return len; /* unterminated: runs to the end */
}

/* skip_comment - skip a (possibly nested) comment starting at s[i] */

static size_t skip_comment(const char *s, size_t len, size_t i)
{
	size_t depth = 0;

	/* A counter, not recursion: nesting depth costs nothing. */
	for (; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len) {
			i++;
		} else if (s[i] == '(') {
			depth++;
		} else if (s[i] == ')') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return len;
}

/* next_token - scan one token at *pos, advancing *pos */

static void next_token(const char *s, size_t len, size_t *pos, struct token *tok)
{
	size_t i = *pos;

	tok->space_before = 0;
	for (;;) {
		if (i >= len) {
			tok->type = TOK_END;
			tok->off = len;
			tok->len = 0;
			*pos = len;
			return;
		}
		if (is_space((unsigned char)s[i])) {
			tok->space_before = 1;
			i++;
		} else if (s[i] == '(') {
			tok->space_before = 1;
			i = skip_comment(s, len, i);
		} else {
			break;
		}
	}
	tok->off = i;
	if (s[i] == '"') {
		tok->type = TOK_QSTRING;
		i = skip_delimited(s, len, i, '"');
	} else if (s[i] == '[') {
		tok->type = TOK_DLITERAL;
		i = skip_delimited(s, len, i, ']');
	} else if (is_special((unsigned char)s[i])) {
		tok->type = TOK_SPECIAL;
		i++;
	} else {
		tok->type = TOK_ATOM;
		while (i < len && is_atom_byte((unsigned char)s[i]))
			i++;
	}
	tok->len = i - tok->off;
	*pos = i;
}

/* tokens_add - append a token */

static void tokens_add(struct tokens *t, const struct token *tok)
{
	if (t->n == t->cap) {
		if (t->cap > ((size_t)-1) / 2 / sizeof(*t->v))
			util_oom();
		t->cap = t->cap ? t->cap * 2 : 16;
		t->v = util_realloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n++] = *tok;
}

/* is_char - token is the special c */

static int is_char(const char *s, const struct token *tok, char c)
{
	return tok->type == TOK_SPECIAL && s[tok->off] == c;
}

/* list_add - append an element, return it zeroed */

static struct address *list_add(struct address_list *list, enum address_kind kind)
{
	struct address *a;

	if (list->n == list->cap) {
		if (list->cap > ((size_t)-1) / 2 / sizeof(*list->v))
			util_oom();
		list->cap = list->cap ? list->cap * 2 : 8;
		list->v = util_realloc(list->v, list->cap * sizeof(*list->v));
	}
	a = list->v + list->n++;
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	return a;
}

/* decode_phrase - tokens [from, to) as a display name, or NULL if empty */

static char *decode_phrase(const char *s, const struct token *v, size_t from, size_t to)
{
	struct buf out = BUF_INIT;

	for (size_t i = from; i < to; i++) {
		const struct token *tok = v + i;

		if (out.len && tok->space_before)
			buf_putc(&out, ' ');
		if (tok->type == TOK_QSTRING) {
			size_t end = tok->off + tok->len;

			/* Drop the quotes (the closing one may be missing) and escapes. */
			if (end > tok->off + 1 && s[end - 1] == '"')
				end--;
			for (size_t j = tok->off + 1; j < end; j++) {
				if (s[j] == '\\' && j + 1 < end)
					j++;
				if (s[j] == '\r' || s[j] == '\n')
					continue; /* unfold */
				buf_putc(&out, s[j]);
			}
		} else {
			buf_append(&out, s + tok->off, tok->len);
		}
	}
	if (out.len == 0) {
		buf_free(&out);
		return 0;
	}
	return buf_steal(&out);
}

/* emit_mailbox - tokens [from, to) are an addr-spec */

static void emit_mailbox(struct address_list *list, const char *s, const struct token *v,
			 size_t from, size_t to, char *display, int angle)
{
	struct address *a;
	struct buf spec = BUF_INIT;

	/* Obsolete route "<@a,@b:user@c>": everything up to the colon goes. */
	if (angle && from < to && is_char(s, v + from, '@')) {
		for (size_t i = from; i < to; i++) {
			if (is_char(s, v + i, ':')) {
				from = i + 1;
				break;
			}
		}
	}
	for (size_t i = from; i < to; i++) {
		/* A stray ">" or "," (the latter only inside angle brackets) is not part of it. */
		if (is_char(s, v + i, '>') || is_char(s, v + i, ','))
			continue;
		/* Unfold: a quoted string may span lines; CR and LF are not address bytes. */
		for (size_t j = v[i].off; j < v[i].off + v[i].len; j++)
			if (s[j] != '\r' && s[j] != '\n')
				buf_putc(&spec, s[j]);
	}
	if (spec.len == 0 && !angle && display == 0) {
		buf_free(&spec);
		return;
	}
	a = list_add(list, ADDRESS_MAILBOX);
	a->display_name = display;
	a->addr_spec = buf_steal(&spec);
	a->angle = angle;
	if (from < to) {
		a->spec_off = v[from].off;
		a->spec_len = v[to - 1].off + v[to - 1].len - v[from].off;
	}
}

/* parse_element - one mailbox (tokens of one list element) */

static void parse_element(struct address_list *list, const char *s, const struct tokens *t)
{
	size_t lt = t->n;
	size_t gt;

	if (t->n == 0)
		return;
	for (size_t i = 0; i < t->n; i++) {
		if (is_char(s, t->v + i, '<')) {
			lt = i;
			break;
		}
	}
	if (lt == t->n) {
		emit_mailbox(list, s, t->v, 0, t->n, 0, 0);
		return;
	}
	for (gt = lt + 1; gt < t->n; gt++)
		if (is_char(s, t->v + gt, '>'))
			break;
	emit_mailbox(list, s, t->v, lt + 1, gt, decode_phrase(s, t->v, 0, lt), 1);
	/* "<>": an empty address, to be replaced right after the "<". */
	if (lt + 1 == gt)
		list->v[list->n - 1].spec_off = t->v[lt].off + 1;
}

/* address_parse_list - parse an address-list header value */

void address_parse_list(struct address_list *list, const char *value, size_t len)
{
	struct tokens t = {0};
	struct token tok;
	size_t pos = 0;
	int in_group = 0;
	int in_angle = 0;	/* after "<", before ">" */
	int route_possible = 0; /* the token right after "<" */
	int in_route = 0;	/* "<@a,@b:" obsolete route: commas do not split */

	for (;;) {
		next_token(value, len, &pos, &tok);
		if (tok.type == TOK_END)
			break;
		if (route_possible && is_char(value, &tok, '@'))
			in_route = 1;
		route_possible = 0;
		if (tok.type == TOK_SPECIAL) {
			char c = value[tok.off];

			if (c == '<') {
				in_angle = route_possible = 1;
			} else if (c == '>') {
				in_angle = in_route = 0;
			} else if (c == ':' && in_route) {
				in_route = 0;
			} else if (c == ',' && !in_route) {
				parse_element(list, value, &t);
				t.n = 0;
				in_angle = 0;
				continue;
			} else if (c == ';' && !in_route) {
				/*
				 * Ends a group; outside one it is taken as a list
				 * separator, as hand-written "To: a@x; b@y" (Outlook
				 * style) means.
				 */
				parse_element(list, value, &t);
				t.n = 0;
				if (in_group)
					list_add(list, ADDRESS_GROUP_END);
				in_group = in_angle = 0;
				continue;
			} else if (c == ':' && !in_angle && !in_group) {
				struct address *g = list_add(list, ADDRESS_GROUP_START);

				g->display_name = decode_phrase(value, t.v, 0, t.n);
				t.n = 0;
				in_group = 1;
				continue;
			}
		}
		tokens_add(&t, &tok);
	}
	parse_element(list, value, &t);
	/* An unterminated group ("team: a@b") is closed for the caller. */
	if (in_group)
		list_add(list, ADDRESS_GROUP_END);
	free(t.v);
}

/* address_list_free - release the elements */

void address_list_free(struct address_list *list)
{
	for (size_t i = 0; i < list->n; i++) {
		free(list->v[i].display_name);
		free(list->v[i].addr_spec);
	}
	free(list->v);
	list->v = 0;
	list->n = list->cap = 0;
}

/* address_first_spec - the first mailbox's addr-spec in text, or NULL */

char *address_first_spec(const char *text)
{
	struct address_list list = ADDRESS_LIST_INIT;
	char *spec = 0;

	address_parse_list(&list, text, strlen(text));
	for (size_t i = 0; i < list.n; i++) {
		if (list.v[i].kind == ADDRESS_MAILBOX) {
			spec = list.v[i].addr_spec;
			list.v[i].addr_spec = 0;
			break;
		}
	}
	address_list_free(&list);
	return spec;
}

/* address_format_phrase - a display name, quoted when it needs to be */

void address_format_phrase(struct buf *out, const char *phrase)
{
	int quote = 0;
	size_t n = strlen(phrase);

	/*
	 * Atoms and single spaces may go as they are; anything else (dots,
	 * commas, specials, leading/trailing space) needs a quoted string.
	 * Encoded words (RFC 2047) are atoms and pass untouched.
	 */
	if (n == 0 || phrase[0] == ' ' || phrase[n - 1] == ' ')
		quote = 1;
	for (size_t i = 0; i < n && !quote; i++) {
		unsigned char c = (unsigned char)phrase[i];

		if (c == ' ')
			continue;
		if (c < 0x20 || c == 0x7f || !is_atom_byte(c) || c == ')' || c == '\\')
			quote = 1;
	}
	if (!quote) {
		buf_append(out, phrase, n);
		return;
	}
	buf_putc(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (phrase[i] == '"' || phrase[i] == '\\')
			buf_putc(out, '\\');
		buf_putc(out, phrase[i]);
	}
	buf_putc(out, '"');
}

/* address_encode_phrase - RFC 2047 encoded words for a non-ASCII display name */

void address_encode_phrase(struct buf *out, const char *phrase)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(phrase);
	size_t i = 0;
	int ascii = 1;

	for (size_t j = 0; j < n; j++)
		if ((unsigned char)phrase[j] >= 0x80)
			ascii = 0;
	if (ascii) {
		address_format_phrase(out, phrase);
		return;
	}

	/*
	 * RFC 2047 section 2: an encoded word is at most 75 bytes, so at most
	 * 45 input bytes (60 base64 characters) each; chunks end on UTF-8
	 * character boundaries (section 5: no character split across words).
	 */
	while (i < n) {
		size_t end = i + 45 < n ? i + 45 : n;

		while (end < n && end > i + 1 && ((unsigned char)phrase[end] & 0xc0) == 0x80)
			end--;
		if (i)
			buf_puts(out, " ");
		buf_puts(out, "=?UTF-8?B?");
		for (size_t j = i; j < end; j += 3) {
			unsigned v = (unsigned char)phrase[j] << 16;
			size_t left = end - j;

			if (left > 1)
				v |= (unsigned char)phrase[j + 1] << 8;
			if (left > 2)
				v |= (unsigned char)phrase[j + 2];
			buf_putc(out, b64[(v >> 18) & 63]);
			buf_putc(out, b64[(v >> 12) & 63]);
			buf_putc(out, left > 1 ? b64[(v >> 6) & 63] : '=');
			buf_putc(out, left > 2 ? b64[v & 63] : '=');
		}
		buf_puts(out, "?=");
		i = end;
	}
}

/* address_format_mailbox - "Name <spec>" or "spec" */

void address_format_mailbox(struct buf *out, const char *display_name, const char *addr_spec)
{
	if (display_name && *display_name) {
		address_format_phrase(out, display_name);
		buf_printf(out, " <%s>", addr_spec);
	} else if (*addr_spec == 0) {
		buf_puts(out, "<>");
	} else {
		buf_puts(out, addr_spec);
	}
}

/* address_format_list - a list as a header value */

void address_format_list(struct buf *out, const struct address_list *list)
{
	int need_sep = 0;

	for (size_t i = 0; i < list->n; i++) {
		const struct address *a = list->v + i;

		switch (a->kind) {
		case ADDRESS_GROUP_START:
			if (need_sep)
				buf_puts(out, ", ");
			if (a->display_name)
				address_format_phrase(out, a->display_name);
			buf_putc(out, ':');
			need_sep = 0;
			if (i + 1 < list->n && list->v[i + 1].kind == ADDRESS_MAILBOX)
				buf_putc(out, ' ');
			break;
		case ADDRESS_GROUP_END:
			buf_putc(out, ';');
			need_sep = 1;
			break;
		case ADDRESS_MAILBOX:
			if (need_sep)
				buf_puts(out, ", ");
			address_format_mailbox(out, a->display_name, a->addr_spec);
			need_sep = 1;
			break;
		}
	}
}

/* find_at - index of the last "@" outside quoted strings, or -1 */

static long find_at(const char *spec)
{
	long at = -1;
	int quoted = 0;

	for (long i = 0; spec[i]; i++) {
		if (quoted && spec[i] == '\\' && spec[i + 1]) {
			i++;
		} else if (spec[i] == '"') {
			quoted = !quoted;
		} else if (spec[i] == '@' && !quoted) {
			at = i;
		}
	}
	return at;
}

/* address_is_bare - no domain part */

int address_is_bare(const char *spec)
{
	return find_at(spec) < 0;
}

/* address_domain - the domain part, or NULL */

const char *address_domain(const char *spec)
{
	long at = find_at(spec);

	return at < 0 ? 0 : spec + at + 1;
}

/* address_local_len - length of the local part */

size_t address_local_len(const char *spec)
{
	long at = find_at(spec);

	return at < 0 ? strlen(spec) : (size_t)at;
}

/* address_qualify - append @domain to a bare, non-empty spec */

char *address_qualify(const char *spec, const char *domain)
{
	struct buf out = BUF_INIT;

	buf_puts(&out, spec);
	if (*spec && domain && *domain && address_is_bare(spec))
		buf_printf(&out, "@%s", domain);
	return buf_steal(&out);
}

/* address_domain_matches - domain equals parent or is below it */

int address_domain_matches(const char *domain, const char *parent)
{
	size_t dlen;
	size_t plen;

	while (*parent == '.')
		parent++;
	dlen = strlen(domain);
	plen = strlen(parent);
	if (plen == 0)
		return 0;
	if (dlen == plen)
		return strcasecmp(domain, parent) == 0;
	if (dlen > plen)
		return domain[dlen - plen - 1] == '.' &&
		       strcasecmp(domain + dlen - plen, parent) == 0;
	return 0;
}

/* address_equal - exact local parts, case-insensitive domains */

int address_equal(const char *a, const char *b)
{
	size_t la = address_local_len(a);
	size_t lb = address_local_len(b);
	const char *da = address_domain(a);
	const char *db = address_domain(b);

	if (la != lb || memcmp(a, b, la) != 0)
		return 0;
	if (da == 0 || db == 0)
		return da == db;
	return strcasecmp(da, db) == 0;
}

/* address_masquerade - Postfix masquerade_domains on one address */

char *address_masquerade(const char *spec, const struct strlist *domains)
{
	const char *domain = address_domain(spec);
	size_t dlen;

	if (domain == 0)
		return 0;
	dlen = strlen(domain);
	for (size_t i = 0; i < domains->n; i++) {
		const char *masq = domains->v[i];
		int truncate = 1;
		size_t mlen;

		/* As in Postfix, every leading "!" toggles. */
		for (; *masq == '!'; masq++)
			truncate = !truncate;
		mlen = strlen(masq);
		if (mlen == 0)
			continue;
		if (mlen == dlen) {
			if (strcasecmp(masq, domain) == 0)
				break;
		} else if (mlen < dlen) {
			const char *parent = domain + dlen - mlen;

			if (parent[-1] == '.' && strcasecmp(masq, parent) == 0) {
				struct buf out = BUF_INIT;

				if (!truncate)
					break;
				buf_append(&out, spec, (size_t)(domain - spec));
				for (size_t j = 0; j < mlen; j++) {
					unsigned char c = (unsigned char)masq[j];

					buf_putc(&out, c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
				}
				return buf_steal(&out);
			}
		}
	}
	return 0;
}
