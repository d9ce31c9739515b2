/* test_config - configuration: defaults, file, environment, secrets, precedence, write/check */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"

static struct config cfg;
static struct error err;
static struct buf out;
static char *tmp_paths[16];
static size_t ntmp;

static void setup(void)
{
	config_init(&cfg);
	memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
	config_free(&cfg);
	buf_free(&out);
	for (size_t i = 0; i < ntmp; i++) {
		unlink(tmp_paths[i]);
		free(tmp_paths[i]);
	}
	ntmp = 0;
}

/* temp_file - a file holding content; removed at teardown */

static const char *temp_file(const char *content)
{
	char path[] = "/tmp/test_config.XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	chmod(path, 0600);
	tmp_paths[ntmp] = strdup(path);
	return tmp_paths[ntmp++];
}

/* load - config_load from an INI text (NULL: no file) and an environment */

static int load(const char *ini, char **envp)
{
	if (ini == 0)
		return config_load(&cfg, "/nonexistent/relayshim.conf", 0, envp, &err);
	return config_load(&cfg, temp_file(ini), 1, envp, &err);
}

/* written - config_write output */

static const char *written(unsigned flags)
{
	buf_reset(&out);
	config_write(&cfg, &out, flags);
	return buf_cstr(&out);
}

/* line_of - the output line that starts with "key = ", without the newline */

static char *line_of(const char *text, const char *key)
{
	static char line[2048];
	size_t klen = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : 0) {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ' && p[klen + 1] == '=' &&
		    (p[klen + 2] == ' ' || p[klen + 2] == '\n' || p[klen + 2] == 0)) {
			size_t n = strcspn(p, "\n");

			snprintf(line, sizeof(line), "%.*s", (int)n, p);
			return line;
		}
	}
	return 0;
}

/* value_of - the value on key's line (without a trailing source comment) */

static const char *value_of(const char *text, const char *key)
{
	char *l = line_of(text, key), *hash;

	if (l == 0)
		return 0;
	l += strlen(key) + 2;
	if (*l == ' ')
		l++;
	if ((hash = strstr(l, "  # ")) != 0 || (l[0] == '#' && (hash = l) != 0))
		*hash = 0;
	for (size_t n = strlen(l); n && l[n - 1] == ' '; n--)
		l[n - 1] = 0;
	return l;
}

/* ---------------------------------------------------------------- */

START_TEST(defaults_are_those_of_the_spec)
{
	ck_assert_int_eq(load(0, 0), 0);
	ck_assert_uint_eq(cfg.nrelays, 0);
	ck_assert_int_eq(cfg.tls, TLS_MAY);
	ck_assert_int_eq(cfg.tls_verify, -1);
	ck_assert_int_eq(cfg.tls_min_version, 12);
	ck_assert_ptr_null(cfg.username);
	ck_assert_ptr_null(cfg.password);
	ck_assert_ptr_null(cfg.auth_mechanisms);
	ck_assert_int_eq(cfg.auth_insecure, 0);
	ck_assert_uint_eq(cfg.timeout_connect_ms, 10000);
	ck_assert_uint_eq(cfg.timeout_ms, 120000);
	ck_assert_ptr_null(cfg.domain);
	ck_assert_int_eq(cfg.envelope_from, ENVFROM_HEADER);
	ck_assert_int_eq(cfg.add_missing_headers, 1);
	ck_assert_int_eq(cfg.received, 1);
	ck_assert_int_eq(cfg.allow_empty_sender, 0);
	ck_assert_uint_eq(cfg.max_size, 0);
	ck_assert_int_eq(cfg.queue_mode, QUEUE_FALLBACK);
	ck_assert_str_eq(cfg.queue_dir, "/var/spool/relayshim");
	ck_assert_uint_eq(cfg.queue_max_age_s, 5 * 86400);
	ck_assert_ptr_null(cfg.bounce_to);
	ck_assert_str_eq(cfg.log_target, "stderr");
	ck_assert_int_eq(cfg.log_format, LOG_FORMAT_PLAIN);
	ck_assert_ptr_null(cfg.log_anonymize);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
	ck_assert_int_eq(cfg.smtpd_auth, SMTPD_AUTH_ACCEPT);
	ck_assert_str_eq(cfg.intercept, "127.0.0.1:25 [::1]:25");
	ck_assert_str_eq(cfg.sendmail_path, "/usr/sbin/sendmail");
}
END_TEST

/* One valid value per key: as written in the file, in the environment, and as config_write shows
 * it. */
static const struct sample {
	const char *section, *key;
	const char *file_text; /* right of "key = " */
	const char *env_text;
	const char *shown;
} samples[] = {
    {"relay", "host", "relay.example:587, [2001:db8::1]:25", "relay.example:587 [2001:db8::1]:25",
     "relay.example:587, [2001:db8::1]:25"},
    {"relay", "tls", "starttls", "starttls", "starttls"},
    {"relay", "tls_verify", "no", "false", "no"},
    {"relay", "tls_ca_file", "/etc/ssl/relay-ca.pem", "/etc/ssl/relay-ca.pem",
     "/etc/ssl/relay-ca.pem"},
    {"relay", "tls_cert_file", "/etc/ssl/client.pem", "/etc/ssl/client.pem", "/etc/ssl/client.pem"},
    {"relay", "tls_key_file", "/etc/ssl/client.key", "/etc/ssl/client.key", "/etc/ssl/client.key"},
    {"relay", "tls_fingerprint",
     "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:"
     "89",
     "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
     "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:"
     "89"},
    {"relay", "tls_min_version", "1.3", "TLSv1.3", "1.3"},
    {"relay", "username", "app@example.com", "app@example.com", "app@example.com"},
    {"relay", "password", "\"pa;ss#word\"", "pa;ss#word", "\"pa;ss#word\""},
    {"relay", "auth_mechanisms", "plain, login", "PLAIN LOGIN", "PLAIN LOGIN"},
    {"relay", "auth_insecure", "yes", "1", "yes"},
    {"relay", "helo", "app1.example.com", "app1.example.com", "app1.example.com"},
    {"relay", "timeout_connect", "2m", "120", "120s"},
    {"relay", "timeout", "500ms", "500ms", "500ms"},
    {"rewrite", "domain", "example.com", "example.com", "example.com"},
    {"rewrite", "masquerade_domains", "a.example.com, !b.example.com example.com",
     "a.example.com !b.example.com,example.com", "a.example.com !b.example.com example.com"},
    {"rewrite", "from", "'\"Ops Team\" <ops@example.com>'", "\"Ops Team\" <ops@example.com>",
     "'\"Ops Team\" <ops@example.com>'"},
    {"rewrite", "envelope_from", "user", "user", "user"},
    {"rewrite", "header_tag", "prod-eu-1", "prod-eu-1", "prod-eu-1"},
    {"rewrite", "redirect_to", "qa@example.com, dev", "qa@example.com dev", "qa@example.com dev"},
    {"rewrite", "redirect_show_blind", "yes", "1", "yes"},
    {"rewrite", "always_bcc", "archive@example.com", "archive@example.com", "archive@example.com"},
    {"rewrite", "add_missing_headers", "no", "no", "no"},
    {"rewrite", "received", "off", "0", "no"},
    {"policy", "allowed_sender_domains", "example.com, example.org", "example.com example.org",
     "example.com example.org"},
    {"policy", "allow_empty_sender", "yes", "true", "yes"},
    {"policy", "allow_null_sender", "yes", "true", "yes"},
    {"policy", "max_size", "10M", "10240000", 0},
    {"queue", "mode", "always", "never", 0},
    {"queue", "dir", "/data/spool", "/data/spool", "/data/spool"},
    {"queue", "max_age", "2d", "48h", "2d"},
    {"queue", "bounce_to", "sender", "sender", "sender"},
    {"log", "target", "stderr, /proc/1/fd/1", "syslog", 0},
    {"log", "format", "json", "json", "json"},
    {"log", "anonymize", "hash?salt=abc&split=yes", "smart", 0},
    {"log", "level", "debug", "warning", 0},
    {"smtpd", "auth", "off", "off", "off"},
    {"shim", "intercept", "127.0.0.1:2525", "127.0.0.1:2525", "127.0.0.1:2525"},
    {"shim", "sendmail", "/usr/local/sbin/sendmail", "/usr/local/sbin/sendmail",
     "/usr/local/sbin/sendmail"},
};

