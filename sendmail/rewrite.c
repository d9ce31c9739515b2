/*++
 * NAME
 *	rewrite 3
 * SUMMARY
 *	the message processing pipeline: sender, recipients, header repair,
 *	masquerading, aliases, tags and policy
 * DESCRIPTION
 *	See rewrite.h for the contract. Decisions the contract leaves open:
 *
 *	Local domains. Containers send as "root@3f2a1b9c0d1e" (GNU mail
 *	always passes -f user@hostname) or "webmaster@localhost" (Django's
 *	default sender). An address whose domain is "localhost",
 *	"localhost.localdomain", "[127.0.0.1]", "[IPv6:::1]" or our own
 *	host name (sub->hostname) is treated like the bare local name:
 *	aliased (recipients), looked up in [senders] (sender) and
 *	qualified with [rewrite] domain.
 *
 *	[senders] applies to the invoking user when there is no -f, and
 *	also to a -f or header sender that is a local name, so that
 *	"www-data = noreply@example.com" covers every way www-data's mail
 *	gets its sender. Like ssmtp's revaliases it also rewrites local
 *	names in From:, Sender:, Resent-From: and Resent-Sender: (display
 *	names and comments kept).
 *
 *	-bs (sub->bs_mode): the envelope comes from MAIL and RCPT, so its
 *	sources (-f, [senders] of the login, envelope_from, -t) are not
 *	used; the addresses given are still qualified, aliased, masqueraded
 *	and overridden like command-line ones, because the shim's clients
 *	(Django: webmaster@localhost) need exactly that.
 *
 *	RelayTag: any RelayTag field already present is removed, so the
 *	message carries exactly one (ours) at the very top.
 *
 *	Headers are edited in place (header.c) and addresses inside a
 *	field are spliced (address.c gives their byte positions), so a
 *	display name, comment or folding we did not need to touch stays
 *	byte-for-byte as the application wrote it.
 *--*/

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "address.h"
#include "header.h"
#include "relay_hint.h"
#include "rewrite.h"

/*
 * Address headers (Postfix header_opts.c sender and recipient classes):
 * bare names in them are qualified and their domains masqueraded. The
 * originator fields also get the [senders] mapping, as ssmtp's
 * revaliases rewrites From: as well as the envelope.
 */
static const char *const originator_headers[] = {
    "From", "Sender", "Resent-From", "Resent-Sender", 0,
};

static const char *const address_headers[] = {
    "Reply-To",
    "Resent-Reply-To",
    "Return-Path",
    "Errors-To",
    "Return-Receipt-To",
    "Disposition-Notification-To",
    "Mail-Followup-To",
    "Mail-Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Resent-To",
    "Resent-Cc",
    "Resent-Bcc",
    "Apparently-To",
    0,
};

struct context {
	const struct config *cfg;
	const char *domain;   /* qualifies bare names */
	const char *hostname; /* a local domain, or NULL */
};

/* has_line_break - CR or LF inside a value we will put into a header */

static int has_line_break(const char *s)
{
	return s && strpbrk(s, "\r\n") != 0;
}

/* has_8bit - a byte >= 0x80 */

static int has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* is_local_domain - our own names: treat the address like a bare name */

static int is_local_domain(const struct context *ctx, const char *domain)
{
	return strcasecmp(domain, "localhost") == 0 || strcmp(domain, "[127.0.0.1]") == 0 ||
	       strcasecmp(domain, "[IPv6:::1]") == 0 ||
	       strcasecmp(domain, "localhost.localdomain") == 0 ||
	       (ctx->hostname && *ctx->hostname && strcasecmp(domain, ctx->hostname) == 0);
}

/* local_name - the local part when spec is bare or at a local domain, else NULL */

static char *local_name(const struct context *ctx, const char *spec)
{
	const char *domain = address_domain(spec);

	if (*spec == 0)
		return 0;
	if (domain == 0)
		return util_strdup(spec);
	if (is_local_domain(ctx, domain) && address_local_len(spec) > 0)
		return util_strndup(spec, address_local_len(spec));
	return 0;
}

/* map_lookup - an [aliases]/[senders] entry by key, ignoring case */

static const struct map_entry *map_lookup(const struct map_entry *map, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (map[i].values.n > 0 && strcasecmp(map[i].key, key) == 0)
			return map + i;
	return 0;
}

/* spec_of - the addr-spec of "a@b", "<a@b>" or "Name <a@b>" (allocated) */

