/*++
 * NAME
 *	tls 3
 * SUMMARY
 *	OpenSSL client side: handshake, verification, I/O with deadlines
 * DESCRIPTION
 *	See tls.h. The socket stays non-blocking; every SSL call that wants
 *	to read or write is retried after poll() until the deadline.
 *--*/

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "deadline.h"
#include "tls.h"

/* ---------------------------------------------------------------- */
/* Loading OpenSSL on first use                                      */
/* ---------------------------------------------------------------- */

/*
 * libssl and libcrypto are opened with dlopen() by the first
 * tls_start(), not linked: loading and relocating libcrypto costs ~1.5 ms
 * of CPU per process (perf stat on a trivial program: 0.6 ms without it,
 * 2.0 ms with it), which is most of a whole delivery over plain SMTP.
 * Every OpenSSL function used below goes through a pointer declared
 * with the header's own prototype (__typeof__), so the compiler still
 * checks every call; the #defines after tls_load() route the names, and
 * the header macros built on them (SSL_CTX_set_mode -> SSL_CTX_ctrl...).
 */
#define TLS_STR2(x) #x
#define TLS_STR(x) TLS_STR2(x)
#define TLS_LIBSSL "libssl.so." TLS_STR(OPENSSL_VERSION_MAJOR)

#define TLS_SYMBOLS(X)                                                                             \
	X(TLS_client_method)                                                                       \
	X(SSL_CTX_new)                                                                             \
	X(SSL_CTX_free)                                                                            \
	X(SSL_CTX_ctrl)                                                                            \
	X(SSL_CTX_set_verify)                                                                      \
	X(SSL_CTX_load_verify_locations)                                                           \
	X(SSL_CTX_set_default_verify_dir)                                                          \
	X(SSL_CTX_use_certificate_chain_file)                                                      \
	X(SSL_CTX_use_PrivateKey_file)                                                             \
	X(SSL_CTX_check_private_key)                                                               \
	X(SSL_new)                                                                                 \
	X(SSL_free)                                                                                \
	X(SSL_set_fd)                                                                              \
	X(SSL_ctrl)                                                                                \
	X(SSL_set1_host)                                                                           \
	X(SSL_get0_param)                                                                          \
	X(SSL_connect)                                                                             \
	X(SSL_get_error)                                                                           \
	X(SSL_read)                                                                                \
	X(SSL_write)                                                                               \
	X(SSL_shutdown)                                                                            \
	X(SSL_is_init_finished)                                                                    \
	X(SSL_get_verify_result)                                                                   \
	X(SSL_get1_peer_certificate)                                                               \
	X(SSL_get_version)                                                                         \
	X(SSL_get_current_cipher)                                                                  \
	X(SSL_CIPHER_get_name)                                                                     \
	X(X509_VERIFY_PARAM_set1_ip_asc)                                                           \
	X(X509_verify_cert_error_string)                                                           \
	X(X509_digest)                                                                             \
	X(X509_free)                                                                               \
	X(EVP_sha256)                                                                              \
	X(ERR_get_error)                                                                           \
	X(ERR_peek_error)                                                                          \
	X(ERR_peek_last_error)                                                                     \
	X(ERR_clear_error)                                                                         \
	X(ERR_reason_error_string)

#define TLS_DECLARE(name) static __typeof__(&name) dl_##name;
TLS_SYMBOLS(TLS_DECLARE)

#define TLS_NAME(name) #name,
#define TLS_SLOT(name) (void *)&dl_##name,
static const char *const tls_names[] = {TLS_SYMBOLS(TLS_NAME)};
static void *const tls_slots[] = {TLS_SYMBOLS(TLS_SLOT)};

/* tls_load - open libssl (and with it libcrypto) once; 0 or err filled */

