#ifndef RELAYSHIM_CONFIG_H
#define RELAYSHIM_CONFIG_H

/*++
 * NAME
 *	config 3h
 * SUMMARY
 *	the effective configuration: defaults < file < environment < command line
 * SYNOPSIS
 *	#include "config.h"
 *
 *	void	config_init(struct config *cfg);
 *	int	config_load(struct config *cfg, const char *path, int path_explicit,
 *			char **envp, struct error *err);
 *	int	config_finish(struct config *cfg, struct error *err);
 *	void	config_write(const struct config *cfg, struct buf *out,
 *			unsigned flags);
 *	void	config_free(struct config *cfg);
 *
 *	int	config_set(struct config *cfg, const char *section, const char *key,
 *			const char *value, struct error *err);
 *	void	config_mark_cmdline(struct config *cfg, const char *section,
 *			const char *key);
 *	const char *config_path(const struct config *cfg);
 *	const char *config_warning(const struct config *cfg);
 *	size_t	config_key_count(void);
 *	void	config_key_info(size_t i, const char **section, const char **key,
 *			const char *const **env);
 * DESCRIPTION
 *	config_init() fills in the built-in defaults. config_load() reads
 *	the INI file at path (iniparser) and then overlays the environment
 *	envp (NULL-terminated "NAME=value" vector, normally environ).
 *	path may be NULL for the default /etc/relayshim.conf; a missing
 *	default file is fine, a missing explicit file (-C or RELAYSHIM_CONFIG,
 *	path_explicit non-zero) is an error. Command-line values are stored
 *	by main() directly into the struct after config_load().
 *	config_finish() validates cross-key rules (relay set, value and
 *	*_file both set, ...) and derives defaults that depend on other keys
 *	(port 465 with tls = tls, tls_verify per level, domain). It derives
 *	first and checks "no relay configured" last, so --config-check can
 *	call it, print the listing with derived values, then report its error.
 *	config_load() with path NULL uses RELAYSHIM_CONFIG from envp (then
 *	explicit) or CONFIG_DEFAULT_PATH.
 *
 *	config_write() prints the configuration as a complete INI file
 *	(--write-config, flags 0), or with CONFIG_WRITE_REDACT |
 *	CONFIG_WRITE_SOURCES (CONFIG_WRITE_CHECK) the
 *	--config-check listing (secrets shown as "(set)", every key with the
 *	source it came from: default, file, environment, command line).
 *	--write-config writes password_file rather than the secret when the
 *	password came from a file, and leaves derived values (domain,
 *	tls_verify) empty so that the snapshot derives them again.
 *
 *	config_set() parses value for [section] key as the file would and
 *	records the source "command line"; config_mark_cmdline() only
 *	records the source, for a field main() stored itself. config_path()
 *	is the file that was read (NULL if none). config_warning() is a
 *	warning config_load() found (a world-readable file holding a
 *	password), or NULL; the caller logs it, because config sits below
 *	log. config_key_count() and
 *	config_key_info() expose the key table (section, key, up to three
 *	environment names, NULL-terminated; key is NULL for the free-form
 *	[aliases] and [senders] sections) to tests and --help.
 *
 *	Semantics in one place (see config.c and relayshim.conf(5)): an
 *	empty value is the same as an unset key; the first environment name
 *	of a key that is set wins; RELAYHOST, SMTP_SERVER, SMTP_PORT,
 *	RELAYHOST_* and SMTP_USERNAME/SMTP_PASSWORD are never read.
 * DIAGNOSTICS
 *	config_load() and config_finish() return 0 or EX_CONFIG (78) with one
 *	line in err naming the key and the source, e.g.
 *	"/etc/relayshim.conf: [relay] tls: bad value \"maybe\" (use none, may, starttls or tls)".
 *--*/

#include "util.h"

struct buf;

#define CONFIG_DEFAULT_PATH "/etc/relayshim.conf"

enum tls_level { TLS_NONE, TLS_MAY, TLS_STARTTLS, TLS_IMPLICIT };
enum queue_mode { QUEUE_NEVER, QUEUE_FALLBACK, QUEUE_ALWAYS };
enum envelope_from_mode { ENVFROM_HEADER, ENVFROM_USER };
enum log_format { LOG_FORMAT_PLAIN, LOG_FORMAT_JSON };
enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR };
enum smtpd_auth { SMTPD_AUTH_OFF, SMTPD_AUTH_ACCEPT };