static char *spec_of(const char *text)
{
	char *spec;

	if (strcmp(text, "<>") == 0)
		return util_strdup("");
	spec = address_first_spec(text);
	return spec ? spec : util_strdup("");
}

/* qualify_local - spec with a local domain or none gets ours */

static char *qualify_local(const struct context *ctx, const char *spec)
{
	char *local = local_name(ctx, spec);
	char *out;

	if (local == 0)
		return util_strdup(spec);
	out = address_qualify(local, ctx->domain);
	free(local);
	return out;
}

/* masquerade - apply masquerade_domains, taking ownership of spec */

static char *masquerade(const struct context *ctx, char *spec)
{
	char *m = address_masquerade(spec, &ctx->cfg->masquerade_domains);

	if (m == 0)
		return spec;
	free(spec);
	return m;
}

/* sender_from_local - [senders] for a local name, else qualified */

static char *sender_from_local(const struct context *ctx, const char *spec)
{
	char *local = local_name(ctx, spec);
	const struct map_entry *e;
	char *out;

	if (local == 0)
		return util_strdup(spec);
	e = map_lookup(ctx->cfg->senders, ctx->cfg->nsenders, local);
	if (e) {
		char *mapped = spec_of(e->values.v[0]);

		out = qualify_local(ctx, mapped);
		free(mapped);
	} else {
		out = address_qualify(local, ctx->domain);
	}
	free(local);
	return out;
}

/* header_first_spec - addr-spec of the first mailbox of field name, or NULL */

static char *header_first_spec(const struct header *h, const char *name)
{
	struct address_list list = ADDRESS_LIST_INIT;
	long idx = header_find(h, name, 0);
	char *spec = 0;
	const char *value;
	size_t len;

	if (idx < 0)
		return 0;
	value = header_value(h->v + idx, &len);
	address_parse_list(&list, value, len);
	for (size_t i = 0; i < list.n && spec == 0; i++) {
		if (list.v[i].kind == ADDRESS_MAILBOX && *list.v[i].addr_spec) {
			spec = list.v[i].addr_spec;
			list.v[i].addr_spec = 0;
		}
	}
	address_list_free(&list);
	return spec;
}

/* envelope_sender - step 1: where the envelope sender comes from */

static char *envelope_sender(const struct context *ctx, const struct submit *sub,
			     const struct header *h, const char *given)
{
	const struct config *cfg = ctx->cfg;
	const struct map_entry *e;
	char *spec = 0;
	char *out;

	if (given) {
		spec = spec_of(given);
	} else if (sub->user && (e = map_lookup(cfg->senders, cfg->nsenders, sub->user)) != 0) {
		spec = spec_of(e->values.v[0]);
	} else if (cfg->envelope_from == ENVFROM_HEADER) {
		spec = header_first_spec(h, "From");
	}
	if (spec == 0)
		spec = util_strdup(sub->user && *sub->user ? sub->user : "nobody");
	if (*spec == 0)
		return spec; /* the null sender stays null */
	out = masquerade(ctx, sender_from_local(ctx, spec));
	free(spec);
	return out;
}

/*
 * A set of recipients that ignores the case of domains, for duplicate
 * removal in linear time (10 000 recipients in one To: must not be
 * quadratic). Keys are "local@lowercased-domain".
 */
struct rcpt_set {
	char **keys;
	size_t cap; /* power of two */
	size_t n;
};

/* rcpt_key - the comparison key of an address */

static char *rcpt_key(const char *spec)
{
	char *key = util_strdup(spec);
	const char *domain = address_domain(spec);

	if (domain)
		for (char *p = key + (domain - spec); *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return key;
}

/* rcpt_hash - FNV-1a */

static size_t rcpt_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* rcpt_set_add - add key; 1 when it was new. Takes ownership of key */

static int rcpt_set_add(struct rcpt_set *set, char *key)
{
	size_t i;

	if (2 * (set->n + 1) > set->cap) {
		struct rcpt_set bigger = {0};

		bigger.cap = set->cap ? set->cap * 2 : 64;
		bigger.keys = util_calloc(bigger.cap, sizeof(char *));
		for (size_t j = 0; j < set->cap; j++) {
			if (set->keys[j] == 0)
				continue;
			for (i = rcpt_hash(set->keys[j]) & (bigger.cap - 1); bigger.keys[i];
			     i = (i + 1) & (bigger.cap - 1))
				;
			bigger.keys[i] = set->keys[j];
		}
		bigger.n = set->n;
		free(set->keys);
		*set = bigger;
	}
	for (i = rcpt_hash(key) & (set->cap - 1); set->keys[i]; i = (i + 1) & (set->cap - 1)) {
		if (strcmp(set->keys[i], key) == 0) {
			free(key);
			return 0;
		}
	}
	set->keys[i] = key;
	set->n++;
	return 1;
}

/* rcpt_set_free - release the set */

static void rcpt_set_free(struct rcpt_set *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->keys[i]);
	free(set->keys);
	memset(set, 0, sizeof(*set));
}

