/*++
 * NAME
 *	config 3
 * SUMMARY
 *	the effective configuration: defaults < file < environment < command line
 * SYNOPSIS
 *	See config.h.
 * DESCRIPTION
 *	One table, config_keys[], describes every key: section, name, the
 *	environment variables that may set it (in priority order), its type,
 *	its default (as text, parsed by the same code as a file value), and
 *	the struct config field it fills. config_init(), config_load(),
 *	config_write() and the unit tests all walk that table, so a key
 *	cannot be documented in one place and forgotten in another.
 *
 *	Layers are applied in order: defaults, then the file, then the
 *	environment; main() stores command-line values afterwards (with
 *	config_set() or by hand plus config_mark_cmdline()). Each key
 *	remembers where its value came from for --config-check.
 *
 *	Decisions a reader may look for:
 *	- An empty value (file "key =" or environment "NAME=") is the same as
 *	  not setting the key: compose files and .env templates write "VAR="
 *	  for "unset", and boky/postfix treats an empty ALLOWED_SENDER_DOMAINS
 *	  the same way.
 *	- Several environment names for one key: the first one set (in table
 *	  order) wins. MESSAGE_SIZE_LIMIT beats POSTFIX_message_size_limit as on
 *	  boky/postfix; RELAYSHIM_LOG_LEVEL beats DEBUG. DEBUG only counts when
 *	  it is yes/true/1/on: node applications use DEBUG=app:* for their own
 *	  purposes and must not break mail. ALLOW_EMPTY_SENDER_DOMAINS is true
 *	  for any non-empty value except an explicit no/false/0/off (boky).
 *	  As in boky it only lets the domain list be empty; it never lets
 *	  the null sender through a list (boky refuses <> then: 554), that
 *	  is allow_null_sender, relayshim's own.
 *	- SMTP_HEADER_TAG is juanluisbaptiste/postfix's: that relay tags the
 *	  message itself (before MIME-Version and Content-Transfer-Encoding),
 *	  so relayshim does not read it; RELAYSHIM_HEADER_TAG is its own.
 *	- The domain default follows juanluisbaptiste/postfix's $mydomain
 *	  (DOMAIN, or the last two labels of SERVER_HOSTNAME) when no domain
 *	  and no allowed_sender_domains are set; see domain_from_relay_env().
 *	- RELAYHOST, SMTP_SERVER, SMTP_PORT, RELAYHOST_* and SMTP_USERNAME/
 *	  SMTP_PASSWORD describe the relay's own upstream in an env file shared
 *	  with the relay container: they are in no table and never read.
 *	- [aliases] and [senders] are one value each: RELAYSHIM_ALIASES
 *	  replaces the whole [aliases] section of the file, like any other
 *	  environment variable replaces its key. iniparser lowercases the keys
 *	  of the file; environment keys are lowercased too so both behave alike.
 *	- password and password_file are one secret: the higher layer's choice
 *	  wins; both in the same layer is an error. A file value loses one
 *	  trailing newline ("\n" or "\r\n").
 *	- iniparser strips an unquoted ";" or "#" and what follows: values
 *	  holding them must be quoted ("..." or '...'). config_write() quotes
 *	  as needed so that its output reads back to the same configuration.
 * DIAGNOSTICS
 *	One line in struct error, status EX_CONFIG, naming the source (file
 *	path or environment variable), the section and key, and the accepted
 *	values. A secret's value is never repeated in a message.
 *--*/

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <iniparser.h>

#include "anonymize.h"
#include "buf.h"
#include "config.h"
#include "endpoint.h"
#include "util.h"

/* ---------------------------------------------------------------- */
/* The table                                                        */
/* ---------------------------------------------------------------- */

enum key_type {
	T_STRING,      /* char *, NULL = unset */
	T_BOOL,	       /* int 0/1 */
	T_TRIBOOL,     /* int -1 (unset) /0/1 */
	T_DURATION_MS, /* unsigned, milliseconds */
	T_DURATION_S,  /* unsigned long, seconds */
	T_SIZE,	       /* unsigned long long, bytes */
	T_ENUM,	       /* int-sized enum */
	T_TLSVER,      /* int 12 or 13 */
	T_LIST,	       /* struct strlist */
	T_RELAYS,      /* relays + nrelays */
	T_FINGERPRINT, /* tls_fingerprint + has_tls_fingerprint */
	T_MAP,	       /* struct map_entry * + size_t count */
	T_SECRET,      /* char *, the secret itself */
	T_SECRET_FILE, /* char *, path; the content goes to the secret */
};

#define K_ENV_LENIENT_BOOL (1 << 0) /* any non-empty value but no/false/0/off is true */
#define K_ENV_DEBUG (1 << 1)	    /* DEBUG=yes means "debug", other values ignored */
#define K_LIST_NEGATE (1 << 2)	    /* list entries may start with "!" */
#define K_MAP_SINGLE (1 << 3)	    /* map values: exactly one address */

struct enum_value {
	const char *name;
	int value;
};

typedef int (*check_fn)(const char *value, struct buf *norm, struct buf *why);

struct config_key {
	const char *section;
	const char *key;
	const char *env[3];
	enum key_type type;
	const char *def; /* default as text; NULL = unset */
	unsigned flags;
	size_t offset;
	size_t offset2;			/* T_MAP: the count field */
	const struct enum_value *enums; /* T_ENUM */
	check_fn check;			/* T_STRING, T_LIST entries, T_MAP values */
	const char *help;		/* one line, for --write-config */
};

/* clang-format off */
static const struct enum_value tls_levels[] = {
	{"none", TLS_NONE}, {"may", TLS_MAY}, {"starttls", TLS_STARTTLS}, {"tls", TLS_IMPLICIT}, {0, 0},
};
static const struct enum_value envfrom_modes[] = {
	{"header", ENVFROM_HEADER}, {"user", ENVFROM_USER}, {0, 0},
};
static const struct enum_value queue_modes[] = {
	{"never", QUEUE_NEVER}, {"fallback", QUEUE_FALLBACK}, {"always", QUEUE_ALWAYS}, {0, 0},
};
static const struct enum_value log_formats[] = {
	{"plain", LOG_FORMAT_PLAIN}, {"json", LOG_FORMAT_JSON}, {0, 0},
};
static const struct enum_value log_levels[] = {
	{"debug", LOG_LEVEL_DEBUG}, {"info", LOG_LEVEL_INFO}, {"warning", LOG_LEVEL_WARNING},
	{"error", LOG_LEVEL_ERROR}, {0, 0},
};
static const struct enum_value smtpd_auths[] = {
	{"off", SMTPD_AUTH_OFF}, {"accept", SMTPD_AUTH_ACCEPT}, {0, 0},
};

/* clang-format on */
static int check_host_name(const char *, struct buf *, struct buf *);
static int check_domain(const char *, struct buf *, struct buf *);
static int check_address(const char *, struct buf *, struct buf *);
static int check_header_value(const char *, struct buf *, struct buf *);
static int check_path(const char *, struct buf *, struct buf *);
static int check_abs_path(const char *, struct buf *, struct buf *);
static int check_mechanisms(const char *, struct buf *, struct buf *);
static int check_log_target(const char *, struct buf *, struct buf *);
static int check_anonymize(const char *, struct buf *, struct buf *);
static int check_bounce_to(const char *, struct buf *, struct buf *);
static int check_intercept(const char *, struct buf *, struct buf *);
static int check_username(const char *, struct buf *, struct buf *);

#define F(field) offsetof(struct config, field)