#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

START_TEST(every_key_of_the_table_has_a_sample_here)
{
	size_t n = 0;

	for (size_t i = 0; i < config_key_count(); i++) {
		const char *section, *key;
		const char *const *env;
		int found = 0;

		config_key_info(i, &section, &key, &env);
		if (key == 0 || strcmp(key, "password_file") == 0)
			continue; /* maps and password_file have their own tests */
		for (size_t j = 0; j < NSAMPLES; j++)
			found |= strcmp(samples[j].section, section) == 0 &&
				 strcmp(samples[j].key, key) == 0;
		ck_assert_msg(found, "no sample for [%s] %s", section, key);
		n++;
	}
	ck_assert_uint_eq(n, NSAMPLES);
}
END_TEST

START_TEST(every_key_is_read_from_the_file)
{
	const struct sample *s = &samples[_i];
	char ini[512];
	char want_src[256];
	const char *shown = s->shown;
	const char *text;

	snprintf(ini, sizeof(ini), "[%s]\n%s = %s\n", s->section, s->key, s->file_text);
	ck_assert_msg(load(ini, 0) == 0, "[%s] %s: %s", s->section, s->key, err.text);
	text = written(0);
	if (shown == 0) {
		/* values whose written form differs from both inputs */
		ck_assert_ptr_nonnull(value_of(text, s->key));
	} else {
		ck_assert_msg(value_of(text, s->key) && strcmp(value_of(text, s->key), shown) == 0,
			      "[%s] %s: got \"%s\", want \"%s\"", s->section, s->key,
			      value_of(text, s->key), shown);
	}
	snprintf(want_src, sizeof(want_src), "# file %s", config_path(&cfg));
	text = written(CONFIG_WRITE_CHECK);
	ck_assert_msg(strstr(line_of(text, s->key), want_src), "[%s] %s: source line \"%s\"",
		      s->section, s->key, line_of(text, s->key));
}
END_TEST

START_TEST(every_environment_name_of_every_key_is_read)
{
	size_t checked = 0;

	for (size_t i = 0; i < config_key_count(); i++) {
		const char *section, *key;
		const char *const *env;
		const struct sample *s = 0;

		config_key_info(i, &section, &key, &env);
		if (key == 0 || strcmp(key, "password_file") == 0)
			continue;
		for (size_t j = 0; j < NSAMPLES; j++)
			if (strcmp(samples[j].section, section) == 0 &&
			    strcmp(samples[j].key, key) == 0)
				s = &samples[j];
		for (int e = 0; e < 3 && env[e]; e++) {
			char var[600], want[128];
			char *envp[] = {var, 0};
			const char *v = strcmp(env[e], "DEBUG") == 0 ? "yes" : s->env_text;

			snprintf(var, sizeof(var), "%s=%s", env[e], v);
			config_free(&cfg);
			config_init(&cfg);
			ck_assert_msg(load(0, envp) == 0, "%s: %s", env[e], err.text);
			snprintf(want, sizeof(want), "# environment %s", env[e]);
			ck_assert_msg(strstr(line_of(written(CONFIG_WRITE_CHECK), key), want),
				      "%s: line \"%s\"", env[e],
				      line_of(written(CONFIG_WRITE_CHECK), key));
			checked++;
		}
	}
	ck_assert_uint_ge(checked, NSAMPLES + 2);
}
END_TEST

START_TEST(a_maildir_relay_is_an_absolute_path_and_round_trips)
{
	const char *text;

	ck_assert_int_eq(load("[relay]\nhost = maildir:/var/mail/capture, relay.example\n", 0), 0);
	ck_assert_uint_eq(cfg.nrelays, 2);
	ck_assert_int_eq(cfg.relays[0].maildir, 1);
	ck_assert_str_eq(cfg.relays[0].host, "/var/mail/capture");
	ck_assert_uint_eq(cfg.relays[0].port, 0);
	ck_assert_int_eq(cfg.relays[1].maildir, 0);
	text = written(0);
	ck_assert_str_eq(value_of(text, "host"), "maildir:/var/mail/capture, relay.example");
	config_free(&cfg);
	config_init(&cfg);
	ck_assert_int_eq(load("[relay]\nhost = maildir:capture\n", 0), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "maildir:/absolute/path"));
}
END_TEST

START_TEST(typed_values_are_parsed)
{
	ck_assert_int_eq(load("[policy]\nmax_size = 10M\n[queue]\nmode = always\nmax_age = 90m\n"
			      "[log]\nlevel = debug\ntarget = stderr, /tmp/x.log\nformat = json\n",
			      0),
			 0);
	ck_assert_uint_eq(cfg.max_size, 10ULL * 1024 * 1024);
	ck_assert_int_eq(cfg.queue_mode, QUEUE_ALWAYS);
	ck_assert_uint_eq(cfg.queue_max_age_s, 5400);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
	ck_assert_str_eq(cfg.log_target, "stderr,/tmp/x.log");
	ck_assert_int_eq(cfg.log_format, LOG_FORMAT_JSON);
}
END_TEST

