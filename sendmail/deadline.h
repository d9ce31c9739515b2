#ifndef RELAYSHIM_DEADLINE_H
#define RELAYSHIM_DEADLINE_H

/*++
 * NAME
 *	deadline 3h
 * SUMMARY
 *	waiting for one descriptor until an absolute deadline
 * SYNOPSIS
 *	#include "deadline.h"
 *
 *	long long deadline_now_ms(void);
 *	int	deadline_wait(int fd, short events, long long deadline);
 * DESCRIPTION
 *	deadline_now_ms() is the monotonic clock in milliseconds that every
 *	deadline is measured on (net_now_ms() is the same clock).
 *	deadline_wait() polls fd for events until the absolute deadline,
 *	restarting after EINTR, so a peer that trickles bytes cannot stretch
 *	a timeout. It is its own module so that net (plain TCP) and tls (the
 *	OpenSSL handshake and I/O under net) share it without tls depending
 *	on net.
 * DIAGNOSTICS
 *	deadline_wait() returns 1 when ready (POLLERR/POLLHUP included: the
 *	next read or write reports them), 0 when the deadline passed, -1 on
 *	a poll error (errno set).
 *--*/

long long deadline_now_ms(void);
int deadline_wait(int fd, short events, long long deadline);

#endif