/* rcpt_add - add one final address unless it is a duplicate */

static void rcpt_add(struct strlist *out, struct rcpt_set *seen, char *spec)
{
	if (*spec && rcpt_set_add(seen, rcpt_key(spec)))
		strlist_add_nodup(out, spec);
	else
		free(spec);
}

/* expand_recipient - step 2 for one address: aliases, qualification */

static void expand_recipient(const struct context *ctx, const char *spec, struct strlist *out,
			     struct rcpt_set *seen)
{
	const struct config *cfg = ctx->cfg;
	char *local = local_name(ctx, spec);
	const struct map_entry *e;

	if (*spec == 0)
		return;
	if (local == 0) {
		rcpt_add(out, seen, util_strdup(spec));
		return;
	}
	e = map_lookup(cfg->aliases, cfg->naliases, local);
	if (e == 0)
		e = map_lookup(cfg->aliases, cfg->naliases, "*");
	if (e == 0) {
		rcpt_add(out, seen, address_qualify(local, ctx->domain));
	} else {
		/* Targets are qualified, never aliased again: no alias loops. */
		for (size_t i = 0; i < e->values.n; i++) {
			struct address_list list = ADDRESS_LIST_INIT;

			address_parse_list(&list, e->values.v[i], strlen(e->values.v[i]));
			for (size_t j = 0; j < list.n; j++)
				if (list.v[j].kind == ADDRESS_MAILBOX)
					rcpt_add(out, seen,
						 qualify_local(ctx, list.v[j].addr_spec));
			address_list_free(&list);
		}
	}
	free(local);
}

/* expand_text - recipients written as text (argv, header value) */

static void expand_text(const struct context *ctx, const char *text, size_t len,
			struct strlist *out, struct rcpt_set *seen)
{
	struct address_list list = ADDRESS_LIST_INIT;

	address_parse_list(&list, text, len);
	for (size_t i = 0; i < list.n; i++)
		if (list.v[i].kind == ADDRESS_MAILBOX)
			expand_recipient(ctx, list.v[i].addr_spec, out, seen);
	address_list_free(&list);
}

/* fix_address_field - qualify (or map) and masquerade every address of field idx */

static void fix_address_field(const struct context *ctx, struct header *h, size_t idx,
			      int originator)
{
	struct address_list list = ADDRESS_LIST_INIT;
	struct buf value = BUF_INIT;
	const char *old;
	size_t len;
	size_t done = 0;
	int changed = 0;

	old = header_value(h->v + idx, &len);
	address_parse_list(&list, old, len);
	for (size_t i = 0; i < list.n; i++) {
		const struct address *a = list.v + i;
		char *spec;

		if (a->kind != ADDRESS_MAILBOX || *a->addr_spec == 0 || a->spec_off < done)
			continue;
		if (originator)
			spec = masquerade(ctx, sender_from_local(ctx, a->addr_spec));
		else
			spec = masquerade(ctx, qualify_local(ctx, a->addr_spec));
		if (strcmp(spec, a->addr_spec) != 0) {
			buf_append(&value, old + done, a->spec_off - done);
			buf_puts(&value, spec);
			done = a->spec_off + a->spec_len;
			changed = 1;
		}
		free(spec);
	}
	if (changed) {
		buf_append(&value, old + done, len - done);
		header_set_value(h, idx, value.data, value.len);
	}
	buf_free(&value);
	address_list_free(&list);
}

/* force_mailbox - replace the address of field idx by the [rewrite] from address */