START_TEST(durations_accept_units_and_bare_seconds)
{
	char *envp[] = {"RELAYSHIM_TIMEOUT=45", "RELAYSHIM_TIMEOUT_CONNECT=1500ms", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_uint_eq(cfg.timeout_ms, 45000);
	ck_assert_uint_eq(cfg.timeout_connect_ms, 1500);
}
END_TEST

START_TEST(relay_list_accepts_ports_ipv6_and_separators)
{
	ck_assert_int_eq(
	    load("[relay]\nhost = a.example, b.example:587 [2001:db8::1]:2525,[::1] 10.0.0.5:25\n",
		 0),
	    0);
	ck_assert_uint_eq(cfg.nrelays, 5);
	ck_assert_str_eq(cfg.relays[0].host, "a.example");
	ck_assert_uint_eq(cfg.relays[0].port, 0);
	ck_assert_str_eq(cfg.relays[1].host, "b.example");
	ck_assert_uint_eq(cfg.relays[1].port, 587);
	ck_assert_str_eq(cfg.relays[2].host, "2001:db8::1");
	ck_assert_uint_eq(cfg.relays[2].port, 2525);
	ck_assert_str_eq(cfg.relays[3].host, "::1");
	ck_assert_uint_eq(cfg.relays[3].port, 0);
	ck_assert_str_eq(cfg.relays[4].host, "10.0.0.5");
}
END_TEST

START_TEST(fingerprint_is_32_bytes)
{
	char *envp[] = {"RELAYSHIM_TLS_FINGERPRINT="
			"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF",
			0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_int_eq(cfg.has_tls_fingerprint, 1);
	ck_assert_uint_eq(cfg.tls_fingerprint[0], 0x00);
	ck_assert_uint_eq(cfg.tls_fingerprint[1], 0x11);
	ck_assert_uint_eq(cfg.tls_fingerprint[31], 0xff);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Precedence                                                       */

START_TEST(file_overrides_default_and_environment_overrides_file)
{
	char *envp[] = {"RELAYSHIM_TLS=tls", 0};

	ck_assert_int_eq(load("[relay]\ntls = none\nhelo = file.example\n", envp), 0);
	ck_assert_int_eq(cfg.tls, TLS_IMPLICIT);
	ck_assert_str_eq(cfg.helo, "file.example");
	ck_assert_ptr_nonnull(
	    strstr(line_of(written(CONFIG_WRITE_CHECK), "tls"), "# environment RELAYSHIM_TLS"));
	ck_assert_ptr_nonnull(strstr(line_of(written(CONFIG_WRITE_CHECK), "helo"), "# file "));
	ck_assert_ptr_nonnull(strstr(line_of(written(CONFIG_WRITE_CHECK), "timeout"), "# default"));
}
END_TEST

START_TEST(command_line_overrides_environment)
{
	char *envp[] = {"RELAYSHIM_TLS=tls", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_int_eq(config_set(&cfg, "relay", "tls", "none", &err), 0);
	ck_assert_int_eq(cfg.tls, TLS_NONE);
	ck_assert_ptr_nonnull(
	    strstr(line_of(written(CONFIG_WRITE_CHECK), "tls"), "# command line"));
}
END_TEST

START_TEST(command_line_bad_value_is_a_config_error)
{
	ck_assert_int_eq(config_set(&cfg, "relay", "tls", "maybe", &err), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "command line: [relay] tls"));
}
END_TEST

START_TEST(first_environment_name_wins)
{
	char *envp[] = {"POSTFIX_message_size_limit=2000", "MESSAGE_SIZE_LIMIT=1000", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_uint_eq(cfg.max_size, 1000);
}
END_TEST

START_TEST(second_environment_name_is_read_alone)
{
	char *envp[] = {"POSTFIX_message_size_limit=2000", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_uint_eq(cfg.max_size, 2000);
}
END_TEST

START_TEST(empty_environment_value_is_unset)
{
	char *envp[] = {"RELAYSHIM_TLS=", "ALLOWED_SENDER_DOMAINS=", 0};

	ck_assert_int_eq(load("[relay]\ntls = starttls\n", envp), 0);
	ck_assert_int_eq(cfg.tls, TLS_STARTTLS);
	ck_assert_uint_eq(cfg.allowed_sender_domains.n, 0);
}
END_TEST

START_TEST(empty_file_value_is_unset)
{
	ck_assert_int_eq(load("[relay]\ntls =\nhelo = \"\"\n", 0), 0);
	ck_assert_int_eq(cfg.tls, TLS_MAY);
	ck_assert_ptr_null(cfg.helo);
}
END_TEST

START_TEST(debug_yes_means_level_debug)
{
	char *envp[] = {"DEBUG=yes", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
}
END_TEST

START_TEST(debug_with_an_application_value_is_ignored)
{
	char *envp[] = {"DEBUG=express:*", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
}
END_TEST

START_TEST(relayshim_log_level_beats_debug)
{
	char *envp[] = {"DEBUG=1", "RELAYSHIM_LOG_LEVEL=error", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_ERROR);
}
END_TEST

START_TEST(allow_empty_sender_domains_any_value_is_true)
{
	char *envp[] = {"ALLOW_EMPTY_SENDER_DOMAINS=please", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_int_eq(cfg.allow_empty_sender, 1);
}
END_TEST

START_TEST(allow_empty_sender_domains_no_is_false)
{
	char *envp[] = {"ALLOW_EMPTY_SENDER_DOMAINS=no", 0};

	ck_assert_int_eq(load("[policy]\nallow_empty_sender = yes\n", envp), 0);
	ck_assert_int_eq(cfg.allow_empty_sender, 0);
}
END_TEST

START_TEST(upstream_variables_of_the_relay_images_are_never_read)
{
	const char *pw = temp_file("upstream-secret\n");
	char pwfile[256];
	char *envp[] = {"RELAYHOST=[smtp.gmail.com]:587",
			"SMTP_SERVER=smtp.gmail.com",
			"SMTP_PORT=587",
			"RELAYHOST_USERNAME=me@gmail.com",
			"RELAYHOST_PASSWORD=upstream",
			"SMTP_USERNAME=me",
			"SMTP_PASSWORD=upstream",
			pwfile,
			"RELAYHOST_TLS_LEVEL=encrypt",
			"SASL_RELAYHOST=x",
			"XOAUTH2_CLIENT_ID=id",
			"XOAUTH2_SECRET=s",
			0};

	snprintf(pwfile, sizeof(pwfile), "SMTP_PASSWORD_FILE=%s", pw);
	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_uint_eq(cfg.nrelays, 0);
	ck_assert_ptr_null(cfg.username);
	ck_assert_ptr_null(cfg.password);
	ck_assert_int_eq(cfg.tls, TLS_MAY);
	ck_assert_int_eq(config_finish(&cfg, &err), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "no relay configured"));
	ck_assert_ptr_null(strstr(written(0), "upstream"));
	ck_assert_ptr_null(strstr(written(0), "gmail"));
}
END_TEST

/* ---------------------------------------------------------------- */
/* Errors                                                           */

static const struct bad {
	const char *section, *key, *env, *value, *expect;
} bads[] = {
    {"relay", "tls", "RELAYSHIM_TLS", "maybe", "use none, may, starttls or tls"},
    {"relay", "tls_verify", "RELAYSHIM_TLS_VERIFY", "perhaps", "use yes or no"},
    {"relay", "timeout", "RELAYSHIM_TIMEOUT", "10x", "duration"},
    {"relay", "timeout", "RELAYSHIM_TIMEOUT", "0", "duration"},
    {"relay", "timeout_connect", "RELAYSHIM_TIMEOUT_CONNECT", "-5", "duration"},
    {"relay", "host", "RELAYSHIM_RELAY", "relay:0", "port 1-65535"},
    {"relay", "host", "RELAYSHIM_RELAY", "relay:smtp", "port 1-65535"},
    {"relay", "host", "RELAYSHIM_RELAY", "[::1", "[ipv6]:port"},
    {"relay", "host", "RELAYSHIM_RELAY", "user@relay", "host:port"},
    {"relay", "tls_fingerprint", "RELAYSHIM_TLS_FINGERPRINT", "abcd", "64 hex digits"},
    {"relay", "tls_min_version", "RELAYSHIM_TLS_MIN_VERSION", "1.1", "use 1.2 or 1.3"},
    {"relay", "auth_mechanisms", "RELAYSHIM_AUTH_MECHANISMS", "PLAIN/LOGIN", "SASL mechanism"},
    {"relay", "helo", "RELAYSHIM_HELO", "bad/helo", "host name"},
    {"rewrite", "envelope_from", "RELAYSHIM_ENVELOPE_FROM", "sender", "use header or user"},
    {"rewrite", "add_missing_headers", "ALWAYS_ADD_MISSING_HEADERS", "sometimes", "use yes or no"},
    {"rewrite", "domain", "RELAYSHIM_DOMAIN", "exa mple.com", "domain names"},
    {"rewrite", "masquerade_domains", "MASQUERADED_DOMAINS", "example..com", "domain names"},
    {"policy", "allowed_sender_domains", "ALLOWED_SENDER_DOMAINS", "@example.com", "domain names"},
    {"policy", "max_size", "MESSAGE_SIZE_LIMIT", "10T", "size in bytes"},
    {"queue", "mode", "RELAYSHIM_QUEUE", "sometimes", "use never, fallback or always"},
    {"queue", "dir", "RELAYSHIM_QUEUE_DIR", "spool", "absolute path"},
    {"queue", "max_age", "RELAYSHIM_QUEUE_MAX_AGE", "forever", "duration"},
    {"queue", "bounce_to", "RELAYSHIM_BOUNCE_TO", "a b", "sender or an address"},
    {"log", "target", "RELAYSHIM_LOG", "relative.log", "absolute file path"},
    {"log", "target", "RELAYSHIM_LOG", "none,stderr", "none cannot be combined"},
    {"log", "format", "LOG_FORMAT", "xml", "use plain or json"},
    {"log", "anonymize", "ANONYMIZE_EMAILS", "bogus", "use smart, paranoid"},
    {"log", "anonymize", "ANONYMIZE_EMAILS", "hash", "salt"},
    {"log", "anonymize", "ANONYMIZE_EMAILS", "hash?salt=x&split=maybe", "split: use yes or no"},
    {"log", "anonymize", "ANONYMIZE_EMAILS", "smart?colour=red", "unknown option"},
    {"log", "level", "RELAYSHIM_LOG_LEVEL", "loud", "use debug, info, warning or error"},
    {"smtpd", "auth", "RELAYSHIM_SMTPD_AUTH", "maybe", "use off or accept"},
    {"shim", "sendmail", "RELAYSHIM_SENDMAIL", "sendmail", "absolute path"},
};

START_TEST(bad_file_value_is_config_error_naming_file_section_key_and_values)
{
	const struct bad *b = &bads[_i];
	char ini[256], want[128];

	snprintf(ini, sizeof(ini), "[%s]\n%s = %s\n", b->section, b->key, b->value);
	ck_assert_int_eq(load(ini, 0), EX_CONFIG);
	snprintf(want, sizeof(want), "%s: [%s] %s: bad value \"", tmp_paths[0], b->section, b->key);
	ck_assert_msg(strncmp(err.text, want, strlen(want)) == 0, "got: %s", err.text);
	ck_assert_msg(strstr(err.text, b->expect), "got: %s", err.text);
	ck_assert_ptr_null(strchr(err.text, '\n'));
}
END_TEST

START_TEST(bad_environment_value_is_config_error_naming_the_variable)
{
	const struct bad *b = &bads[_i];
	char var[256], want[128];
	char *envp[] = {var, 0};

	snprintf(var, sizeof(var), "%s=%s", b->env, b->value);
	ck_assert_int_eq(load(0, envp), EX_CONFIG);
	snprintf(want, sizeof(want), "environment %s: [%s] %s: bad value", b->env, b->section,
		 b->key);
	ck_assert_msg(strncmp(err.text, want, strlen(want)) == 0, "got: %s", err.text);
	ck_assert_msg(strstr(err.text, b->expect), "got: %s", err.text);
}
END_TEST

START_TEST(smtp_header_tag_is_the_relays_and_not_read)
{
	/* juanluisbaptiste/postfix tags the message itself from SMTP_HEADER_TAG:
	 * read here too, a shared env file would give three RelayTag lines. */
	char *envp[] = {"SMTP_HEADER_TAG=app1", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_ptr_null(cfg.header_tag);
}
END_TEST

START_TEST(domain_defaults_to_the_mydomain_of_server_hostname)
{
	/* juanluisbaptiste/postfix run.sh: DOMAIN, else the last two labels. */
	char *a[] = {"SERVER_HOSTNAME=mail.eu.example.com", 0};
	char *b[] = {"SERVER_HOSTNAME=mail.example.com", "DOMAIN=example.org", 0};
	char *c[] = {"SERVER_HOSTNAME=mail.example.com", "ALLOWED_SENDER_DOMAINS=example.net", 0};
	char *d[] = {"SERVER_HOSTNAME=mail.example.com", "RELAYSHIM_DOMAIN=example.net", 0};
	char *e[] = {"DOMAIN=example.org", 0};

	ck_assert_int_eq(load(0, a), 0);
	ck_assert_str_eq(cfg.domain, "example.com");
	ck_assert_ptr_nonnull(strstr(line_of(written(CONFIG_WRITE_CHECK), "domain"),
				     "# environment SERVER_HOSTNAME"));
	/* --write-config keeps it: cron and php-fpm run without that environment. */
	ck_assert_ptr_nonnull(strstr(written(0), "domain = example.com"));
	config_free(&cfg);
	config_init(&cfg);
	ck_assert_int_eq(load(0, b), 0);
	ck_assert_str_eq(cfg.domain, "example.org");
	config_free(&cfg);
	config_init(&cfg);
	ck_assert_int_eq(load(0, c), 0);
	ck_assert_ptr_null(cfg.domain); /* config_finish: first of allowed_sender_domains */
	config_free(&cfg);
	config_init(&cfg);
	ck_assert_int_eq(load(0, d), 0);
	ck_assert_str_eq(cfg.domain, "example.net");
	config_free(&cfg);
	config_init(&cfg);
	ck_assert_int_eq(load(0, e), 0);
	ck_assert_ptr_null(cfg.domain); /* DOMAIN alone is too common a name */
	config_free(&cfg);
	config_init(&cfg);
	ck_assert_int_eq(load("[rewrite]\ndomain = file.example\n", a), 0);
	ck_assert_str_eq(cfg.domain, "file.example");
}
END_TEST

START_TEST(header_injection_in_header_tag_is_refused)
{
	char *envp[] = {"RELAYSHIM_HEADER_TAG=x\r\nBcc: victim@example.com", 0};

	ck_assert_int_eq(load(0, envp), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "RELAYSHIM_HEADER_TAG"));
	ck_assert_ptr_nonnull(strstr(err.text, "\\x0d\\x0a"));
}
END_TEST

START_TEST(line_break_in_overwrite_from_is_refused)
{
	char *envp[] = {"OVERWRITE_FROM=a@example.com\nBcc: x@example.com", 0};

	ck_assert_int_eq(load(0, envp), EX_CONFIG);
}
END_TEST

START_TEST(unknown_key_is_config_error_listing_known_keys)
{
	ck_assert_int_eq(load("[relay]\nhots = relay.example\n", 0), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "[relay] hots: unknown key"));
	ck_assert_ptr_nonnull(strstr(err.text, "host, tls"));
	ck_assert_ptr_nonnull(strstr(err.text, tmp_paths[0]));
}
END_TEST

START_TEST(unknown_section_is_config_error)
{
	ck_assert_int_eq(load("[relais]\nhost = relay.example\n", 0), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "[relais]: unknown section"));
}
END_TEST

START_TEST(key_outside_a_section_is_config_error)
{
	ck_assert_int_eq(load("host = relay.example\n", 0), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "outside a section"));
}
END_TEST

START_TEST(syntax_error_is_one_line_naming_the_file)
{
	ck_assert_int_eq(load("[relay]\nthis line has no equals sign\n", 0), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, tmp_paths[0]));
	ck_assert_ptr_nonnull(strstr(err.text, "syntax error"));
	ck_assert_ptr_null(strchr(err.text, '\n'));
}
END_TEST

START_TEST(missing_explicit_file_is_config_error)
{
	ck_assert_int_eq(config_load(&cfg, "/nonexistent/relayshim.conf", 1, 0, &err), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "/nonexistent/relayshim.conf"));
}
END_TEST

START_TEST(missing_default_file_is_fine)
{
	ck_assert_int_eq(config_load(&cfg, "/nonexistent/relayshim.conf", 0, 0, &err), 0);
	ck_assert_ptr_null(config_path(&cfg));
}
END_TEST

START_TEST(relayshim_config_names_the_file)
{
	char var[256];
	char *envp[] = {var, 0};
	const char *path = temp_file("[relay]\nhost = from-env-file.example\n");

	snprintf(var, sizeof(var), "RELAYSHIM_CONFIG=%s", path);
	ck_assert_int_eq(config_load(&cfg, 0, 0, envp, &err), 0);
	ck_assert_str_eq(cfg.relays[0].host, "from-env-file.example");
}
END_TEST

START_TEST(missing_relayshim_config_file_is_config_error)
{
	char *envp[] = {"RELAYSHIM_CONFIG=/nonexistent/x.conf", 0};

	ck_assert_int_eq(config_load(&cfg, 0, 0, envp, &err), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "/nonexistent/x.conf"));
}
END_TEST

/* ---------------------------------------------------------------- */
/* Secrets                                                          */

START_TEST(password_file_loses_one_trailing_newline)
{
	char var[256];
	char *envp[] = {var, 0};

	snprintf(var, sizeof(var), "RELAYSHIM_PASSWORD_FILE=%s", temp_file("s3cret\n\n"));
	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_str_eq(cfg.password, "s3cret\n");
	ck_assert_str_eq(cfg.password_file, tmp_paths[0]);
}
END_TEST

START_TEST(password_file_without_newline_is_read_whole)
{
	char var[256];
	char *envp[] = {var, 0};

	snprintf(var, sizeof(var), "RELAYSHIM_PASSWORD_FILE=%s", temp_file("s3cret"));
	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_str_eq(cfg.password, "s3cret");
}
END_TEST

START_TEST(password_file_with_crlf_loses_it)
{
	char var[256];
	char *envp[] = {var, 0};

	snprintf(var, sizeof(var), "RELAYSHIM_PASSWORD_FILE=%s", temp_file("s3cret\r\n"));
	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_str_eq(cfg.password, "s3cret");
}
END_TEST

START_TEST(password_file_key_in_the_file_is_read)
{
	char ini[256];

	snprintf(ini, sizeof(ini), "[relay]\nusername = app\npassword_file = %s\n",
		 temp_file("tok\n"));
	ck_assert_int_eq(load(ini, 0), 0);
	ck_assert_str_eq(cfg.password, "tok");
	ck_assert_str_eq(cfg.password_file, tmp_paths[0]);
}
END_TEST

START_TEST(password_and_password_file_in_environment_is_config_error)
{
	char var[256];
	char *envp[] = {"RELAYSHIM_PASSWORD=x", var, 0};

	snprintf(var, sizeof(var), "RELAYSHIM_PASSWORD_FILE=%s", temp_file("y\n"));
	ck_assert_int_eq(load(0, envp), EX_CONFIG);
	ck_assert_ptr_nonnull(
	    strstr(err.text, "RELAYSHIM_PASSWORD and RELAYSHIM_PASSWORD_FILE are both set"));
}
END_TEST

START_TEST(password_and_password_file_in_file_is_config_error)
{
	char ini[256];
	const char *secret = temp_file("y\n");

	snprintf(ini, sizeof(ini), "[relay]\npassword = x\npassword_file = %s\n", secret);
	ck_assert_int_eq(load(ini, 0), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "password and password_file are both set"));
}
END_TEST

