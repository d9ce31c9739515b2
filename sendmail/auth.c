/*++
 * NAME
 *	auth 3
 * SUMMARY
 *	SMTP AUTH client side: Cyrus SASL mechanisms plus XOAUTH2
 * DESCRIPTION
 *	See auth.h. Cyrus SASL is driven through its interaction prompts
 *	instead of callbacks, so no static state is needed for the
 *	credentials; the prompt results point into the session, which
 *	outlives every sasl_client_* call.
 *--*/

#include <ctype.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include <dlfcn.h>
#include <sasl/sasl.h>

#include "auth.h"

/*
 * libsasl2 is opened with dlopen() when AUTH is first needed, not
 * linked: most deliveries (to a relay on the container network) never
 * authenticate, and every library loaded at exec costs start-up time
 * (tls.c has the measurements). Calls go through pointers typed from
 * the header's prototypes, so they stay checked. Base64 is done here
 * rather than with OpenSSL for the same reason.
 */
#define AUTH_STR2(x) #x
#define AUTH_STR(x) AUTH_STR2(x)
#define AUTH_LIBSASL "libsasl2.so." AUTH_STR(SASL_VERSION_MAJOR)

#define SASL_SYMBOLS(X)                                                                            \
	X(sasl_client_init)                                                                        \
	X(sasl_client_new)                                                                         \
	X(sasl_setprop)                                                                            \
	X(sasl_client_start)                                                                       \
	X(sasl_client_step)                                                                        \
	X(sasl_dispose)                                                                            \
	X(sasl_errdetail)                                                                          \
	X(sasl_errstring)

#define SASL_DECLARE(name) static __typeof__(&name) dl_##name;
SASL_SYMBOLS(SASL_DECLARE)

#define SASL_NAME(name) #name,
#define SASL_SLOT(name) (void *)&dl_##name,
static const char *const sasl_names[] = {SASL_SYMBOLS(SASL_NAME)};
static void *const sasl_slots[] = {SASL_SYMBOLS(SASL_SLOT)};

/* sasl_load - open libsasl2 once; 0 or err filled */

static int sasl_load(struct error *err)
{
	static int state; /* 0 not tried, 1 loaded, -1 failed (why says why) */
	static char why[256];

	/* RTLD_GLOBAL: the mechanism plugins it loads may look for its symbols. */
	if (state == 0)
		state =
		    util_dl_open(AUTH_LIBSASL, RTLD_LAZY | RTLD_GLOBAL, sasl_names, sasl_slots,
				 sizeof(sasl_names) / sizeof(sasl_names[0]), why, sizeof(why)) == 0
			? 1
			: -1;
	if (state > 0)
		return 0;
	return error_set(err, EX_UNAVAILABLE, "SASL is not available: %s", why);
}

#define sasl_client_init dl_sasl_client_init
#define sasl_client_new dl_sasl_client_new
#define sasl_setprop dl_sasl_setprop
#define sasl_client_start dl_sasl_client_start
#define sasl_client_step dl_sasl_client_step
#define sasl_dispose dl_sasl_dispose
#define sasl_errdetail dl_sasl_errdetail
#define sasl_errstring dl_sasl_errstring

#define AUTH_TOKEN_MAX 65536 /* an OAuth2 access token is a few KiB at most */

struct auth_session {
	const struct config *cfg;
	char *mech;
	int xoauth2;
	sasl_conn_t *conn;
	struct buf initial; /* base64 initial response */
	int has_initial;
};

/* auth_may_send_credentials - verified TLS, loopback, or explicit consent */

