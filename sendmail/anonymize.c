/*++
 * NAME
 *	anonymize 3
 * SUMMARY
 *	masking e-mail addresses for the log ([log] anonymize)
 * SYNOPSIS
 *	See anonymize.h.
 * DESCRIPTION
 *	Anonymisation follows boky/postfix's email-anonymizer.py (the code,
 *	not the README where they differ): smart keeps the first and last
 *	character of the local part around ONE mask (quotes of a quoted local
 *	part kept), masks every character of the domain but the TLD, and
 *	masks address literals; paranoid keeps only the TLD; hash replaces
 *	the address by HMAC-SHA256(salt, address) in hex. Lengths count
 *	characters (UTF-8 code points), as Python does. Its two bugs are not
 *	copied: "on" works, and several "&"-separated options work. Where
 *	boky matches addresses in free text with a regular expression, we
 *	match the same shapes but also end a local part at "(),;:=>" and a
 *	domain at "," so that "from=a@b" and "a@b, c@d" come out right.
 *	hash lowercases ASCII only when case_sensitive is false.
 *
 *	The hash HMAC comes from libcrypto, opened with dlopen() on first
 *	use (as tls.c does with libssl) but by this module itself, so that
 *	the anonymiser, which config.c uses to check [log] anonymize, does
 *	not depend on the TLS code.
 * DIAGNOSTICS
 *	None: a value that cannot be hashed (libcrypto missing) is shown as
 *	"(unhashable)", never in clear.
 *--*/

#include <ctype.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>

#include "anonymize.h"
#include "buf.h"
#include "util.h"

#define ANON_STR2(x) #x
#define ANON_STR(x) ANON_STR2(x)
#define ANON_LIBCRYPTO "libcrypto.so." ANON_STR(OPENSSL_VERSION_MAJOR)

static __typeof__(&HMAC) dl_HMAC;
static __typeof__(&EVP_sha256) dl_EVP_sha256;

enum anon_kind { ANON_NOOP, ANON_SMART, ANON_PARANOID, ANON_HASH };

struct anonymizer {
	enum anon_kind kind;
	char *mask;	 /* smart, paranoid: mask_symbol */
	struct buf salt; /* hash */
	char *prefix;
	char *suffix;
	int case_sensitive;
	int short_sha;
	int split;
};

/* anonymizer_free - release an anonymizer (NULL is fine) */

void anonymizer_free(struct anonymizer *an)
{
	if (an == 0)
		return;
	free(an->mask);
	if (an->salt.data)
		memset(an->salt.data, 0, an->salt.len);
	buf_free(&an->salt);
	free(an->prefix);
	free(an->suffix);
	free(an);
}

/* url_decode - application/x-www-form-urlencoded value, as Python's parse_qs */

static void url_decode(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			buf_putc(out, ' ');
		} else if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
			   isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], 0};

			buf_putc(out, (int)strtol(hex, 0, 16));
			i += 2;
		} else {
			buf_putc(out, s[i]);
		}
	}
}

/* truthy - boky's is_truthy(): y/yes/t/true/1, n/no/f/false/0; -1 otherwise */

