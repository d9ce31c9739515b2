#ifndef RELAYSHIM_AUTH_H
#define RELAYSHIM_AUTH_H

/*++
 * NAME
 *	auth 3h
 * SUMMARY
 *	SMTP AUTH client side: Cyrus SASL mechanisms plus XOAUTH2
 * SYNOPSIS
 *	#include "auth.h"
 *
 *	int	auth_may_send_credentials(int tls_verified, int peer_loopback,
 *			int auth_insecure);
 *	int	auth_start(struct auth_session **out, const struct config *cfg,
 *			const char *offered, const char *host, struct error *err);
 *	const char *auth_mechanism(const struct auth_session *a);
 *	int	auth_initial(const struct auth_session *a, struct buf *out);
 *	int	auth_step(struct auth_session *a, const char *challenge, size_t len,
 *			struct buf *out, struct error *err);
 *	void	auth_free(struct auth_session *a);
 *
 *	void	auth_base64_encode(struct buf *out, const void *p, size_t n);
 *	int	auth_base64_decode(struct buf *out, const char *p, size_t n);
 *	void	auth_xoauth2_response(struct buf *out, const char *user,
 *			const char *token);
 *	int	auth_choose_mechanisms(const char *offered, const char *wanted,
 *			struct buf *out);
 * DESCRIPTION
 *	auth_may_send_credentials() is the rule of relayshim.conf(5)
 *	[relay] auth_insecure: credentials go only
 *	over TLS whose peer was verified, to a loopback address, or when
 *	auth_insecure = yes. Returns non-zero when sending is allowed.
 *
 *	auth_start() picks the mechanism: the relay's offer (the AUTH
 *	keyword of EHLO, space separated) intersected with auth_mechanisms
 *	when set. XOAUTH2 is used only when auth_mechanisms names it (it is
 *	a bearer-token scheme, the token read from password_file at every
 *	use so an external refresher can rotate it, else password).
 *	Everything else goes to Cyrus SASL (initialised here, on first use
 *	only), which picks the strongest mechanism its plugins provide
 *	(PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1/256 with
 *	libsasl2-modules), without a SASL security layer (TLS does that).
 *	auth_mechanism() names the chosen mechanism. auth_initial() appends
 *	the base64 initial response for "AUTH MECH <resp>" and returns 1, or
 *	returns 0 when there is none ("=" stands for an empty one, RFC 4954).
 *	auth_step() takes a 334 challenge (base64, as the relay sent it) and
 *	appends the base64 response to out.
 *
 *	auth_choose_mechanisms() is the pure intersection (upper-cased,
 *	space separated, in the relay's order), returning the number found.
 *	auth_base64_decode() returns 0, or -1 on malformed input.
 *	libsasl2 is opened with dlopen() by the first auth_start() that
 *	needs it, not linked (start-up time, see tls.h); base64 is built in.
 *	auth_xoauth2_response() appends base64 of
 *	"user=<user>\x01auth=Bearer <token>\x01\x01".
 * DIAGNOSTICS
 *	EX_UNAVAILABLE: no mechanism in common ("relay offers AUTH X Y;
 *	none usable ..."), a SASL failure. EX_CONFIG: the XOAUTH2 token file
 *	cannot be read. Never a secret in a message.
 *--*/

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "util.h"

struct auth_session;

int auth_may_send_credentials(int tls_verified, int peer_loopback, int auth_insecure);
int auth_start(struct auth_session **out, const struct config *cfg, const char *offered,
	       const char *host, struct error *err);
const char *auth_mechanism(const struct auth_session *a);
int auth_initial(const struct auth_session *a, struct buf *out);
int auth_step(struct auth_session *a, const char *challenge, size_t len, struct buf *out,
	      struct error *err);
void auth_free(struct auth_session *a);

void auth_base64_encode(struct buf *out, const void *p, size_t n);
int auth_base64_decode(struct buf *out, const char *p, size_t n);
void auth_xoauth2_response(struct buf *out, const char *user, const char *token);
int auth_choose_mechanisms(const char *offered, const char *wanted, struct buf *out);

#endif
