/*
 * test_tls - which settings forbid a plain-text relay session (tls_required_by),
 * and the client handshake against an in-process OpenSSL server on loopback:
 * chain and name verification, the fingerprint pin, failures and timeouts
 */

#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "deadline.h"
#include "tls.h"

static struct config cfg;
static struct error err;

static void setup(void)
{
	config_init(&cfg);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(config_set(&cfg, "relay", "host", "relay.test", &err), 0);
}

static void teardown(void)
{
	config_free(&cfg);
}

/* set - one [relay] key; the configuration is finished by required() */

static void set(const char *key, const char *value)
{
	ck_assert_msg(config_set(&cfg, "relay", key, value, &err) == 0, "%s", err.text);
}

/* required - tls_required_by() of the finished configuration, "" for NULL */

static const char *required(void)
{
	const char *r;

	ck_assert_msg(config_finish(&cfg, &err) == 0, "%s", err.text);
	r = tls_required_by(&cfg);
	return r ? r : "";
}

static const char pin[] = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
			  "AB:CD:EF:01:23:45:67:89";

START_TEST(may_alone_is_opportunistic)
{
	set("tls", "may");
	ck_assert_str_eq(required(), "");
}
END_TEST

START_TEST(none_is_plain_text)
{
	set("tls", "none");
	ck_assert_str_eq(required(), "");
}
END_TEST

START_TEST(may_with_a_pin_is_mandatory)
{
	set("tls", "may");
	set("tls_fingerprint", pin);
	ck_assert_str_eq(required(), "tls_fingerprint");
}
END_TEST

START_TEST(may_with_verify_yes_is_mandatory)
{
	set("tls", "may");
	set("tls_verify", "yes");
	ck_assert_str_eq(required(), "tls_verify = yes");
}
END_TEST

START_TEST(may_with_verify_no_stays_opportunistic)
{
	set("tls", "may");
	set("tls_verify", "no");
	ck_assert_str_eq(required(), "");
}
END_TEST

START_TEST(starttls_and_tls_name_the_level)
{
	set("tls", "starttls");
	set("tls_fingerprint", pin);
	ck_assert_str_eq(required(), "tls = starttls");
	config_free(&cfg);
	setup();
	set("tls", "tls");
	ck_assert_str_eq(required(), "tls = tls");
}
END_TEST

/*
 * The handshake tests. Each builds its certificates in a fresh directory
 * (self-signed, so each is its own trust anchor in tls_ca_file) and runs
 * one server connection in a thread; the client side is tls.c exactly as
 * the SMTP client uses it.
 */

enum server_mode {
	GREET,	/* handshake, "220 ready", read one line, "221 bye", close_notify */
	SILENT, /* accept the TCP connection, never answer the ClientHello */
	QUIET,	/* handshake, then send nothing until the client closes */
	HANGUP, /* handshake, then close_notify at once */
};

struct server {
	int listener;
	unsigned port;
	enum server_mode mode;
	SSL_CTX *ctx;
	pthread_t thread;
	int joined;
	char got[256]; /* the client's line (GREET) */
};

static char dir[64];
static EVP_PKEY *key;
static X509 *relay_cert;    /* CN relay.test, DNS:relay.test, IP:127.0.0.1 */
static X509 *other_cert;    /* an unrelated self-signed certificate */
static X509 *expired_cert;  /* like relay_cert, expired an hour ago */
static char relay_pem[128]; /* the files of the three */
static char other_pem[128];
static char expired_pem[128];
static struct server srv;
static struct tls_conn *conn;
static int fd = -1;

/* make_cert - a self-signed certificate for key, valid from..until seconds from now */

static X509 *make_cert(const char *cn, const char *san, long from, long until)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), until);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, 0, 0, 0);
	ext = X509V3_EXT_conf_nid(0, &v3, NID_subject_alt_name, san);
	ck_assert_ptr_nonnull(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ck_assert_int_ne(X509_sign(x, key, EVP_sha256()), 0);
	return x;
}

/* write_pem - x to dir/name; its path in path */