static int tls_load(struct error *err)
{
	static int state; /* 0 not tried, 1 loaded, -1 failed (why says why) */
	static char why[256];

	if (state == 0)
		state =
		    util_dl_open(TLS_LIBSSL, RTLD_LAZY | RTLD_LOCAL, tls_names, tls_slots,
				 sizeof(tls_names) / sizeof(tls_names[0]), why, sizeof(why)) == 0
			? 1
			: -1;
	if (state > 0)
		return 0;
	/* Temporary: the message is kept (queued) while someone fixes the install. */
	err->temporary = 1;
	return error_set(err, EX_TEMPFAIL, "TLS is not available: %s", why);
}

#define TLS_client_method dl_TLS_client_method
#define SSL_CTX_new dl_SSL_CTX_new
#define SSL_CTX_free dl_SSL_CTX_free
#define SSL_CTX_ctrl dl_SSL_CTX_ctrl
#define SSL_CTX_set_verify dl_SSL_CTX_set_verify
#define SSL_CTX_load_verify_locations dl_SSL_CTX_load_verify_locations
#define SSL_CTX_set_default_verify_dir dl_SSL_CTX_set_default_verify_dir
#define SSL_CTX_use_certificate_chain_file dl_SSL_CTX_use_certificate_chain_file
#define SSL_CTX_use_PrivateKey_file dl_SSL_CTX_use_PrivateKey_file
#define SSL_CTX_check_private_key dl_SSL_CTX_check_private_key
#define SSL_new dl_SSL_new
#define SSL_free dl_SSL_free
#define SSL_set_fd dl_SSL_set_fd
#define SSL_ctrl dl_SSL_ctrl
#define SSL_set1_host dl_SSL_set1_host
#define SSL_get0_param dl_SSL_get0_param
#define SSL_connect dl_SSL_connect
#define SSL_get_error dl_SSL_get_error
#define SSL_read dl_SSL_read
#define SSL_write dl_SSL_write
#define SSL_shutdown dl_SSL_shutdown
#define SSL_is_init_finished dl_SSL_is_init_finished
#define SSL_get_verify_result dl_SSL_get_verify_result
#define SSL_get1_peer_certificate dl_SSL_get1_peer_certificate
#define SSL_get_version dl_SSL_get_version
#define SSL_get_current_cipher dl_SSL_get_current_cipher
#define SSL_CIPHER_get_name dl_SSL_CIPHER_get_name
#define X509_VERIFY_PARAM_set1_ip_asc dl_X509_VERIFY_PARAM_set1_ip_asc
#define X509_verify_cert_error_string dl_X509_verify_cert_error_string
#define X509_digest dl_X509_digest
#define X509_free dl_X509_free
#define EVP_sha256 dl_EVP_sha256
#define ERR_get_error dl_ERR_get_error
#define ERR_peek_error dl_ERR_peek_error
#define ERR_peek_last_error dl_ERR_peek_last_error
#define ERR_clear_error dl_ERR_clear_error
#define ERR_reason_error_string dl_ERR_reason_error_string

/* ---------------------------------------------------------------- */
/* The client                                                        */
/* ---------------------------------------------------------------- */

struct tls_conn {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	int verified;
	int fingerprint_checked;
};

/* tls_verify_wanted - does the configuration ask for certificate verification */

int tls_verify_wanted(const struct config *cfg)
{
	if (cfg->tls_verify >= 0)
		return cfg->tls_verify;
	return cfg->tls == TLS_STARTTLS || cfg->tls == TLS_IMPLICIT;
}

/*
 * tls_required_by - the setting that forbids plain text, or NULL. A pin or
 * an explicit tls_verify = yes is a promise about the relay's identity that
 * a plain-text session cannot keep, so with tls = may they make TLS
 * mandatory too (Postfix's "secure" and "verify" levels are never
 * opportunistic either).
 */
const char *tls_required_by(const struct config *cfg)
{
	switch (cfg->tls) {
	case TLS_NONE:
		return 0;
	case TLS_STARTTLS:
		return "tls = starttls";
	case TLS_IMPLICIT:
		return "tls = tls";
	default:
		break;
	}
	if (cfg->has_tls_fingerprint)
		return "tls_fingerprint";
	if (tls_verify_wanted(cfg))
		return "tls_verify = yes";
	return 0;
}