static int truthy(const char *v)
{
	static const char *yes[] = {"y", "yes", "t", "true", "1"};
	static const char *no[] = {"n", "no", "f", "false", "0"};

	for (size_t i = 0; i < 5; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

#define ANON_VALUES "use smart, paranoid, hash?salt=SECRET, noop, or 0 for off"

/* anonymizer_parse - "smart", "paranoid?mask_symbol=#", "hash?salt=x&split=1", ... */

int anonymizer_parse(const char *spec, struct anonymizer **out, struct buf *why)
{
	const char *q = strchr(spec, '?');
	size_t namelen = q ? (size_t)(q - spec) : strlen(spec);
	char name[16];
	struct anonymizer *an;
	int have_salt = 0;

	*out = 0;
	while (namelen && isspace((unsigned char)spec[namelen - 1]))
		namelen--;
	while (namelen && isspace((unsigned char)*spec))
		spec++, namelen--;
	if (namelen >= sizeof(name)) {
		buf_puts(why, ANON_VALUES);
		return -1;
	}
	memcpy(name, spec, namelen);
	name[namelen] = 0;
	if (q == 0 && (namelen == 0 || strcmp(name, "0") == 0 || strcasecmp(name, "no") == 0 ||
		       strcasecmp(name, "false") == 0 || strcasecmp(name, "off") == 0))
		return 0;

	an = util_calloc(1, sizeof(*an));
	an->mask = util_strdup("*");
	an->prefix = util_strdup("");
	an->suffix = util_strdup("");
	an->case_sensitive = 1;
	if (strcasecmp(name, "smart") == 0 || strcasecmp(name, "default") == 0 ||
	    strcasecmp(name, "true") == 0 || strcasecmp(name, "yes") == 0 ||
	    strcasecmp(name, "y") == 0 || strcmp(name, "1") == 0 || strcasecmp(name, "on") == 0)
		an->kind = ANON_SMART;
	else if (strcasecmp(name, "paranoid") == 0)
		an->kind = ANON_PARANOID;
	else if (strcasecmp(name, "hash") == 0)
		an->kind = ANON_HASH;
	else if (strcasecmp(name, "noop") == 0)
		an->kind = ANON_NOOP;
	else {
		buf_puts(why, ANON_VALUES);
		goto fail;
	}

	/* Options: parse_qs(strict_parsing=True, keep_blank_values=True). */
	for (const char *p = q ? q + 1 : 0; p && *p != 0;) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		struct buf key = BUF_INIT, val = BUF_INIT;
		int bad = 0;

		if (eq == 0) {
			buf_puts(
			    why,
			    "options are name=value pairs joined by &, e.g. hash?salt=x&split=yes");
			goto fail;
		}
		url_decode(&key, p, (size_t)(eq - p));
		url_decode(&val, eq + 1, (size_t)(p + len - eq - 1));
		if ((an->kind == ANON_SMART || an->kind == ANON_PARANOID) &&
		    strcmp(buf_cstr(&key), "mask_symbol") == 0) {
			if (val.len) {
				free(an->mask);
				an->mask = util_strdup(buf_cstr(&val));
			}
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "salt") == 0) {
			buf_reset(&an->salt);
			buf_append(&an->salt, val.data ? val.data : "", val.len);
			have_salt = val.len > 0;
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "prefix") == 0) {
			free(an->prefix);
			an->prefix = util_strdup(buf_cstr(&val));
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "suffix") == 0) {
			free(an->suffix);
			an->suffix = util_strdup(buf_cstr(&val));
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "case_sensitive") == 0) {
			bad = (an->case_sensitive = truthy(buf_cstr(&val))) < 0;
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "short_sha") == 0) {
			bad = (an->short_sha = truthy(buf_cstr(&val))) < 0;
		} else if (an->kind == ANON_HASH && strcmp(buf_cstr(&key), "split") == 0) {
			bad = (an->split = truthy(buf_cstr(&val))) < 0;
		} else {
			buf_reset(why);
			buf_put_sanitized(why, buf_cstr(&key), key.len > 40 ? 40 : key.len);
			buf_puts(why, an->kind == ANON_HASH
					  ? ": unknown option (hash takes salt, prefix, suffix, "
					    "case_sensitive, short_sha, split)"
					  : ": unknown option (smart and paranoid take "
					    "mask_symbol; noop takes none)");
			bad = 2;
		}
		if (bad == 1)
			buf_printf(why, "%s: use yes or no", buf_cstr(&key));
		buf_free(&key);
		buf_free(&val);
		if (bad)
			goto fail;
		p += len;
		if (*p == '&') {
			p++;
			if (*p == 0) {
				buf_puts(why, "options end with &: remove it");
				goto fail;
			}
		}
	}
	if (an->kind == ANON_HASH && !have_salt) {
		buf_puts(why, "hash needs a salt: hash?salt=SECRET");
		goto fail;
	}
	*out = an;
	return 0;

fail:
	anonymizer_free(an);
	return -1;
}

/* u8_count - number of UTF-8 code points (bytes that are not continuation bytes) */

static size_t u8_count(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			c++;
	return c;
}

/* u8_head - byte length of the first k code points */