int auth_may_send_credentials(int tls_verified, int peer_loopback, int auth_insecure)
{
	return tls_verified || peer_loopback || auth_insecure;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* auth_base64_encode - append base64 without line breaks */

void auth_base64_encode(struct buf *out, const void *p, size_t n)
{
	const unsigned char *in = p;
	size_t i;

	if (n > ((size_t)-1) / 2)
		util_oom();
	buf_reserve(out, (n + 2) / 3 * 4);
	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		buf_putc(out, b64_alphabet[v >> 18]);
		buf_putc(out, b64_alphabet[(v >> 12) & 63]);
		buf_putc(out, b64_alphabet[(v >> 6) & 63]);
		buf_putc(out, b64_alphabet[v & 63]);
	}
	if (i < n) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);

		buf_putc(out, b64_alphabet[v >> 18]);
		buf_putc(out, b64_alphabet[(v >> 12) & 63]);
		buf_putc(out, i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=');
		buf_putc(out, '=');
	}
	if (out->data == 0)
		buf_reserve(out, 0);
	out->data[out->len] = 0;
}

/* b64_value - the 6-bit value of a base64 character, -1 if none */

static int b64_value(unsigned char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : 0;

	return p ? (int)(p - b64_alphabet) : -1;
}

/* auth_base64_decode - append decoded bytes; -1 on malformed input */

int auth_base64_decode(struct buf *out, const char *p, size_t n)
{
	size_t pad = 0;

	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	if (n == 0)
		return 0;
	if (n % 4 != 0)
		return -1;
	if (p[n - 1] == '=')
		pad = p[n - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int last = i + 4 == n;

		for (int k = 0; k < 4; k++) {
			v[k] = b64_value((unsigned char)p[i + k]);
			if (v[k] < 0 && !(last && k >= 4 - (int)pad))
				return -1;
		}
		buf_putc(out, (char)(v[0] << 2 | v[1] >> 4));
		if (!(last && pad == 2))
			buf_putc(out, (char)((v[1] & 15) << 4 | v[2] >> 2));
		if (!(last && pad >= 1))
			buf_putc(out, (char)((v[2] & 3) << 6 | v[3]));
	}
	return 0;
}

/* auth_xoauth2_response - the base64 XOAUTH2 initial response */

void auth_xoauth2_response(struct buf *out, const char *user, const char *token)
{
	struct buf raw = BUF_INIT;

	buf_printf(&raw, "user=%s\001auth=Bearer %s\001\001", user, token);
	auth_base64_encode(out, raw.data, raw.len);
	/* The token is a secret: do not leave it in freed memory. */
	explicit_bzero(raw.data, raw.len);
	buf_free(&raw);
}

/* next_word - the next token separated by spaces or commas */

static const char *next_word(const char *s, size_t *len)
{
	while (*s == ' ' || *s == ',' || *s == '\t')
		s++;
	*len = strcspn(s, " ,\t");
	return *len ? s : 0;
}

/* word_in_list - is the token (len bytes) in the list, case-insensitive */

static int word_in_list(const char *list, const char *w, size_t wlen)
{
	const char *t;
	size_t tlen;

	for (t = next_word(list, &tlen); t; t = next_word(t + tlen, &tlen))
		if (tlen == wlen && strncasecmp(t, w, wlen) == 0)
			return 1;
	return 0;
}

/* auth_choose_mechanisms - offered intersected with wanted, in the relay's order */

int auth_choose_mechanisms(const char *offered, const char *wanted, struct buf *out)
{
	const char *t;
	size_t tlen;
	int n = 0;

	for (t = next_word(offered, &tlen); t; t = next_word(t + tlen, &tlen)) {
		if (wanted && !word_in_list(wanted, t, tlen))
			continue;
		if (n++)
			buf_putc(out, ' ');
		for (size_t i = 0; i < tlen; i++)
			buf_putc(out, toupper((unsigned char)t[i]));
	}
	return n;
}

/* read_token - the XOAUTH2 bearer token, re-read at every use */