/* clang-format off */
static const struct config_key config_keys[] = {
	/* [relay] */
	{"relay", "host", {"RELAYSHIM_RELAY"}, T_RELAYS, 0, 0, F(relays), F(nrelays), 0, 0,
	 "relays tried in order: host, host:port, [v6addr]:port, maildir:/path (capture); comma or space separated"},
	{"relay", "tls", {"RELAYSHIM_TLS"}, T_ENUM, "may", 0, F(tls), 0, tls_levels, 0,
	 "none, may (STARTTLS if offered, unverified), starttls (required, verified), tls (implicit, port 465)"},
	{"relay", "tls_verify", {"RELAYSHIM_TLS_VERIFY"}, T_TRIBOOL, 0, 0, F(tls_verify), 0, 0, 0,
	 "verify chain and host name; empty: yes for starttls and tls, no otherwise"},
	{"relay", "tls_ca_file", {"RELAYSHIM_TLS_CA_FILE"}, T_STRING, 0, 0, F(tls_ca_file), 0, 0,
	 check_path, "CA bundle (PEM); empty: the system store"},
	{"relay", "tls_cert_file", {"RELAYSHIM_TLS_CERT_FILE"}, T_STRING, 0, 0, F(tls_cert_file), 0, 0,
	 check_path, "client certificate (PEM) for mutual TLS"},
	{"relay", "tls_key_file", {"RELAYSHIM_TLS_KEY_FILE"}, T_STRING, 0, 0, F(tls_key_file), 0, 0,
	 check_path, "its private key; empty: in tls_cert_file"},
	{"relay", "tls_fingerprint", {"RELAYSHIM_TLS_FINGERPRINT"}, T_FINGERPRINT, 0, 0,
	 F(tls_fingerprint), F(has_tls_fingerprint), 0, 0,
	 "pin: SHA-256 of the relay's certificate, hex, colons allowed"},
	{"relay", "tls_min_version", {"RELAYSHIM_TLS_MIN_VERSION"}, T_TLSVER, "1.2", 0,
	 F(tls_min_version), 0, 0, 0, "1.2 or 1.3"},
	{"relay", "username", {"RELAYSHIM_USERNAME"}, T_STRING, 0, 0, F(username), 0, 0,
	 check_username, "SASL user name"},
	{"relay", "password", {"RELAYSHIM_PASSWORD"}, T_SECRET, 0, 0, F(password), 0, 0, 0,
	 "SASL password (secret; prefer password_file)"},
	{"relay", "password_file", {"RELAYSHIM_PASSWORD_FILE"}, T_SECRET_FILE, 0, 0, F(password_file),
	 0, 0, check_path, "file holding the password or the XOAUTH2 bearer token (re-read at every use)"},
	{"relay", "auth_mechanisms", {"RELAYSHIM_AUTH_MECHANISMS"}, T_STRING, 0, 0,
	 F(auth_mechanisms), 0, 0, check_mechanisms, "restrict SASL mechanisms, e.g. PLAIN LOGIN; empty: all"},
	{"relay", "auth_insecure", {"RELAYSHIM_AUTH_INSECURE"}, T_BOOL, "no", 0, F(auth_insecure), 0, 0,
	 0, "send credentials over a connection that is not verified TLS"},
	{"relay", "helo", {"RELAYSHIM_HELO"}, T_STRING, 0, 0, F(helo), 0, 0, check_host_name,
	 "EHLO argument; empty: the host name"},
	{"relay", "timeout_connect", {"RELAYSHIM_TIMEOUT_CONNECT"}, T_DURATION_MS, "10s", 0,
	 F(timeout_connect_ms), 0, 0, 0, "per connection attempt (500ms, 10s, 2m, ...)"},
	{"relay", "timeout", {"RELAYSHIM_TIMEOUT"}, T_DURATION_MS, "120s", 0, F(timeout_ms), 0, 0, 0,
	 "per command; the reply to the final dot may take 5 times this"},

	/* [rewrite] */
	{"rewrite", "domain", {"RELAYSHIM_DOMAIN"}, T_STRING, 0, 0, F(domain), 0, 0, check_domain,
	 "qualifies bare names; empty: first of allowed_sender_domains, else the domain of "
	 "SERVER_HOSTNAME, else the host name"},
	{"rewrite", "masquerade_domains", {"MASQUERADED_DOMAINS"}, T_LIST, 0, K_LIST_NEGATE,
	 F(masquerade_domains), 0, 0, check_domain,
	 "Postfix masquerade_domains: strip subdomains, first match wins, !domain excludes"},
	{"rewrite", "from", {"OVERWRITE_FROM"}, T_STRING, 0, 0, F(from), 0, 0, check_header_value,
	 "force the sender: addr or \"Name\" <addr>"},
	{"rewrite", "envelope_from", {"RELAYSHIM_ENVELOPE_FROM"}, T_ENUM, "header", 0, F(envelope_from),
	 0, envfrom_modes, 0, "without -f: header (From: address) or user (login name)"},
	{"rewrite", "header_tag", {"RELAYSHIM_HEADER_TAG"}, T_STRING, 0, 0, F(header_tag), 0, 0,
	 check_header_value,
	 "adds one \"RelayTag: value\" header (SMTP_HEADER_TAG is the relay's: not read)"},
	{"rewrite", "redirect_to", {"RELAYSHIM_REDIRECT_TO"}, T_LIST, 0, 0, F(redirect_to), 0, 0,
	 check_address, "staging: every envelope recipient replaced by these addresses"},
	{"rewrite", "redirect_show_blind", {"RELAYSHIM_REDIRECT_SHOW_BLIND"}, T_BOOL, "no", 0,
	 F(redirect_show_blind), 0, 0, 0, "X-Original-To also names recipients not in To/Cc"},
	{"rewrite", "always_bcc", {"RELAYSHIM_ALWAYS_BCC"}, T_STRING, 0, 0, F(always_bcc), 0, 0,
	 check_address, "one more envelope recipient for every message, no header (Postfix's name)"},
	{"rewrite", "add_missing_headers", {"ALWAYS_ADD_MISSING_HEADERS"}, T_BOOL, "yes", 0,
	 F(add_missing_headers), 0, 0, 0, "add Date, Message-ID and From when missing"},
	{"rewrite", "received", {"RELAYSHIM_RECEIVED"}, T_BOOL, "yes", 0, F(received), 0, 0, 0,
	 "prepend a Received: trace header"},

	/* [aliases], [senders]: free-form keys */
	{"aliases", 0, {"RELAYSHIM_ALIASES"}, T_MAP, 0, 0, F(aliases), F(naliases), 0, check_address,
	 "local name = one or more addresses; * = catch-all for bare names"},
	{"senders", 0, {"RELAYSHIM_SENDERS"}, T_MAP, 0, K_MAP_SINGLE, F(senders), F(nsenders), 0,
	 check_address, "local user = sender address"},

	/* [policy] */
	{"policy", "allowed_sender_domains", {"ALLOWED_SENDER_DOMAINS"}, T_LIST, 0, 0,
	 F(allowed_sender_domains), 0, 0, check_domain,
	 "envelope sender must be in one of these domains or a subdomain; empty: all"},
	{"policy", "allow_empty_sender", {"ALLOW_EMPTY_SENDER_DOMAINS"}, T_BOOL, "no", K_ENV_LENIENT_BOOL,
	 F(allow_empty_sender), 0, 0, 0,
	 "boky/postfix: the domain list may be empty; does not permit the null sender"},
	{"policy", "allow_null_sender", {"RELAYSHIM_ALLOW_NULL_SENDER"}, T_BOOL, "no", 0,
	 F(allow_null_sender), 0, 0, 0,
	 "send the null sender <> although allowed_sender_domains is set"},
	{"policy", "max_size", {"MESSAGE_SIZE_LIMIT", "POSTFIX_message_size_limit"}, T_SIZE, "0", 0,
	 F(max_size), 0, 0, 0, "bytes (k, M, G allowed); 0: no limit"},

	/* [queue] */
	{"queue", "mode", {"RELAYSHIM_QUEUE"}, T_ENUM, "fallback", 0, F(queue_mode), 0, queue_modes, 0,
	 "never, fallback (spool on temporary failure), always (spool first)"},
	{"queue", "dir", {"RELAYSHIM_QUEUE_DIR"}, T_STRING, "/var/spool/relayshim", 0, F(queue_dir), 0,
	 0, check_abs_path, "spool directory; put it on a volume"},
	{"queue", "max_age", {"RELAYSHIM_QUEUE_MAX_AGE"}, T_DURATION_S, "5d", 0, F(queue_max_age_s), 0,
	 0, 0, "then the message moves to failed/"},
	{"queue", "bounce_to", {"RELAYSHIM_BOUNCE_TO"}, T_STRING, 0, 0, F(bounce_to), 0, 0,
	 check_bounce_to, "sender, or an address that receives failure notices; empty: none"},

	/* [log] */
	{"log", "target", {"RELAYSHIM_LOG"}, T_STRING, "stderr", 0, F(log_target), 0, 0,
	 check_log_target, "comma list of stderr, stdout, syslog, a file path (/proc/1/fd/1), none"},
	{"log", "format", {"LOG_FORMAT"}, T_ENUM, "plain", 0, F(log_format), 0, log_formats, 0,
	 "plain or json"},
	{"log", "anonymize", {"ANONYMIZE_EMAILS"}, T_STRING, 0, 0, F(log_anonymize), 0, 0,
	 check_anonymize, "smart, paranoid, hash?salt=..., noop; empty: off"},
	{"log", "level", {"RELAYSHIM_LOG_LEVEL", "DEBUG"}, T_ENUM, "info", K_ENV_DEBUG, F(log_level), 0,
	 log_levels, 0, "debug, info, warning, error"},

	/* [smtpd] */
	{"smtpd", "auth", {"RELAYSHIM_SMTPD_AUTH"}, T_ENUM, "accept", 0, F(smtpd_auth), 0, smtpd_auths,
	 0, "-bs mode: off, or accept (advertise AUTH PLAIN LOGIN, accept any credentials)"},

	/* [shim] */
	{"shim", "intercept", {"RELAYSHIM_INTERCEPT"}, T_STRING, "127.0.0.1:25 [::1]:25", 0,
	 F(intercept), 0, 0, check_intercept, "loopback endpoints served (the shim reads only the environment)"},
	{"shim", "sendmail", {"RELAYSHIM_SENDMAIL"}, T_STRING, "/usr/sbin/sendmail", 0, F(sendmail_path),
	 0, 0, check_abs_path, "program the shim runs as -bs"},
};

/* clang-format on */

#undef F

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* ---------------------------------------------------------------- */
/* Bookkeeping                                                      */
/* ---------------------------------------------------------------- */

enum source_kind { SRC_DEFAULT, SRC_DERIVED, SRC_FILE, SRC_ENV, SRC_CMDLINE };