START_TEST(environment_password_replaces_file_password_file)
{
	char ini[256];
	char *envp[] = {"RELAYSHIM_PASSWORD=fromenv", 0};

	snprintf(ini, sizeof(ini), "[relay]\npassword_file = %s\n", temp_file("fromfile\n"));
	ck_assert_int_eq(load(ini, envp), 0);
	ck_assert_str_eq(cfg.password, "fromenv");
	ck_assert_ptr_null(cfg.password_file);
}
END_TEST

START_TEST(environment_password_file_replaces_file_password)
{
	char var[256];
	char *envp[] = {var, 0};

	snprintf(var, sizeof(var), "RELAYSHIM_PASSWORD_FILE=%s", temp_file("fromsecret\n"));
	ck_assert_int_eq(load("[relay]\npassword = fromfile\n", envp), 0);
	ck_assert_str_eq(cfg.password, "fromsecret");
}
END_TEST

START_TEST(missing_password_file_is_config_error_naming_it)
{
	char *envp[] = {"RELAYSHIM_PASSWORD_FILE=/run/secrets/nope", 0};

	ck_assert_int_eq(load(0, envp), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "RELAYSHIM_PASSWORD_FILE"));
	ck_assert_ptr_nonnull(strstr(err.text, "/run/secrets/nope"));
}
END_TEST