static int read_token(const struct config *cfg, struct buf *tok, struct error *err)
{
	int fd;

	if (cfg->password_file == 0) {
		if (cfg->password == 0)
			return error_set(err, EX_CONFIG,
					 "XOAUTH2 needs a token in password_file or password");
		buf_puts(tok, cfg->password);
		return 0;
	}
	fd = open(cfg->password_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, EX_CONFIG, "cannot read password_file %s: %s",
				 cfg->password_file, strerror(errno));
	for (;;) {
		ssize_t r;

		buf_reserve(tok, 4096);
		r = read(fd, tok->data + tok->len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			close(fd);
			return error_set(err, EX_CONFIG, "cannot read password_file %s: %s",
					 cfg->password_file, strerror(e));
		}
		if (r == 0)
			break;
		tok->len += (size_t)r;
		tok->data[tok->len] = 0;
		if (tok->len > AUTH_TOKEN_MAX) {
			close(fd);
			return error_set(err, EX_CONFIG,
					 "password_file %s is too big for a bearer token",
					 cfg->password_file);
		}
	}
	close(fd);
	while (tok->len > 0 && isspace((unsigned char)tok->data[tok->len - 1]))
		tok->len--;
	if (tok->data)
		tok->data[tok->len] = 0;
	if (tok->len == 0)
		return error_set(err, EX_CONFIG, "password_file %s is empty", cfg->password_file);
	return 0;
}

/* fill_prompts - answer Cyrus SASL's interaction prompts from the configuration */

static void fill_prompts(const struct auth_session *a, sasl_interact_t *p)
{
	for (; p && p->id != SASL_CB_LIST_END; p++) {
		const char *v;

		switch (p->id) {
		case SASL_CB_AUTHNAME:
			v = a->cfg->username;
			break;
		case SASL_CB_PASS:
			v = a->cfg->password ? a->cfg->password : "";
			break;
		case SASL_CB_USER:
			/* Empty authorisation id: act as the authenticated user. */
			v = "";
			break;
		default:
			v = p->defresult ? p->defresult : "";
			break;
		}
		p->result = v;
		p->len = (unsigned)strlen(v);
	}
}

/* sasl_text - the SASL error for a message (never contains secrets) */

static const char *sasl_text(sasl_conn_t *conn, int r)
{
	const char *d = conn ? sasl_errdetail(conn) : 0;

	return d && *d ? d : sasl_errstring(r, 0, 0);
}

/*
 * Callbacks listed without a procedure tell Cyrus SASL that we answer
 * those prompts through SASL_INTERACT; without the list it finds "no
 * worthy mechs" at all.
 */
static sasl_callback_t prompt_callbacks[] = {
    {SASL_CB_USER, 0, 0},     {SASL_CB_AUTHNAME, 0, 0}, {SASL_CB_PASS, 0, 0},
    {SASL_CB_GETREALM, 0, 0}, {SASL_CB_LIST_END, 0, 0},
};

/* start_sasl - Cyrus SASL client start over mechs */

static int start_sasl(struct auth_session *a, const char *mechs, const char *host,
		      const char *offered, struct error *err)
{
	static int sasl_ready;
	sasl_security_properties_t sp;
	sasl_interact_t *prompts = 0;
	const char *out = 0;
	unsigned outlen = 0;
	const char *mech = 0;
	int r;

	if ((r = sasl_load(err)) != 0)
		return r;
	if (!sasl_ready) {
		r = sasl_client_init(0);
		if (r != SASL_OK)
			return error_set(err, EX_UNAVAILABLE, "cannot initialise SASL: %s",
					 sasl_errstring(r, 0, 0));
		sasl_ready = 1;
	}
	r = sasl_client_new("smtp", host, 0, 0, prompt_callbacks, 0, &a->conn);
	if (r != SASL_OK)
		return error_set(err, EX_UNAVAILABLE, "cannot start SASL: %s",
				 sasl_errstring(r, 0, 0));
	memset(&sp, 0, sizeof(sp));
	sp.min_ssf = 0;
	sp.max_ssf = 0; /* no SASL security layer: TLS protects the session */
	sp.maxbufsize = 0;
	sp.security_flags = SASL_SEC_NOANONYMOUS;
	sasl_setprop(a->conn, SASL_SEC_PROPS, &sp);
	do {
		r = sasl_client_start(a->conn, mechs, &prompts, &out, &outlen, &mech);
		if (r == SASL_INTERACT)
			fill_prompts(a, prompts);
	} while (r == SASL_INTERACT);
	if (r == SASL_NOMECH)
		return error_set(err, EX_UNAVAILABLE,
				 "relay offers AUTH %s; none of it is provided by libsasl2's "
				 "plugins (install libsasl2-modules, or set auth_mechanisms)",
				 offered);
	if (r != SASL_OK && r != SASL_CONTINUE)
		return error_set(err, EX_UNAVAILABLE, "SASL %s: %s", mech ? mech : mechs,
				 sasl_text(a->conn, r));
	a->mech = util_strdup(mech);
	if (out) {
		a->has_initial = 1;
		auth_base64_encode(&a->initial, out, outlen);
	}
	return 0;
}