static size_t u8_head(const char *s, size_t n, size_t k)
{
	size_t i = 0;

	while (i < n && k > 0) {
		i++;
		while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80)
			i++;
		k--;
	}
	return i;
}

/* u8_tail - byte offset where the last k code points start */

static size_t u8_tail(const char *s, size_t n, size_t k)
{
	size_t i = n;

	while (i > 0 && k > 0) {
		i--;
		while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
			i--;
		k--;
	}
	return i;
}

static void put_masks(struct buf *out, const char *mask, size_t n)
{
	while (n--)
		buf_puts(out, mask);
}

/* mask_local - SmartFilter.mask_local / ParanoidFilter.mask_local */

static void mask_local(const struct anonymizer *an, struct buf *out, const char *s, size_t n)
{
	size_t k = 1;

	if (an->kind == ANON_PARANOID) {
		buf_puts(out, an->mask);
		return;
	}
	if (n > 0 && s[0] == '"' && s[n - 1] == '"')
		k = 2; /* keep the quotes: "m*t" */
	buf_append(out, s, u8_head(s, n, k));
	buf_puts(out, an->mask);
	buf_append(out, s + u8_tail(s, n, k), n - u8_tail(s, n, k));
}

/* mask_domain - SmartFilter.mask_domain / ParanoidFilter.mask_domain */

static void mask_domain(const struct anonymizer *an, struct buf *out, const char *s, size_t n)
{
	const char *dot;

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		const char *colon = memchr(s + 1, ':', n - 2);

		if (colon) {
			/* "[IPv6:" + masks for the rest but the "]" */
			buf_append(out, s, (size_t)(colon - s) + 1);
			if (an->kind == ANON_PARANOID)
				buf_puts(out, "*");
			else
				put_masks(out, an->mask,
					  u8_count(colon + 1, (size_t)(s + n - colon - 1)) - 1);
			buf_putc(out, ']');
		} else if (an->kind == ANON_PARANOID) {
			buf_puts(out, "[*]");
		} else {
			buf_printf(out, "[%s.%s.%s.%s]", an->mask, an->mask, an->mask, an->mask);
		}
		return;
	}
	dot = memrchr(s, '.', n);
	if (dot) {
		if (an->kind == ANON_PARANOID)
			buf_puts(out, an->mask);
		else
			put_masks(out, an->mask, u8_count(s, (size_t)(dot - s)));
		buf_append(out, dot, (size_t)(s + n - dot));
	} else if (an->kind == ANON_PARANOID) {
		buf_puts(out, an->mask);
	} else {
		put_masks(out, an->mask, u8_count(s, n));
	}
}

/* hmac_load - open libcrypto once for HMAC(); 0, or -1 */

static int hmac_load(void)
{
	static int state; /* 0 not tried, 1 loaded, -1 failed */
	static const char *const names[] = {"HMAC", "EVP_sha256"};
	void *const slots[] = {(void *)&dl_HMAC, (void *)&dl_EVP_sha256};
	char why[256];

	if (state == 0)
		state = util_dl_open(ANON_LIBCRYPTO, RTLD_LAZY | RTLD_LOCAL, names, slots, 2, why,
				     sizeof(why)) == 0
			    ? 1
			    : -1;
	return state > 0 ? 0 : -1;
}

/* hmac_hex - HMAC-SHA256(salt, s) as lower-case hex, cut to 8 with short_sha */

static void hmac_hex(const struct anonymizer *an, struct buf *out, const char *s, size_t n)
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	/* libcrypto is opened on first use: linking it would cost every sendmail run
	 * ~1.3 ms of start-up. */
	if (hmac_load() != 0 || an->salt.len > 0x7fffffff ||
	    dl_HMAC(dl_EVP_sha256(), an->salt.data, (int)an->salt.len, (const unsigned char *)s, n,
		    md, &mdlen) == 0 ||
	    mdlen != sizeof(md)) {
		/* Never fall back to the clear address. */
		buf_puts(out, "(unhashable)");
		return;
	}
	if (an->short_sha)
		mdlen = 4;
	for (unsigned int i = 0; i < mdlen; i++)
		buf_printf(out, "%02x", md[i]);
}