START_TEST(empty_password_file_is_config_error)
{
	char var[256];
	char *envp[] = {var, 0};

	snprintf(var, sizeof(var), "RELAYSHIM_PASSWORD_FILE=%s", temp_file("\n"));
	ck_assert_int_eq(load(0, envp), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "is empty"));
}
END_TEST

START_TEST(bad_password_value_is_not_repeated_in_the_error)
{
	char *envp[] = {"RELAYSHIM_PASSWORD=hunter2\nmore", 0};

	ck_assert_int_eq(load(0, envp), EX_CONFIG);
	ck_assert_ptr_null(strstr(err.text, "hunter2"));
}
END_TEST

START_TEST(world_readable_file_with_password_warns)
{
	const char *path = temp_file("[relay]\nusername = u\npassword = hunter2\n");
	const char *w;

	chmod(path, 0644);
	ck_assert_int_eq(config_load(&cfg, path, 1, 0, &err), 0);
	w = config_warning(&cfg);
	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_nonnull(strstr(w, "holds a password and is readable by every user"));
	ck_assert_ptr_null(strstr(w, "hunter2"));
}
END_TEST

START_TEST(private_file_with_password_does_not_warn)
{
	const char *path = temp_file("[relay]\nusername = u\npassword = hunter2\n");

	ck_assert_int_eq(config_load(&cfg, path, 1, 0, &err), 0);
	ck_assert_ptr_null(config_warning(&cfg));
}
END_TEST

/* ---------------------------------------------------------------- */
/* [aliases] and [senders]                                          */

START_TEST(aliases_from_file_with_fan_out_and_catch_all)
{
	ck_assert_int_eq(
	    load("[aliases]\nroot = ops@example.com\nDev = a@example.com, b@example.com\n"
		 "* = catchall@example.com\n",
		 0),
	    0);
	ck_assert_uint_eq(cfg.naliases, 3);
	for (size_t i = 0; i < cfg.naliases; i++) {
		if (strcmp(cfg.aliases[i].key, "root") == 0) {
			ck_assert_uint_eq(cfg.aliases[i].values.n, 1);
			ck_assert_str_eq(cfg.aliases[i].values.v[0], "ops@example.com");
		} else if (strcmp(cfg.aliases[i].key, "dev") == 0) {
			ck_assert_uint_eq(cfg.aliases[i].values.n, 2);
			ck_assert_str_eq(cfg.aliases[i].values.v[1], "b@example.com");
		} else {
			ck_assert_str_eq(cfg.aliases[i].key, "*");
		}
	}
}
END_TEST

