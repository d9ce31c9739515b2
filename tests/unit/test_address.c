/* test_address - RFC 5322 address lists, qualification and masquerading */

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "address.h"

static struct address_list list;

static void teardown(void)
{
	address_list_free(&list);
}

/* parse - parse a C string into the global list */

static void parse(const char *value)
{
	address_list_free(&list);
	address_parse_list(&list, value, strlen(value));
}

/* specs - every mailbox's addr-spec joined by "|", groups as "[name:" and "]" */

static char *specs(void)
{
	struct buf out = BUF_INIT;

	for (size_t i = 0; i < list.n; i++) {
		const struct address *a = list.v + i;

		if (out.len)
			buf_putc(&out, '|');
		if (a->kind == ADDRESS_GROUP_START)
			buf_printf(&out, "[%s:", a->display_name ? a->display_name : "");
		else if (a->kind == ADDRESS_GROUP_END)
			buf_puts(&out, "]");
		else
			buf_puts(&out, a->addr_spec);
	}
	return buf_steal(&out);
}

/* The parser: input value -> mailboxes ("|"-joined), first display name. */
static const struct {
	const char *value;
	const char *specs;
	const char *display; /* of the first element, NULL = none */
} parse_table[] = {
    {"a@example.com", "a@example.com", 0},
    {" root", "root", 0},
    {"root (Cron Daemon)", "root", 0},
    {"Full Name <u@example.com>", "u@example.com", "Full Name"},
    {"\"Doe, John\" <john@example.com>, jane@example.com", "john@example.com|jane@example.com",
     "Doe, John"},
    {"\"quoted \\\"inner\\\" name\" <q@example.com>", "q@example.com", "quoted \"inner\" name"},
    {" a@x.example,\r\n\tb@y.example ,\r\n c@z.example", "a@x.example|b@y.example|c@z.example", 0},
    {"undisclosed-recipients:;", "[undisclosed-recipients:|]", "undisclosed-recipients"},
    {"Team (the (nested) team): a@x.example (Alice), \"B\" <b@y.example>;, c@z.example",
     "[Team:|a@x.example|b@y.example|]|c@z.example", "Team"},
    {"<@relay1.example,@relay2.example:user@c.example>", "user@c.example", 0},
    {"<>", "", 0},
    {"\"j\\\"d\"@example.com", "\"j\\\"d\"@example.com", 0},
    {"john . doe @ example . com", "john.doe@example.com", 0},
    {"Jöhn Dœ <jöhn@exämple.com>", "jöhn@exämple.com", "Jöhn Dœ"},
    {"=?UTF-8?B?SsO2aG4=?= <j@example.com>", "j@example.com", "=?UTF-8?B?SsO2aG4=?="},
    {"user@[192.0.2.1]", "user@[192.0.2.1]", 0},
    {",,a@example.com,,", "a@example.com", 0},
    {"\"unterminated <a@example.com>", "\"unterminated <a@example.com>", 0},
    {"<a@example.com, b@example.com", "a@example.com|b@example.com", 0},
    {"team: a@example.com", "[team:|a@example.com|]", "team"},
    {"\"fold\r\n ed\"@example.com", "\"fold ed\"@example.com", 0},
    {"", "", 0},
    {"(just a comment)", "", 0},
    {"a@example.com; b@example.com", "a@example.com|b@example.com", 0},
    {"g: a@x.example; b@y.example", "[g:|a@x.example|]|b@y.example", "g"},
    {"Name<a@example.com>", "a@example.com", "Name"},
    {"a@b.example <c@d.example>", "c@d.example", "a@b.example"},
};

START_TEST(parse_list_gives_mailboxes_groups_and_display_names)
{
	char *got;

	parse(parse_table[_i].value);
	got = specs();
	ck_assert_msg(strcmp(got, parse_table[_i].specs) == 0, "%s: got \"%s\", want \"%s\"",
		      parse_table[_i].value, got, parse_table[_i].specs);
	free(got);
	if (parse_table[_i].display) {
		ck_assert_uint_gt(list.n, 0);
		ck_assert_ptr_nonnull(list.v[0].display_name);
		ck_assert_str_eq(list.v[0].display_name, parse_table[_i].display);
	} else if (list.n) {
		ck_assert_ptr_null(list.v[0].display_name);
	}
}
END_TEST