struct source {
	enum source_kind kind;
	const char *env;     /* SRC_ENV: the variable (static string) */
	const char *derived; /* SRC_DERIVED: from what */
};

struct config_priv {
	char *path; /* the file that was read, or NULL */
	struct source src[NKEYS];
	unsigned char *port_derived; /* per relay: config_finish() chose the port */
	size_t nport_derived;
	char *warning; /* for config_warning(): the caller logs it */
};

static struct config_priv *priv(const struct config *cfg)
{
	if (cfg->priv == 0)
		util_panic("config used before config_init");
	return cfg->priv;
}

/* set_warning - keep one warning for the caller to log (config does not log) */

static void __attribute__((format(printf, 2, 3)))
set_warning(struct config *cfg, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(priv(cfg)->warning);
	priv(cfg)->warning = buf_steal(&b);
}

static void *field(const struct config *cfg, size_t off)
{
	return (char *)cfg + off;
}

/* key_index - table index of section/key, -1 if unknown */

static int key_index(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(config_keys[i].section, section) != 0)
			continue;
		if (config_keys[i].key == 0 || (key && strcmp(config_keys[i].key, key) == 0))
			return (int)i;
	}
	return -1;
}

static int section_known(const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].section, section) == 0)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Freeing one field                                                */
/* ---------------------------------------------------------------- */

static void map_free(struct map_entry *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].key);
		strlist_free(&m[i].values);
	}
	free(m);
}

static void relays_free(struct relay_addr *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].host);
	free(r);
}

/* secret_wipe - free a secret, overwriting it first */

static void secret_wipe(char **p)
{
	if (*p) {
		volatile char *v = *p;

		while (*v)
			*v++ = 0;
		free(*p);
		*p = 0;
	}
}

/* field_clear - release what a key's field holds and reset it to empty */

static void field_clear(struct config *cfg, const struct config_key *k)
{
	void *f = field(cfg, k->offset);

	switch (k->type) {
	case T_STRING:
	case T_SECRET_FILE:
		free(*(char **)f);
		*(char **)f = 0;
		break;
	case T_SECRET:
		secret_wipe((char **)f);
		break;
	case T_LIST:
		strlist_free(f);
		break;
	case T_RELAYS:
		relays_free(cfg->relays, cfg->nrelays);
		cfg->relays = 0;
		cfg->nrelays = 0;
		break;
	case T_MAP:
		map_free(*(struct map_entry **)f, *(size_t *)field(cfg, k->offset2));
		*(struct map_entry **)f = 0;
		*(size_t *)field(cfg, k->offset2) = 0;
		break;
	case T_FINGERPRINT:
		memset(cfg->tls_fingerprint, 0, sizeof(cfg->tls_fingerprint));
		cfg->has_tls_fingerprint = 0;
		break;
	case T_TRIBOOL:
		*(int *)f = -1;
		break;
	default:
		break;
	}
}

/* ---------------------------------------------------------------- */
/* Value checkers                                                   */
/* ---------------------------------------------------------------- */

static int has_space_or_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* check_host_name - a DNS name or address literal, no spaces */

static int check_host_name(const char *v, struct buf *norm, struct buf *why)
{
	(void)norm;
	for (const char *p = v; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr(".-_:[]", *p) &&
		    !((unsigned char)*p & 0x80)) {
			buf_puts(why, "use a host name such as mail.example.com");
			return -1;
		}
	}
	return 0;
}

/* check_domain - a domain name; IDN in UTF-8 is allowed */

static int check_domain(const char *v, struct buf *norm, struct buf *why)
{
	(void)norm;
	if (*v == 0 || *v == '.' || *v == '-' || strstr(v, "..")) {
		buf_puts(why, "use domain names such as example.com");
		return -1;
	}
	for (const char *p = v; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr(".-_", *p) &&
		    !((unsigned char)*p & 0x80)) {
			buf_puts(why, "use domain names such as example.com");
			return -1;
		}
	}
	return 0;
}

/* check_address - one address or bare local name, no spaces or brackets */

static int check_address(const char *v, struct buf *norm, struct buf *why)
{
	(void)norm;
	if (*v == 0 || has_space_or_ctl(v) || strpbrk(v, "<>,;\"()")) {
		buf_puts(why, "use addresses such as ops@example.com, comma separated");
		return -1;
	}
	return 0;
}

/* check_username - printable, no line breaks (it goes into SASL) */

static int check_username(const char *v, struct buf *norm, struct buf *why)
{
	(void)norm;
	if (util_has_control(v)) {
		buf_puts(why, "control characters are not allowed");
		return -1;
	}
	return 0;
}

/* check_header_value - goes into a header: no CR, LF or other control bytes */

static int check_header_value(const char *v, struct buf *norm, struct buf *why)
{
	(void)norm;
	for (const char *p = v; *p; p++) {
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
			buf_puts(why, "control characters and line breaks are not allowed");
			return -1;
		}
	}
	return 0;
}

/* check_path - a file name */

static int check_path(const char *v, struct buf *norm, struct buf *why)
{
	(void)norm;
	if (util_has_control(v)) {
		buf_puts(why, "use a file name");
		return -1;
	}
	return 0;
}

/* check_abs_path - an absolute file name */

static int check_abs_path(const char *v, struct buf *norm, struct buf *why)
{
	(void)norm;
	if (*v != '/' || util_has_control(v)) {
		buf_puts(why, "use an absolute path");
		return -1;
	}
	return 0;
}

/* check_mechanisms - SASL mechanism names; normalised to upper case, space separated */

static int check_mechanisms(const char *v, struct buf *norm, struct buf *why)
{
	int in_word = 0;

	for (const char *p = v; *p; p++) {
		if (*p == ',' || *p == ' ' || *p == '\t') {
			in_word = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
			buf_reset(norm);
			buf_puts(why, "use SASL mechanism names such as PLAIN LOGIN CRAM-MD5 "
				      "SCRAM-SHA-256 XOAUTH2");
			return -1;
		}
		if (!in_word && norm->len)
			buf_putc(norm, ' ');
		in_word = 1;
		buf_putc(norm, toupper((unsigned char)*p));
	}
	return 0;
}

/* check_log_target - stderr, stdout, syslog, /path, none; normalised to "a,b" */

static int check_log_target(const char *v, struct buf *norm, struct buf *why)
{
	const char *q = v;
	const char *p;
	size_t n;
	int words = 0, none = 0;

	while ((p = util_next_item(&q, &n)) != 0) {
		if (!((n == 6 && strncmp(p, "stderr", 6) == 0) ||
		      (n == 6 && strncmp(p, "stdout", 6) == 0) ||
		      (n == 6 && strncmp(p, "syslog", 6) == 0) ||
		      (n == 4 && strncmp(p, "none", 4) == 0) || (*p == '/'))) {
			buf_reset(norm);
			buf_puts(why, "use stderr, stdout, syslog, none or an absolute file path, "
				      "comma separated");
			return -1;
		}
		if (n == 4 && strncmp(p, "none", 4) == 0)
			none = 1;
		if (words++)
			buf_putc(norm, ',');
		buf_append(norm, p, n);
	}
	if (none && words > 1) {
		buf_reset(norm);
		buf_puts(why, "none cannot be combined with other targets");
		return -1;
	}
	if (words == 0) {
		buf_puts(
		    why,
		    "use stderr, stdout, syslog, none or an absolute file path, comma separated");
		return -1;
	}
	return 0;
}

/* check_anonymize - boky/postfix ANONYMIZE_EMAILS syntax, checked by log.c's parser */

static int check_anonymize(const char *v, struct buf *norm, struct buf *why)
{
	struct anonymizer *an = 0;

	(void)norm;
	if (anonymizer_parse(v, &an, why) != 0)
		return -1;
	anonymizer_free(an);
	return 0;
}

/* check_bounce_to - "sender" or an address */

static int check_bounce_to(const char *v, struct buf *norm, struct buf *why)
{
	(void)norm;
	if (strcmp(v, "sender") == 0)
		return 0;
	if (has_space_or_ctl(v) || strpbrk(v, "<>,;\"()")) {
		buf_puts(why, "use sender or an address such as postmaster@example.com");
		return -1;
	}
	return 0;
}

/* check_intercept - endpoints "127.0.0.1:25 [::1]:25" */

static int check_intercept(const char *v, struct buf *norm, struct buf *why)
{
	struct endpoint *eps;
	struct error err;
	size_t n;

	/* The same parser as -bd (and the same syntax as the shim's): one truth. */
	(void)norm;
	error_clear(&err);
	if (endpoint_parse(v, &eps, &n, &err) != 0) {
		buf_put_sanitized(why, err.text, strlen(err.text)); /* it quotes the raw value */
		return -1;
	}
	free(eps);
	return 0;
}

/* ---------------------------------------------------------------- */
/* Typed parsers                                                    */
/* ---------------------------------------------------------------- */

/* parse_bool - yes/no/true/false/1/0/on/off; -1 if none of them */

