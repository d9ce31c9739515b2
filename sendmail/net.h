#ifndef RELAYSHIM_NET_H
#define RELAYSHIM_NET_H

/*++
 * NAME
 *	net 3h
 * SUMMARY
 *	TCP connections with deadlines, buffered I/O over plain TCP or TLS
 * SYNOPSIS
 *	#include "net.h"
 *
 *	long long net_now_ms(void);
 *	long long net_deadline(unsigned timeout_ms);
 *	void	net_set_limit(long long limit_ms);
 *
 *	int	net_resolve(const char *host, unsigned port, struct addrinfo **res,
 *			struct error *err);
 *	void	net_conn_init(struct net_conn *c);
 *	int	net_connect(struct net_conn *c, const struct addrinfo *ai,
 *			unsigned timeout_ms, struct error *err);
 *	int	net_fill(struct net_conn *c, long long deadline, struct error *err);
 *	int	net_write(struct net_conn *c, const void *p, size_t n,
 *			long long deadline, struct error *err);
 *	void	net_close(struct net_conn *c);
 *	int	net_sockaddr_is_loopback(const struct sockaddr *sa);
 * DESCRIPTION
 *	All waiting is poll() against an absolute deadline on the monotonic
 *	clock (net_now_ms(); net_deadline() = now + timeout), so a relay
 *	that trickles one byte a second cannot stretch a timeout.
 *
 *	net_set_limit() sets a process-wide end on the net_now_ms() clock
 *	(0: none, the default): from then on net_deadline() never returns a
 *	later time, so every connect, read, write and TLS handshake ends by
 *	then, whatever the configured timeouts. sendmail -q --deadline uses
 *	it so that a stalled relay cannot hold a shutdown hook past its end.
 *
 *	net_resolve() runs getaddrinfo() for a host name or address literal
 *	(IPv6 without brackets) and port; free the list with freeaddrinfo().
 *
 *	net_connect() makes a non-blocking, close-on-exec socket for one
 *	address, connects with a timeout, and turns on TCP_NODELAY: the
 *	SMTP client coalesces its own writes, so Nagle's algorithm could
 *	only add a delayed-ACK round (the ~40 ms msmtp loses per message).
 *	c->peer is then "address:port" ("[::1]:25" for IPv6) and
 *	c->loopback says whether the address is 127.0.0.0/8, ::1 or
 *	::ffff:127.x. The first net_connect() sets SIGPIPE to SIG_IGN when
 *	it has the default disposition: OpenSSL writes with write(2), and a
 *	relay that drops the connection must give an error, not kill us.
 *
 *	net_fill() reads whatever is available (at least one byte) and
 *	appends it to c->in; net_write() writes all n bytes. Both go through
 *	c->tls once tls_start() (tls.h) has been done on c->fd.
 *	net_close() closes the socket (and frees TLS state) and may be
 *	called twice.
 * DIAGNOSTICS
 *	Functions return 0 or EX_TEMPFAIL with err->temporary set and one
 *	short text without the relay's name ("timed out", "connection
 *	closed by the relay", "Connection refused"); the SMTP client adds
 *	the relay and the stage. waiting is deadline_wait()
 *	(deadline.h), shared with tls.c.
 *--*/

#include <netdb.h>
#include <sys/socket.h>

#include "buf.h"
#include "util.h"

struct tls_conn;

struct net_conn {
	int fd;		      /* -1 when closed */
	struct tls_conn *tls; /* NULL: plain TCP */
	struct buf in;	      /* received, not yet consumed */
	char peer[64];	      /* "127.0.0.1:25", "[::1]:25" */
	int loopback;
};

long long net_now_ms(void);
long long net_deadline(unsigned timeout_ms);
void net_set_limit(long long limit_ms);

int net_resolve(const char *host, unsigned port, struct addrinfo **res, struct error *err);
void net_conn_init(struct net_conn *c);
int net_connect(struct net_conn *c, const struct addrinfo *ai, unsigned timeout_ms,
		struct error *err);
int net_fill(struct net_conn *c, long long deadline, struct error *err);
int net_write(struct net_conn *c, const void *p, size_t n, long long deadline, struct error *err);
void net_close(struct net_conn *c);
int net_sockaddr_is_loopback(const struct sockaddr *sa);

#endif