static void force_mailbox(const struct context *ctx, struct header *h, size_t idx)
{
	struct address_list forced = ADDRESS_LIST_INIT;
	struct address_list current = ADDRESS_LIST_INIT;
	const char *display = 0;
	const char *spec = "";
	struct buf value = BUF_INIT;
	char *qualified;
	const char *old;
	size_t len;

	address_parse_list(&forced, ctx->cfg->from, strlen(ctx->cfg->from));
	for (size_t i = 0; i < forced.n; i++) {
		if (forced.v[i].kind == ADDRESS_MAILBOX) {
			display = forced.v[i].display_name;
			spec = forced.v[i].addr_spec;
			break;
		}
	}
	old = header_value(h->v + idx, &len);
	address_parse_list(&current, old, len);
	/* The display name is kept unless the value has one (relayshim.conf(5)). */
	for (size_t i = 0; i < current.n && display == 0; i++)
		if (current.v[i].kind == ADDRESS_MAILBOX)
			display = current.v[i].display_name ? current.v[i].display_name : "";
	qualified = qualify_local(ctx, spec);
	buf_putc(&value, ' ');
	address_format_mailbox(&value, display, qualified);
	header_set_value(h, idx, value.data, value.len);
	free(qualified);
	buf_free(&value);
	address_list_free(&forced);
	address_list_free(&current);
}

/*
 * override_from - [rewrite] from replaces the From: address, and the
 * Sender: and Resent-Sender: addresses when present: providers that
 * require the login as author (Gmail, Office 365, SES) also check
 * Sender, and a Sender that still names the application's own address
 * gets the message refused ("Sender address rejected").
 */

static void override_from(const struct context *ctx, struct header *h)
{
	long idx = header_find(h, "From", 0);

	if (idx >= 0)
		force_mailbox(ctx, h, (size_t)idx);
	for (size_t i = 0; i < h->n; i++)
		if (header_name_is(h->v + i, "Sender") || header_name_is(h->v + i, "Resent-Sender"))
			force_mailbox(ctx, h, i);
}

/* format_date - RFC 5322 date-time in local time */

static void format_date(struct buf *out, time_t now)
{
	static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	long off;

	/* Own names, not strftime(): the locale must not change a header. */
	if (localtime_r(&now, &tm) == 0 && gmtime_r(&now, &tm) == 0)
		memset(&tm, 0, sizeof(tm));
	off = tm.tm_gmtoff / 60;
	buf_printf(out, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
		   days[(unsigned)tm.tm_wday % 7], tm.tm_mday, months[(unsigned)tm.tm_mon % 12],
		   tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
		   labs(off) / 60, labs(off) % 60);
}

/* put_token - a user or host name for Received, harmless bytes only */

static void put_token(struct buf *out, const char *s)
{
	if (s == 0 || *s == 0)
		s = "unknown";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		buf_putc(out, (c > 0x20 && c < 0x7f && !strchr("();<>\"\\", c)) ? c : '?');
	}
}

/* add_missing - step 3: Date, From, Message-ID when absent */

static void add_missing(const struct context *ctx, const struct submit *sub, struct header *h,
			const char *sender, time_t now, const unsigned char *random, size_t nrandom)
{
	struct buf value = BUF_INIT;

	if (header_find(h, "Date", 0) < 0) {
		format_date(&value, now);
		header_insert(h, h->n, "Date", buf_cstr(&value));
	}
	if (header_find(h, "From", 0) < 0) {
		const char *display = sub->fullname;
		char *forced_display = 0;
		char *spec;

		if ((display == 0 || *display == 0) && ctx->cfg->from) {
			struct address_list forced = ADDRESS_LIST_INIT;

			address_parse_list(&forced, ctx->cfg->from, strlen(ctx->cfg->from));
			if (forced.n && forced.v[0].kind == ADDRESS_MAILBOX &&
			    forced.v[0].display_name)
				display = forced_display = util_strdup(forced.v[0].display_name);
			address_list_free(&forced);
		}
		if (*sender)
			spec = util_strdup(sender);
		else
			spec = address_qualify("MAILER-DAEMON", ctx->domain);
		buf_reset(&value);
		if (display && *display) {
			address_encode_phrase(&value, display);
			buf_printf(&value, " <%s>", spec);
		} else {
			address_format_mailbox(&value, 0, spec);
		}
		header_insert(h, h->n, "From", buf_cstr(&value));
		free(spec);
		free(forced_display);
	}
	if (header_find(h, "Message-ID", 0) < 0) {
		buf_reset(&value);
		buf_putc(&value, '<');
		for (size_t i = 0; i < nrandom; i++)
			buf_printf(&value, "%02x", random[i]);
		buf_printf(&value, "@%s>", ctx->domain);
		header_insert(h, h->n, "Message-ID", buf_cstr(&value));
	}
	buf_free(&value);
}