/* openssl_reason - the most useful text of OpenSSL's error queue */

static const char *openssl_reason(unsigned long e)
{
	const char *r = e ? ERR_reason_error_string(e) : 0;

	return r ? r : "unknown error";
}

/* is_ip_literal - host is an IPv4 or IPv6 address */

static int is_ip_literal(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* accept_any - verify callback for the fingerprint pin: the pin decides */

static int accept_any(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;
}

/* min_version - tls_min_version (12 = "1.2") as an OpenSSL protocol version */

static int min_version(int v)
{
	switch (v) {
	case 10:
		return TLS1_VERSION;
	case 11:
		return TLS1_1_VERSION;
	case 13:
		return TLS1_3_VERSION;
	default:
		return TLS1_2_VERSION;
	}
}

/* setup_ctx - the SSL_CTX for one connection */

static int setup_ctx(struct tls_conn *t, const struct config *cfg, int verify, struct error *err)
{
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (t->ctx == 0) {
		err->temporary = 1;
		return error_set(err, EX_TEMPFAIL, "cannot initialise TLS: %s",
				 openssl_reason(ERR_get_error()));
	}
	SSL_CTX_set_min_proto_version(t->ctx, min_version(cfg->tls_min_version));
	/* Our writes go through a retry loop with the same buffer. */
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (cfg->tls_cert_file || cfg->tls_key_file) {
		const char *cert = cfg->tls_cert_file ? cfg->tls_cert_file : cfg->tls_key_file;
		const char *key = cfg->tls_key_file ? cfg->tls_key_file : cfg->tls_cert_file;

		if (access(cert, R_OK) != 0)
			return error_set(err, EX_CONFIG, "cannot read tls_cert_file %s: %s", cert,
					 strerror(errno));
		if (access(key, R_OK) != 0)
			return error_set(err, EX_CONFIG, "cannot read tls_key_file %s: %s", key,
					 strerror(errno));
		if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1)
			return error_set(err, EX_CONFIG, "cannot load tls_cert_file %s: %s", cert,
					 openssl_reason(ERR_get_error()));
		if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1)
			return error_set(err, EX_CONFIG, "cannot load tls_key_file %s: %s", key,
					 openssl_reason(ERR_get_error()));
		if (SSL_CTX_check_private_key(t->ctx) != 1)
			return error_set(err, EX_CONFIG,
					 "tls_key_file %s does not match tls_cert_file %s", key,
					 cert);
	}
	if (cfg->has_tls_fingerprint) {
		/* The pin replaces chain verification; checked after the handshake. */
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, accept_any);
		return 0;
	}
	if (!verify) {
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, 0);
		return 0;
	}
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, 0);
	if (cfg->tls_ca_file) {
		if (access(cfg->tls_ca_file, R_OK) != 0)
			return error_set(err, EX_CONFIG, "cannot read tls_ca_file %s: %s",
					 cfg->tls_ca_file, strerror(errno));
		if (SSL_CTX_load_verify_locations(t->ctx, cfg->tls_ca_file, 0) != 1)
			return error_set(err, EX_CONFIG, "cannot load tls_ca_file %s: %s",
					 cfg->tls_ca_file, openssl_reason(ERR_get_error()));
	} else if (SSL_CTX_set_default_verify_dir(t->ctx) != 1) {
		/*
		 * The hashed directory (/etc/ssl/certs, or SSL_CERT_DIR): OpenSSL
		 * looks up the one issuer it needs by subject hash, instead of
		 * parsing the whole bundle up front as set_default_verify_paths()
		 * would (~50 ms per process).
		 */
		return error_set(err, EX_CONFIG, "cannot use the system CA directory: %s",
				 openssl_reason(ERR_get_error()));
	}
	return 0;
}

/* verify_text - why the certificate was not accepted, in words */

