/* test_rewrite - the rewrite.h pipeline: sender, recipients, headers, trace, policy */

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "rewrite.h"

#define NOW ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 +0000 */

static const unsigned char rnd[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
				      0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

static struct config cfg;
static struct submit sub;
static struct message msg;
static struct envelope env;
static struct error err;
static struct map_entry aliases[8];
static struct map_entry senders[8];

/* setup - a plain configuration: domain example.com, nothing added */

static void setup(void)
{
	memset(&cfg, 0, sizeof(cfg));
	memset(&sub, 0, sizeof(sub));
	memset(aliases, 0, sizeof(aliases));
	memset(senders, 0, sizeof(senders));
	cfg.domain = "example.com";
	cfg.envelope_from = ENVFROM_HEADER;
	cfg.aliases = aliases;
	cfg.senders = senders;
	sub.user = "www-data";
	sub.uid = 33;
	sub.hostname = "3f2a1b9c0d1e";
	sub.queue_id = "4XyZ01";
	message_init(&msg);
	envelope_init(&env);
	error_clear(&err);
}

static void teardown(void)
{
	for (size_t i = 0; i < 8; i++) {
		strlist_free(&aliases[i].values);
		strlist_free(&senders[i].values);
	}
	strlist_free(&cfg.masquerade_domains);
	strlist_free(&cfg.allowed_sender_domains);
	strlist_free(&cfg.redirect_to);
	strlist_free(&sub.rcpts);
	message_free(&msg);
	envelope_free(&env);
}

/* add_map - key = comma-separated values, into aliases or senders */

static void add_map(struct map_entry *map, size_t *n, char *key, const char *values)
{
	char *copy = strdup(values);
	char *save = 0;

	map[*n].key = key;
	for (char *v = strtok_r(copy, ",", &save); v; v = strtok_r(0, ",", &save))
		strlist_add(&map[*n].values, v);
	(*n)++;
	free(copy);
}

#define ALIAS(k, v) add_map(aliases, &cfg.naliases, (k), (v))
#define SENDER(k, v) add_map(senders, &cfg.nsenders, (k), (v))

/* words - add space-separated words to a strlist */

static void words(struct strlist *l, const char *text)
{
	char *copy = strdup(text);
	char *save = 0;

	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(0, " ", &save))
		strlist_add(l, w);
	free(copy);
}

/* run - rewrite a message with header text, recipients from argv */

static int run(const char *header, const char *argv_rcpts)
{
	buf_reset(&msg.header);
	buf_puts(&msg.header, header);
	if (argv_rcpts)
		words(&sub.rcpts, argv_rcpts);
	return rewrite_message(&cfg, &sub, &msg, &env, NOW, rnd, sizeof(rnd), &err);
}

/* rcpts - envelope recipients joined by " " */

static char *rcpts(void)
{
	struct buf out = BUF_INIT;

	for (size_t i = 0; i < env.rcpts.n; i++)
		buf_printf(&out, "%s%s", i ? " " : "", env.rcpts.v[i]);
	return buf_steal(&out);
}

#define ASSERT_RCPTS(want)                                                                         \
	do {                                                                                       \
		char *got_ = rcpts();                                                              \
		ck_assert_str_eq(got_, (want));                                                    \
		free(got_);                                                                        \
	} while (0)

#define HEADER() buf_cstr(&msg.header)

/* ---- 1. envelope sender ------------------------------------------------- */

/* -f/-r values and what the envelope sender becomes. */
static const struct {
	const char *f;
	const char *sender;
} f_table[] = {
    {"root", "root@example.com"},
    {"app@example.org", "app@example.org"},
    {"<app@example.org>", "app@example.org"},
    {"App <app@example.org>", "app@example.org"},
    {"", ""},
    {"<>", ""},
    {"www-data@3f2a1b9c0d1e", "www-data@example.com"},
    {"webmaster@localhost", "webmaster@example.com"},
    {"Root@LOCALHOST", "Root@example.com"},
    {"app@[127.0.0.1]", "app@example.com"},
    {"app@[192.0.2.1]", "app@[192.0.2.1]"},
    {"app@Mail.Example.ORG", "app@Mail.Example.ORG"},
};