START_TEST(aliases_from_environment_split_by_semicolon_and_space)
{
	char *envp[] = {"RELAYSHIM_ALIASES=root=ops@example.com;dev=a@example.com,b@example.com "
			"www-data=web@example.com",
			0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_uint_eq(cfg.naliases, 3);
	ck_assert_str_eq(cfg.aliases[0].key, "root");
	ck_assert_str_eq(cfg.aliases[1].key, "dev");
	ck_assert_uint_eq(cfg.aliases[1].values.n, 2);
	ck_assert_str_eq(cfg.aliases[2].key, "www-data");
}
END_TEST

START_TEST(aliases_from_environment_space_after_comma_continues_the_entry)
{
	char *envp[] = {"RELAYSHIM_ALIASES=dev=a@example.com, b@example.com", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_uint_eq(cfg.naliases, 1);
	ck_assert_uint_eq(cfg.aliases[0].values.n, 2);
	ck_assert_str_eq(cfg.aliases[0].values.v[1], "b@example.com");
}
END_TEST

START_TEST(aliases_from_environment_replace_the_file_section)
{
	char *envp[] = {"RELAYSHIM_ALIASES=root=env@example.com", 0};

	ck_assert_int_eq(load("[aliases]\nroot = file@example.com\nadmin = a@example.com\n", envp),
			 0);
	ck_assert_uint_eq(cfg.naliases, 1);
	ck_assert_str_eq(cfg.aliases[0].values.v[0], "env@example.com");
}
END_TEST

START_TEST(alias_entry_without_equals_sign_is_config_error)
{
	char *envp[] = {"RELAYSHIM_ALIASES=ops@example.com", 0};

	ck_assert_int_eq(load(0, envp), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "RELAYSHIM_ALIASES"));
}
END_TEST

START_TEST(senders_from_file_and_environment)
{
	char *envp[] = {"RELAYSHIM_SENDERS=www-data=noreply@example.com;root=cron@example.com", 0};

	ck_assert_int_eq(load("[senders]\nwww-data = web@example.com\n", 0), 0);
	ck_assert_uint_eq(cfg.nsenders, 1);
	ck_assert_str_eq(cfg.senders[0].values.v[0], "web@example.com");
	config_free(&cfg);
	config_init(&cfg);
	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_uint_eq(cfg.nsenders, 2);
	ck_assert_str_eq(cfg.senders[1].key, "root");
	ck_assert_str_eq(cfg.senders[1].values.v[0], "cron@example.com");
}
END_TEST

START_TEST(sender_with_two_addresses_is_config_error)
{
	ck_assert_int_eq(load("[senders]\nroot = a@example.com, b@example.com\n", 0), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "[senders] root"));
	ck_assert_ptr_nonnull(strstr(err.text, "exactly one address"));
}
END_TEST

/* ---------------------------------------------------------------- */
/* config_finish                                                    */

START_TEST(finish_fills_port_25_by_default)
{
	ck_assert_int_eq(load("[relay]\nhost = relay.example, other.example:2525\n", 0), 0);
	ck_assert_int_eq(config_finish(&cfg, &err), 0);
	ck_assert_uint_eq(cfg.relays[0].port, 25);
	ck_assert_uint_eq(cfg.relays[1].port, 2525);
	ck_assert_int_eq(cfg.tls_verify, 0);
}
END_TEST

START_TEST(finish_fills_port_465_and_verification_with_implicit_tls)
{
	ck_assert_int_eq(load("[relay]\nhost = relay.example\ntls = tls\n", 0), 0);
	ck_assert_int_eq(config_finish(&cfg, &err), 0);
	ck_assert_uint_eq(cfg.relays[0].port, 465);
	ck_assert_int_eq(cfg.tls_verify, 1);
}
END_TEST

START_TEST(finish_keeps_explicit_tls_verify)
{
	ck_assert_int_eq(load("[relay]\nhost = r\ntls = starttls\ntls_verify = no\n", 0), 0);
	ck_assert_int_eq(config_finish(&cfg, &err), 0);
	ck_assert_int_eq(cfg.tls_verify, 0);
}
END_TEST

START_TEST(finish_domain_is_first_allowed_sender_domain)
{
	ck_assert_int_eq(
	    load("[relay]\nhost = r\n[policy]\nallowed_sender_domains = example.org example.com\n",
		 0),
	    0);
	ck_assert_int_eq(config_finish(&cfg, &err), 0);
	ck_assert_str_eq(cfg.domain, "example.org");
	ck_assert_ptr_nonnull(strstr(line_of(written(CONFIG_WRITE_CHECK), "domain"),
				     "default (first of allowed_sender_domains)"));
}
END_TEST

START_TEST(finish_domain_falls_back_to_host_name)
{
	char host[256] = "";

	gethostname(host, sizeof(host));
	ck_assert_int_eq(load("[relay]\nhost = r\n", 0), 0);
	ck_assert_int_eq(config_finish(&cfg, &err), 0);
	ck_assert_str_eq(cfg.domain, host);
}
END_TEST

START_TEST(finish_without_relay_is_config_error_saying_what_to_set)
{
	ck_assert_int_eq(config_finish(&cfg, &err), EX_CONFIG);
	ck_assert_str_eq(
	    err.text,
	    "no relay configured: set [relay] host in /etc/relayshim.conf or RELAYSHIM_RELAY");
}
END_TEST

START_TEST(finish_username_without_password_is_config_error)
{
	ck_assert_int_eq(load("[relay]\nhost = r\nusername = app\n", 0), 0);
	ck_assert_int_eq(config_finish(&cfg, &err), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "username is set but no password"));
}
END_TEST

START_TEST(finish_fingerprint_without_tls_is_config_error)
{
	ck_assert_int_eq(load("[relay]\nhost = r\ntls = none\ntls_fingerprint = "
			      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
			      0),
			 0);
	ck_assert_int_eq(config_finish(&cfg, &err), EX_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.text, "tls_fingerprint"));
}
END_TEST

/* ---------------------------------------------------------------- */
/* --write-config and --config-check                                */

static const char full_ini[] =
    "[relay]\n"
    "host = relay.example:587, [2001:db8::1]\n"
    "tls = starttls\n"
    "tls_ca_file = /etc/ssl/ca.pem\n"
    "tls_fingerprint = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
    "username = app\n"
    "password = \"pa;ss # word\"\n"
    "auth_mechanisms = PLAIN\n"
    "timeout = 30s\n"
    "[rewrite]\n"
    "masquerade_domains = app.example.com !keep.example.com\n"
    "from = '\"Ops\" <ops@example.com>'\n"
    "header_tag = tag with spaces\n"
    "received = no\n"
    "[aliases]\n"
    "root = ops@example.com\n"
    "dev = a@example.com, b@example.com\n"
    "* = all@example.com\n"
    "[senders]\n"
    "www-data = web@example.com\n"
    "[policy]\n"
    "allowed_sender_domains = example.com\n"
    "max_size = 1M\n"
    "[queue]\n"
    "max_age = 36h\n"
    "[log]\n"
    "target = stderr, /proc/1/fd/1\n"
    "anonymize = hash?salt=a%20b&split=1\n";