START_TEST(spec_offsets_point_at_the_address_as_written)
{
	const char *v = " \"A, B\" <a@Example.COM> (c), root (Cron Daemon)";

	parse(v);
	ck_assert_uint_eq(list.n, 2);
	ck_assert_int_eq(strncmp(v + list.v[0].spec_off, "a@Example.COM", list.v[0].spec_len), 0);
	ck_assert_uint_eq(list.v[0].spec_len, strlen("a@Example.COM"));
	ck_assert_int_eq(list.v[0].angle, 1);
	ck_assert_int_eq(strncmp(v + list.v[1].spec_off, "root", list.v[1].spec_len), 0);
	ck_assert_uint_eq(list.v[1].spec_len, 4);
	ck_assert_int_eq(list.v[1].angle, 0);
}
END_TEST

START_TEST(nested_comments_10000_deep_are_skipped_without_recursion)
{
	size_t depth = 10000;
	char *v = malloc(2 * depth + 32);
	char *p = v;

	for (size_t i = 0; i < depth; i++)
		*p++ = '(';
	for (size_t i = 0; i < depth; i++)
		*p++ = ')';
	strcpy(p, " a@example.com");
	parse(v);
	ck_assert_uint_eq(list.n, 1);
	ck_assert_str_eq(list.v[0].addr_spec, "a@example.com");

	/* Never closed: the rest of the value is comment. */
	memset(v, '(', 2 * depth);
	strcpy(v + 2 * depth, "a@example.com");
	parse(v);
	ck_assert_uint_eq(list.n, 0);
	free(v);
}
END_TEST

START_TEST(ten_thousand_recipients_parse_in_linear_time)
{
	struct buf v = BUF_INIT;
	clock_t t0;

	for (int i = 0; i < 10000; i++)
		buf_printf(&v, "%s\"User %d\" <user%d@example.com>", i ? ",\r\n " : "", i, i);
	t0 = clock();
	address_parse_list(&list, v.data, v.len);
	ck_assert_uint_eq(list.n, 10000);
	ck_assert_str_eq(list.v[9999].addr_spec, "user9999@example.com");
	ck_assert_msg(clock() - t0 < CLOCKS_PER_SEC / 2, "parsing took %ld ticks",
		      (long)(clock() - t0));
	buf_free(&v);
}
END_TEST

START_TEST(hostile_bytes_never_crash)
{
	unsigned seed = 12345;
	char v[512];

	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rand_r(&seed) % sizeof(v));

		for (size_t i = 0; i < n; i++) {
			static const char alphabet[] = "<>@,;:.()\"[]\\ \r\nab\x80\xff";

			v[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		}
		address_list_free(&list);
		address_parse_list(&list, v, n);
		for (size_t i = 0; i < list.n; i++)
			if (list.v[i].kind == ADDRESS_MAILBOX)
				ck_assert_uint_le(list.v[i].spec_off + list.v[i].spec_len, n);
	}
}
END_TEST

/* Formatting: value -> re-formatted list. */
static const struct {
	const char *value;
	const char *formatted;
} format_table[] = {
    {"a@example.com", "a@example.com"},
    {"John Doe <j@example.com>", "John Doe <j@example.com>"},
    {"\"Doe, John\" <j@example.com>", "\"Doe, John\" <j@example.com>"},
    {"\"Dr. Who\" <who@example.com>", "\"Dr. Who\" <who@example.com>"},
    {"undisclosed-recipients:;", "undisclosed-recipients:;"},
    {"team: a@x.example, b@y.example;, c@z.example",
     "team: a@x.example, b@y.example;, c@z.example"},
    {"<>", "<>"},
    {"\"a \\\"b\\\"\" <ab@example.com>", "\"a \\\"b\\\"\" <ab@example.com>"},
};

START_TEST(format_list_quotes_only_what_needs_quoting)
{
	struct buf out = BUF_INIT;

	parse(format_table[_i].value);
	address_format_list(&out, &list);
	ck_assert_str_eq(buf_cstr(&out), format_table[_i].formatted);
	buf_free(&out);
}
END_TEST