static void write_pem(X509 *x, const char *name, char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509(f, x), 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* fingerprint - "AB:CD:..." SHA-256 of x, the tls_fingerprint syntax */

static void fingerprint(X509 *x, char *out, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	size_t len = 0;

	ck_assert_int_eq(X509_digest(x, EVP_sha256(), md, &n), 1);
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%02X", i ? ":" : "", md[i]);
}

/* serve - the server's one connection, in its own thread */

static void *serve(void *arg)
{
	struct server *s = arg;
	int c = accept(s->listener, 0, 0);
	SSL *ssl;
	char b[256];
	int n;

	if (c < 0)
		return 0;
	if (s->mode == SILENT) {
		while (read(c, b, sizeof(b)) > 0)
			;
		close(c);
		return 0;
	}
	ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, c);
	if (SSL_accept(ssl) == 1) {
		if (s->mode == GREET) {
			SSL_write(ssl, "220 ready\r\n", 11);
			n = SSL_read(ssl, s->got, sizeof(s->got) - 1);
			s->got[n > 0 ? n : 0] = 0;
			SSL_write(ssl, "221 bye\r\n", 9);
		} else if (s->mode == QUIET) {
			while (SSL_read(ssl, b, sizeof(b)) > 0)
				;
		}
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	close(c);
	return 0;
}

/* start_server - a loopback TLS server presenting cert, one connection */

static void start_server(X509 *cert, enum server_mode mode)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	srv.mode = mode;
	srv.ctx = SSL_CTX_new(TLS_server_method());
	ck_assert_int_eq(SSL_CTX_use_certificate(srv.ctx, cert), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey(srv.ctx, key), 1);
	srv.listener = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(srv.listener, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(srv.listener, 4), 0);
	ck_assert_int_eq(getsockname(srv.listener, (struct sockaddr *)&sin, &len), 0);
	srv.port = ntohs(sin.sin_port);
	ck_assert_int_eq(pthread_create(&srv.thread, 0, serve, &srv), 0);
}

/* start - connect to the server and run tls_start() for host */

static int start(const char *host, long long timeout_ms)
{
	struct sockaddr_in sin;

	ck_assert_msg(config_finish(&cfg, &err) == 0, "%s", err.text);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(srv.port);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return tls_start(&conn, fd, &cfg, host, deadline_now_ms() + timeout_ms, &err);
}

/*
 * Certificates once per test case, in the Check parent (unchecked fixture):
 * its teardown runs even when a test fails in its child, so no directory
 * is left behind.
 */
static void certs_setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(key);
	relay_cert = make_cert("relay.test", "DNS:relay.test,IP:127.0.0.1", -3600, 86400);
	other_cert = make_cert("other.test", "DNS:other.test", -3600, 86400);
	expired_cert = make_cert("relay.test", "DNS:relay.test", -86400, -3600);
	write_pem(relay_cert, "relay.pem", relay_pem, sizeof(relay_pem));
	write_pem(other_cert, "other.pem", other_pem, sizeof(other_pem));
	write_pem(expired_cert, "expired.pem", expired_pem, sizeof(expired_pem));
}

static void certs_teardown(void)
{
	unlink(relay_pem);
	unlink(other_pem);
	unlink(expired_pem);
	rmdir(dir);
	X509_free(relay_cert);
	X509_free(other_cert);
	X509_free(expired_cert);
	EVP_PKEY_free(key);
}

static void tls_setup(void)
{
	/*
	 * Either side may write to a connection the other has dropped (an
	 * alert, close_notify): net_connect() ignores SIGPIPE before any TLS
	 * in sendmail, and so does this test.
	 */
	signal(SIGPIPE, SIG_IGN);
	setup();
	memset(&srv, 0, sizeof(srv));
	srv.listener = -1;
	conn = 0;
	fd = -1;
}

static void tls_teardown(void)
{
	tls_close(conn);
	conn = 0;
	if (fd >= 0)
		close(fd);
	if (srv.ctx) {
		if (!srv.joined)
			pthread_join(srv.thread, 0);
		close(srv.listener);
		SSL_CTX_free(srv.ctx);
	}
	teardown();
}

/* read_all - tls_read() until want has arrived (or fail) */

static void read_all(char *b, size_t size, const char *want)
{
	size_t have = 0;

	while (have < strlen(want)) {
		ssize_t n =
		    tls_read(conn, b + have, size - 1 - have, deadline_now_ms() + 5000, &err);

		ck_assert_msg(n > 0, "tls_read: %zd %s", n, err.text);
		have += (size_t)n;
		b[have] = 0;
	}
	ck_assert_str_eq(b, want);
}