static void verify_text(struct buf *out, long v, const char *host)
{
	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		buf_puts(out, "certificate has expired");
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		buf_puts(out, "certificate is not yet valid");
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		buf_printf(out, "host name mismatch: certificate is not valid for %s", host);
		break;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		buf_puts(out, "self-signed certificate (not in tls_ca_file or the system store)");
		break;
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		buf_puts(out, "unknown CA (the issuer is not in tls_ca_file or the system store)");
		break;
	default:
		buf_puts(out, X509_verify_cert_error_string(v));
		break;
	}
}

/* hex_fingerprint - "AB:CD:..." */

static void hex_fingerprint(struct buf *out, const unsigned char *md, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		buf_printf(out, "%s%02X", i ? ":" : "", md[i]);
}

/* check_fingerprint - compare the server certificate with the pin */

static int check_fingerprint(struct tls_conn *t, const struct config *cfg, struct error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	X509 *cert = SSL_get1_peer_certificate(t->ssl);
	struct buf b = BUF_INIT;

	err->temporary = 1;
	if (cert == 0)
		return error_set(
		    err, EX_TEMPFAIL,
		    "TLS certificate of the relay not accepted: no certificate presented");
	if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32) {
		X509_free(cert);
		return error_set(err, EX_TEMPFAIL,
				 "TLS: cannot compute the certificate fingerprint");
	}
	X509_free(cert);
	if (memcmp(md, cfg->tls_fingerprint, 32) == 0) {
		err->temporary = 0;
		t->verified = 1;
		t->fingerprint_checked = 1;
		return 0;
	}
	hex_fingerprint(&b, md, n);
	error_set(err, EX_TEMPFAIL,
		  "TLS certificate of the relay not accepted: fingerprint mismatch "
		  "(relay presented SHA-256 %s, tls_fingerprint differs)",
		  buf_cstr(&b));
	buf_free(&b);
	return EX_TEMPFAIL;
}

/* ssl_wait - poll for what SSL wants; 0 ok, else err filled */

static int ssl_wait(struct tls_conn *t, int sslerr, long long deadline, struct error *err)
{
	int r = deadline_wait(t->fd, sslerr == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline);

	err->temporary = 1;
	if (r == 0)
		return error_set(err, EX_TEMPFAIL, "timed out");
	if (r < 0)
		return error_set(err, EX_TEMPFAIL, "poll: %s", strerror(errno));
	err->temporary = 0;
	return 0;
}

/* handshake_failed - the error text for a failed SSL_connect */

static int handshake_failed(struct tls_conn *t, int sslerr, const char *host, struct error *err)
{
	long v = SSL_get_verify_result(t->ssl);
	unsigned long e = ERR_peek_last_error();
	struct buf b = BUF_INIT;

	err->temporary = 1;
	if (v != X509_V_OK && !t->fingerprint_checked &&
	    ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		verify_text(&b, v, host);
		error_set(err, EX_TEMPFAIL, "TLS certificate of the relay not accepted: %s",
			  buf_cstr(&b));
		buf_free(&b);
	} else if (sslerr == SSL_ERROR_SYSCALL && e == 0) {
		error_set(err, EX_TEMPFAIL, "TLS handshake with the relay failed: %s",
			  errno ? strerror(errno) : "connection closed by the relay");
	} else {
		error_set(err, EX_TEMPFAIL, "TLS handshake with the relay failed: %s",
			  openssl_reason(e));
	}
	ERR_clear_error();
	return EX_TEMPFAIL;
}

/* tls_start - client handshake on a connected socket */