static int parse_bool(const char *v)
{
	static const char *yes[] = {"yes", "true", "1", "on", "y"};
	static const char *no[] = {"no", "false", "0", "off", "n"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* parse_number - decimal digits into *out; returns the rest, NULL on overflow/no digits */

static const char *parse_number(const char *v, unsigned long long *out)
{
	unsigned long long n = 0;
	const char *p = v;

	while (isdigit((unsigned char)*p)) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (ULLONG_MAX - d) / 10)
			return 0;
		n = n * 10 + d;
		p++;
	}
	if (p == v)
		return 0;
	*out = n;
	return p;
}

/* parse_duration_ms - "500ms", "10s", "2m", "1h", "5d", "1w", bare seconds */

static int parse_duration_ms(const char *v, unsigned long long *ms)
{
	static const struct {
		const char *unit;
		unsigned long long ms;
	} units[] = {
	    {"", 1000},	       {"ms", 1},	   {"s", 1000},		{"m", 60000},
	    {"h", 3600000ULL}, {"d", 86400000ULL}, {"w", 604800000ULL},
	};
	unsigned long long n;
	const char *rest = parse_number(v, &n);

	if (rest == 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(rest, units[i].unit) == 0) {
			if (n > ULLONG_MAX / units[i].ms)
				return -1;
			*ms = n * units[i].ms;
			return 0;
		}
	}
	return -1;
}

/* parse_size - bytes with optional k/M/G (powers of 1024) and an optional B */

static int parse_size(const char *v, unsigned long long *out)
{
	unsigned long long n, mult = 1;
	const char *rest = parse_number(v, &n);

	if (rest == 0)
		return -1;
	switch (*rest) {
	case 'k':
	case 'K':
		mult = 1024ULL, rest++;
		break;
	case 'm':
	case 'M':
		mult = 1024ULL * 1024, rest++;
		break;
	case 'g':
	case 'G':
		mult = 1024ULL * 1024 * 1024, rest++;
		break;
	}
	if (*rest == 'b' || *rest == 'B')
		rest++;
	if (*rest || n > ULLONG_MAX / mult)
		return -1;
	*out = n * mult;
	return 0;
}

/* parse_fingerprint - 64 hex digits, colons (or spaces) between pairs allowed */

static int parse_fingerprint(const char *v, unsigned char out[32])
{
	size_t n = 0;

	if (strncasecmp(v, "sha256:", 7) == 0)
		v += 7;
	while (*v) {
		int hi, lo;

		if (*v == ':' || *v == ' ') {
			v++;
			continue;
		}
		if (!isxdigit((unsigned char)v[0]) || !isxdigit((unsigned char)v[1]) || n == 32)
			return -1;
		hi = isdigit((unsigned char)v[0]) ? v[0] - '0'
						  : (tolower((unsigned char)v[0]) - 'a' + 10);
		lo = isdigit((unsigned char)v[1]) ? v[1] - '0'
						  : (tolower((unsigned char)v[1]) - 'a' + 10);
		out[n++] = (unsigned char)(hi << 4 | lo);
		v += 2;
	}
	return n == 32 ? 0 : -1;
}

/* parse_relays - "host", "host:port", "[v6]:port", "[v6]"; comma or space separated */

static int parse_relays(const char *v, struct relay_addr **out, size_t *nout, struct buf *why)
{
	struct relay_addr *r = 0;
	size_t n = 0;
	const char *q = v;
	const char *p;
	size_t len;

	while ((p = util_next_item(&q, &len)) != 0) {
		const char *host, *port = 0, *end = p + len;
		size_t hostlen;
		unsigned long long portnum = 0;

		if (len > 8 && strncmp(p, "maildir:", 8) == 0) {
			/* capture.h: a Maildir instead of a relay, absolute path */
			if (p[8] != '/' || memchr(p, '\n', len) || memchr(p, '\r', len))
				goto bad;
			r = util_realloc(r, (n + 1) * sizeof(*r));
			r[n].host = util_strndup(p + 8, len - 8);
			r[n].port = 0;
			r[n].maildir = 1;
			n++;
			continue;
		}
		if (*p == '[') {
			const char *close = memchr(p, ']', len);

			if (close == 0 || close == p + 1)
				goto bad;
			host = p + 1;
			hostlen = (size_t)(close - host);
			if (close + 1 < end) {
				if (close[1] != ':')
					goto bad;
				port = close + 2;
			}
		} else {
			const char *colon = memchr(p, ':', len);

			host = p;
			hostlen = len;
			/* Two colons and no brackets: a bare IPv6 address, no port. */
			if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)) == 0) {
				hostlen = (size_t)(colon - p);
				port = colon + 1;
			}
		}
		if (hostlen == 0)
			goto bad;
		for (size_t i = 0; i < hostlen; i++)
			if (!isalnum((unsigned char)host[i]) && !strchr(".-_:%", host[i]) &&
			    !((unsigned char)host[i] & 0x80))
				goto bad;
		if (port) {
			char tmp[8];
			size_t plen = (size_t)(end - port);

			if (plen == 0 || plen >= sizeof(tmp))
				goto bad;
			memcpy(tmp, port, plen);
			tmp[plen] = 0;
			if (parse_number(tmp, &portnum) == 0 ||
			    tmp[strspn(tmp, "0123456789")] != 0 || portnum == 0 || portnum > 65535)
				goto bad;
		}
		r = util_realloc(r, (n + 1) * sizeof(*r));
		r[n].host = util_strndup(host, hostlen);
		r[n].port = (unsigned)portnum;
		r[n].maildir = 0;
		n++;
	}
	if (n == 0)
		goto bad;
	*out = r;
	*nout = n;
	return 0;

bad:
	relays_free(r, n);
	buf_puts(why, "use host, host:port, [ipv6]:port or maildir:/absolute/path, comma or space"
		      " separated, port 1-65535");
	return -1;
}

/* split_list - split on commas and white space into l */

static void split_list(const char *v, struct strlist *l)
{
	const char *p = v;

	while (*p) {
		size_t n;

		p += strspn(p, ", \t\r\n");
		n = strcspn(p, ", \t\r\n");
		if (n == 0)
			break;
		strlist_add_nodup(l, util_strndup(p, n));
		p += n;
	}
}

/* map_add - add or replace key's entry; values from a comma/space list */