START_TEST(a_certificate_in_tls_ca_file_is_verified)
{
	struct buf d = BUF_INIT;
	char b[64];

	set("tls", "tls");
	set("tls_ca_file", relay_pem);
	start_server(relay_cert, GREET);
	ck_assert_msg(start("relay.test", 5000) == 0, "%s", err.text);
	ck_assert_int_eq(tls_verified(conn), 1);
	read_all(b, sizeof(b), "220 ready\r\n");
	ck_assert_int_eq(tls_write(conn, "QUIT\r\n", 6, deadline_now_ms() + 5000, &err), 0);
	read_all(b, sizeof(b), "221 bye\r\n");
	tls_describe(conn, &d);
	ck_assert_msg(strstr(buf_cstr(&d), "TLSv1.") == buf_cstr(&d), "%s", buf_cstr(&d));
	ck_assert_msg(strstr(buf_cstr(&d), ", certificate verified") != 0, "%s", buf_cstr(&d));
	buf_free(&d);
	tls_close(conn);
	conn = 0;
	pthread_join(srv.thread, 0);
	srv.joined = 1;
	ck_assert_str_eq(srv.got, "QUIT\r\n");
}
END_TEST

START_TEST(an_address_literal_is_checked_against_the_ip_addresses)
{
	set("tls", "tls");
	set("tls_ca_file", relay_pem);
	start_server(relay_cert, QUIET);
	ck_assert_msg(start("127.0.0.1", 5000) == 0, "%s", err.text);
	ck_assert_int_eq(tls_verified(conn), 1);
}
END_TEST

