#ifndef RELAYSHIM_SHIM_ACCEPT_H
#define RELAYSHIM_SHIM_ACCEPT_H

/*++
 * NAME
 *	shim_accept 3h
 * SUMMARY
 *	the helper's side of the LD_PRELOAD shim: accept exactly the peer
 * SYNOPSIS
 *	#include "shim_accept.h"
 *
 *	int	shim_accept_requested(void);
 *	int	shim_accept(struct error *err);
 *	int	shim_accept_take(struct error *err);
 *	int	shim_accept_conn(int lfd, int ctl, struct error *err);
 * DESCRIPTION
 *	librelayshim.so starts "sendmail -bs" with RELAYSHIM_SHIM_ACCEPT=1
 *	(or 2: already detached) in the environment, a listening loopback
 *	TCP socket as fd 0 and a
 *	control socket as fd 1 on which it sends the application's local
 *	address as "ADDRESS PORT\n" once its connect() is under way
 *	(shim/README.md has the whole protocol).
 *
 *	shim_accept_requested() says whether this process was started so.
 *
 *	shim_accept() must be the first thing -bs mode does, before any
 *	file is opened and before stdin is read: it
 *	1. with RELAYSHIM_SHIM_ACCEPT=1, forks; the parent writes
 *	   "PID <child>\n" on fd 1 and exits at once (the shim waits for
 *	   it), so the application never has to reap us; with =2 the shim
 *	   started us orphaned already. Then setsid();
 *	2. closes every descriptor >= 3 (an application descriptor without
 *	   close-on-exec that leaked through posix_spawn on glibc < 2.34);
 *	3. reads the expected peer from fd 1 (10 s at most);
 *	4. accepts connections on fd 0 until one comes from that peer
 *	   (others are closed unanswered), 10 s at most;
 *	5. puts the accepted connection on fds 0 and 1 (listener and
 *	   control socket closed) and removes RELAYSHIM_SHIM_ACCEPT from
 *	   the environment.
 *	It returns 0, and the caller serves SMTP on stdin/stdout as usual.
 *
 *	shim_accept_take() is steps 3 to 5 alone. shim_accept_conn() is
 *	steps 3 and 4 on the listener lfd and the control socket ctl, for
 *	a spare helper that was handed them (shim_spare.h): it returns the
 *	blocking connection (close-on-exec), or -1 with err filled; it
 *	closes neither descriptor.
 * DIAGNOSTICS
 *	On failure it returns a sysexits.h status and fills err; the caller
 *	exits with that status (nobody waits for it). EX_NOINPUT means the
 *	application's connect() failed or was abandoned: exit silently.
 *	Other statuses deserve one log line.
 *--*/

struct error;

int shim_accept_requested(void);
int shim_accept(struct error *err);
int shim_accept_take(struct error *err);
int shim_accept_conn(int lfd, int ctl, struct error *err);

#endif
