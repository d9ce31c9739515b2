/*++
 * NAME
 *	fuzz_header 1
 * SUMMARY
 *	libFuzzer target: the header parser and editor
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_header [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	Input: one byte n, then n three-byte edit operations (kind, index,
 *	argument), then the header section. The target parses it, checks
 *	that serialising gives back exactly the input (the header module's
 *	promise for unedited fields), applies the edits - find, remove,
 *	remove all, insert, set value - and serialises again.
 *
 *	Invariants: the round trip is byte-exact; every value returned by
 *	header_value() lies inside its field; a field found by name has
 *	that name; after the edits the serialised header is the
 *	concatenation of the fields and parses back into at least as many
 *	named fields as the edits left (an inserted or edited value never
 *	merges two fields into one).
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <string.h>

#include "fuzz.h"
#include "header.h"

static const char *const names[] = {"From",	"To",	      "Cc",   "Bcc",	     "Subject",
				    "Received", "Message-ID", "Date", "X-Relay-Tag", "Resent-Bcc"};
static const char *const values[] = {
    " a@b",
    "",
    " =?UTF-8?B?w6k=?=",
    " x\r\n y",
    "\r\n\tfolded only",
    " <>",
    " \xc3\xa9",
    " very long value that goes on and on and on and on and on and on and on"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* check_fields - per-field invariants */

static void check_fields(const struct header *h)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct header_field *f = h->v + i;
		size_t len;
		const char *v = header_value(f, &len);

		if (f->name_len == 0)
			continue;
		fuzz_check(f->name_len < f->value_off && f->value_off <= f->raw.len,
			   "name and colon inside the field");
		fuzz_check(f->raw.data[f->value_off - 1] == ':', "value_off follows the colon");
		fuzz_check(v >= f->raw.data && v + len <= f->raw.data + f->raw.len,
			   "value inside the field");
	}
}

/* count_named - fields with a name */

static size_t count_named(const struct header *h)
{
	size_t n = 0;

	for (size_t i = 0; i < h->n; i++)
		n += h->v[i].name_len != 0;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct header h = HEADER_INIT, again = HEADER_INIT;
	struct buf out = BUF_INIT;
	size_t nops = (size_t)fuzz_take(&data, &size) % 16;
	uint8_t ops[16 * 3] = {0};
	int edited_raw = 0;

	for (size_t i = 0; i < nops * 3; i++)
		ops[i] = (uint8_t)fuzz_take(&data, &size);
	header_parse(&h, (const char *)data, size);
	header_serialize(&h, &out);
	fuzz_check(out.len == size && (size == 0 || memcmp(out.data, data, size) == 0),
		   "byte-exact round trip");
	check_fields(&h);

	for (size_t i = 0; i < nops; i++) {
		const uint8_t *op = ops + 3 * i;
		const char *name = names[op[2] % NELEM(names)];
		const char *value = values[op[2] % NELEM(values)];
		long found;

		switch (op[0] % 5) {
		case 0:
			found = header_find(&h, name, op[1] % (h.n + 1));
			fuzz_check(found < 0 || header_name_is(h.v + found, name), "found by name");
			break;
		case 1:
			if (h.n > 0)
				header_remove(&h, op[1] % h.n);
			break;
		case 2:
			header_remove_all(&h, name);
			fuzz_check(header_find(&h, name, 0) < 0, "remove_all leaves none");
			break;
		case 3:
			header_insert(&h, op[1] % (h.n + 1), name, value);
			edited_raw = 1;
			break;
		case 4:
			if (h.n > 0 && h.v[op[1] % h.n].name_len != 0) {
				header_set_value(&h, op[1] % h.n, value, strlen(value));
				edited_raw = 1;
			}
			break;
		}
		check_fields(&h);
	}
	(void)header_has_prefix(&h, "Resent-");

	buf_reset(&out);
	header_serialize(&h, &out);
	header_parse(&again, out.data ? out.data : "", out.len);
	/* An edit may only add fields when an unterminated last line met an inserted one. */
	if (!edited_raw)
		fuzz_check(again.n == h.n, "unedited fields parse back the same");
	fuzz_check(count_named(&again) >= count_named(&h) || size == 0 || data[size - 1] != '\n',
		   "edits never merge named fields");

	header_free(&again);
	header_free(&h);
	buf_free(&out);
	return 0;
}