int tls_start(struct tls_conn **out, int fd, const struct config *cfg, const char *host,
	      long long deadline, struct error *err)
{
	struct tls_conn *t = util_calloc(1, sizeof(*t));
	int verify = tls_verify_wanted(cfg);
	int status;

	*out = 0;
	t->fd = fd;
	if ((status = tls_load(err)) != 0) {
		free(t);
		return status;
	}
	ERR_clear_error();
	if ((status = setup_ctx(t, cfg, verify, err)) != 0)
		goto fail;
	t->ssl = SSL_new(t->ctx);
	if (t->ssl == 0 || SSL_set_fd(t->ssl, fd) != 1) {
		err->temporary = 1;
		status = error_set(err, EX_TEMPFAIL, "cannot initialise TLS: %s",
				   openssl_reason(ERR_get_error()));
		goto fail;
	}
	if (is_ip_literal(host)) {
		if (verify && !cfg->has_tls_fingerprint)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
	} else {
		SSL_set_tlsext_host_name(t->ssl, host);
		if (verify && !cfg->has_tls_fingerprint)
			SSL_set1_host(t->ssl, host);
	}
	for (;;) {
		int r = SSL_connect(t->ssl);
		int e;

		if (r == 1)
			break;
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if ((status = ssl_wait(t, e, deadline, err)) != 0) {
				error_set(err, EX_TEMPFAIL,
					  "TLS handshake with the relay failed: timed out");
				goto fail;
			}
			continue;
		}
		status = handshake_failed(t, e, host, err);
		goto fail;
	}
	if (cfg->has_tls_fingerprint) {
		if ((status = check_fingerprint(t, cfg, err)) != 0)
			goto fail;
	} else if (verify) {
		/* SSL_VERIFY_PEER already failed the handshake otherwise. */
		t->verified = SSL_get_verify_result(t->ssl) == X509_V_OK;
	}
	*out = t;
	return 0;

fail:
	tls_close(t);
	return status;
}

/* tls_read - read up to n bytes; 0 = closed by the peer */

ssize_t tls_read(struct tls_conn *t, void *p, size_t n, long long deadline, struct error *err)
{
	for (;;) {
		int r = SSL_read(t->ssl, p, n > 0x40000000 ? 0x40000000 : (int)n);
		int e;

		if (r > 0)
			return r;
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (ssl_wait(t, e, deadline, err) != 0)
				return -1;
			continue;
		}
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)
			return 0;
		if (e == SSL_ERROR_SSL &&
		    ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return 0;
		}
		err->temporary = 1;
		error_set(err, EX_TEMPFAIL, "TLS read error: %s",
			  e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0
			      ? strerror(errno)
			      : openssl_reason(ERR_peek_error()));
		ERR_clear_error();
		return -1;
	}
}

/* tls_write - write all n bytes */

int tls_write(struct tls_conn *t, const void *p, size_t n, long long deadline, struct error *err)
{
	const char *cp = p;

	while (n > 0) {
		int chunk = n > 0x40000000 ? 0x40000000 : (int)n;
		int r = SSL_write(t->ssl, cp, chunk);
		int e;

		if (r > 0) {
			cp += r;
			n -= (size_t)r;
			continue;
		}
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (ssl_wait(t, e, deadline, err) != 0)
				return err->status;
			continue;
		}
		err->temporary = 1;
		error_set(err, EX_TEMPFAIL, "TLS write error: %s",
			  e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0
			      ? (errno == EPIPE || errno == 0 ? "connection closed by the relay"
							      : strerror(errno))
			      : openssl_reason(ERR_peek_error()));
		ERR_clear_error();
		return EX_TEMPFAIL;
	}
	return 0;
}

/* tls_verified - was the relay's identity verified */

int tls_verified(const struct tls_conn *t)
{
	return t && t->verified;
}

/* tls_describe - protocol, cipher and verification state, for -v and --relay-check */

void tls_describe(const struct tls_conn *t, struct buf *out)
{
	buf_printf(out, "%s %s, ", SSL_get_version(t->ssl),
		   SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl)));
	if (t->fingerprint_checked)
		buf_puts(out, "certificate matches tls_fingerprint");
	else if (t->verified)
		buf_puts(out, "certificate verified");
	else
		buf_puts(out, "certificate not verified");
}

/* tls_close - send close_notify (no wait) and free */

void tls_close(struct tls_conn *t)
{
	if (t == 0)
		return;
	if (t->ssl) {
		/* One non-blocking attempt; the relay's answer is not worth a wait. */
		if (SSL_is_init_finished(t->ssl))
			(void)SSL_shutdown(t->ssl);
		SSL_free(t->ssl);
	}
	if (t->ctx)
		SSL_CTX_free(t->ctx);
	free(t);
}
