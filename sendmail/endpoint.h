#ifndef RELAYSHIM_ENDPOINT_H
#define RELAYSHIM_ENDPOINT_H

/*++
 * NAME
 *	endpoint 3h
 * SUMMARY
 *	loopback endpoint lists ([shim] intercept, -bd listen addresses)
 * SYNOPSIS
 *	#include "endpoint.h"
 *
 *	struct endpoint { struct sockaddr_storage addr; socklen_t addrlen; char text[64]; };
 *	int	endpoint_parse(const char *spec, struct endpoint **out,
 *			size_t *count, struct error *err);
 * DESCRIPTION
 *	endpoint_parse() parses a RELAYSHIM_INTERCEPT value: endpoints
 *	separated by spaces or commas, each "127.0.0.1:25", "[::1]:25",
 *	an address without port (port 25), or "localhost[:port]" (both
 *	127.0.0.1 and ::1); "[::ffff:127.0.0.1]:25" means 127.0.0.1:25. This
 *	is the shim's syntax (which always wants the port). Only loopback
 *	addresses (127.0.0.0/8, ::1) are allowed: the daemon must never
 *	become an open relay on a network. Unlike the shim, which intercepts
 *	all of 127.0.0.0/8 for "127.0.0.1:25", the daemon listens on exactly
 *	the addresses given.
 *	*out is an array of *count endpoints; free() it.
 * DIAGNOSTICS
 *	endpoint_parse() returns 0, or EX_CONFIG with err filled (the text
 *	quotes the bad endpoint; callers escape it before printing).
 *--*/

#include <stddef.h>
#include <sys/socket.h>

#include "util.h"

struct endpoint {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[64]; /* "127.0.0.1:25", "[::1]:25" */
};

int endpoint_parse(const char *spec, struct endpoint **out, size_t *count, struct error *err);

#endif