START_TEST(f_option_gives_the_envelope_sender_qualified)
{
	sub.sender = f_table[_i].f;
	ck_assert_int_eq(run("Subject: x\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, f_table[_i].sender);
}
END_TEST

START_TEST(senders_entry_of_the_login_is_used_without_f)
{
	SENDER("www-data", "noreply@example.com");
	ck_assert_int_eq(run("From: other@example.org\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "noreply@example.com");
}
END_TEST

START_TEST(senders_entry_also_maps_a_local_f_address)
{
	SENDER("www-data", "noreply@example.com");
	sub.sender = "www-data@3f2a1b9c0d1e"; /* GNU mail always passes -f user@host */
	ck_assert_int_eq(run("", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "noreply@example.com");
}
END_TEST

START_TEST(senders_entry_rewrites_a_local_from_header_like_revaliases)
{
	SENDER("root", "Cron <cron@example.com>");
	sub.user = "root";
	ck_assert_int_eq(
	    run("From: root (Cron Daemon)\r\nTo: root\r\nReply-To: root\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "cron@example.com");
	ck_assert_str_eq(HEADER(), "From: cron@example.com (Cron Daemon)\r\n"
				   "To: root@example.com\r\n"
				   "Reply-To: root@example.com\r\n");
}
END_TEST

START_TEST(envelope_from_header_takes_the_from_address)
{
	ck_assert_int_eq(run("From: \"App\" <app@example.org>\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "app@example.org");
}
END_TEST

START_TEST(envelope_from_header_qualifies_a_bare_from)
{
	ck_assert_int_eq(run("From: root (Cron Daemon)\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "root@example.com");
}
END_TEST

START_TEST(envelope_from_header_without_from_uses_the_login)
{
	ck_assert_int_eq(run("Subject: x\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "www-data@example.com");
}
END_TEST

START_TEST(envelope_from_user_ignores_the_from_header)
{
	cfg.envelope_from = ENVFROM_USER;
	ck_assert_int_eq(run("From: app@example.org\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "www-data@example.com");
}
END_TEST

START_TEST(envelope_sender_is_masqueraded)
{
	strlist_add(&cfg.masquerade_domains, "example.com");
	sub.sender = "app@host.example.com";
	ck_assert_int_eq(run("", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "app@example.com");
}
END_TEST

START_TEST(overwrite_from_forces_the_envelope_sender_even_over_f)
{
	cfg.from = "\"Your Name\" <email@company.com>";
	sub.sender = "app@example.org";
	ck_assert_int_eq(run("", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "email@company.com");
}
END_TEST

START_TEST(missing_domain_falls_back_to_the_host_name)
{
	cfg.domain = 0;
	sub.sender = "root";
	ck_assert_int_eq(run("", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "root@3f2a1b9c0d1e");
}
END_TEST

/* ---- 2. recipients ------------------------------------------------------ */

START_TEST(root_without_alias_is_qualified)
{
	ck_assert_int_eq(run("", "root"), 0);
	ASSERT_RCPTS("root@example.com");
}
END_TEST

START_TEST(root_with_alias_goes_to_the_alias)
{
	ALIAS("root", "ops@example.net");
	ck_assert_int_eq(run("", "root"), 0);
	ASSERT_RCPTS("ops@example.net");
}
END_TEST

START_TEST(alias_to_two_addresses_fans_out)
{
	ALIAS("dev", "a@example.net,b@example.net");
	ck_assert_int_eq(run("", "dev"), 0);
	ASSERT_RCPTS("a@example.net b@example.net");
}
END_TEST

START_TEST(alias_keys_ignore_case)
{
	ALIAS("root", "ops@example.net");
	ck_assert_int_eq(run("", "ROOT"), 0);
	ASSERT_RCPTS("ops@example.net");
}
END_TEST

START_TEST(alias_applies_to_local_domains_too)
{
	ALIAS("root", "ops@example.net");
	ck_assert_int_eq(run("", "root@localhost root@3f2a1b9c0d1e"), 0);
	ASSERT_RCPTS("ops@example.net");
}
END_TEST

START_TEST(catch_all_takes_bare_names_without_their_own_alias)
{
	ALIAS("root", "ops@example.net");
	ALIAS("*", "catch@example.net");
	ck_assert_int_eq(run("", "root logcheck other@example.org"), 0);
	ASSERT_RCPTS("ops@example.net catch@example.net other@example.org");
}
END_TEST

START_TEST(bare_alias_target_is_qualified_not_aliased_again)
{
	ALIAS("root", "admin");
	ALIAS("admin", "root");
	ck_assert_int_eq(run("", "root"), 0);
	ASSERT_RCPTS("admin@example.com");
}
END_TEST

START_TEST(duplicates_go_domain_case_insensitive_local_part_exact)
{
	ck_assert_int_eq(run("", "a@Example.ORG a@example.org A@example.org root root@EXAMPLE.com"),
			 0);
	ASSERT_RCPTS("a@Example.ORG A@example.org root@example.com");
}
END_TEST

START_TEST(envelope_recipients_are_not_masqueraded)
{
	strlist_add(&cfg.masquerade_domains, "example.com");
	ck_assert_int_eq(run("", "dev@team.example.com"), 0);
	ASSERT_RCPTS("dev@team.example.com");
}
END_TEST

START_TEST(argv_recipient_with_display_name_gives_its_address)
{
	strlist_add(&sub.rcpts, "\"Ops Team\" <ops@example.org>");
	ck_assert_int_eq(run("", 0), 0);
	ASSERT_RCPTS("ops@example.org");
}
END_TEST

START_TEST(t_adds_to_cc_and_bcc_to_argv_recipients)
{
	sub.extract_recipients = 1;
	ck_assert_int_eq(run("To: a@example.org\r\nCc: B <b@example.org>\r\nBcc: c@example.org\r\n",
			     "d@example.org"),
			 0);
	ASSERT_RCPTS("d@example.org a@example.org b@example.org c@example.org");
	ck_assert_ptr_null(strstr(HEADER(), "Bcc"));
}
END_TEST

START_TEST(t_with_resent_headers_uses_only_resent_recipients)
{
	sub.extract_recipients = 1;
	ck_assert_int_eq(run("To: orig@example.org\r\n"
			     "Resent-From: fwd@example.org\r\n"
			     "Resent-To: new@example.org\r\n"
			     "Resent-Bcc: hidden@example.org\r\n",
			     0),
			 0);
	ASSERT_RCPTS("new@example.org hidden@example.org");
	ck_assert_ptr_null(strstr(HEADER(), "Resent-Bcc"));
	ck_assert_ptr_nonnull(strstr(HEADER(), "To: orig@example.org\r\n"));
}
END_TEST

START_TEST(t_with_undisclosed_recipients_group_and_argv)
{
	sub.extract_recipients = 1;
	ck_assert_int_eq(run("To: undisclosed-recipients:;\r\n", "a@example.org"), 0);
	ASSERT_RCPTS("a@example.org");
}
END_TEST

START_TEST(folded_to_with_50_recipients_is_extracted_and_left_untouched)
{
	struct buf h = BUF_INIT;

	buf_puts(&h, "To: ");
	for (int i = 0; i < 50; i++)
		buf_printf(&h, "%s\"User %d\" <u%d@example.org>", i ? ",\r\n\t" : "", i, i);
	buf_puts(&h, "\r\nSubject: fifty\r\n");
	sub.extract_recipients = 1;
	ck_assert_int_eq(run(buf_cstr(&h), 0), 0);
	ck_assert_uint_eq(env.rcpts.n, 50);
	ck_assert_str_eq(env.rcpts.v[49], "u49@example.org");
	ck_assert_str_eq(HEADER(), buf_cstr(&h));
	buf_free(&h);
}
END_TEST

START_TEST(ten_thousand_recipients_in_one_to_are_fast)
{
	struct buf h = BUF_INIT;
	clock_t t0;

	buf_puts(&h, "To: ");
	for (int i = 0; i < 10000; i++)
		buf_printf(&h, "%su%d@example.org", i ? ",\r\n " : "", i);
	buf_puts(&h, "\r\n");
	sub.extract_recipients = 1;
	t0 = clock();
	/* Parsed in linear time, then refused: REWRITE_RCPT_MAX per message. */
	ck_assert_int_eq(run(buf_cstr(&h), 0), EX_DATAERR);
	ck_assert_ptr_nonnull(strstr(err.text, "too many recipients: 10000"));
	ck_assert_msg(clock() - t0 < CLOCKS_PER_SEC, "took %ld ticks", (long)(clock() - t0));
	buf_free(&h);
}
END_TEST

START_TEST(the_recipient_limit_counts_after_duplicates_are_removed)
{
	struct buf h = BUF_INIT;

	buf_puts(&h, "To: ");
	for (int i = 0; i < REWRITE_RCPT_MAX; i++)
		buf_printf(&h, "%su%d@example.org", i ? ",\r\n " : "", i);
	buf_puts(&h, "\r\nCc: u0@EXAMPLE.org, u1@example.org\r\n");
	sub.extract_recipients = 1;
	ck_assert_int_eq(run(buf_cstr(&h), 0), 0);
	ck_assert_uint_eq(env.rcpts.n, REWRITE_RCPT_MAX);
	buf_free(&h);
}
END_TEST

START_TEST(no_recipients_is_a_usage_error)
{
	ck_assert_int_eq(run("To: a@example.org\r\n", 0), EX_USAGE);
	ck_assert_ptr_nonnull(strstr(err.text, "no recipients"));
}
END_TEST

START_TEST(control_bytes_in_a_recipient_are_refused)
{
	strlist_add(&sub.rcpts, "a@example.org\r\nRCPT TO:<b@example.org>");
	ck_assert_int_eq(run("", 0), EX_DATAERR);
}
END_TEST

/* ---- 3. headers --------------------------------------------------------- */

START_TEST(bcc_resent_bcc_and_content_length_go_even_without_t)
{
	ck_assert_int_eq(run("From: a@example.org\r\n"
			     "Bcc: hidden@example.org\r\n"
			     "Content-Length: 12\r\n"
			     "Resent-Bcc: x@example.org\r\n"
			     "Subject: s\r\n",
			     "b@example.org"),
			 0);
	ck_assert_str_eq(HEADER(), "From: a@example.org\r\nSubject: s\r\n");
	ASSERT_RCPTS("b@example.org");
}
END_TEST

START_TEST(untouched_fields_keep_order_and_bytes)
{
	static const char h[] = "X-Mailer: PHP/8.2\r\n"
				"From: \"App, The\" <app@example.org> (comment)\r\n"
				"Subject: =?UTF-8?B?SMOpbGxv?=\r\n"
				"To: a@example.org,\r\n"
				"    b@example.org\r\n"
				"DKIM-Signature: v=1; a=rsa-sha256; d=example.org;\r\n"
				"\th=from:to:subject; b=abcdef\r\n"
				"X-weird:no space\r\n";

	ck_assert_int_eq(run(h, "a@example.org"), 0);
	ck_assert_str_eq(HEADER(), h);
}
END_TEST

START_TEST(bare_addresses_in_address_headers_are_qualified_in_place)
{
	ck_assert_int_eq(run("From: root (Cron Daemon)\r\n"
			     "To: root, \"Web\" <www-data>,\r\n\tops@example.org\r\n"
			     "Sender: www-data@localhost\r\n"
			     "Reply-To: <admin@3f2a1b9c0d1e>\r\n"
			     "X-Not-An-Address: root\r\n",
			     "a@example.org"),
			 0);
	ck_assert_str_eq(HEADER(), "From: root@example.com (Cron Daemon)\r\n"
				   "To: root@example.com, \"Web\" <www-data@example.com>,\r\n"
				   "\tops@example.org\r\n"
				   "Sender: www-data@example.com\r\n"
				   "Reply-To: <admin@example.com>\r\n"
				   "X-Not-An-Address: root\r\n");
}
END_TEST

START_TEST(header_qualification_does_not_alias)
{
	ALIAS("root", "ops@example.net");
	ck_assert_int_eq(run("To: root\r\n", "root"), 0);
	ck_assert_str_eq(HEADER(), "To: root@example.com\r\n");
	ASSERT_RCPTS("ops@example.net");
}
END_TEST

/*
 * The masquerading case reproduced against Postfix with boky/postfix's
 * settings (MASQUERADED_DOMAINS=example.com), with one deliberate difference:
 * a bare "Cc: root" is qualified with our domain, not the relay's host.
 */
START_TEST(masquerade_rewrites_sender_and_recipient_headers_like_postfix)
{
	strlist_add(&cfg.masquerade_domains, "example.com");
	sub.sender = "www-data@app1.example.com";
	ck_assert_int_eq(run("From: Web <www-data@app1.example.com>\r\n"
			     "Sender: www-data@app1.example.com\r\n"
			     "Reply-To: support@help.example.com\r\n"
			     "To: dev@team.example.com, other@elsewhere.example.net\r\n"
			     "Cc: root\r\n"
			     "Subject: masq\r\n",
			     "dev@team.example.com"),
			 0);
	ck_assert_str_eq(env.sender, "www-data@example.com");
	ASSERT_RCPTS("dev@team.example.com");
	ck_assert_str_eq(HEADER(), "From: Web <www-data@example.com>\r\n"
				   "Sender: www-data@example.com\r\n"
				   "Reply-To: support@example.com\r\n"
				   "To: dev@example.com, other@elsewhere.example.net\r\n"
				   "Cc: root@example.com\r\n"
				   "Subject: masq\r\n");
}
END_TEST

START_TEST(masquerade_handles_mixed_case_domains)
{
	strlist_add(&cfg.masquerade_domains, "example.com");
	ck_assert_int_eq(run("Cc: Alice <Alice@Mail.EXAMPLE.Com>\r\n", "a@example.org"), 0);
	ck_assert_str_eq(HEADER(), "Cc: Alice <Alice@example.com>\r\n");
}
END_TEST

START_TEST(masquerade_exclusion_keeps_the_domain)
{
	strlist_add(&cfg.masquerade_domains, "!sub.example.com");
	strlist_add(&cfg.masquerade_domains, "example.com");
	ck_assert_int_eq(
	    run("From: a@host.sub.example.com\r\nTo: b@host.example.com\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "a@host.sub.example.com");
	ck_assert_str_eq(HEADER(), "From: a@host.sub.example.com\r\nTo: b@example.com\r\n");
}
END_TEST

START_TEST(group_with_comments_is_rewritten_in_place)
{
	strlist_add(&cfg.masquerade_domains, "example.com");
	ck_assert_int_eq(
	    run("To: Team (the team): a@host.example.com (Alice), root;, x@example.org\r\n",
		"a@example.org"),
	    0);
	ck_assert_str_eq(
	    HEADER(),
	    "To: Team (the team): a@example.com (Alice), root@example.com;, x@example.org\r\n");
}
END_TEST

START_TEST(utf8_addresses_are_kept_and_set_smtputf8)
{
	strlist_add(&cfg.masquerade_domains, "exämple.com");
	ck_assert_int_eq(run("From: Jöhn <jöhn@mail.exämple.com>\r\n", "dœ@exämple.org"), 0);
	ck_assert_str_eq(env.sender, "jöhn@exämple.com");
	ASSERT_RCPTS("dœ@exämple.org");
	ck_assert_int_eq(env.smtputf8, 1);
	ck_assert_str_eq(HEADER(), "From: Jöhn <jöhn@exämple.com>\r\n");
}
END_TEST

START_TEST(ascii_addresses_do_not_set_smtputf8)
{
	ck_assert_int_eq(run("Subject: Grüße\r\n", "a@example.org"), 0);
	ck_assert_int_eq(env.smtputf8, 0);
}
END_TEST

START_TEST(overwrite_from_keeps_the_display_name_when_it_has_none)
{
	cfg.from = "noreply@company.com";
	ck_assert_int_eq(
	    run("X-A: 1\r\nFrom: \"Old, Name\" <old@example.org>\r\nX-B: 2\r\n", "a@example.org"),
	    0);
	ck_assert_str_eq(HEADER(),
			 "X-A: 1\r\nFrom: \"Old, Name\" <noreply@company.com>\r\nX-B: 2\r\n");
	ck_assert_str_eq(env.sender, "noreply@company.com");
}
END_TEST

START_TEST(overwrite_from_with_a_display_name_replaces_it)
{
	cfg.from = "\"Your Name\" <email@company.com>";
	ck_assert_int_eq(run("From: root\r\n", "a@example.org"), 0);
	ck_assert_str_eq(HEADER(), "From: Your Name <email@company.com>\r\n");
}
END_TEST

START_TEST(sender_header_present_is_qualified_and_kept)
{
	ck_assert_int_eq(run("From: app@example.org\r\nSender: www-data\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "app@example.org");
	ck_assert_str_eq(HEADER(), "From: app@example.org\r\nSender: www-data@example.com\r\n");
}
END_TEST

START_TEST(missing_from_date_and_message_id_are_added)
{
	cfg.add_missing_headers = 1;
	sub.sender = "root";
	sub.fullname = "Cron Daemon";
	ck_assert_int_eq(run("Subject: hello\r\n", "a@example.org"), 0);
	ck_assert_str_eq(HEADER(),
			 "Subject: hello\r\n"
			 "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
			 "From: Cron Daemon <root@example.com>\r\n"
			 "Message-ID: <00112233445566778899aabbccddeeff@example.com>\r\n");
}
END_TEST

START_TEST(missing_from_without_full_name_is_the_bare_sender)
{
	cfg.add_missing_headers = 1;
	ck_assert_int_eq(run("Date: x\r\nMessage-ID: <y@z>\r\n", "a@example.org"), 0);
	ck_assert_str_eq(HEADER(),
			 "Date: x\r\nMessage-ID: <y@z>\r\nFrom: www-data@example.com\r\n");
}
END_TEST

START_TEST(missing_from_with_null_sender_is_mailer_daemon)
{
	cfg.add_missing_headers = 1;
	sub.sender = "<>";
	ck_assert_int_eq(run("Date: x\r\nMessage-ID: <y@z>\r\n", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "");
	ck_assert_str_eq(HEADER(),
			 "Date: x\r\nMessage-ID: <y@z>\r\nFrom: MAILER-DAEMON@example.com\r\n");
}
END_TEST

START_TEST(full_name_with_specials_is_quoted)
{
	cfg.add_missing_headers = 1;
	sub.sender = "root";
	sub.fullname = "Daemon, Cron (v2)";
	ck_assert_int_eq(run("Date: x\r\nMessage-ID: <y@z>\r\n", "a@example.org"), 0);
	ck_assert_ptr_nonnull(
	    strstr(HEADER(), "From: \"Daemon, Cron (v2)\" <root@example.com>\r\n"));
}
END_TEST

START_TEST(non_ascii_full_name_is_rfc2047_encoded)
{
	cfg.add_missing_headers = 1;
	sub.sender = "root";
	sub.fullname = "J\xc3\xb6hn D\xc5\x93";
	ck_assert_int_eq(run("Date: x\r\nMessage-ID: <y@z>\r\n", "a@example.org"), 0);
	ck_assert_ptr_nonnull(
	    strstr(HEADER(), "From: =?UTF-8?B?SsO2aG4gRMWT?= <root@example.com>\r\n"));
}
END_TEST

START_TEST(hostile_headers_never_crash_the_pipeline)
{
	static const char alphabet[] = "<>@,;:.()\"[]\\ \r\n\tabTocBF-\x80\xff";
	unsigned seed = 4242;
	struct buf h = BUF_INIT;
	int accepted = 0, refused = 0, status;

	cfg.add_missing_headers = 1;
	cfg.received = 1;
	cfg.header_tag = "t";
	strlist_add(&cfg.masquerade_domains, "b");
	ALIAS("a", "b,c@d");
	sub.extract_recipients = 1;
	for (int round = 0; round < 3000; round++) {
		size_t n = (size_t)(rand_r(&seed) % 300);

		buf_reset(&h);
		buf_puts(&h, round % 2 ? "To: " : "Cc:");
		for (size_t i = 0; i < n; i++)
			buf_putc(&h, alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)]);
		buf_puts(&h, "\r\n");
		envelope_free(&env);
		strlist_free(&sub.rcpts);
		error_clear(&err);
		status = run(buf_cstr(&h), "x@y");
		if (status != 0) {
			/* Refused: a data error, reported as one line, never a crash or a 5xx. */
			ck_assert_int_eq(status, EX_DATAERR);
			ck_assert_int_eq(err.status, status);
			ck_assert_str_ne(err.text, "");
			ck_assert_ptr_null(strpbrk(err.text, "\r\n"));
			refused++;
			continue;
		}
		/* Accepted: a well-formed header and an envelope safe to send. */
		ck_assert_int_eq(strncmp(HEADER(), "RelayTag: t\r\nReceived: ", 23), 0);
		ck_assert_ptr_null(strstr(HEADER() + 1, "\nRelayTag:"));
		ck_assert_ptr_null(strstr(HEADER(), "\r\nBcc:"));
		ck_assert_int_eq(strcmp(HEADER() + msg.header.len - 2, "\r\n"), 0);
		ck_assert_uint_ge(env.rcpts.n, 1);
		ck_assert(strlist_contains_ci(&env.rcpts, "x@y"));
		for (size_t i = 0; i < env.rcpts.n; i++) {
			ck_assert_str_ne(env.rcpts.v[i], "");
			for (const char *c = env.rcpts.v[i]; *c; c++)
				ck_assert((unsigned char)*c >= 0x20 && *c != 0x7f);
			for (size_t j = 0; j < i; j++)
				ck_assert_str_ne(env.rcpts.v[i], env.rcpts.v[j]);
		}
		accepted++;
	}
	buf_free(&h);
	/* The alphabet makes both outcomes common; a run that only refuses tests nothing. */
	ck_assert_int_gt(accepted, 100);
	ck_assert_int_gt(refused, 0);
}
END_TEST

START_TEST(nothing_is_added_when_add_missing_headers_is_off)
{
	ck_assert_int_eq(run("Subject: s\r\n", "a@example.org"), 0);
	ck_assert_str_eq(HEADER(), "Subject: s\r\n");
}
END_TEST

START_TEST(message_without_any_header_gets_the_missing_ones)
{
	cfg.add_missing_headers = 1;
	ck_assert_int_eq(run("", "a@example.org"), 0);
	ck_assert_ptr_nonnull(strstr(HEADER(), "From: www-data@example.com\r\n"));
	ck_assert_ptr_nonnull(strstr(HEADER(), "Date: "));
	ck_assert_ptr_nonnull(strstr(HEADER(), "Message-ID: <"));
}
END_TEST

/* ---- 4. trace ----------------------------------------------------------- */

START_TEST(received_is_prepended)
{
	cfg.received = 1;
	ck_assert_int_eq(run("Subject: s\r\n", "a@example.org"), 0);
	ck_assert_str_eq(HEADER(), "Received: from www-data (uid 33)\r\n"
				   "\tby 3f2a1b9c0d1e (relayshim) id 4XyZ01;\r\n"
				   "\tTue, 14 Nov 2023 22:13:20 +0000\r\n"
				   "Subject: s\r\n");
}
END_TEST

START_TEST(exactly_one_relaytag_at_the_top)
{
	cfg.received = 1;
	cfg.header_tag = "app1";
	ck_assert_int_eq(run("RelayTag: old\r\nSubject: s\r\nrelaytag: older\r\n", "a@example.org"),
			 0);
	ck_assert_int_eq(strncmp(HEADER(), "RelayTag: app1\r\nReceived: ", 26), 0);
	ck_assert_ptr_null(strstr(HEADER() + 1, "elayTag: old"));
	ck_assert_ptr_null(strstr(HEADER(), "older"));
}
END_TEST

/* ---- 5. policy ---------------------------------------------------------- */

/* allowed_sender_domains: sender, list, allowed? */
static const struct {
	const char *sender;
	const char *domains;
	int status;
} policy_table[] = {
    {"app@example.com", "example.com", 0},
    {"app@host.example.com", "example.com", 0},
    {"App@EXAMPLE.COM", "example.com", 0},
    {"app@example.org", "example.com example.org", 0},
    {"app@example.org", "example.com,example.org", 0},
    {"app@notexample.com", "example.com", EX_NOPERM},
    {"root@3f2a1b9c0d1e", "example.com", 0}, /* qualified to our domain first */
    {"app@example.net", "example.com", EX_NOPERM},
};

START_TEST(sender_must_be_in_allowed_sender_domains)
{
	cfg.domain = "example.com";
	words(&cfg.allowed_sender_domains, policy_table[_i].domains);
	sub.sender = policy_table[_i].sender;
	ck_assert_int_eq(run("", "a@example.org"), policy_table[_i].status);
}
END_TEST

START_TEST(policy_refusal_names_the_sender_and_the_list)
{
	words(&cfg.allowed_sender_domains, "a.com b.com");
	sub.sender = "x@y.org";
	ck_assert_int_eq(run("", "a@example.org"), EX_NOPERM);
	ck_assert_ptr_nonnull(
	    strstr(err.text, "sender <x@y.org> is not in allowed_sender_domains (a.com, b.com)"));
}
END_TEST

START_TEST(null_sender_needs_allow_null_sender_when_a_list_is_set)
{
	words(&cfg.allowed_sender_domains, "example.com");
	sub.sender = "<>";
	ck_assert_int_eq(run("", "a@example.org"), EX_NOPERM);
	teardown();
	setup();
	words(&cfg.allowed_sender_domains, "example.com");
	cfg.allow_null_sender = 1;
	sub.sender = "<>";
	ck_assert_int_eq(run("", "a@example.org"), 0);
}
END_TEST

START_TEST(allow_empty_sender_does_not_let_the_null_sender_through_a_list)
{
	/* boky/postfix: ALLOW_EMPTY_SENDER_DOMAINS only lets the list be empty;
	 * with a list set it refuses <> (554 ... Access denied at RCPT). */
	words(&cfg.allowed_sender_domains, "example.com");
	cfg.allow_empty_sender = 1;
	sub.sender = "<>";
	ck_assert_int_eq(run("", "a@example.org"), EX_NOPERM);
	ck_assert_ptr_nonnull(strstr(err.text, "allow_null_sender"));
}
END_TEST

START_TEST(null_sender_is_fine_without_a_list)
{
	sub.sender = "";
	ck_assert_int_eq(run("", "a@example.org"), 0);
	ck_assert_str_eq(env.sender, "");
}
END_TEST

START_TEST(message_over_max_size_is_a_data_error)
{
	cfg.max_size = 20;
	ck_assert_int_eq(run("Subject: 123456789\r\n", "a@example.org"), EX_DATAERR);
	ck_assert_int_eq(strncmp(err.text, "message is 22 bytes (about ", 27), 0);
	ck_assert_ptr_nonnull(strstr(err.text, "more than max_size 20;"));
	teardown();
	setup();
	cfg.max_size = 100000;
	ck_assert_int_eq(run("Subject: 123456789\r\n", "a@example.org"), 0);
}
END_TEST

START_TEST(max_size_counts_as_the_relay_counts)
{
	/* Postfix's message_size_limit counts its queue file: envelope
	 * records and its own Received header come on top of the wire bytes. */
	cfg.max_size = 1000;
	ck_assert_int_eq(run("Subject: 123456789\r\n", "a@example.org"), EX_DATAERR);
	ck_assert_ptr_nonnull(strstr(err.text, "as the relay counts it"));
}
END_TEST

START_TEST(max_size_counts_the_rewritten_message)
{
	cfg.max_size = 30;
	cfg.header_tag = "a-rather-long-tag";
	ck_assert_int_eq(run("Subject: 123456789\r\n", "a@example.org"), EX_DATAERR);
}
END_TEST

/* ---- header injection --------------------------------------------------- */

START_TEST(line_breaks_in_f_or_F_are_refused)
{
	sub.sender = "a@example.org\nBcc: victim@example.org";
	ck_assert_int_eq(run("", "a@example.org"), EX_DATAERR);
	teardown();
	setup();
	sub.fullname = "Name\r\nBcc: victim@example.org";
	ck_assert_int_eq(run("", "a@example.org"), EX_DATAERR);
}
END_TEST

START_TEST(line_breaks_in_configured_values_are_configuration_errors)
{
	cfg.from = "a@example.org\r\nX: y";
	ck_assert_int_eq(run("", "a@example.org"), EX_CONFIG);
	cfg.from = 0;
	cfg.header_tag = "t\nX: y";
	ck_assert_int_eq(run("", "a@example.org"), EX_CONFIG);
}
END_TEST

/* ---- DSN and -bs -------------------------------------------------------- */

START_TEST(dsn_parameters_are_copied_into_the_envelope)
{
	sub.dsn_notify = "failure,delay";
	sub.dsn_ret = "hdrs";
	sub.dsn_envid = "env-1";
	ck_assert_int_eq(run("", "a@example.org"), 0);
	ck_assert_str_eq(env.dsn_notify, "failure,delay");
	ck_assert_str_eq(env.dsn_ret, "hdrs");
	ck_assert_str_eq(env.dsn_envid, "env-1");
}
END_TEST

START_TEST(redirect_header_is_folded_below_78_columns_and_counts_the_blind)
{
	struct buf to = BUF_INIT;
	const char *h, *line;

	buf_puts(&to, "To: ");
	for (int i = 0; i < 40; i++)
		buf_printf(&to, "%scustomer%02d@shop.example", i ? ", " : "", i);
	buf_puts(&to, "\r\n");
	strlist_add(&cfg.redirect_to, "qa");
	sub.extract_recipients = 1;
	ck_assert_int_eq(run(buf_cstr(&to), "blind@shop.example"), 0);
	ASSERT_RCPTS("qa@example.com");
	h = HEADER();
	line = strstr(h, "X-Original-To: customer00@shop.example, customer01@shop.example");
	ck_assert_ptr_nonnull(line);
	ck_assert_ptr_nonnull(strstr(line, "customer39@shop.example"));
	ck_assert_ptr_nonnull(strstr(line, "(1 undisclosed)\r\n"));
	for (const char *p = line; *p;) {
		const char *eol = strstr(p, "\r\n");

		ck_assert_uint_le((size_t)(eol - p), 78);
		p = eol + 2;
		if (*p != '\t')
			break;
	}
	ck_assert_ptr_null(strstr(h, "blind@"));
	buf_free(&to);
}
END_TEST

START_TEST(always_bcc_is_added_once_and_never_named)
{
	cfg.always_bcc = "archive";
	ck_assert_int_eq(run("To: a@example.org\r\n", "a@example.org archive@Example.COM"), 0);
	ASSERT_RCPTS("a@example.org archive@Example.COM");
	ck_assert_ptr_null(strstr(HEADER(), "rchive"));
	cfg.always_bcc = 0;
}
END_TEST

START_TEST(bs_mode_takes_the_envelope_from_mail_and_rcpt)
{
	sub.bs_mode = 1;
	sub.extract_recipients = 1;
	SENDER("www-data", "noreply@example.com");
	ALIAS("root", "ops@example.net");
	env.sender = strdup("webmaster@localhost");
	strlist_add(&env.rcpts, "root");
	strlist_add(&env.rcpts, "x@example.org");
	ck_assert_int_eq(run("To: other@example.org\r\nBcc: y@example.org\r\n", 0), 0);
	ck_assert_str_eq(env.sender, "webmaster@example.com");
	ASSERT_RCPTS("ops@example.net x@example.org");
	ck_assert_str_eq(HEADER(), "To: other@example.org\r\n");
}
END_TEST

/* ---- -bv ---------------------------------------------------------------- */

START_TEST(explain_shows_alias_qualification_and_masquerade)
{
	struct buf out = BUF_INIT;

	ALIAS("dev", "ops,dev@team.example.com");
	strlist_add(&cfg.masquerade_domains, "example.com");
	rewrite_explain(&cfg, "dev", &out);
	ck_assert_str_eq(buf_cstr(&out),
			 "dev: alias: ops, dev@team.example.com;"
			 " qualified (envelope recipient): ops@example.com, dev@team.example.com;"
			 " masqueraded (sender and headers): ops@example.com, dev@example.com\n");
	buf_reset(&out);
	rewrite_explain_host(&cfg, "3f2a1b9c0d1e", "www-data@3f2a1b9c0d1e", &out);
	ck_assert_str_eq(buf_cstr(&out),
			 "www-data@3f2a1b9c0d1e: alias: (none);"
			 " qualified (envelope recipient): www-data@example.com;"
			 " masqueraded (sender and headers): www-data@example.com\n");
	buf_free(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rewrite");
	TCase *tc = tcase_create("rewrite");
	SRunner *sr;
	int failed;

	/* Date headers in UTC so the expected text is fixed. */
	setenv("TZ", "UTC", 1);
	tzset();
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, f_option_gives_the_envelope_sender_qualified, 0,
			    sizeof(f_table) / sizeof(f_table[0]));
	tcase_add_test(tc, senders_entry_of_the_login_is_used_without_f);
	tcase_add_test(tc, senders_entry_also_maps_a_local_f_address);
	tcase_add_test(tc, senders_entry_rewrites_a_local_from_header_like_revaliases);
	tcase_add_test(tc, envelope_from_header_takes_the_from_address);
	tcase_add_test(tc, envelope_from_header_qualifies_a_bare_from);
	tcase_add_test(tc, envelope_from_header_without_from_uses_the_login);
	tcase_add_test(tc, envelope_from_user_ignores_the_from_header);
	tcase_add_test(tc, envelope_sender_is_masqueraded);
	tcase_add_test(tc, overwrite_from_forces_the_envelope_sender_even_over_f);
	tcase_add_test(tc, missing_domain_falls_back_to_the_host_name);
	tcase_add_test(tc, root_without_alias_is_qualified);
	tcase_add_test(tc, root_with_alias_goes_to_the_alias);
	tcase_add_test(tc, alias_to_two_addresses_fans_out);
	tcase_add_test(tc, alias_keys_ignore_case);
	tcase_add_test(tc, alias_applies_to_local_domains_too);
	tcase_add_test(tc, catch_all_takes_bare_names_without_their_own_alias);
	tcase_add_test(tc, bare_alias_target_is_qualified_not_aliased_again);
	tcase_add_test(tc, duplicates_go_domain_case_insensitive_local_part_exact);
	tcase_add_test(tc, envelope_recipients_are_not_masqueraded);
	tcase_add_test(tc, argv_recipient_with_display_name_gives_its_address);
	tcase_add_test(tc, t_adds_to_cc_and_bcc_to_argv_recipients);
	tcase_add_test(tc, t_with_resent_headers_uses_only_resent_recipients);
	tcase_add_test(tc, t_with_undisclosed_recipients_group_and_argv);
	tcase_add_test(tc, folded_to_with_50_recipients_is_extracted_and_left_untouched);
	tcase_add_test(tc, ten_thousand_recipients_in_one_to_are_fast);
	tcase_add_test(tc, the_recipient_limit_counts_after_duplicates_are_removed);
	tcase_add_test(tc, no_recipients_is_a_usage_error);
	tcase_add_test(tc, control_bytes_in_a_recipient_are_refused);
	tcase_add_test(tc, bcc_resent_bcc_and_content_length_go_even_without_t);
	tcase_add_test(tc, untouched_fields_keep_order_and_bytes);
	tcase_add_test(tc, bare_addresses_in_address_headers_are_qualified_in_place);
	tcase_add_test(tc, header_qualification_does_not_alias);
	tcase_add_test(tc, masquerade_rewrites_sender_and_recipient_headers_like_postfix);
	tcase_add_test(tc, masquerade_handles_mixed_case_domains);
	tcase_add_test(tc, masquerade_exclusion_keeps_the_domain);
	tcase_add_test(tc, group_with_comments_is_rewritten_in_place);
	tcase_add_test(tc, utf8_addresses_are_kept_and_set_smtputf8);
	tcase_add_test(tc, ascii_addresses_do_not_set_smtputf8);
	tcase_add_test(tc, overwrite_from_keeps_the_display_name_when_it_has_none);
	tcase_add_test(tc, overwrite_from_with_a_display_name_replaces_it);
	tcase_add_test(tc, sender_header_present_is_qualified_and_kept);
	tcase_add_test(tc, missing_from_date_and_message_id_are_added);
	tcase_add_test(tc, missing_from_without_full_name_is_the_bare_sender);
	tcase_add_test(tc, missing_from_with_null_sender_is_mailer_daemon);
	tcase_add_test(tc, full_name_with_specials_is_quoted);
	tcase_add_test(tc, non_ascii_full_name_is_rfc2047_encoded);
	tcase_add_test(tc, hostile_headers_never_crash_the_pipeline);
	tcase_add_test(tc, nothing_is_added_when_add_missing_headers_is_off);
	tcase_add_test(tc, message_without_any_header_gets_the_missing_ones);
	tcase_add_test(tc, received_is_prepended);
	tcase_add_test(tc, exactly_one_relaytag_at_the_top);
	tcase_add_loop_test(tc, sender_must_be_in_allowed_sender_domains, 0,
			    sizeof(policy_table) / sizeof(policy_table[0]));
	tcase_add_test(tc, policy_refusal_names_the_sender_and_the_list);
	tcase_add_test(tc, null_sender_needs_allow_null_sender_when_a_list_is_set);
	tcase_add_test(tc, allow_empty_sender_does_not_let_the_null_sender_through_a_list);
	tcase_add_test(tc, null_sender_is_fine_without_a_list);
	tcase_add_test(tc, message_over_max_size_is_a_data_error);
	tcase_add_test(tc, max_size_counts_as_the_relay_counts);
	tcase_add_test(tc, max_size_counts_the_rewritten_message);
	tcase_add_test(tc, line_breaks_in_f_or_F_are_refused);
	tcase_add_test(tc, line_breaks_in_configured_values_are_configuration_errors);
	tcase_add_test(tc, dsn_parameters_are_copied_into_the_envelope);
	tcase_add_test(tc, redirect_header_is_folded_below_78_columns_and_counts_the_blind);
	tcase_add_test(tc, always_bcc_is_added_once_and_never_named);
	tcase_add_test(tc, bs_mode_takes_the_envelope_from_mail_and_rcpt);
	tcase_add_test(tc, explain_shows_alias_qualification_and_masquerade);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