/* prepend_trace - step 4: Received and RelayTag at the top */

static void prepend_trace(const struct context *ctx, const struct submit *sub, struct header *h,
			  time_t now)
{
	struct buf value = BUF_INIT;

	if (ctx->cfg->received) {
		buf_puts(&value, "from ");
		put_token(&value, sub->user);
		buf_printf(&value, " (uid %lu)\r\n\tby ", sub->uid);
		put_token(&value, sub->hostname);
		buf_puts(&value, " (relayshim)");
		if (sub->queue_id && *sub->queue_id) {
			buf_puts(&value, " id ");
			put_token(&value, sub->queue_id);
		}
		buf_puts(&value, ";\r\n\t");
		format_date(&value, now);
		header_insert(h, 0, "Received", buf_cstr(&value));
	}
	if (ctx->cfg->header_tag && *ctx->cfg->header_tag) {
		header_remove_all(h, "RelayTag");
		header_insert(h, 0, "RelayTag", ctx->cfg->header_tag);
	}
	buf_free(&value);
}

/* join_domains - "a.com, b.com" for the policy message */

static void join_domains(struct buf *out, const struct strlist *list)
{
	for (size_t i = 0; i < list->n; i++)
		buf_printf(out, "%s%s", i ? ", " : "", list->v[i]);
}

/* sender_allowed - envelope sender's domain in allowed_sender_domains */

static int sender_allowed(const struct config *cfg, const char *sender)
{
	const char *domain = address_domain(sender);

	if (domain == 0)
		return 0;
	for (size_t i = 0; i < cfg->allowed_sender_domains.n; i++) {
		/* Tolerate an entry that still holds a space or comma list. */
		char *copy = util_strdup(cfg->allowed_sender_domains.v[i]);
		char *save = 0;
		int ok = 0;

		for (char *d = strtok_r(copy, ", \t", &save); d && !ok;
		     d = strtok_r(0, ", \t", &save))
			ok = address_domain_matches(domain, d);
		free(copy);
		if (ok)
			return 1;
	}
	return 0;
}

/* check_policy - step 5: sender domain and size */

static int check_policy(const struct config *cfg, const struct envelope *env,
			const struct message *msg, struct error *err)
{
	if (cfg->allowed_sender_domains.n > 0) {
		struct buf text = BUF_INIT;
		int status = 0;

		/* Not allow_empty_sender: boky/postfix reads ALLOW_EMPTY_SENDER_DOMAINS
		 * as "the list may be empty" and refuses <> whenever a list is set. */
		if (*env->sender == 0 && !cfg->allow_null_sender) {
			join_domains(&text, &cfg->allowed_sender_domains);
			status = error_set(
			    err, EX_NOPERM,
			    "the null sender <> is not allowed with allowed_sender_domains"
			    " (%s), and the relay would refuse it too; give -f, or set"
			    " allow_null_sender = yes if the relay takes <>",
			    buf_cstr(&text));
		} else if (*env->sender && !sender_allowed(cfg, env->sender)) {
			struct buf who = BUF_INIT;

			buf_put_sanitized(&who, env->sender, strlen(env->sender));
			join_domains(&text, &cfg->allowed_sender_domains);
			status =
			    error_set(err, EX_NOPERM,
				      "sender <%s> is not in allowed_sender_domains (%s); use -f,"
				      " [senders] or [rewrite] from to send as an allowed address",
				      buf_cstr(&who), buf_cstr(&text));
			buf_free(&who);
		}
		buf_free(&text);
		if (status)
			return status;
	}
	/* max_size is the relay's message_size_limit (MESSAGE_SIZE_LIMIT), which
	 * Postfix counts on its queue file, not on the wire (relay_hint.h). */
	if (cfg->max_size) {
		unsigned long long estimate;

		if (relay_hint_too_big(msg, env, cfg->max_size, &estimate))
			return error_set(
			    err, EX_DATAERR,
			    "message is %llu bytes (about %llu as the relay counts it), more than"
			    " max_size %llu; send less or raise the relay's MESSAGE_SIZE_LIMIT"
			    " and max_size",
			    message_size(msg), estimate, cfg->max_size);
	}
	return 0;
}

/* check_injection - line breaks in values that end up in headers */