/* anonymize_address - one address, masked per the anonymizer */

void anonymize_address(const struct anonymizer *an, struct buf *out, const char *addr, size_t len)
{
	const char *at = len ? memrchr(addr, '@', len) : 0;

	if (an == 0 || an->kind == ANON_NOOP || at == 0) {
		buf_append(out, addr, len);
		return;
	}
	if (an->kind == ANON_HASH) {
		struct buf a = BUF_INIT;

		buf_append(&a, addr, len);
		if (!an->case_sensitive)
			for (size_t i = 0; i < a.len; i++)
				a.data[i] = (char)tolower((unsigned char)a.data[i]);
		buf_puts(out, an->prefix);
		if (an->split) {
			size_t l = (size_t)(at - addr);

			hmac_hex(an, out, a.data, l);
			buf_putc(out, '@');
			hmac_hex(an, out, a.data + l + 1, a.len - l - 1);
		} else {
			hmac_hex(an, out, a.data, a.len);
		}
		buf_puts(out, an->suffix);
		buf_free(&a);
		return;
	}
	mask_local(an, out, addr, (size_t)(at - addr));
	buf_putc(out, '@');
	if (addr + len > at + 1)
		mask_domain(an, out, at + 1, (size_t)(addr + len - at - 1));
}

/* is_message_id - the token is the value of "message-id=" (Postfix cleanup lines) */

static int is_message_id(const char *text, size_t start)
{
	static const char tag[] = "message-id";
	size_t pos = start;

	while (pos > 0 && strchr("{<[\"'", text[pos - 1]))
		pos--;
	if (pos == 0 || text[pos - 1] != '=')
		return 0;
	pos--;
	return pos >= sizeof(tag) - 1 &&
	       strncasecmp(text + pos - (sizeof(tag) - 1), tag, sizeof(tag) - 1) == 0;
}

/* literal_domain - length of "[1.2.3.4]" or "[tag:...]" at s, 0 if none */

static size_t literal_domain(const char *s, size_t n)
{
	const char *close = memchr(s, ']', n);
	size_t i = 1, len;
	int dots = 0, digits = 0;

	if (close == 0)
		return 0;
	len = (size_t)(close - s) + 1;
	while (i < len - 1 && isalnum((unsigned char)s[i]))
		i++;
	if (i > 1 && s[i] == ':' && i + 1 < len - 1)
		return len; /* [IPv6:...] and other tagged literals */
	for (i = 1; i < len - 1; i++) {
		if (isdigit((unsigned char)s[i]))
			digits++;
		else if (s[i] == '.' && digits && dots < 3)
			dots++, digits = 0;
		else
			return 0;
	}
	return dots == 3 && digits ? len : 0;
}

/* anonymize_text - copy text, masking every address-shaped token */

void anonymize_text(const struct anonymizer *an, struct buf *out, const char *text, size_t len)
{
	size_t copied = 0;

	if (an == 0 || an->kind == ANON_NOOP) {
		buf_append(out, text, len);
		return;
	}
	for (size_t p = 0; p < len; p++) {
		size_t start, end;

		if (text[p] != '@')
			continue;
		/* local part */
		if (p > copied && text[p - 1] == '"') {
			size_t q = p - 1;

			while (q > copied && text[q - 1] != '"')
				q--;
			if (q == copied)
				continue;
			start = q - 1;
		} else {
			start = p;
			while (start > copied && !strchr(" \t\"[]<>(),;:=", text[start - 1]))
				start--;
			if (start == p)
				continue;
		}
		/* domain */
		if (p + 1 < len && text[p + 1] == '[') {
			size_t lit = literal_domain(text + p + 1, len - p - 1);

			if (lit == 0)
				continue;
			end = p + 1 + lit;
		} else {
			end = p + 1;
			while (end < len && !strchr(" \t{}():;>,", text[end]))
				end++;
			if (end == p + 1)
				continue;
		}
		if (is_message_id(text, start)) {
			p = end - 1;
			continue;
		}
		buf_append(out, text + copied, start - copied);
		anonymize_address(an, out, text + start, end - start);
		copied = end;
		p = end - 1;
	}
	buf_append(out, text + copied, len - copied);
}