static int map_add(struct map_entry **m, size_t *n, const char *key, size_t keylen,
		   const char *values, const struct config_key *k, struct buf *why)
{
	struct strlist vals = STRLIST_INIT;
	char *lkey = util_strndup(key, keylen);
	size_t i;

	for (char *c = lkey; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (*lkey == 0 || has_space_or_ctl(lkey) || strpbrk(lkey, "=;,<>\"")) {
		buf_printf(why, "bad name \"%s\" (use a local name such as root, or *)", lkey);
		free(lkey);
		return -1;
	}
	split_list(values, &vals);
	if (vals.n == 0 || ((k->flags & K_MAP_SINGLE) && vals.n != 1)) {
		buf_printf(why, "%s: %s", lkey,
			   (k->flags & K_MAP_SINGLE)
			       ? "give exactly one address, e.g. root = cron@example.com"
			       : "give one or more addresses, e.g. root = ops@example.com");
		strlist_free(&vals);
		free(lkey);
		return -1;
	}
	for (i = 0; i < vals.n; i++) {
		struct buf dummy = BUF_INIT;

		if (k->check(vals.v[i], &dummy, why) != 0) {
			buf_free(&dummy);
			strlist_free(&vals);
			free(lkey);
			return -1;
		}
		buf_free(&dummy);
	}
	for (i = 0; i < *n; i++) {
		if (strcmp((*m)[i].key, lkey) == 0) {
			strlist_free(&(*m)[i].values);
			(*m)[i].values = vals;
			free(lkey);
			return 0;
		}
	}
	*m = util_realloc(*m, (*n + 1) * sizeof(**m));
	(*m)[*n].key = lkey;
	(*m)[*n].values = vals;
	(*n)++;
	return 0;
}

/* parse_env_map - "root=ops@x;dev=a@x,b@x" (entries by ';' or space, targets by ',') */

static int parse_env_map(const char *v, struct map_entry **m, size_t *n, const struct config_key *k,
			 struct buf *why)
{
	const char *p = v;
	int last = -1;

	while (*p) {
		size_t len;
		const char *eq;

		p += strspn(p, "; \t\r\n");
		len = strcspn(p, "; \t\r\n");
		if (len == 0)
			break;
		eq = memchr(p, '=', len);
		if (eq) {
			char *vals = util_strndup(eq + 1, (size_t)(p + len - eq - 1));
			int rc = map_add(m, n, p, (size_t)(eq - p), vals, k, why);

			free(vals);
			if (rc)
				return -1;
			last = (int)*n - 1;
			/* map_add may have replaced an earlier entry: find it. */
			for (size_t i = 0; i < *n; i++)
				if (strlen((*m)[i].key) == (size_t)(eq - p) &&
				    strncasecmp((*m)[i].key, p, (size_t)(eq - p)) == 0)
					last = (int)i;
		} else if (last >= 0 && !(k->flags & K_MAP_SINGLE)) {
			/* "dev=a@x, b@x": a space after the comma continues the entry. */
			struct strlist more = STRLIST_INIT;
			char *tok = util_strndup(p, len);

			split_list(tok, &more);
			free(tok);
			for (size_t i = 0; i < more.n; i++) {
				struct buf dummy = BUF_INIT;

				if (k->check(more.v[i], &dummy, why) != 0) {
					buf_free(&dummy);
					strlist_free(&more);
					return -1;
				}
				buf_free(&dummy);
				strlist_add(&(*m)[last].values, more.v[i]);
			}
			strlist_free(&more);
		} else {
			buf_puts(why, "use name=address entries separated by ';', e.g. "
				      "root=ops@example.com;dev=a@example.com,b@example.com");
			return -1;
		}
		p += len;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* Setting one key                                                  */
/* ---------------------------------------------------------------- */

/* accepted_values - the "use ..." hint for a typed key */

static void accepted_values(const struct config_key *k, struct buf *why)
{
	switch (k->type) {
	case T_BOOL:
	case T_TRIBOOL:
		buf_puts(why, "use yes or no");
		break;
	case T_DURATION_MS:
	case T_DURATION_S:
		buf_puts(why, "use a duration such as 500ms, 10s, 2m, 1h or 5d");
		break;
	case T_SIZE:
		buf_puts(why, "use a size in bytes, optionally with k, M or G, e.g. 10M");
		break;
	case T_TLSVER:
		buf_puts(why, "use 1.2 or 1.3");
		break;
	case T_FINGERPRINT:
		buf_puts(why, "use 64 hex digits (SHA-256), colons allowed");
		break;
	case T_ENUM:
		buf_puts(why, "use ");
		for (const struct enum_value *e = k->enums; e->name; e++) {
			if (e != k->enums)
				buf_puts(why, e[1].name ? ", " : " or ");
			buf_puts(why, e->name);
		}
		break;
	default:
		break;
	}
}

/* read_secret_file - the whole file, one trailing newline removed */

static int read_secret_file(const char *path, char **out, struct buf *why)
{
	struct buf b = BUF_INIT;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		buf_printf(why, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t r;

		buf_reserve(&b, 4096);
		r = read(fd, b.data + b.len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			buf_printf(why, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		b.len += (size_t)r;
		b.data[b.len] = 0;
		if (b.len > 65536) {
			buf_printf(why, "%s is larger than 64 KB: not a secret", path);
			goto fail;
		}
	}
	close(fd);
	fd = -1;
	if (b.len && b.data[b.len - 1] == '\n') {
		b.len--;
		if (b.len && b.data[b.len - 1] == '\r')
			b.len--;
		b.data[b.len] = 0;
	}
	if (b.len == 0 || memchr(b.data, 0, b.len)) {
		buf_printf(why, "%s %s", path, b.len ? "contains a NUL byte" : "is empty");
		goto fail;
	}
	*out = buf_steal(&b);
	return 0;

fail:
	if (fd >= 0)
		close(fd);
	if (b.data)
		memset(b.data, 0, b.cap);
	buf_free(&b);
	return -1;
}

/* key_parse - parse value into the key's field; -1 with a reason in why */

static int key_parse(struct config *cfg, const struct config_key *k, const char *value,
		     struct buf *why)
{
	void *f = field(cfg, k->offset);
	unsigned long long n;
	struct buf norm = BUF_INIT;
	int b;

	switch (k->type) {
	case T_STRING:
		if (k->check && k->check(value, &norm, why) != 0) {
			buf_free(&norm);
			return -1;
		}
		field_clear(cfg, k);
		*(char **)f = norm.len ? buf_steal(&norm) : util_strdup(value);
		buf_free(&norm);
		return 0;
	case T_SECRET:
		if (strchr(value, '\n') || strchr(value, '\r')) {
			buf_puts(why, "line breaks are not allowed");
			return -1;
		}
		field_clear(cfg, k);
		*(char **)f = util_strdup(value);
		return 0;
	case T_SECRET_FILE: {
		char *secret;
		int partner = key_index(k->section, "password");

		if (check_path(value, &norm, why) != 0 ||
		    read_secret_file(value, &secret, why) != 0)
			return -1;
		field_clear(cfg, k);
		field_clear(cfg, &config_keys[partner]);
		*(char **)f = util_strdup(value);
		cfg->password = secret;
		return 0;
	}
	case T_BOOL:
	case T_TRIBOOL:
		if ((b = parse_bool(value)) < 0)
			goto bad;
		*(int *)f = b;
		return 0;
	case T_DURATION_MS:
		if (parse_duration_ms(value, &n) != 0 || n == 0 || n > UINT_MAX)
			goto bad;
		*(unsigned *)f = (unsigned)n;
		return 0;
	case T_DURATION_S:
		if (parse_duration_ms(value, &n) != 0 || n == 0 || n / 1000 + 1 > ULONG_MAX / 2)
			goto bad;
		*(unsigned long *)f = (unsigned long)((n + 999) / 1000);
		return 0;
	case T_SIZE:
		if (parse_size(value, &n) != 0)
			goto bad;
		*(unsigned long long *)f = n;
		return 0;
	case T_ENUM:
		for (const struct enum_value *e = k->enums; e->name; e++) {
			if (strcasecmp(value, e->name) == 0) {
				*(int *)f = e->value;
				return 0;
			}
		}
		if (k->enums == log_levels && strcasecmp(value, "warn") == 0) {
			*(int *)f = LOG_LEVEL_WARNING;
			return 0;
		}
		goto bad;
	case T_TLSVER:
		if (strncasecmp(value, "TLSv", 4) == 0)
			value += 4;
		if (strcmp(value, "1.2") == 0)
			*(int *)f = 12;
		else if (strcmp(value, "1.3") == 0)
			*(int *)f = 13;
		else
			goto bad;
		return 0;
	case T_FINGERPRINT: {
		unsigned char fp[32];

		if (parse_fingerprint(value, fp) != 0)
			goto bad;
		memcpy(cfg->tls_fingerprint, fp, sizeof(fp));
		cfg->has_tls_fingerprint = 1;
		return 0;
	}
	case T_LIST: {
		struct strlist l = STRLIST_INIT;

		split_list(value, &l);
		for (size_t i = 0; i < l.n; i++) {
			const char *e = l.v[i];

			if ((k->flags & K_LIST_NEGATE) && *e == '!')
				e++;
			if (k->check(e, &norm, why) != 0) {
				if (k->flags & K_LIST_NEGATE)
					buf_puts(why, " (!domain excludes)");
				strlist_free(&l);
				buf_free(&norm);
				return -1;
			}
		}
		buf_free(&norm);
		field_clear(cfg, k);
		*(struct strlist *)f = l;
		return 0;
	}
	case T_RELAYS: {
		struct relay_addr *r;
		size_t nr;

		if (parse_relays(value, &r, &nr, why) != 0)
			return -1;
		field_clear(cfg, k);
		cfg->relays = r;
		cfg->nrelays = nr;
		return 0;
	}
	case T_MAP:
		util_panic("key_parse: map %s", k->section);
	}
	return 0;

bad:
	accepted_values(k, why);
	return -1;
}

/* source_text - "file PATH", "environment NAME", ... for messages */

static void source_text(struct buf *out, const struct config *cfg, int i)
{
	const struct source *s = &priv(cfg)->src[i];

	switch (s->kind) {
	case SRC_DEFAULT:
		buf_puts(out, "default");
		break;
	case SRC_DERIVED:
		buf_printf(out, "default (%s)", s->derived);
		break;
	case SRC_FILE:
		buf_printf(out, "file %s", priv(cfg)->path);
		break;
	case SRC_ENV:
		buf_printf(out, "environment %s", s->env);
		break;
	case SRC_CMDLINE:
		buf_puts(out, "command line");
		break;
	}
}

/* key_name - "[section] key" */

static void key_name(struct buf *out, const struct config_key *k)
{
	buf_printf(out, "[%s]", k->section);
	if (k->key)
		buf_printf(out, " %s", k->key);
}

/* bad_value - the one-line error for a value that did not parse; never echoes a secret */

static int bad_value(struct error *err, const char *where, const struct config_key *k,
		     const char *value, const struct buf *why)
{
	struct buf shown = BUF_INIT, name = BUF_INIT;
	size_t n = strlen(value);
	const char *hint = why->len ? why->data : "see relayshim.conf(5)";

	key_name(&name, k);
	if (k->type == T_SECRET) {
		error_set(err, EX_CONFIG, "%s: %s: bad value (%s)", where, buf_cstr(&name), hint);
	} else {
		buf_put_sanitized(&shown, value, n > 120 ? 120 : n);
		error_set(err, EX_CONFIG, "%s: %s: bad value \"%s%s\" (%s)", where, buf_cstr(&name),
			  buf_cstr(&shown), n > 120 ? "..." : "", hint);
	}
	buf_free(&shown);
	buf_free(&name);
	return EX_CONFIG;
}

/* ---------------------------------------------------------------- */
/* Public: init, free                                               */
/* ---------------------------------------------------------------- */

/* config_init - built-in defaults, parsed from the table */

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->priv = util_calloc(1, sizeof(struct config_priv));
	cfg->tls_verify = -1;
	for (size_t i = 0; i < NKEYS; i++) {
		struct buf why = BUF_INIT;

		if (config_keys[i].def &&
		    key_parse(cfg, &config_keys[i], config_keys[i].def, &why) != 0)
			util_panic("config: bad default for %s: %s", config_keys[i].key,
				   buf_cstr(&why));
		buf_free(&why);
	}
}

/* config_free - release everything; cfg must be config_init()ed again to reuse */

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < NKEYS; i++)
		field_clear(cfg, &config_keys[i]);
	if (cfg->priv) {
		free(priv(cfg)->path);
		free(priv(cfg)->port_derived);
		free(priv(cfg)->warning);
	}
	free(cfg->priv);
	cfg->priv = 0;
}

/* ---------------------------------------------------------------- */
/* The file                                                         */
/* ---------------------------------------------------------------- */

static char ini_error[512];

/* ini_error_cb - keep iniparser's first complaint instead of printing it */

static int ini_error_cb(const char *fmt, ...)
{
	va_list ap;
	size_t len = strlen(ini_error);

	if (len >= sizeof(ini_error) - 1 || len > 0)
		return 0;
	va_start(ap, fmt);
	vsnprintf(ini_error, sizeof(ini_error), fmt, ap);
	va_end(ap);
	return 0;
}

/* ini_error_line - iniparser's "iniparser: syntax error in F (N):\n-> text" as one line */

static void ini_error_line(struct buf *out)
{
	const char *p = ini_error;

	if (strncmp(p, "iniparser: ", 11) == 0)
		p += 11;
	for (; *p; p++) {
		if (*p == '\n') {
			if (p[1] == '-' && p[2] == '>' && p[3] == ' ')
				p += 3;
			buf_putc(out, ' ');
		} else {
			buf_put_sanitized(out, p, 1);
		}
	}
	while (out->len && out->data[out->len - 1] == ' ')
		buf_truncate(out, out->len - 1);
}

/* load_file - apply the INI file at path */

static int load_file(struct config *cfg, const char *path, int explicit, struct error *err)
{
	struct stat st;
	dictionary *d;
	int rc = 0;
	int seen_secret = 0, seen_secret_file = 0;
	const char *file_val[NKEYS];

	memset(file_val, 0, sizeof(file_val));
	if (stat(path, &st) != 0) {
		if (errno == ENOENT && !explicit)
			return 0;
		return error_set(err, EX_CONFIG, "cannot read configuration file %s: %s%s", path,
				 strerror(errno),
				 errno == ENOENT ? " (check -C or RELAYSHIM_CONFIG)" : "");
	}
	if (S_ISDIR(st.st_mode))
		return error_set(err, EX_CONFIG, "configuration file %s is a directory", path);
	if (access(path, R_OK) != 0)
		return error_set(
		    err, EX_CONFIG,
		    "cannot read configuration file %s: %s (make it readable by the user running "
		    "sendmail, or use -C)",
		    path, strerror(errno));

	ini_error[0] = 0;
	iniparser_set_error_callback(ini_error_cb);
	d = iniparser_load(path);
	if (d == 0 || ini_error[0]) {
		struct buf line = BUF_INIT;

		ini_error_line(&line);
		error_set(err, EX_CONFIG, "%s: %s (fix the line; quote values that contain ; or #)",
			  path, line.len ? line.data : "cannot parse");
		buf_free(&line);
		if (d)
			iniparser_freedict(d);
		return EX_CONFIG;
	}
	free(priv(cfg)->path);
	priv(cfg)->path = util_strdup(path);

	/* Unknown sections and keys first, so a typo is reported even if a
	 * later value is also bad. */
	for (ssize_t i = 0; i < d->size && rc == 0; i++) {
		const char *entry = d->key[i], *colon;
		char *section;
		int k;
		struct buf shown_section = BUF_INIT, shown_key = BUF_INIT;

		if (entry == 0)
			continue;
		colon = strchr(entry, ':');
		section = util_strndup(entry, colon ? (size_t)(colon - entry) : strlen(entry));
		/* Names are shown escaped: a CR in a key must not split the error line. */
		buf_put_sanitized(&shown_section, section, strlen(section));
		buf_put_sanitized(&shown_key, colon ? colon + 1 : "[]",
				  colon ? strlen(colon + 1) : 2);
		if (*section == 0) {
			rc = error_set(err, EX_CONFIG,
				       "%s: \"%s\" is outside a section (put it under [relay], "
				       "[rewrite], ...)",
				       path, buf_cstr(&shown_key)); /* "[]" alone: no key */
		} else if (!section_known(section)) {
			rc = error_set(err, EX_CONFIG,
				       "%s: [%s]: unknown section (use relay, rewrite, aliases, "
				       "senders, policy, queue, log, "
				       "smtpd or shim)",
				       path, buf_cstr(&shown_section));
		} else if (colon && (k = key_index(section, colon + 1)) >= 0) {
			/* Kept for the loop below: one pass over the few entries of the
			 * file instead of a lookup of every known key in the dictionary. */
			if (config_keys[k].key && strcmp(config_keys[k].key, colon + 1) == 0)
				file_val[k] = d->val[i];
		} else if (colon) {
			struct buf known = BUF_INIT;

			for (size_t j = 0; j < NKEYS; j++)
				if (strcmp(config_keys[j].section, section) == 0)
					buf_printf(&known, "%s%s", known.len ? ", " : "",
						   config_keys[j].key);
			rc = error_set(err, EX_CONFIG, "%s: [%s] %s: unknown key (known keys: %s)",
				       path, buf_cstr(&shown_section), buf_cstr(&shown_key),
				       buf_cstr(&known));
			buf_free(&known);
		}
		buf_free(&shown_section);
		buf_free(&shown_key);
		free(section);
	}

	for (size_t i = 0; i < NKEYS && rc == 0; i++) {
		const struct config_key *k = &config_keys[i];
		struct buf why = BUF_INIT;

		if (k->type == T_MAP) {
			const char *prefix_end;
			size_t plen = strlen(k->section);
			struct map_entry *m = 0;
			size_t n = 0;
			int any = 0;

			for (ssize_t j = 0; j < d->size && rc == 0; j++) {
				const char *entry = d->key[j];

				if (entry == 0 || strncmp(entry, k->section, plen) != 0 ||
				    entry[plen] != ':')
					continue;
				prefix_end = entry + plen + 1;
				if (d->val[j] == 0 || d->val[j][0] == 0)
					continue;
				any = 1;
				if (map_add(&m, &n, prefix_end, strlen(prefix_end), d->val[j], k,
					    &why) != 0)
					rc = error_set(err, EX_CONFIG, "%s: [%s] %s: %s", path,
						       k->section, prefix_end, buf_cstr(&why));
			}
			if (rc == 0 && any) {
				field_clear(cfg, k);
				*(struct map_entry **)field(cfg, k->offset) = m;
				*(size_t *)field(cfg, k->offset2) = n;
				priv(cfg)->src[i].kind = SRC_FILE;
			} else {
				map_free(m, n);
			}
		} else {
			const char *v = file_val[i];

			if (v && *v) {
				if (k->type == T_SECRET)
					seen_secret = 1;
				if (k->type == T_SECRET_FILE)
					seen_secret_file = 1;
				if (seen_secret && seen_secret_file) {
					rc = error_set(err, EX_CONFIG,
						       "%s: [%s] password and password_file are "
						       "both set (keep one)",
						       path, k->section);
				} else if (key_parse(cfg, k, v, &why) != 0) {
					rc = bad_value(err, path, k, v, &why);
				} else {
					priv(cfg)->src[i].kind = SRC_FILE;
					if (k->type == T_SECRET_FILE)
						priv(cfg)
						    ->src[key_index(k->section, "password")]
						    .kind = SRC_FILE;
				}
			}
		}
		buf_free(&why);
	}
	iniparser_freedict(d);

	/* The file may hold a password; say so when others can read it. */
	if (rc == 0 && seen_secret && !seen_secret_file && (st.st_mode & S_IROTH))
		set_warning(cfg,
			    "%s holds a password and is readable by every user: chmod o-r %s, "
			    "or use password_file",
			    path, path);
	return rc;
}

/* ---------------------------------------------------------------- */
/* The environment                                                  */
/* ---------------------------------------------------------------- */

/* env_get - value of NAME in envp, NULL if absent or empty */

static const char *env_get(char **envp, const char *name)
{
	size_t n = strlen(name);

	if (envp == 0)
		return 0;
	/* Called for every key (~150 names) over the whole environment at each
	 * start: the first byte rules out almost every entry without a call. */
	for (char **e = envp; *e; e++)
		if ((*e)[0] == name[0] && strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return (*e)[n + 1] ? *e + n + 1 : 0;
	return 0;
}

/* load_env - apply the environment, key by key */

static int load_env(struct config *cfg, char **envp, struct error *err)
{
	int secret_idx = -1, secret_file_idx = -1;
	const char *secret_env = 0, *secret_file_env = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		const char *v = 0, *name = 0;
		char where[80];
		struct buf why = BUF_INIT;

		for (int j = 0; j < 3 && k->env[j] && v == 0; j++) {
			name = k->env[j];
			v = env_get(envp, name);
			if (v && (k->flags & K_ENV_DEBUG) && strcmp(name, "DEBUG") == 0)
				v = parse_bool(v) == 1 ? "debug" : 0;
		}
		if (v == 0)
			continue;
		if (k->type == T_SECRET) {
			secret_idx = (int)i;
			secret_env = name;
		}
		if (k->type == T_SECRET_FILE) {
			secret_file_idx = (int)i;
			secret_file_env = name;
		}
		if (secret_idx >= 0 && secret_file_idx >= 0)
			return error_set(err, EX_CONFIG,
					 "environment: %s and %s are both set (keep one)",
					 secret_env, secret_file_env);
		snprintf(where, sizeof(where), "environment %s", name);
		if ((k->flags & K_ENV_LENIENT_BOOL) && parse_bool(v) < 0)
			v = "yes";
		if (k->type == T_MAP) {
			struct map_entry *m = 0;
			size_t n = 0;

			if (parse_env_map(v, &m, &n, k, &why) != 0) {
				map_free(m, n);
				error_set(err, EX_CONFIG, "%s: [%s]: %s", where, k->section,
					  buf_cstr(&why));
				buf_free(&why);
				return EX_CONFIG;
			}
			field_clear(cfg, k);
			*(struct map_entry **)field(cfg, k->offset) = m;
			*(size_t *)field(cfg, k->offset2) = n;
		} else if (key_parse(cfg, k, v, &why) != 0) {
			bad_value(err, where, k, v, &why);
			buf_free(&why);
			return EX_CONFIG;
		}
		buf_free(&why);
		priv(cfg)->src[i].kind = SRC_ENV;
		priv(cfg)->src[i].env = name;
		/* password from the environment overrides a file's password_file and vice versa. */
		if (k->type == T_SECRET) {
			int fi = key_index(k->section, "password_file");

			field_clear(cfg, &config_keys[fi]);
			priv(cfg)->src[fi].kind = SRC_DEFAULT;
		}
		if (k->type == T_SECRET_FILE) {
			int pi = key_index(k->section, "password");

			priv(cfg)->src[pi].kind = SRC_ENV;
			priv(cfg)->src[pi].env = name;
		}
	}
	return 0;
}

/*
 * domain_from_relay_env - juanluisbaptiste/postfix's $mydomain as the domain
 * default. That image sets mydomain (and myorigin = $mydomain) to DOMAIN, or,
 * when DOMAIN is unset, to the last two labels of SERVER_HOSTNAME (its run.sh
 * uses awk, not Postfix's "minus the first label": mail.eu.example.com gives
 * example.com). Taken only when neither the file nor RELAYSHIM_DOMAIN set the
 * domain and allowed_sender_domains is empty, and recorded as coming from the
 * environment so that --write-config keeps it for php-fpm and cron, whose
 * environment is cleared. DOMAIN alone is too common a name to trust: it
 * counts only next to SERVER_HOSTNAME. A dot-less SERVER_HOSTNAME (the image
 * would make "name.name" of it) is ignored.
 */
static int domain_from_relay_env(struct config *cfg, char **envp, struct error *err)
{
	int i = key_index("rewrite", "domain");
	const char *server = env_get(envp, "SERVER_HOSTNAME");
	const char *domain = env_get(envp, "DOMAIN");
	const char *name = "DOMAIN";
	const char *last2 = 0;
	struct buf why = BUF_INIT;

	if (cfg->domain || priv(cfg)->src[i].kind != SRC_DEFAULT ||
	    cfg->allowed_sender_domains.n > 0 || server == 0)
		return 0;
	if (domain == 0) {
		const char *end = server + strlen(server);
		int dots = 0;

		while (end > server && end[-1] == '.')
			end--; /* a trailing dot is not a label */
		for (const char *p = end; p > server; p--) {
			if (p[-1] == '.' && ++dots == 2) {
				last2 = p;
				break;
			}
		}
		if (dots == 0)
			return 0;
		if (last2 == 0)
			last2 = server;
		domain = last2;
		name = "SERVER_HOSTNAME";
	}
	{
		char *copy = util_strdup(domain);
		size_t n = strlen(copy);

		while (n > 0 && copy[n - 1] == '.')
			copy[--n] = 0;
		if (key_parse(cfg, &config_keys[i], copy, &why) != 0) {
			char where[80];

			snprintf(where, sizeof(where), "environment %s", name);
			bad_value(err, where, &config_keys[i], copy, &why);
			free(copy);
			buf_free(&why);
			return EX_CONFIG;
		}
		free(copy);
	}
	buf_free(&why);
	priv(cfg)->src[i].kind = SRC_ENV;
	priv(cfg)->src[i].env = name;
	return 0;
}

/* config_load - the file, then the environment */

/* one_line - escape control bytes an error may quote from the file or the environment */

static int one_line(struct error *err, int rc)
{
	struct buf clean = BUF_INIT;

	if (rc == 0)
		return rc;
	/* Idempotent: buf_put_sanitized leaves the \xNN of earlier escaping alone. */
	buf_put_sanitized(&clean, err->text, strlen(err->text));
	snprintf(err->text, sizeof(err->text), "%s", buf_cstr(&clean));
	buf_free(&clean);
	return rc;
}

int config_load(struct config *cfg, const char *path, int path_explicit, char **envp,
		struct error *err)
{
	int rc;

	if (path == 0) {
		path = env_get(envp, "RELAYSHIM_CONFIG");
		path_explicit = path != 0;
	}
	if (path == 0)
		path = CONFIG_DEFAULT_PATH;
	if ((rc = load_file(cfg, path, path_explicit, err)) != 0)
		return one_line(err, rc);
	if ((rc = load_env(cfg, envp, err)) != 0)
		return one_line(err, rc);
	return one_line(err, domain_from_relay_env(cfg, envp, err));
}

/* config_set - a value from the command line: parsed, source "command line" */

int config_set(struct config *cfg, const char *section, const char *key, const char *value,
	       struct error *err)
{
	int i = key_index(section, key);
	struct buf why = BUF_INIT;

	if (i < 0 || config_keys[i].key == 0)
		return error_set(err, EX_USAGE, "unknown configuration key [%s] %s", section, key);
	if (key_parse(cfg, &config_keys[i], value, &why) != 0) {
		bad_value(err, "command line", &config_keys[i], value, &why);
		buf_free(&why);
		return EX_CONFIG;
	}
	buf_free(&why);
	config_mark_cmdline(cfg, section, key);
	return 0;
}

/* config_mark_cmdline - record that main() set this key from the command line */

void config_mark_cmdline(struct config *cfg, const char *section, const char *key)
{
	int i = key_index(section, key);

	if (i < 0)
		util_panic("config_mark_cmdline: unknown key [%s] %s", section, key ? key : "");
	priv(cfg)->src[i].kind = SRC_CMDLINE;
}

/* config_path - the configuration file that was read, or NULL */

const char *config_path(const struct config *cfg)
{
	return priv(cfg)->path;
}

/* config_warning - what config_load() found worth a warning, or NULL */

const char *config_warning(const struct config *cfg)
{
	return priv(cfg)->warning;
}

/* ---------------------------------------------------------------- */
/* Finish: derived defaults and cross-key rules                     */
/* ---------------------------------------------------------------- */

static void mark_derived(struct config *cfg, const char *section, const char *key, const char *why)
{
	struct source *s = &priv(cfg)->src[key_index(section, key)];

	s->kind = SRC_DERIVED;
	s->derived = why;
}

/* config_finish - derive the defaults that depend on other keys, then validate */

int config_finish(struct config *cfg, struct error *err)
{
	const char *file = priv(cfg)->path ? priv(cfg)->path : CONFIG_DEFAULT_PATH;

	if (priv(cfg)->nport_derived != cfg->nrelays) {
		free(priv(cfg)->port_derived);
		priv(cfg)->port_derived = util_calloc(cfg->nrelays, 1);
		priv(cfg)->nport_derived = cfg->nrelays;
	}
	for (size_t i = 0; i < cfg->nrelays; i++) {
		if (cfg->relays[i].port == 0 && !cfg->relays[i].maildir) {
			cfg->relays[i].port = cfg->tls == TLS_IMPLICIT ? 465 : 25;
			priv(cfg)->port_derived[i] = 1;
		}
	}
	if (cfg->tls_verify < 0) {
		cfg->tls_verify = cfg->tls == TLS_STARTTLS || cfg->tls == TLS_IMPLICIT;
		mark_derived(cfg, "relay", "tls_verify", "per tls level");
	}
	if (cfg->domain == 0) {
		if (cfg->allowed_sender_domains.n > 0) {
			cfg->domain = util_strdup(cfg->allowed_sender_domains.v[0]);
			mark_derived(cfg, "rewrite", "domain", "first of allowed_sender_domains");
		} else {
			char host[256];

			if (gethostname(host, sizeof(host)) != 0 || host[0] == 0)
				snprintf(host, sizeof(host), "localhost");
			host[sizeof(host) - 1] = 0;
			cfg->domain = util_strdup(host);
			mark_derived(cfg, "rewrite", "domain", "host name");
		}
	}

	if (cfg->has_tls_fingerprint && cfg->tls == TLS_NONE)
		return error_set(err, EX_CONFIG,
				 "[relay] tls_fingerprint is set but tls = none (use tls = may, "
				 "starttls or tls)");
	if (cfg->tls_key_file && !cfg->tls_cert_file)
		return error_set(err, EX_CONFIG,
				 "[relay] tls_key_file is set without tls_cert_file (set both)");
	if (cfg->username && !cfg->password)
		return error_set(
		    err, EX_CONFIG,
		    "[relay] username is set but no password (set password, password_file or "
		    "RELAYSHIM_PASSWORD_FILE)");
	if (cfg->password && !cfg->username)
		return error_set(err, EX_CONFIG,
				 "[relay] a password is set but no username (set username or "
				 "RELAYSHIM_USERNAME)");
	if (cfg->nrelays == 0)
		return error_set(err, EX_CONFIG,
				 "no relay configured: set [relay] host in %s or RELAYSHIM_RELAY",
				 file);
	return 0;
}

/* ---------------------------------------------------------------- */
/* Writing                                                          */
/* ---------------------------------------------------------------- */

/* put_value - append v so that iniparser reads it back unchanged; -1 if impossible */

static int put_value(struct buf *out, const char *v)
{
	size_t n = strlen(v);
	int needs = strpbrk(v, ";#") ||
		    (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]))) ||
		    v[0] == '"' || v[0] == '\'' || (n && v[n - 1] == '\\');

	if (strpbrk(v, "\r\n") || n > 900)
		return -1;
	if (!needs) {
		buf_puts(out, v);
	} else if (!strchr(v, '"')) {
		buf_printf(out, "\"%s\"", v);
	} else if (!strchr(v, '\'')) {
		buf_printf(out, "'%s'", v);
	} else {
		return -1;
	}
	return 0;
}