static int check_injection(const struct config *cfg, const struct submit *sub, struct error *err)
{
	if (has_line_break(sub->sender))
		return error_set(
		    err, EX_DATAERR,
		    "the -f sender contains a line break; refusing it (header injection)");
	if (has_line_break(sub->fullname))
		return error_set(
		    err, EX_DATAERR,
		    "the -F full name contains a line break; refusing it (header injection)");
	for (size_t i = 0; i < sub->rcpts.n; i++)
		if (has_line_break(sub->rcpts.v[i]))
			return error_set(err, EX_DATAERR,
					 "a recipient argument contains a line break; refusing it");
	if (has_line_break(cfg->from))
		return error_set(err, EX_CONFIG,
				 "[rewrite] from contains a line break; fix the configuration");
	if (has_line_break(cfg->header_tag))
		return error_set(
		    err, EX_CONFIG,
		    "[rewrite] header_tag contains a line break; fix the configuration");
	if (has_line_break(cfg->domain))
		return error_set(err, EX_CONFIG,
				 "[rewrite] domain contains a line break; fix the configuration");
	return 0;
}

/* check_envelope - no control bytes in what goes after MAIL FROM/RCPT TO */

static int check_envelope(const struct envelope *env, struct error *err)
{
	struct buf who = BUF_INIT;
	int status = 0;

	if (util_has_control(env->sender)) {
		buf_put_sanitized(&who, env->sender, strlen(env->sender));
		status =
		    error_set(err, EX_DATAERR, "sender address <%s> contains a control character",
			      buf_cstr(&who));
	}
	for (size_t i = 0; status == 0 && i < env->rcpts.n; i++) {
		if (util_has_control(env->rcpts.v[i])) {
			buf_put_sanitized(&who, env->rcpts.v[i], strlen(env->rcpts.v[i]));
			status = error_set(err, EX_DATAERR,
					   "recipient address <%s> contains a control character",
					   buf_cstr(&who));
		}
	}
	buf_free(&who);
	return status;
}

/* context_init - the domain to qualify with, defensively */

static void context_init(struct context *ctx, const struct config *cfg, const char *hostname)
{
	ctx->cfg = cfg;
	ctx->hostname = hostname;
	if (cfg->domain && *cfg->domain)
		ctx->domain = cfg->domain;
	else if (hostname && *hostname)
		ctx->domain = hostname;
	else
		ctx->domain = "localhost";
}

/* build_recipients - step 2 */

static void build_recipients(const struct context *ctx, const struct submit *sub,
			     const struct header *h, const struct strlist *given,
			     struct strlist *out)
{
	struct rcpt_set seen = {0};

	for (size_t i = 0; i < given->n; i++)
		expand_text(ctx, given->v[i], strlen(given->v[i]), out, &seen);
	if (sub->extract_recipients && !sub->bs_mode) {
		/* sendmail 8: when Resent- fields exist, they name the recipients. */
		int resent = header_has_prefix(h, "Resent-");
		const char *const plain[] = {"To", "Cc", "Bcc", 0};
		const char *const resent_names[] = {"Resent-To", "Resent-Cc", "Resent-Bcc", 0};
		const char *const *names = resent ? resent_names : plain;

		for (size_t i = 0; i < h->n; i++) {
			for (size_t j = 0; names[j]; j++) {
				if (header_name_is(h->v + i, names[j])) {
					size_t len;
					const char *v = header_value(h->v + i, &len);

					expand_text(ctx, v, len, out, &seen);
				}
			}
		}
	}
	rcpt_set_free(&seen);
}

/* visible_recipients - the keys of the addresses named in To, Cc (or Resent-) */

static void visible_recipients(const struct context *ctx, const struct header *h,
			       struct rcpt_set *visible)
{
	const char *const names[] = {"To", "Cc", "Resent-To", "Resent-Cc", 0};
	struct strlist tmp = STRLIST_INIT;

	for (size_t i = 0; i < h->n; i++) {
		for (size_t j = 0; names[j]; j++) {
			if (header_name_is(h->v + i, names[j])) {
				size_t len;
				const char *v = header_value(h->v + i, &len);

				expand_text(ctx, v, len, &tmp, visible);
			}
		}
	}
	strlist_free(&tmp);
}

/*
 * redirect_recipients - [rewrite] redirect_to: the envelope becomes the
 * redirect list; *shown gets the X-Original-To value. Recipients that
 * no To/Cc field names (Bcc, or given only on the command line or in
 * RCPT) are counted, not named, unless redirect_show_blind is set: a
 * staging copy must not tell the testers who was meant to be blind.
 */

