#ifndef RELAYSHIM_CAPTURE_H
#define RELAYSHIM_CAPTURE_H

/*++
 * NAME
 *	capture 3h
 * SUMMARY
 *	deliver into a Maildir instead of a relay (development and CI)
 * SYNOPSIS
 *	#include "capture.h"
 *
 *	int	capture_deliver(const char *maildir, const struct envelope *env,
 *			const struct message *msg, char **name, struct error *err);
 *	int	capture_check(const char *maildir, struct error *err);
 * DESCRIPTION
 *	A relay written "maildir:/path" in [relay] host (RELAYSHIM_RELAY)
 *	is served by this module: the message that would have gone to a
 *	relay, after every step of the pipeline, is written as one file
 *	into the Maildir at path (tmp/, then renamed into new/, the
 *	Maildir protocol), so mail readers (mutt -f, Python's mailbox)
 *	and tests read what would have been sent.
 *
 *	The envelope is recorded in two fields put on top of the header,
 *	as local delivery agents do: "Return-Path: <sender>" (Postfix,
 *	Exim, qmail) and "Envelope-to: a@x, b@y" (Exim's name), which
 *	lists every envelope recipient, Bcc ones included: the file is the
 *	sender's copy, not a recipient's. Line ends are LF, as in every
 *	Maildir; lone CRs are kept.
 *
 *	capture_deliver() creates path, path/tmp, path/new and path/cur
 *	when missing (mode 0755 less the umask: a test runner may read what
 *	a www-data process captured; the umask decides), writes
 *	and fsyncs the file, renames it into new/ and fsyncs new/. On
 *	success *name is the file's base name (allocated).
 *
 *	capture_check() tells, for --relay-check, whether path can take
 *	a message: the directories exist or can be created, and are
 *	writable by the caller.
 * DIAGNOSTICS
 *	Both return 0, or EX_TEMPFAIL (75) with err->temporary set and one
 *	line naming the path and the system error: a full or read-only
 *	file system is a temporary failure, the message is queued like
 *	one a relay deferred.
 *--*/

#include "message.h"
#include "util.h"

int capture_deliver(const char *maildir, const struct envelope *env, const struct message *msg,
		    char **name, struct error *err);
int capture_check(const char *maildir, struct error *err);

#endif