START_TEST(write_config_reads_back_to_the_same_configuration)
{
	struct config again;
	struct buf second = BUF_INIT;
	char *first;
	const char *path;

	ck_assert_int_eq(load(full_ini, 0), 0);
	first = strdup(written(0));
	path = temp_file(first);
	config_init(&again);
	ck_assert_msg(config_load(&again, path, 1, 0, &err) == 0, "%s\n%s", err.text, first);
	config_write(&again, &second, 0);
	ck_assert_str_eq(buf_cstr(&second), first);
	ck_assert_str_eq(again.password, "pa;ss # word");
	ck_assert_str_eq(again.from, "\"Ops\" <ops@example.com>");
	ck_assert_uint_eq(again.naliases, 3);
	ck_assert_uint_eq(again.queue_max_age_s, 36 * 3600);
	config_free(&again);
	buf_free(&second);
	free(first);
}
END_TEST

START_TEST(write_config_snapshots_the_environment)
{
	char *envp[] = {"RELAYSHIM_RELAY=postfix:587", "ALLOWED_SENDER_DOMAINS=example.com",
			"RELAYSHIM_ALIASES=root=ops@example.com", "ANONYMIZE_EMAILS=smart", 0};
	struct config again;
	struct buf second = BUF_INIT;
	char *first;

	ck_assert_int_eq(load(0, envp), 0);
	first = strdup(written(0));
	config_init(&again);
	ck_assert_int_eq(config_load(&again, temp_file(first), 1, 0, &err), 0);
	ck_assert_str_eq(again.relays[0].host, "postfix");
	ck_assert_str_eq(again.allowed_sender_domains.v[0], "example.com");
	ck_assert_str_eq(again.aliases[0].values.v[0], "ops@example.com");
	config_write(&again, &second, 0);
	ck_assert_str_eq(buf_cstr(&second), first);
	config_free(&again);
	buf_free(&second);
	free(first);
}
END_TEST

START_TEST(write_config_leaves_derived_values_to_be_derived_again)
{
	ck_assert_int_eq(load("[relay]\nhost = r\n", 0), 0);
	ck_assert_int_eq(config_finish(&cfg, &err), 0);
	ck_assert_str_eq(value_of(written(0), "domain"), "");
	ck_assert_str_eq(value_of(written(0), "tls_verify"), "");
}
END_TEST

START_TEST(write_config_leaves_the_default_port_to_be_derived_again)
{
	ck_assert_int_eq(load("[relay]\nhost = a.example, b.example:2525\n", 0), 0);
	ck_assert_int_eq(config_finish(&cfg, &err), 0);
	ck_assert_str_eq(value_of(written(0), "host"), "a.example, b.example:2525");
	ck_assert_ptr_nonnull(
	    strstr(line_of(written(CONFIG_WRITE_CHECK), "host"), "a.example:25, b.example:2525"));
}
END_TEST

START_TEST(write_config_writes_password_file_not_the_secret)
{
	char var[256];
	char *envp[] = {"RELAYSHIM_USERNAME=app", var, 0};

	snprintf(var, sizeof(var), "RELAYSHIM_PASSWORD_FILE=%s", temp_file("topsecret\n"));
	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_ptr_null(strstr(written(0), "topsecret"));
	ck_assert_str_eq(value_of(written(0), "password_file"), tmp_paths[0]);
}
END_TEST

START_TEST(config_check_redacts_the_password)
{
	char *envp[] = {"RELAYSHIM_PASSWORD=hunter2", 0};
	const char *text;

	ck_assert_int_eq(load("[relay]\nusername = app\n", envp), 0);
	text = written(CONFIG_WRITE_CHECK);
	ck_assert_ptr_null(strstr(text, "hunter2"));
	ck_assert_str_eq(value_of(text, "password"), "(set)");
	ck_assert_ptr_nonnull(
	    strstr(line_of(text, "password"), "# environment RELAYSHIM_PASSWORD"));
	ck_assert_ptr_nonnull(strstr(line_of(text, "username"), "# file "));
}
END_TEST

START_TEST(config_check_redacts_the_hash_salt)
{
	char *envp[] = {"ANONYMIZE_EMAILS=hash?salt=pepper&split=1", 0};

	ck_assert_int_eq(load(0, envp), 0);
	ck_assert_ptr_null(strstr(written(CONFIG_WRITE_CHECK), "pepper"));
	ck_assert_str_eq(value_of(written(CONFIG_WRITE_CHECK), "anonymize"),
			 "hash?salt=(set)&split=1");
}
END_TEST

START_TEST(config_check_shows_unset_password)
{
	ck_assert_int_eq(load(0, 0), 0);
	ck_assert_str_eq(value_of(written(CONFIG_WRITE_CHECK), "password"), "(unset)");
}
END_TEST

START_TEST(config_check_lists_every_key_with_a_source)
{
	const char *text;

	ck_assert_int_eq(load(0, 0), 0);
	text = written(CONFIG_WRITE_CHECK);
	for (size_t i = 0; i < config_key_count(); i++) {
		const char *section, *key;
		const char *const *env;

		config_key_info(i, &section, &key, &env);
		if (key == 0)
			continue;
		ck_assert_msg(line_of(text, key) && strstr(line_of(text, key), "# default"),
			      "[%s] %s missing", section, key);
	}
}
END_TEST

/* ---------------------------------------------------------------- */
/* The documentation walks the same table                           */

/* read_text - a file of the source tree (tests run from the top directory) */

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *data;
	long n;

	ck_assert_msg(f != 0, "%s: not found (run the test from the top of the tree)", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	data = calloc(1, (size_t)n + 1);
	ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return data;
}

START_TEST(example_file_documents_every_key_and_variable)
{
	char *text = read_text("conf/relayshim.conf");

	for (size_t i = 0; i < config_key_count(); i++) {
		const char *section, *key;
		const char *const *env;
		char want[128];
		const char *sec;

		config_key_info(i, &section, &key, &env);
		snprintf(want, sizeof(want), "\n[%s]\n", section);
		sec = strstr(text, want);
		ck_assert_msg(sec != 0, "[%s] missing", section);
		if (key) {
			const char *next = strstr(sec + 1, "\n[");

			snprintf(want, sizeof(want), "\n#%s =", key);
			ck_assert_msg(strstr(sec, want) && (next == 0 || strstr(sec, want) < next),
				      "[%s] %s missing", section, key);
		}
		for (int e = 0; e < 3 && env[e]; e++)
			ck_assert_msg(strstr(text, env[e]), "%s missing", env[e]);
	}
	free(text);
}
END_TEST

START_TEST(example_file_loads_as_installed)
{
	ck_assert_msg(config_load(&cfg, "conf/relayshim.conf", 1, 0, &err) == 0, "%s", err.text);
}
END_TEST