/* auth_start - choose the mechanism and compute the initial response */

int auth_start(struct auth_session **out, const struct config *cfg, const char *offered,
	       const char *host, struct error *err)
{
	struct auth_session *a = util_calloc(1, sizeof(*a));
	struct buf mechs = BUF_INIT;
	int status = 0;

	*out = 0;
	a->cfg = cfg;
	if (auth_choose_mechanisms(offered, cfg->auth_mechanisms, &mechs) == 0) {
		status = error_set(err, EX_UNAVAILABLE,
				   "relay offers AUTH %s; none of auth_mechanisms (%s)", offered,
				   cfg->auth_mechanisms);
		goto done;
	}
	if (cfg->auth_mechanisms && word_in_list(mechs.data, "XOAUTH2", 7)) {
		struct buf tok = BUF_INIT;

		a->xoauth2 = 1;
		a->mech = util_strdup("XOAUTH2");
		status = read_token(cfg, &tok, err);
		if (status == 0) {
			auth_xoauth2_response(&a->initial, cfg->username, buf_cstr(&tok));
			a->has_initial = 1;
		}
		if (tok.data)
			explicit_bzero(tok.data, tok.cap);
		buf_free(&tok);
		goto done;
	}
	status = start_sasl(a, mechs.data, host, offered, err);

done:
	buf_free(&mechs);
	if (status) {
		auth_free(a);
		return status;
	}
	*out = a;
	return 0;
}

/* auth_mechanism - the chosen mechanism name */

const char *auth_mechanism(const struct auth_session *a)
{
	return a->mech;
}

/* auth_initial - the initial response, if any */

int auth_initial(const struct auth_session *a, struct buf *out)
{
	if (!a->has_initial)
		return 0;
	if (a->initial.len == 0)
		buf_putc(out, '='); /* RFC 4954: "=" is an empty initial response */
	else
		buf_append(out, a->initial.data, a->initial.len);
	return 1;
}

/* auth_step - answer one 334 challenge */

int auth_step(struct auth_session *a, const char *challenge, size_t len, struct buf *out,
	      struct error *err)
{
	struct buf in = BUF_INIT;
	sasl_interact_t *prompts = 0;
	const char *resp = 0;
	unsigned resplen = 0;
	int r;

	if (a->xoauth2)
		/* A 334 here carries a JSON error; RFC 7628 style: answer empty, get 535. */
		return 0;
	if (auth_base64_decode(&in, challenge, len) < 0) {
		buf_free(&in);
		return error_set(err, EX_UNAVAILABLE, "malformed base64 in the AUTH %s challenge",
				 a->mech);
	}
	do {
		r = sasl_client_step(a->conn, in.data ? in.data : "", (unsigned)in.len, &prompts,
				     &resp, &resplen);
		if (r == SASL_INTERACT)
			fill_prompts(a, prompts);
	} while (r == SASL_INTERACT);
	buf_free(&in);
	if (r != SASL_OK && r != SASL_CONTINUE)
		return error_set(err, EX_UNAVAILABLE, "SASL %s: %s", a->mech,
				 sasl_text(a->conn, r));
	if (resp)
		auth_base64_encode(out, resp, resplen);
	return 0;
}

/* auth_free - release the session */

void auth_free(struct auth_session *a)
{
	if (a == 0)
		return;
	if (a->conn)
		sasl_dispose(&a->conn);
	free(a->mech);
	if (a->initial.data)
		explicit_bzero(a->initial.data, a->initial.cap);
	buf_free(&a->initial);
	free(a);
}
