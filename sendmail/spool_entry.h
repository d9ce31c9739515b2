#ifndef RELAYSHIM_SPOOL_ENTRY_H
#define RELAYSHIM_SPOOL_ENTRY_H

/*++
 * NAME
 *	spool_entry 3h
 * SUMMARY
 *	the on-disk format of one queue entry and of its state file
 * SYNOPSIS
 *	#include "spool_entry.h"
 *
 *	void	spool_entry_init(struct spool_entry *e);
 *	void	spool_entry_free(struct spool_entry *e);
 *	void	spool_entry_format(struct buf *out, const struct spool_entry *e);
 *	int	spool_entry_parse(const char *p, size_t n, struct spool_entry *e);
 *	void	spool_state_format(struct buf *out, const struct spool_entry *e);
 *	void	spool_state_parse(const char *p, size_t n, struct spool_entry *e);
 * DESCRIPTION
 *	Pure functions, no I/O: the queue (spool*.c), the unit tests and
 *	the fuzzer (fuzz/fuzz_spool_entry.c) call them directly. Both
 *	files are read by root's queue runner in areas that other users
 *	own, so every byte they hold is hostile.
 *
 *	Entry file q/ID: "relayshim-spool 1", then one "key value" line
 *	per field (values %XX-escaped so no address can break the
 *	format), an empty line, then the header section, CRLF and the
 *	body, exactly as they go to the relay. spool_entry_format()
 *	appends the envelope text of e (up to and including the empty
 *	line); spool_entry_parse() reads it back from the first n bytes
 *	of the file (which must contain the empty line) and sets
 *	e->data_off to the length of the envelope text.
 *
 *	spool_entry_parse() refuses (returns -1) anything a writer of
 *	this program never produces: no magic, no empty line, a missing
 *	sender, created, header or body line, no recipient or more than
 *	SPOOL_ENTRY_RCPT_MAX, a malformed %XX escape or number, a control
 *	byte in the sender, a recipient or a DSN parameter (they go into
 *	SMTP commands), one of them longer than SPOOL_ENTRY_ADDRESS_MAX
 *	(no relay takes such a command line; and it bounds what one entry
 *	costs a reader), a header section over SPOOL_ENTRY_HEADER_MAX
 *	(it is read into memory). Unknown numeric keys are ignored: a
 *	newer writer may add some.
 *
 *	State file q/ID.st: "relayshim-state 1", attempts, last and next
 *	try, last error, and the recipients already done. It is advisory:
 *	spool_state_parse() ignores malformed and unknown lines and keeps
 *	at most SPOOL_ENTRY_RCPT_MAX "done" recipients.
 *
 *	The parsers allocate; spool_entry_free() releases everything and
 *	leaves e empty. Formatting what was parsed and parsing it again
 *	gives the same text (the fuzzer checks it).
 *--*/

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "message.h"
#include "util.h"

#define SPOOL_ID_MAX 65
#define SPOOL_ENTRY_MAGIC "relayshim-spool 1"
#define SPOOL_STATE_MAGIC "relayshim-state 1"
#define SPOOL_ENTRY_RCPT_MAX 1000		     /* as REWRITE_RCPT_MAX and -bs */
#define SPOOL_ENTRY_HEADER_MAX (64ULL * 1024 * 1024) /* read into memory */
#define SPOOL_ENTRY_ADDRESS_MAX 2048		     /* Postfix's line_length_limit */

/* One entry, as read from q/ID and q/ID.st. */
struct spool_entry {
	char id[SPOOL_ID_MAX];
	uid_t owner;
	double created;
	struct envelope env;
	unsigned long long header_len;
	unsigned long long body_len;
	unsigned long long data_off; /* envelope text length: the header starts here */
	int has_8bit;
	int has_nul;
	unsigned long long longest;
	char *first_error; /* reason given to spool_store() */
	/* q/ID.st */
	unsigned attempts;
	double last_try;
	double next_try;
	char *last_error;
	struct strlist done; /* recipients finished after a partial acceptance */
};

void spool_entry_init(struct spool_entry *e);
void spool_entry_free(struct spool_entry *e);
void spool_entry_format(struct buf *out, const struct spool_entry *e);
int spool_entry_parse(const char *p, size_t n, struct spool_entry *e);
void spool_state_format(struct buf *out, const struct spool_entry *e);
void spool_state_parse(const char *p, size_t n, struct spool_entry *e);

#endif