static void redirect_recipients(const struct context *ctx, const struct header *h,
				struct envelope *env, struct buf *shown)
{
	struct rcpt_set visible = {0};
	struct rcpt_set seen = {0};
	struct strlist to = STRLIST_INIT;
	size_t blind = 0;
	size_t col = 15; /* "X-Original-To: " */

	visible_recipients(ctx, h, &visible);
	for (size_t i = 0; i < env->rcpts.n; i++) {
		const char *r = env->rcpts.v[i];

		if (!ctx->cfg->redirect_show_blind && rcpt_set_add(&visible, rcpt_key(r))) {
			blind++;
			continue;
		}
		if (shown->len > 0) {
			buf_putc(shown, ',');
			col++;
			/* RFC 5322 2.1.1: fold before a line passes 78 characters. */
			if (col + 1 + strlen(r) > 78) {
				buf_puts(shown, "\r\n\t");
				col = 8;
			} else {
				buf_putc(shown, ' ');
				col++;
			}
		} else {
			buf_putc(shown, ' ');
		}
		buf_puts(shown, r);
		col += strlen(r);
	}
	if (blind > 0)
		buf_printf(shown, "%s(%zu undisclosed)", shown->len > 0 ? "\r\n\t" : " ", blind);
	for (size_t i = 0; i < ctx->cfg->redirect_to.n; i++)
		rcpt_add(&to, &seen, qualify_local(ctx, ctx->cfg->redirect_to.v[i]));
	strlist_free(&env->rcpts);
	env->rcpts = to;
	rcpt_set_free(&seen);
	rcpt_set_free(&visible);
}

/* add_always_bcc - [rewrite] always_bcc: one more envelope recipient */

static void add_always_bcc(const struct context *ctx, struct envelope *env)
{
	char *bcc = qualify_local(ctx, ctx->cfg->always_bcc);
	char *key = rcpt_key(bcc);

	for (size_t i = 0; i < env->rcpts.n; i++) {
		char *k = rcpt_key(env->rcpts.v[i]);
		int same = strcmp(k, key) == 0;

		free(k);
		if (same) {
			free(bcc);
			free(key);
			return;
		}
	}
	free(key);
	strlist_add_nodup(&env->rcpts, bcc);
}

/* rewrite_message - the whole pipeline, in the order rewrite.h gives */

int rewrite_message(const struct config *cfg, const struct submit *sub, struct message *msg,
		    struct envelope *env, time_t now, const unsigned char *random, size_t nrandom,
		    struct error *err)
{
	struct context ctx;
	struct header h = HEADER_INIT;
	struct strlist rcpts = STRLIST_INIT;
	struct buf original_to = BUF_INIT;
	char *sender;
	int status;

	if (random == 0 || nrandom < 8)
		util_panic("rewrite_message: %zu random bytes, need at least 8", nrandom);
	if ((status = check_injection(cfg, sub, err)) != 0)
		return status;
	context_init(&ctx, cfg, sub->hostname);
	header_parse(&h, msg->header.data ? msg->header.data : "", msg->header.len);

	/* 1. envelope sender */
	if (sub->bs_mode)
		sender = envelope_sender(&ctx, sub, &h, env->sender ? env->sender : "");
	else
		sender = envelope_sender(&ctx, sub, &h, sub->sender);
	if (cfg->from && *cfg->from) {
		char *forced = spec_of(cfg->from);

		free(sender);
		sender = qualify_local(&ctx, forced);
		free(forced);
	}
	free(env->sender);
	env->sender = sender;

	/* 2. recipients */
	build_recipients(&ctx, sub, &h, sub->bs_mode ? &env->rcpts : &sub->rcpts, &rcpts);
	strlist_free(&env->rcpts);
	env->rcpts = rcpts;
	if (env->rcpts.n == 0) {
		header_free(&h);
		return error_set(err, EX_USAGE,
				 "no recipients: give addresses as arguments or use -t"
				 " with To:, Cc: or Bcc: headers");
	}
	/* 2b. staging redirect, then the mirror copy: policy and the log see the result */
	if (cfg->redirect_to.n > 0)
		redirect_recipients(&ctx, &h, env, &original_to);
	if (cfg->always_bcc && *cfg->always_bcc)
		add_always_bcc(&ctx, env);
	if (env->rcpts.n > REWRITE_RCPT_MAX) {
		size_t n = env->rcpts.n;

		header_free(&h);
		buf_free(&original_to);
		return error_set(err, EX_DATAERR,
				 "too many recipients: %zu (at most %d per message; send the "
				 "message several times, or to a list address)",
				 n, REWRITE_RCPT_MAX);
	}
	if ((status = check_envelope(env, err)) != 0) {
		header_free(&h);
		buf_free(&original_to);
		return status;
	}

