#ifndef RELAYSHIM_TLS_H
#define RELAYSHIM_TLS_H

/*++
 * NAME
 *	tls 3h
 * SUMMARY
 *	OpenSSL client side: handshake, verification, I/O with deadlines
 * SYNOPSIS
 *	#include "tls.h"
 *
 *	int	tls_start(struct tls_conn **out, int fd, const struct config *cfg,
 *			const char *host, long long deadline, struct error *err);
 *	ssize_t	tls_read(struct tls_conn *t, void *p, size_t n, long long deadline,
 *			struct error *err);
 *	int	tls_write(struct tls_conn *t, const void *p, size_t n,
 *			long long deadline, struct error *err);
 *	int	tls_verified(const struct tls_conn *t);
 *	void	tls_describe(const struct tls_conn *t, struct buf *out);
 *	void	tls_close(struct tls_conn *t);
 *	int	tls_verify_wanted(const struct config *cfg);
 *	const char *tls_required_by(const struct config *cfg);
 * DESCRIPTION
 *	Nothing here runs unless TLS is used: OpenSSL initialises itself on
 *	the first tls_start(), so tls = none (or may without STARTTLS on
 *	offer) never pays for it.
 *
 *	tls_start() runs the client handshake on the connected non-blocking
 *	socket fd for the relay named host (name or address literal, used
 *	for SNI - names only - and for the certificate check).
 *	Verification (tls_verify_wanted(): tls_verify, else yes for
 *	starttls and tls, no for may) checks the chain against tls_ca_file
 *	or, by default, the hashed directory /etc/ssl/certs: OpenSSL then
 *	reads only the one CA file it needs instead of parsing the whole
 *	bundle (~50 ms per process). The host name is checked with
 *	SSL_set1_host(), an address literal against the certificate's IP
 *	addresses. With tls_fingerprint set the SHA-256 of the server
 *	certificate must match, and a match replaces chain verification
 *	(msmtp's tls_fingerprint semantics: the pin is the trust anchor).
 *	tls_cert_file and tls_key_file present a client certificate;
 *	tls_min_version sets the lowest protocol version.
 *
 *	tls_required_by() names the setting that makes TLS mandatory
 *	("tls = starttls", "tls = tls", "tls_fingerprint", "tls_verify =
 *	yes"), or returns NULL when plain text is allowed (tls = none, and
 *	tls = may with neither a pin nor tls_verify = yes). The SMTP client
 *	never falls back to plain text when it names one.
 *
 *	tls_read() returns bytes read (>0), or 0 when the relay closed the
 *	connection, or -1 with err filled. tls_write() writes all n bytes.
 *	tls_verified() says whether the peer was verified (chain + name, or
 *	the pin). tls_describe() appends e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384,
 *	certificate verified". tls_close() sends close_notify without
 *	waiting and frees everything; it accepts NULL.
 *
 *	libssl and libcrypto are not linked but opened with dlopen() on the
 *	first tls_start(): loading libcrypto costs ~1.5 ms of CPU per
 *	process, most of a plain-SMTP delivery.
 * DIAGNOSTICS
 *	EX_TEMPFAIL, temporary: libssl cannot be loaded ("TLS is not
 *	available: cannot load libssl.so.3: ..."), handshake failure ("TLS handshake with the
 *	relay failed: <OpenSSL reason>"), verification failure ("TLS
 *	certificate of the relay not accepted: certificate has expired" /
 *	"host name mismatch: certificate is not valid for X" / "unknown CA
 *	(not in tls_ca_file or the system store)" / "self-signed certificate"
 *	/ "fingerprint mismatch: ..."), timeouts. EX_CONFIG: tls_ca_file,
 *	tls_cert_file or tls_key_file cannot be loaded.
 *--*/

#include <sys/types.h>

#include "buf.h"
#include "config.h"
#include "util.h"

struct tls_conn;

int tls_start(struct tls_conn **out, int fd, const struct config *cfg, const char *host,
	      long long deadline, struct error *err);
ssize_t tls_read(struct tls_conn *t, void *p, size_t n, long long deadline, struct error *err);
int tls_write(struct tls_conn *t, const void *p, size_t n, long long deadline, struct error *err);
int tls_verified(const struct tls_conn *t);
void tls_describe(const struct tls_conn *t, struct buf *out);
void tls_close(struct tls_conn *t);
int tls_verify_wanted(const struct config *cfg);
const char *tls_required_by(const struct config *cfg);

#endif