START_TEST(bare_and_domain_respect_quoted_at_signs)
{
	ck_assert_int_eq(address_is_bare("root"), 1);
	ck_assert_int_eq(address_is_bare("\"a@b\""), 1);
	ck_assert_int_eq(address_is_bare("\"a@b\"@c.example"), 0);
	ck_assert_str_eq(address_domain("\"a@b\"@c.example"), "c.example");
	ck_assert_ptr_null(address_domain("root"));
	ck_assert_uint_eq(address_local_len("\"a@b\"@c.example"), 5);
	ck_assert_uint_eq(address_local_len("root"), 4);
}
END_TEST

START_TEST(qualify_appends_the_domain_to_bare_names_only)
{
	char *s;

	s = address_qualify("root", "example.com");
	ck_assert_str_eq(s, "root@example.com");
	free(s);
	s = address_qualify("a@b.example", "example.com");
	ck_assert_str_eq(s, "a@b.example");
	free(s);
	s = address_qualify("", "example.com");
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

/* Subdomain matching for allowed_sender_domains. */
static const struct {
	const char *domain, *parent;
	int match;
} domain_table[] = {
    {"example.com", "example.com", 1},
    {"EXAMPLE.com", "example.COM", 1},
    {"host.example.com", "example.com", 1},
    {"a.b.example.com", "example.com", 1},
    {"notexample.com", "example.com", 0},
    {"example.com", "host.example.com", 0},
    {"example.com.evil", "example.com", 0},
    {"host.example.com", ".example.com", 1},
    {"example.com", "", 0},
};

START_TEST(domain_matches_itself_and_subdomains_ignoring_case)
{
	ck_assert_int_eq(address_domain_matches(domain_table[_i].domain, domain_table[_i].parent),
			 domain_table[_i].match);
}
END_TEST

START_TEST(equal_compares_local_parts_exactly_and_domains_without_case)
{
	ck_assert_int_eq(address_equal("a@Example.COM", "a@example.com"), 1);
	ck_assert_int_eq(address_equal("A@example.com", "a@example.com"), 0);
	ck_assert_int_eq(address_equal("root", "root"), 1);
	ck_assert_int_eq(address_equal("root", "root@example.com"), 0);
}
END_TEST

/*
 * masquerade_domains: the examples of Postfix ADDRESS_REWRITING_README
 * ("masquerade_domains = foo.example.com example.com", "!" exclusions)
 * and boky/postfix's README (MASQUERADED_DOMAINS=example.com).
 */
static const struct {
	const char *domains; /* space separated */
	const char *in;
	const char *out; /* NULL = unchanged */
} masq_table[] = {
    {"example.com", "user@host.example.com", "user@example.com"},
    {"example.com", "user@any.thing.example.com", "user@example.com"},
    {"example.com", "user@example.com", 0},
    {"example.com", "user@notexample.com", 0},
    {"example.com", "user@example.org", 0},
    {"example.com", "root", 0},
    {"foo.example.com example.com", "user@any.thing.foo.example.com", "user@foo.example.com"},
    {"foo.example.com example.com", "user@any.thing.else.example.com", "user@example.com"},
    {"foo.example.com example.com", "user@foo.example.com", 0},
    {"example.com foo.example.com", "user@any.thing.foo.example.com", "user@example.com"},
    {"!sub.example.com example.com", "user@sub.example.com", 0},
    {"!sub.example.com example.com", "user@host.sub.example.com", 0},
    {"!sub.example.com example.com", "user@host.example.com", "user@example.com"},
    {"!!example.com", "user@host.example.com", "user@example.com"},
    {"example.com", "User@Mail.EXAMPLE.COM", "User@example.com"},
    {"EXAMPLE.COM", "user@mail.example.com", "user@example.com"},
    {"example.com", "\"a@b\"@host.example.com", "\"a@b\"@example.com"},
    {"exämple.com", "jöhn@mail.exämple.com", "jöhn@exämple.com"},
    {"", "user@host.example.com", 0},
};

START_TEST(masquerade_follows_postfix_semantics)
{
	struct strlist domains = STRLIST_INIT;
	char *copy = strdup(masq_table[_i].domains);
	char *save = 0;
	char *got;

	for (char *d = strtok_r(copy, " ", &save); d; d = strtok_r(0, " ", &save))
		strlist_add(&domains, d);
	got = address_masquerade(masq_table[_i].in, &domains);
	if (masq_table[_i].out == 0)
		ck_assert_msg(got == 0, "%s with %s: got %s, want unchanged", masq_table[_i].in,
			      masq_table[_i].domains, got);
	else
		ck_assert_msg(got && strcmp(got, masq_table[_i].out) == 0, "%s with %s: got %s",
			      masq_table[_i].in, masq_table[_i].domains, got ? got : "(unchanged)");
	free(got);
	free(copy);
	strlist_free(&domains);
}
END_TEST

START_TEST(first_spec_takes_the_first_mailbox_of_any_form)
{
	char *s;

	s = address_first_spec("Name <a@example.com>, b@example.com");
	ck_assert_str_eq(s, "a@example.com");
	free(s);
	s = address_first_spec("<b@example.com>");
	ck_assert_str_eq(s, "b@example.com");
	free(s);
	ck_assert_ptr_null(address_first_spec("empty-group:;"));
}
END_TEST

START_TEST(encoded_phrase_is_ascii_as_is_and_rfc2047_otherwise)
{
	struct buf out = BUF_INIT;

	address_encode_phrase(&out, "Cron Daemon");
	ck_assert_str_eq(buf_cstr(&out), "Cron Daemon");
	buf_reset(&out);
	address_encode_phrase(&out, "J\xc3\xb6hn");
	ck_assert_str_eq(buf_cstr(&out), "=?UTF-8?B?SsO2aG4=?=");
	buf_free(&out);
}
END_TEST

START_TEST(long_encoded_phrase_is_split_into_short_words_on_character_boundaries)
{
	struct buf name = BUF_INIT;
	struct buf out = BUF_INIT;
	char *copy;
	char *save = 0;
	int words = 0;

	for (int i = 0; i < 100; i++)
		buf_puts(&name, "\xc3\xa9"); /* e-acute, 2 bytes */
	address_encode_phrase(&out, buf_cstr(&name));
	copy = strdup(buf_cstr(&out));
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(0, " ", &save)) {
		ck_assert_uint_le(strlen(w), 75);
		ck_assert_int_eq(strncmp(w, "=?UTF-8?B?", 10), 0);
		/* 44 bytes = 22 whole characters per word: never a split character. */
		ck_assert_uint_eq((strlen(w) - 12) % 4, 0);
		words++;
	}
	ck_assert_int_eq(words, 5);
	free(copy);
	buf_free(&name);
	buf_free(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("address");
	TCase *tc = tcase_create("address");
	SRunner *sr;
	int failed;

	/* 20 000 hostile rounds take seconds under SAN=1 on a loaded machine; Check's
	 * default of 4 s made make check SAN=1 fail for nothing. */
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, 0, teardown);
	tcase_add_loop_test(tc, parse_list_gives_mailboxes_groups_and_display_names, 0,
			    sizeof(parse_table) / sizeof(parse_table[0]));
	tcase_add_test(tc, spec_offsets_point_at_the_address_as_written);
	tcase_add_test(tc, nested_comments_10000_deep_are_skipped_without_recursion);
	tcase_add_test(tc, ten_thousand_recipients_parse_in_linear_time);
	tcase_add_test(tc, hostile_bytes_never_crash);
	tcase_add_loop_test(tc, format_list_quotes_only_what_needs_quoting, 0,
			    sizeof(format_table) / sizeof(format_table[0]));
	tcase_add_test(tc, bare_and_domain_respect_quoted_at_signs);
	tcase_add_test(tc, qualify_appends_the_domain_to_bare_names_only);
	tcase_add_loop_test(tc, domain_matches_itself_and_subdomains_ignoring_case, 0,
			    sizeof(domain_table) / sizeof(domain_table[0]));
	tcase_add_test(tc, equal_compares_local_parts_exactly_and_domains_without_case);
	tcase_add_loop_test(tc, masquerade_follows_postfix_semantics, 0,
			    sizeof(masq_table) / sizeof(masq_table[0]));
	tcase_add_test(tc, first_spec_takes_the_first_mailbox_of_any_form);
	tcase_add_test(tc, encoded_phrase_is_ascii_as_is_and_rfc2047_otherwise);
	tcase_add_test(tc, long_encoded_phrase_is_split_into_short_words_on_character_boundaries);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
