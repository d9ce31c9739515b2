/*++
 * NAME
 *	endpoint 3
 * SUMMARY
 *	loopback endpoint lists ([shim] intercept, -bd listen addresses)
 * SYNOPSIS
 *	#include "endpoint.h"
 * DESCRIPTION
 *	See endpoint.h. This is its own module so that the configuration
 *	check of [shim] intercept and the -bd daemon share one syntax
 *	without config depending on the server.
 * DIAGNOSTICS
 *	See endpoint.h.
 *--*/

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sysexits.h>

#include "endpoint.h"

/* add_endpoint - append one endpoint unless it is already there */

static void add_endpoint(struct endpoint **eps, size_t *n, const struct sockaddr *sa,
			 socklen_t salen)
{
	struct endpoint *ep;
	char addr[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < *n; i++)
		if ((*eps)[i].addrlen == salen && memcmp(&(*eps)[i].addr, sa, salen) == 0)
			return;
	*eps = util_realloc(*eps, (*n + 1) * sizeof(**eps));
	ep = &(*eps)[(*n)++];
	memset(ep, 0, sizeof(*ep));
	memcpy(&ep->addr, sa, salen);
	ep->addrlen = salen;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		snprintf(ep->text, sizeof(ep->text), "%s:%u", addr, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		snprintf(ep->text, sizeof(ep->text), "[%s]:%u", addr, ntohs(sin6->sin6_port));
	}
}

/* parse_port - decimal 1..65535 */

static int parse_port(const char *s, unsigned *port)
{
	unsigned long v = 0;

	if (*s == 0)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 65535)
			return -1;
	}
	if (v == 0)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* parse_one_endpoint - one token of RELAYSHIM_INTERCEPT */

static int parse_one_endpoint(char *tok, struct endpoint **eps, size_t *n, struct error *err)
{
	char *host = tok;
	char *port_text = 0;
	unsigned port = 25;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	char *colon;

	if (*tok == '[') {
		char *close = strchr(tok, ']');

		if (close == 0 || (close[1] != 0 && close[1] != ':'))
			goto syntax;
		*close = 0;
		host = tok + 1;
		if (close[1] == ':')
			port_text = close + 2;
	} else if ((colon = strchr(tok, ':')) != 0 && strchr(colon + 1, ':') == 0) {
		/* One colon: host:port. More: a bare IPv6 address, port 25. */
		*colon = 0;
		port_text = colon + 1;
	}
	if (port_text && parse_port(port_text, &port) < 0)
		goto syntax;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons((unsigned short)port);

	if (strcasecmp(host, "localhost") == 0) {
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin6.sin6_addr = in6addr_loopback;
		add_endpoint(eps, n, (struct sockaddr *)&sin, sizeof(sin));
		add_endpoint(eps, n, (struct sockaddr *)&sin6, sizeof(sin6));
		return 0;
	}
	if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
		if ((ntohl(sin.sin_addr.s_addr) >> 24) != 127)
			goto not_loopback;
		add_endpoint(eps, n, (struct sockaddr *)&sin, sizeof(sin));
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
		/* ::ffff:127.x is the IPv4 address written as IPv6 (the shim reads it so too). */
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr) && sin6.sin6_addr.s6_addr[12] == 127) {
			memcpy(&sin.sin_addr, &sin6.sin6_addr.s6_addr[12], 4);
			add_endpoint(eps, n, (struct sockaddr *)&sin, sizeof(sin));
			return 0;
		}
		if (!IN6_IS_ADDR_LOOPBACK(&sin6.sin6_addr))
			goto not_loopback;
		add_endpoint(eps, n, (struct sockaddr *)&sin6, sizeof(sin6));
		return 0;
	}
syntax:
	return error_set(err, EX_CONFIG,
			 "RELAYSHIM_INTERCEPT: bad endpoint \"%.200s\" (use 127.0.0.1:25, [::1]:25 "
			 "or localhost:25)",
			 host);
not_loopback:
	return error_set(err, EX_CONFIG,
			 "RELAYSHIM_INTERCEPT: \"%.200s\" is not a loopback address; sendmail -bd "
			 "listens on 127.0.0.0/8 and ::1 only, so it can never relay for a network",
			 host);
}

/* endpoint_parse - RELAYSHIM_INTERCEPT to socket addresses */

int endpoint_parse(const char *spec, struct endpoint **out, size_t *count, struct error *err)
{
	char *copy = util_strdup(spec);
	char *save = 0;
	char *tok;
	int rc = 0;

	*out = 0;
	*count = 0;
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(0, " \t,", &save))
		if ((rc = parse_one_endpoint(tok, out, count, err)) != 0)
			break;
	if (rc == 0 && *count == 0)
		rc = error_set(err, EX_CONFIG,
			       "RELAYSHIM_INTERCEPT is empty: give at least one endpoint such as "
			       "127.0.0.1:25");
	if (rc) {
		free(*out);
		*out = 0;
		*count = 0;
	}
	free(copy);
	return rc;
}
