#ifndef RELAYSHIM_HEADER_H
#define RELAYSHIM_HEADER_H

/*++
 * NAME
 *	header 3h
 * SUMMARY
 *	the header section as an ordered list of fields, edited in place
 * SYNOPSIS
 *	#include "header.h"
 *
 *	struct header_field { struct buf raw; size_t name_len; size_t value_off; };
 *	struct header { struct header_field *v; size_t n; size_t cap; };
 *
 *	size_t	header_field_name(const char *line, size_t len, size_t *value_off);
 *	int	header_is_continuation(const char *line, size_t len);
 *
 *	void	header_parse(struct header *h, const char *data, size_t len);
 *	void	header_serialize(const struct header *h, struct buf *out);
 *	void	header_free(struct header *h);
 *
 *	int	header_name_is(const struct header_field *f, const char *name);
 *	const char *header_value(const struct header_field *f, size_t *len);
 *	long	header_find(const struct header *h, const char *name, size_t from);
 *	int	header_has_prefix(const struct header *h, const char *prefix);
 *	void	header_remove(struct header *h, size_t idx);
 *	size_t	header_remove_all(struct header *h, const char *name);
 *	void	header_insert(struct header *h, size_t idx, const char *name,
 *			const char *value);
 *	void	header_set_value(struct header *h, size_t idx, const char *value,
 *			size_t len);
 * DESCRIPTION
 *	header_field_name() is the one header-field grammar of the program
 *	(RFC 5322 3.6.8 field-name, with 4.5's obsolete white space before
 *	the colon): a line starts a field when it begins with one or more
 *	printable US-ASCII bytes other than colon (33-126), then optional
 *	spaces and tabs, then a colon. It returns the length of the name (0:
 *	the line does not start a field) and, when value_off is not NULL,
 *	stores the offset just after the colon. "BCC : x" is the field Bcc;
 *	"Two words: x", ": x" and a name with a byte >= 0x80 are not fields.
 *	header_is_continuation() is non-zero for a line that starts with a
 *	space or tab (folding). Every module that tells header lines from
 *	body lines (the message builder in input.c, header_parse() here)
 *	uses these two, so they can never disagree on where the header ends
 *	or which field a line belongs to.
 *
 *	header_parse() splits data (a message's header section: complete
 *	lines, normally CRLF-terminated, no blank separator line) into
 *	fields, appending to h. A field is its first line plus every
 *	following line that starts with a space or tab (RFC 5322 folding).
 *	raw holds the field's bytes exactly as they were, final line end
 *	included; name_len is the length of the field name (trailing white
 *	space before the colon excluded, as RFC 5322 obs-field allows), and
 *	value_off the offset just after the colon (header_field_name()). A
 *	line that is not a field (no colon, an invalid name, a continuation
 *	line at the very start) is kept as a field with name_len 0: it is never matched by
 *	name and is serialised unchanged.
 *
 *	header_serialize() appends all fields to out. For fields that were
 *	not edited the output is byte-for-byte the input: order, case,
 *	folding and unknown fields are untouched.
 *
 *	header_name_is() compares a field name ignoring ASCII case.
 *	header_value() returns the bytes after the colon up to (not
 *	including) the final line end; folding stays in.
 *	header_find() returns the index of the first field named name at
 *	or after from, or -1. header_has_prefix() is non-zero when some
 *	field name starts with prefix (ignoring case).
 *
 *	header_remove() deletes field idx; header_remove_all() deletes
 *	every field named name and returns how many went.
 *	header_insert() inserts "name: value" CRLF before position idx
 *	(idx == h->n appends); value may contain CRLF folding followed by
 *	white space. header_set_value() replaces the bytes after the colon
 *	(up to the line end) of field idx by value (len bytes, normally
 *	starting with a space), keeping the name as it was written.
 * DIAGNOSTICS
 *	An index out of range is a programmer error (util_panic).
 *--*/

#include <stddef.h>

#include "buf.h"

struct header_field {
	struct buf raw;	  /* name, colon, value, folding, line end */
	size_t name_len;  /* 0: not a field, kept as it is */
	size_t value_off; /* first byte after the colon */
};

struct header {
	struct header_field *v;
	size_t n;
	size_t cap;
};

#define HEADER_INIT                                                                                \
	{                                                                                          \
		0                                                                                  \
	}

size_t header_field_name(const char *line, size_t len, size_t *value_off);
int header_is_continuation(const char *line, size_t len);
void header_parse(struct header *h, const char *data, size_t len);
void header_serialize(const struct header *h, struct buf *out);
void header_free(struct header *h);

int header_name_is(const struct header_field *f, const char *name);
const char *header_value(const struct header_field *f, size_t *len);
long header_find(const struct header *h, const char *name, size_t from);
int header_has_prefix(const struct header *h, const char *prefix);
void header_remove(struct header *h, size_t idx);
size_t header_remove_all(struct header *h, const char *name);
void header_insert(struct header *h, size_t idx, const char *name, const char *value);
void header_set_value(struct header *h, size_t idx, const char *value, size_t len);

#endif