START_TEST(example_file_shows_the_real_defaults)
{
	char *text = read_text("conf/relayshim.conf");
	struct buf ini = BUF_INIT;
	char *defaults;
	const char *uncommented;

	/* Uncomment every "#key = value" line; the examples without a default are skipped. */
	for (char *line = strtok(text, "\n"); line; line = strtok(0, "\n")) {
		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strstr(line, " =") &&
		    strncmp(line, "#password_file", 14) != 0)
			line++;
		buf_printf(&ini, "%s\n", line);
	}
	defaults = strdup(written(0));
	ck_assert_msg(load(buf_cstr(&ini), 0) == 0, "%s", err.text);
	uncommented = written(0);
	for (size_t i = 0; i < config_key_count(); i++) {
		const char *section, *key;
		const char *const *env;
		char want[256];

		config_key_info(i, &section, &key, &env);
		if (key == 0 || strcmp(key, "host") == 0 || strcmp(key, "password_file") == 0)
			continue;
		snprintf(want, sizeof(want), "%s", value_of(defaults, key));
		ck_assert_msg(strcmp(value_of(uncommented, key), want) == 0,
			      "[%s] %s: example shows \"%s\", default is \"%s\"", section, key,
			      value_of(uncommented, key), want);
	}
	buf_free(&ini);
	free(defaults);
	free(text);
}
END_TEST

START_TEST(manual_page_documents_every_key_and_variable)
{
	char *text = read_text("man/relayshim.conf.5");

	for (size_t i = 0; i < config_key_count(); i++) {
		const char *section, *key;
		const char *const *env;
		char want[128];

		config_key_info(i, &section, &key, &env);
		snprintf(want, sizeof(want), "[%s]", section);
		ck_assert_msg(strstr(text, want), "%s missing", want);
		if (key) {
			snprintf(want, sizeof(want), ".B %s", key);
			ck_assert_msg(strstr(text, want), "key %s missing (as \"%s\")", key, want);
		}
		for (int e = 0; e < 3 && env[e]; e++)
			ck_assert_msg(strstr(text, env[e]), "%s missing", env[e]);
	}
	free(text);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, defaults_are_those_of_the_spec);
	tcase_add_test(tc, every_key_of_the_table_has_a_sample_here);
	tcase_add_loop_test(tc, every_key_is_read_from_the_file, 0, NSAMPLES);
	tcase_add_test(tc, every_environment_name_of_every_key_is_read);
	tcase_add_test(tc, a_maildir_relay_is_an_absolute_path_and_round_trips);
	tcase_add_test(tc, typed_values_are_parsed);
	tcase_add_test(tc, durations_accept_units_and_bare_seconds);
	tcase_add_test(tc, relay_list_accepts_ports_ipv6_and_separators);
	tcase_add_test(tc, fingerprint_is_32_bytes);
	tcase_add_test(tc, file_overrides_default_and_environment_overrides_file);
	tcase_add_test(tc, command_line_overrides_environment);
	tcase_add_test(tc, command_line_bad_value_is_a_config_error);
	tcase_add_test(tc, first_environment_name_wins);
	tcase_add_test(tc, second_environment_name_is_read_alone);
	tcase_add_test(tc, empty_environment_value_is_unset);
	tcase_add_test(tc, empty_file_value_is_unset);
	tcase_add_test(tc, debug_yes_means_level_debug);
	tcase_add_test(tc, debug_with_an_application_value_is_ignored);
	tcase_add_test(tc, relayshim_log_level_beats_debug);
	tcase_add_test(tc, allow_empty_sender_domains_any_value_is_true);
	tcase_add_test(tc, allow_empty_sender_domains_no_is_false);
	tcase_add_test(tc, upstream_variables_of_the_relay_images_are_never_read);
	tcase_add_loop_test(tc, bad_file_value_is_config_error_naming_file_section_key_and_values,
			    0, sizeof(bads) / sizeof(bads[0]));
	tcase_add_loop_test(tc, bad_environment_value_is_config_error_naming_the_variable, 0,
			    sizeof(bads) / sizeof(bads[0]));
	tcase_add_test(tc, header_injection_in_header_tag_is_refused);
	tcase_add_test(tc, smtp_header_tag_is_the_relays_and_not_read);
	tcase_add_test(tc, domain_defaults_to_the_mydomain_of_server_hostname);
	tcase_add_test(tc, line_break_in_overwrite_from_is_refused);
	tcase_add_test(tc, unknown_key_is_config_error_listing_known_keys);
	tcase_add_test(tc, unknown_section_is_config_error);
	tcase_add_test(tc, key_outside_a_section_is_config_error);
	tcase_add_test(tc, syntax_error_is_one_line_naming_the_file);
	tcase_add_test(tc, missing_explicit_file_is_config_error);
	tcase_add_test(tc, missing_default_file_is_fine);
	tcase_add_test(tc, relayshim_config_names_the_file);
	tcase_add_test(tc, missing_relayshim_config_file_is_config_error);
	tcase_add_test(tc, password_file_loses_one_trailing_newline);
	tcase_add_test(tc, password_file_without_newline_is_read_whole);
	tcase_add_test(tc, password_file_with_crlf_loses_it);
	tcase_add_test(tc, password_file_key_in_the_file_is_read);
	tcase_add_test(tc, password_and_password_file_in_environment_is_config_error);
	tcase_add_test(tc, password_and_password_file_in_file_is_config_error);
	tcase_add_test(tc, environment_password_replaces_file_password_file);
	tcase_add_test(tc, environment_password_file_replaces_file_password);
	tcase_add_test(tc, missing_password_file_is_config_error_naming_it);
	tcase_add_test(tc, empty_password_file_is_config_error);
	tcase_add_test(tc, bad_password_value_is_not_repeated_in_the_error);
	tcase_add_test(tc, world_readable_file_with_password_warns);
	tcase_add_test(tc, private_file_with_password_does_not_warn);
	tcase_add_test(tc, aliases_from_file_with_fan_out_and_catch_all);
	tcase_add_test(tc, aliases_from_environment_split_by_semicolon_and_space);
	tcase_add_test(tc, aliases_from_environment_space_after_comma_continues_the_entry);
	tcase_add_test(tc, aliases_from_environment_replace_the_file_section);
	tcase_add_test(tc, alias_entry_without_equals_sign_is_config_error);
	tcase_add_test(tc, senders_from_file_and_environment);
	tcase_add_test(tc, sender_with_two_addresses_is_config_error);
	tcase_add_test(tc, finish_fills_port_25_by_default);
	tcase_add_test(tc, finish_fills_port_465_and_verification_with_implicit_tls);
	tcase_add_test(tc, finish_keeps_explicit_tls_verify);
	tcase_add_test(tc, finish_domain_is_first_allowed_sender_domain);
	tcase_add_test(tc, finish_domain_falls_back_to_host_name);
	tcase_add_test(tc, finish_without_relay_is_config_error_saying_what_to_set);
	tcase_add_test(tc, finish_username_without_password_is_config_error);
	tcase_add_test(tc, finish_fingerprint_without_tls_is_config_error);
	tcase_add_test(tc, write_config_reads_back_to_the_same_configuration);
	tcase_add_test(tc, write_config_snapshots_the_environment);
	tcase_add_test(tc, write_config_leaves_derived_values_to_be_derived_again);
	tcase_add_test(tc, write_config_leaves_the_default_port_to_be_derived_again);
	tcase_add_test(tc, write_config_writes_password_file_not_the_secret);
	tcase_add_test(tc, config_check_redacts_the_password);
	tcase_add_test(tc, config_check_redacts_the_hash_salt);
	tcase_add_test(tc, config_check_shows_unset_password);
	tcase_add_test(tc, config_check_lists_every_key_with_a_source);
	tcase_add_test(tc, example_file_documents_every_key_and_variable);
	tcase_add_test(tc, example_file_loads_as_installed);
	tcase_add_test(tc, example_file_shows_the_real_defaults);
	tcase_add_test(tc, manual_page_documents_every_key_and_variable);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