/* format_duration - "500ms", "10s", "2h", "5d" */

static void format_duration(struct buf *out, unsigned long long ms)
{
	unsigned long long s = ms / 1000;

	if (ms % 1000)
		buf_printf(out, "%llums", ms);
	else if (s % 86400 == 0)
		buf_printf(out, "%llud", s / 86400);
	else if (s % 3600 == 0)
		buf_printf(out, "%lluh", s / 3600);
	else
		buf_printf(out, "%llus", s);
}

static const char *enum_name(const struct enum_value *e, int v)
{
	for (; e->name; e++)
		if (e->value == v)
			return e->name;
	return "?";
}

/* format_value - the key's value as configuration text; "" = unset */

static void format_value(struct buf *out, const struct config *cfg, const struct config_key *k,
			 int derived_empty)
{
	const void *f = field(cfg, k->offset);

	if (derived_empty && k->type != T_RELAYS)
		return;
	switch (k->type) {
	case T_STRING:
	case T_SECRET:
	case T_SECRET_FILE:
		if (*(char *const *)f)
			buf_puts(out, *(char *const *)f);
		break;
	case T_BOOL:
		buf_puts(out, *(const int *)f ? "yes" : "no");
		break;
	case T_TRIBOOL:
		if (*(const int *)f >= 0)
			buf_puts(out, *(const int *)f ? "yes" : "no");
		break;
	case T_DURATION_MS:
		format_duration(out, *(const unsigned *)f);
		break;
	case T_DURATION_S:
		format_duration(out, (unsigned long long)*(const unsigned long *)f * 1000);
		break;
	case T_SIZE:
		buf_printf(out, "%llu", *(const unsigned long long *)f);
		break;
	case T_ENUM:
		buf_puts(out, enum_name(k->enums, *(const int *)f));
		break;
	case T_TLSVER:
		buf_puts(out, *(const int *)f == 13 ? "1.3" : "1.2");
		break;
	case T_FINGERPRINT:
		for (size_t i = 0; cfg->has_tls_fingerprint && i < 32; i++)
			buf_printf(out, "%s%02X", i ? ":" : "", cfg->tls_fingerprint[i]);
		break;
	case T_LIST: {
		const struct strlist *l = f;

		for (size_t i = 0; i < l->n; i++)
			buf_printf(out, "%s%s", i ? " " : "", l->v[i]);
		break;
	}
	case T_RELAYS:
		for (size_t i = 0; i < cfg->nrelays; i++) {
			const struct relay_addr *r = &cfg->relays[i];
			int v6 = strchr(r->host, ':') != 0;
			int derived_port = derived_empty && i < priv(cfg)->nport_derived &&
					   priv(cfg)->port_derived[i];

			if (i)
				buf_puts(out, ", ");
			if (r->maildir) {
				buf_printf(out, "maildir:%s", r->host);
				continue;
			}
			buf_printf(out, v6 ? "[%s]" : "%s", r->host);
			if (r->port && !derived_port)
				buf_printf(out, ":%u", r->port);
		}
		break;
	case T_MAP:
		break;
	}
}