/* One relay from [relay] host: host name or address literal, port (0 = default). */
struct relay_addr {
	char *host;    /* "relay.example", "10.0.0.5", "2001:db8::1" (no brackets) */
	unsigned port; /* 0: 25, or 465 with tls = tls (filled by config_finish) */
	int maildir;   /* "maildir:/path": host is the path, no SMTP (capture.h) */
};

/* A [aliases] or [senders] entry: key -> one or more values. */
struct map_entry {
	char *key;
	struct strlist values;
};

struct config {
	/* [relay] */
	struct relay_addr *relays;
	size_t nrelays;
	enum tls_level tls;
	int tls_verify; /* -1 = per level (finish: 1 for starttls/tls, 0 else) */
	char *tls_ca_file;
	char *tls_cert_file;
	char *tls_key_file;
	unsigned char tls_fingerprint[32];
	int has_tls_fingerprint;
	int tls_min_version; /* 12 = TLS 1.2, 13 = TLS 1.3 */
	char *username;
	char *password;	       /* from password or password_file (trailing newline cut) */
	char *password_file;   /* kept: XOAUTH2 re-reads the token at every use */
	char *auth_mechanisms; /* NULL = all */
	int auth_insecure;
	char *helo; /* NULL = host name (resolved lazily by the SMTP client) */
	unsigned timeout_connect_ms;
	unsigned timeout_ms;

	/* [rewrite] */
	char *domain; /* NULL until finish: first allowed_sender_domain, else host name */
	struct strlist masquerade_domains; /* "!x" entries keep their "!" */
	char *from;			   /* OVERWRITE_FROM */
	enum envelope_from_mode envelope_from;
	char *header_tag;
	struct strlist redirect_to; /* staging: replaces every envelope recipient */
	int redirect_show_blind;    /* X-Original-To also lists blind recipients */
	char *always_bcc;	    /* one more envelope recipient, no header */
	int add_missing_headers;
	int received;

	/* [aliases], [senders] */
	struct map_entry *aliases;
	size_t naliases;
	struct map_entry *senders;
	size_t nsenders;

	/* [policy] */
	struct strlist allowed_sender_domains;
	int allow_empty_sender;	     /* boky/postfix: the list may be empty (no effect here) */
	int allow_null_sender;	     /* <> passes allowed_sender_domains */
	unsigned long long max_size; /* 0 = no limit */

	/* [queue] */
	enum queue_mode queue_mode;
	char *queue_dir;
	unsigned long queue_max_age_s;
	char *bounce_to; /* NULL, "sender" or an address */

	/* [log] */
	char *log_target; /* comma list */
	enum log_format log_format;
	char *log_anonymize; /* NULL = off */
	enum log_level log_level;

	/* [smtpd] and the shim */
	enum smtpd_auth smtpd_auth;
	char *intercept;     /* RELAYSHIM_INTERCEPT */
	char *sendmail_path; /* RELAYSHIM_SENDMAIL */

	/* runtime, set by main() from the command line */
	int verbose; /* -v: SMTP dialogue on stderr */

	void *priv; /* config.c's bookkeeping (sources for --config-check) */
};

void config_init(struct config *cfg);
int config_load(struct config *cfg, const char *path, int path_explicit, char **envp,
		struct error *err);
int config_finish(struct config *cfg, struct error *err);
/* config_write flags, or-ed */
enum config_write_flags {
	CONFIG_WRITE_REDACT = 1 << 0,  /* secrets shown as "(set)" */
	CONFIG_WRITE_SOURCES = 1 << 1, /* each key followed by where its value came from */
	CONFIG_WRITE_CHECK = CONFIG_WRITE_REDACT | CONFIG_WRITE_SOURCES, /* --config-check */
};

void config_write(const struct config *cfg, struct buf *out, unsigned flags);
void config_free(struct config *cfg);
int config_set(struct config *cfg, const char *section, const char *key, const char *value,
	       struct error *err);
void config_mark_cmdline(struct config *cfg, const char *section, const char *key);
const char *config_path(const struct config *cfg);
const char *config_warning(const struct config *cfg);
size_t config_key_count(void);
void config_key_info(size_t i, const char **section, const char **key, const char *const **env);

#endif
