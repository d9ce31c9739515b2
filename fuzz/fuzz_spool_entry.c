/*++
 * NAME
 *	fuzz_spool_entry 1
 * SUMMARY
 *	libFuzzer target: the queue entry and state file parsers
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_spool_entry [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	Input: one option byte, then the bytes of a file as a local user
 *	could have written it into its own queue area, which root's queue
 *	runner reads. An even option byte feeds the input to
 *	spool_entry_parse() (q/ID, the envelope text), an odd one to
 *	spool_state_parse() (q/ID.st).
 *
 *	Invariants of an accepted entry: the envelope text ends with the
 *	empty line at data_off, inside the input; sender, recipients and
 *	DSN parameters hold no control byte (they go into SMTP commands)
 *	and are at most SPOOL_ENTRY_ADDRESS_MAX bytes long;
 *	1 to SPOOL_ENTRY_RCPT_MAX recipients; the header section within
 *	SPOOL_ENTRY_HEADER_MAX. For both files: formatting what was parsed
 *	gives a text that parses again (an entry: accepted, data_off =
 *	its length) and formats to the same bytes.
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <string.h>

#include "fuzz.h"
#include "spool_entry.h"

/* spool_fuzz_clean - no byte below 0x20, no DEL, not too long */

static int spool_fuzz_clean(const char *s)
{
	if (s == 0)
		return 1;
	if (strlen(s) > SPOOL_ENTRY_ADDRESS_MAX)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* spool_fuzz_entry - q/ID */

static void spool_fuzz_entry(const char *p, size_t n)
{
	struct spool_entry e, again;
	struct buf one = BUF_INIT, two = BUF_INIT;

	spool_entry_init(&e);
	if (spool_entry_parse(p, n, &e) != 0) {
		spool_entry_free(&e);
		return;
	}
	fuzz_check(e.data_off >= 2 && e.data_off <= n, "data_off inside the input");
	fuzz_check(p[e.data_off - 1] == '\n' && p[e.data_off - 2] == '\n',
		   "the envelope ends with the empty line");
	fuzz_check(e.env.rcpts.n >= 1 && e.env.rcpts.n <= SPOOL_ENTRY_RCPT_MAX, "recipient count");
	fuzz_check(e.header_len <= SPOOL_ENTRY_HEADER_MAX, "header size bound");
	fuzz_check(spool_fuzz_clean(e.env.sender) && spool_fuzz_clean(e.env.dsn_notify) &&
		       spool_fuzz_clean(e.env.dsn_ret) && spool_fuzz_clean(e.env.dsn_envid),
		   "no control byte in the envelope");
	for (size_t i = 0; i < e.env.rcpts.n; i++)
		fuzz_check(spool_fuzz_clean(e.env.rcpts.v[i]) && *e.env.rcpts.v[i],
			   "recipient clean and not empty");

	spool_entry_format(&one, &e);
	spool_entry_init(&again);
	fuzz_check(spool_entry_parse(one.data, one.len, &again) == 0, "formatted entry parses");
	fuzz_check(again.data_off == one.len, "formatted entry: data_off is its length");
	spool_entry_format(&two, &again);
	fuzz_check(one.len == two.len && memcmp(one.data, two.data, one.len) == 0,
		   "entry format is stable");
	spool_entry_free(&again);
	spool_entry_free(&e);
	buf_free(&one);
	buf_free(&two);
}

/* spool_fuzz_state - q/ID.st */

static void spool_fuzz_state(const char *p, size_t n)
{
	struct spool_entry e, again;
	struct buf one = BUF_INIT, two = BUF_INIT;

	spool_entry_init(&e);
	spool_state_parse(p, n, &e);
	fuzz_check(e.done.n <= SPOOL_ENTRY_RCPT_MAX, "done list bound");
	spool_state_format(&one, &e);
	spool_entry_init(&again);
	spool_state_parse(one.data, one.len, &again);
	spool_state_format(&two, &again);
	fuzz_check(one.len == two.len && memcmp(one.data, two.data, one.len) == 0,
		   "state format is stable");
	spool_entry_free(&again);
	spool_entry_free(&e);
	buf_free(&one);
	buf_free(&two);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int opt = fuzz_take(&data, &size);

	if (opt & 1)
		spool_fuzz_state((const char *)data, size);
	else
		spool_fuzz_entry((const char *)data, size);
	return 0;
}