/* write_line - "key = value" (+ "  # source" for --config-check) */

static void write_line(struct buf *out, const struct config *cfg, int i, const char *key,
		       const char *value, int with_sources)
{
	size_t start = out->len;

	buf_printf(out, *value ? "%s = " : "%s =", key);
	if (put_value(out, value) != 0) {
		buf_truncate(out, start);
		buf_printf(out,
			   "# %s: cannot be written in INI syntax (line break, both quote kinds or "
			   "too long)",
			   key);
	}
	if (with_sources) {
		size_t col = out->len - start;

		do
			buf_putc(out, ' ');
		while (++col < 40 || out->data[out->len - 2] != ' ');
		buf_puts(out, "# ");
		source_text(out, cfg, i);
	}
	buf_putc(out, '\n');
}

/* redact_salt - "hash?salt=SECRET&split=1" as "hash?salt=(set)&split=1": the salt is an HMAC key */

static void redact_salt(struct buf *out, const char *v)
{
	const char *q = strchr(v, '?');

	if (q == 0) {
		buf_puts(out, v);
		return;
	}
	buf_append(out, v, (size_t)(q - v));
	for (const char *p = q; *p;) {
		size_t n = strcspn(p + 1, "&");

		buf_putc(out, *p);
		if (strncmp(p + 1, "salt=", 5) == 0)
			buf_puts(out, "salt=(set)");
		else
			buf_append(out, p + 1, n);
		p += 1 + n;
	}
}