	/* 3. headers */
	for (size_t i = 0; i < h.n; i++) {
		for (size_t j = 0; originator_headers[j]; j++)
			if (header_name_is(h.v + i, originator_headers[j]))
				fix_address_field(&ctx, &h, i, 1);
		for (size_t j = 0; address_headers[j]; j++)
			if (header_name_is(h.v + i, address_headers[j]))
				fix_address_field(&ctx, &h, i, 0);
	}
	if (cfg->from && *cfg->from)
		override_from(&ctx, &h);
	if (cfg->add_missing_headers)
		add_missing(&ctx, sub, &h, env->sender, now, random, nrandom);
	header_remove_all(&h, "Bcc");
	header_remove_all(&h, "Resent-Bcc");
	header_remove_all(&h, "Content-Length");
	if (cfg->redirect_to.n > 0) {
		/* One field, ours: an application's own X-Original-To would mislead testers. */
		header_remove_all(&h, "X-Original-To");
		if (original_to.len > 0)
			header_insert(&h, h.n, "X-Original-To", buf_cstr(&original_to) + 1);
	}
	buf_free(&original_to);

	/* 4. trace */
	prepend_trace(&ctx, sub, &h, now);

	buf_reset(&msg->header);
	header_serialize(&h, &msg->header);
	header_free(&h);

	/* envelope extras */
	env->smtputf8 = has_8bit(env->sender);
	for (size_t i = 0; i < env->rcpts.n && !env->smtputf8; i++)
		env->smtputf8 = has_8bit(env->rcpts.v[i]);
	if (sub->dsn_notify && env->dsn_notify == 0)
		env->dsn_notify = util_strdup(sub->dsn_notify);
	if (sub->dsn_ret && env->dsn_ret == 0)
		env->dsn_ret = util_strdup(sub->dsn_ret);
	if (sub->dsn_envid && env->dsn_envid == 0)
		env->dsn_envid = util_strdup(sub->dsn_envid);

	/* 5. policy */
	return check_policy(cfg, env, msg, err);
}

/* put_list - "a, b" or "(none)" */

static void put_list(struct buf *out, const struct strlist *l)
{
	if (l->n == 0)
		buf_puts(out, "(none)");
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			buf_puts(out, ", ");
		buf_put_sanitized(out, l->v[i], strlen(l->v[i]));
	}
}

/* rewrite_explain_host - -bv: alias -> qualification -> masquerade */

void rewrite_explain_host(const struct config *cfg, const char *hostname, const char *addr,
			  struct buf *out)
{
	struct context ctx;
	struct strlist aliased = STRLIST_INIT;
	struct strlist qualified = STRLIST_INIT;
	struct strlist masqueraded = STRLIST_INIT;
	struct rcpt_set seen = {0};
	char *spec = spec_of(addr);
	char *local;
	const struct map_entry *e = 0;

	context_init(&ctx, cfg, hostname);
	local = local_name(&ctx, spec);
	if (local) {
		e = map_lookup(cfg->aliases, cfg->naliases, local);
		if (e == 0)
			e = map_lookup(cfg->aliases, cfg->naliases, "*");
	}
	if (e) {
		for (size_t i = 0; i < e->values.n; i++)
			strlist_add(&aliased, e->values.v[i]);
	}
	expand_recipient(&ctx, spec, &qualified, &seen);
	for (size_t i = 0; i < qualified.n; i++)
		strlist_add_nodup(&masqueraded, masquerade(&ctx, util_strdup(qualified.v[i])));

	buf_put_sanitized(out, addr, strlen(addr));
	buf_puts(out, ": alias: ");
	put_list(out, &aliased);
	buf_puts(out, "; qualified (envelope recipient): ");
	put_list(out, &qualified);
	buf_puts(out, "; masqueraded (sender and headers): ");
	put_list(out, &masqueraded);
	buf_putc(out, '\n');

	rcpt_set_free(&seen);
	strlist_free(&aliased);
	strlist_free(&qualified);
	strlist_free(&masqueraded);
	free(local);
	free(spec);
}

/* rewrite_explain - -bv without a host name */

void rewrite_explain(const struct config *cfg, const char *addr, struct buf *out)
{
	rewrite_explain_host(cfg, 0, addr, out);
}
