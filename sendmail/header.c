/*++
 * NAME
 *	header 3
 * SUMMARY
 *	the header section as an ordered list of fields, edited in place
 * DESCRIPTION
 *	See header.h. Each field keeps its own bytes, so an edit of one
 *	field (removing Bcc, qualifying an address in Cc) cannot disturb
 *	the folding, order or spelling of any other: mail signed by the
 *	application (DKIM over Subject, To, ...) must survive us.
 *--*/

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "header.h"
#include "util.h"

/* is_name_byte - RFC 5322 ftext: printable US-ASCII except colon */

static int is_name_byte(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* header_field_name - name length of the field a line starts, 0 when none */

size_t header_field_name(const char *line, size_t len, size_t *value_off)
{
	size_t i = 0;
	size_t name_end;

	while (i < len && is_name_byte((unsigned char)line[i]))
		i++;
	name_end = i;
	/* RFC 5322 4.5.8 obs-optional: "BCC : x" is a Bcc field, not body text. */
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (name_end == 0 || i >= len || line[i] != ':')
		return 0;
	if (value_off)
		*value_off = i + 1;
	return name_end;
}

/* header_is_continuation - a folded line: starts with a space or tab */

int header_is_continuation(const char *line, size_t len)
{
	return len > 0 && (line[0] == ' ' || line[0] == '\t');
}

/* field_add - append an empty field at the end */

static struct header_field *field_add(struct header *h)
{
	struct header_field *f;

	if (h->n == h->cap) {
		if (h->cap > ((size_t)-1) / 2 / sizeof(*h->v))
			util_oom();
		h->cap = h->cap ? h->cap * 2 : 32;
		h->v = util_realloc(h->v, h->cap * sizeof(*h->v));
	}
	f = h->v + h->n++;
	memset(f, 0, sizeof(*f));
	return f;
}

/* field_classify - find name and colon in the first line of a field */

static void field_classify(struct header_field *f, size_t first_line_len)
{
	/* Not a field: name_len stays 0. */
	f->name_len = header_field_name(f->raw.data, first_line_len, &f->value_off);
}

/* header_parse - split a header section into fields */

void header_parse(struct header *h, const char *data, size_t len)
{
	struct header_field *cur = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - (data + pos)) + 1 : len - pos;
		const char *line = data + pos;

		if (cur && header_is_continuation(line, line_len)) {
			buf_append(&cur->raw, line, line_len);
		} else {
			cur = field_add(h);
			buf_append(&cur->raw, line, line_len);
			field_classify(cur, line_len);
		}
		pos += line_len;
	}
}

/* header_serialize - append every field */

void header_serialize(const struct header *h, struct buf *out)
{
	for (size_t i = 0; i < h->n; i++)
		buf_append(out, h->v[i].raw.data, h->v[i].raw.len);
}

/* header_free - release everything */

void header_free(struct header *h)
{
	for (size_t i = 0; i < h->n; i++)
		buf_free(&h->v[i].raw);
	free(h->v);
	h->v = 0;
	h->n = h->cap = 0;
}

/* header_name_is - case-insensitive name comparison */

int header_name_is(const struct header_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len != 0 && f->name_len == n && strncasecmp(f->raw.data, name, n) == 0;
}

/* value_end - offset of the final line end of a field */

static size_t value_end(const struct header_field *f)
{
	size_t end = f->raw.len;

	if (end > f->value_off && f->raw.data[end - 1] == '\n')
		end--;
	if (end > f->value_off && f->raw.data[end - 1] == '\r')
		end--;
	return end;
}

/* header_value - bytes after the colon, without the final line end */

const char *header_value(const struct header_field *f, size_t *len)
{
	if (f->name_len == 0) {
		*len = 0;
		return "";
	}
	*len = value_end(f) - f->value_off;
	return f->raw.data + f->value_off;
}

/* header_find - first field named name at or after from */

long header_find(const struct header *h, const char *name, size_t from)
{
	for (size_t i = from; i < h->n; i++)
		if (header_name_is(h->v + i, name))
			return (long)i;
	return -1;
}

/* header_has_prefix - some field name starts with prefix */

int header_has_prefix(const struct header *h, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].name_len >= n && strncasecmp(h->v[i].raw.data, prefix, n) == 0)
			return 1;
	return 0;
}

/* header_remove - delete one field */

void header_remove(struct header *h, size_t idx)
{
	if (idx >= h->n)
		util_panic("header_remove: index %zu of %zu", idx, h->n);
	buf_free(&h->v[idx].raw);
	memmove(h->v + idx, h->v + idx + 1, (h->n - idx - 1) * sizeof(*h->v));
	h->n--;
}

/* header_remove_all - delete every field named name */

size_t header_remove_all(struct header *h, const char *name)
{
	size_t removed = 0;
	size_t out = 0;

	/* One pass: a header with thousands of Bcc lines stays linear. */
	for (size_t i = 0; i < h->n; i++) {
		if (header_name_is(h->v + i, name)) {
			buf_free(&h->v[i].raw);
			removed++;
		} else {
			h->v[out++] = h->v[i];
		}
	}
	h->n = out;
	return removed;
}

/* header_insert - new "name: value" field before idx */

void header_insert(struct header *h, size_t idx, const char *name, const char *value)
{
	struct header_field f;

	if (idx > h->n)
		util_panic("header_insert: index %zu of %zu", idx, h->n);
	memset(&f, 0, sizeof(f));
	buf_printf(&f.raw, "%s: %s\r\n", name, value);
	f.name_len = strlen(name);
	f.value_off = f.name_len + 1;
	field_add(h);
	memmove(h->v + idx + 1, h->v + idx, (h->n - 1 - idx) * sizeof(*h->v));
	h->v[idx] = f;
}

/* header_set_value - replace the value of field idx */

void header_set_value(struct header *h, size_t idx, const char *value, size_t len)
{
	struct header_field *f;
	struct buf raw = BUF_INIT;
	size_t end;

	if (idx >= h->n || h->v[idx].name_len == 0)
		util_panic("header_set_value: index %zu of %zu", idx, h->n);
	f = h->v + idx;
	end = value_end(f);
	buf_append(&raw, f->raw.data, f->value_off);
	buf_append(&raw, value, len);
	if (end < f->raw.len)
		buf_append(&raw, f->raw.data + end, f->raw.len - end);
	else
		buf_puts(&raw, "\r\n");
	buf_free(&f->raw);
	f->raw = raw;
}