/* config_write - --write-config (complete INI) or --config-check (redacted, with sources) */

void config_write(const struct config *cfg, struct buf *out, unsigned flags)
{
	int redact = (flags & CONFIG_WRITE_REDACT) != 0;
	int with_sources = (flags & CONFIG_WRITE_SOURCES) != 0;
	const char *section = "";

	if (!with_sources)
		buf_puts(
		    out,
		    "# relayshim configuration (sendmail --write-config); see relayshim.conf(5)\n");
	else if (priv(cfg)->path)
		buf_printf(out, "# configuration file: %s\n", priv(cfg)->path);
	else
		buf_puts(out,
			 "# configuration file: none read (" CONFIG_DEFAULT_PATH " is absent)\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		struct buf v = BUF_INIT;
		int derived_empty =
		    !with_sources && (priv(cfg)->src[i].kind == SRC_DERIVED || k->type == T_RELAYS);

		if (strcmp(section, k->section) != 0) {
			buf_printf(out, "%s[%s]\n", section[0] ? "\n" : "", k->section);
			section = k->section;
		}
		/* The snapshot documents itself: one line of help above each key. */
		if (!with_sources)
			buf_printf(out, "# %s\n", k->help);
		if (k->type == T_MAP) {
			const struct map_entry *m =
			    *(struct map_entry *const *)field(cfg, k->offset);
			size_t n = *(const size_t *)field(cfg, k->offset2);

			if (with_sources && n == 0) {
				buf_printf(out, "# (no entries)%*s# ", 26, "");
				source_text(out, cfg, (int)i);
				buf_putc(out, '\n');
			}
			for (size_t j = 0; j < n; j++) {
				buf_reset(&v);
				for (size_t e = 0; e < m[j].values.n; e++)
					buf_printf(&v, "%s%s", e ? ", " : "", m[j].values.v[e]);
				write_line(out, cfg, (int)i, m[j].key, buf_cstr(&v), with_sources);
			}
			buf_free(&v);
			continue;
		}
		if (k->type == T_SECRET) {
			/* With password_file, --write-config writes the file name, not the secret.
			 */
			if (redact)
				buf_puts(&v, *(char *const *)field(cfg, k->offset) ? "(set)"
										   : "(unset)");
			else if (!cfg->password_file)
				format_value(&v, cfg, k, 0);
		} else if (redact && k->offset == offsetof(struct config, log_anonymize) &&
			   cfg->log_anonymize) {
			redact_salt(&v, cfg->log_anonymize);
		} else {
			format_value(&v, cfg, k, derived_empty);
		}
		write_line(out, cfg, (int)i, k->key, buf_cstr(&v), with_sources);
		buf_free(&v);
	}
}

/* config_key_count - number of keys in the table (tests walk it) */

size_t config_key_count(void)
{
	return NKEYS;
}

/* config_key_info - section, key and environment names of key i */

void config_key_info(size_t i, const char **section, const char **key, const char *const **env)
{
	if (i >= NKEYS)
		util_panic("config_key_info: %zu out of range", i);
	*section = config_keys[i].section;
	*key = config_keys[i].key;
	*env = config_keys[i].env;
}