START_TEST(another_host_name_is_refused)
{
	set("tls", "tls");
	set("tls_ca_file", relay_pem);
	start_server(relay_cert, QUIET);
	ck_assert_int_eq(start("mail.example.org", 5000), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_str_eq(err.text, "TLS certificate of the relay not accepted: host name mismatch: "
				   "certificate is not valid for mail.example.org");
	ck_assert_ptr_null(conn);
}
END_TEST

START_TEST(another_address_is_refused)
{
	set("tls", "tls");
	set("tls_ca_file", relay_pem);
	start_server(relay_cert, QUIET);
	ck_assert_int_eq(start("127.0.0.2", 5000), EX_TEMPFAIL);
	ck_assert_str_eq(err.text, "TLS certificate of the relay not accepted: host name mismatch: "
				   "certificate is not valid for 127.0.0.2");
}
END_TEST

START_TEST(a_certificate_not_in_tls_ca_file_is_refused)
{
	set("tls", "starttls");
	set("tls_ca_file", other_pem);
	start_server(relay_cert, QUIET);
	ck_assert_int_eq(start("relay.test", 5000), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_str_eq(err.text, "TLS certificate of the relay not accepted: self-signed "
				   "certificate (not in tls_ca_file or the system store)");
}
END_TEST

START_TEST(an_expired_certificate_is_refused)
{
	set("tls", "tls");
	set("tls_ca_file", expired_pem);
	start_server(expired_cert, QUIET);
	ck_assert_int_eq(start("relay.test", 5000), EX_TEMPFAIL);
	ck_assert_str_eq(err.text,
			 "TLS certificate of the relay not accepted: certificate has expired");
}
END_TEST

START_TEST(a_matching_pin_replaces_chain_verification)
{
	char fp[128];

	/* Neither the CA file nor the name fit: the pin alone is the trust anchor. */
	fingerprint(relay_cert, fp, sizeof(fp));
	set("tls", "tls");
	set("tls_ca_file", other_pem);
	set("tls_fingerprint", fp);
	start_server(relay_cert, QUIET);
	ck_assert_msg(start("mail.example.org", 5000) == 0, "%s", err.text);
	ck_assert_int_eq(tls_verified(conn), 1);
}
END_TEST

START_TEST(a_pin_mismatch_is_refused_and_shows_the_presented_fingerprint)
{
	char fp[128];
	char want[512];

	fingerprint(other_cert, fp, sizeof(fp));
	set("tls", "may");
	set("tls_ca_file", relay_pem);
	set("tls_fingerprint", fp);
	start_server(relay_cert, QUIET);
	ck_assert_int_eq(start("relay.test", 5000), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	fingerprint(relay_cert, fp, sizeof(fp));
	snprintf(want, sizeof(want),
		 "TLS certificate of the relay not accepted: fingerprint mismatch "
		 "(relay presented SHA-256 %s, tls_fingerprint differs)",
		 fp);
	ck_assert_str_eq(err.text, want);
	ck_assert_ptr_null(conn);
}
END_TEST

START_TEST(may_accepts_an_unverified_certificate_and_says_so)
{
	struct buf d = BUF_INIT;

	set("tls", "may");
	set("tls_ca_file", other_pem);
	start_server(relay_cert, QUIET);
	ck_assert_msg(start("relay.test", 5000) == 0, "%s", err.text);
	ck_assert_int_eq(tls_verified(conn), 0);
	tls_describe(conn, &d);
	ck_assert_msg(strstr(buf_cstr(&d), ", certificate not verified") != 0, "%s", buf_cstr(&d));
	buf_free(&d);
}
END_TEST

START_TEST(a_silent_server_times_the_handshake_out)
{
	long long t0 = deadline_now_ms();

	set("tls", "tls");
	set("tls_ca_file", relay_pem);
	start_server(relay_cert, SILENT);
	ck_assert_int_eq(start("relay.test", 150), EX_TEMPFAIL);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_str_eq(err.text, "TLS handshake with the relay failed: timed out");
	ck_assert_int_ge(deadline_now_ms() - t0, 150);
	ck_assert_int_lt(deadline_now_ms() - t0, 2000);
	shutdown(fd, SHUT_RDWR);
}
END_TEST

START_TEST(a_quiet_server_times_the_read_out)
{
	char b[16];
	long long t0;

	set("tls", "tls");
	set("tls_ca_file", relay_pem);
	start_server(relay_cert, QUIET);
	ck_assert_msg(start("relay.test", 5000) == 0, "%s", err.text);
	t0 = deadline_now_ms();
	ck_assert_int_eq(tls_read(conn, b, sizeof(b), t0 + 100, &err), -1);
	ck_assert_int_eq(err.temporary, 1);
	ck_assert_str_eq(err.text, "timed out");
	ck_assert_int_ge(deadline_now_ms() - t0, 100);
	ck_assert_int_lt(deadline_now_ms() - t0, 2000);
}
END_TEST

START_TEST(a_close_notify_reads_as_0)
{
	char b[16];

	set("tls", "tls");
	set("tls_ca_file", relay_pem);
	start_server(relay_cert, HANGUP);
	ck_assert_msg(start("relay.test", 5000) == 0, "%s", err.text);
	ck_assert_int_eq(tls_read(conn, b, sizeof(b), deadline_now_ms() + 5000, &err), 0);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("required");
	TCase *hs = tcase_create("handshake");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, may_alone_is_opportunistic);
	tcase_add_test(tc, none_is_plain_text);
	tcase_add_test(tc, may_with_a_pin_is_mandatory);
	tcase_add_test(tc, may_with_verify_yes_is_mandatory);
	tcase_add_test(tc, may_with_verify_no_stays_opportunistic);
	tcase_add_test(tc, starttls_and_tls_name_the_level);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(hs, certs_setup, certs_teardown);
	tcase_add_checked_fixture(hs, tls_setup, tls_teardown);
	tcase_set_timeout(hs, 15);
	tcase_add_test(hs, a_certificate_in_tls_ca_file_is_verified);
	tcase_add_test(hs, an_address_literal_is_checked_against_the_ip_addresses);
	tcase_add_test(hs, another_host_name_is_refused);
	tcase_add_test(hs, another_address_is_refused);
	tcase_add_test(hs, a_certificate_not_in_tls_ca_file_is_refused);
	tcase_add_test(hs, an_expired_certificate_is_refused);
	tcase_add_test(hs, a_matching_pin_replaces_chain_verification);
	tcase_add_test(hs, a_pin_mismatch_is_refused_and_shows_the_presented_fingerprint);
	tcase_add_test(hs, may_accepts_an_unverified_certificate_and_says_so);
	tcase_add_test(hs, a_silent_server_times_the_handshake_out);
	tcase_add_test(hs, a_quiet_server_times_the_read_out);
	tcase_add_test(hs, a_close_notify_reads_as_0);
	suite_add_tcase(s, hs);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
