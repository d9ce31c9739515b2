#ifndef RELAYSHIM_SUBMIT_H
#define RELAYSHIM_SUBMIT_H

/*++
 * NAME
 *	submit 3h
 * SUMMARY
 *	the one submission path: rewrite, deliver or queue, log, answer
 * SYNOPSIS
 *	#include "submit.h"
 *
 *	void	submit_caller_init(struct submit_caller *c);
 *	void	submit_random(unsigned char *p, size_t n);
 *
 *	void	submit_begin(struct submit_ctx *ctx, struct config *cfg, int smtp);
 *	void	submit_start(struct submit_ctx *ctx);
 *	int	submit_message(struct submit_ctx *ctx, struct submit *sub,
 *			struct message *msg, struct envelope *env,
 *			struct buf *reply, struct error *err);
 *	int	submit_has_dsn(struct submit_ctx *ctx);
 *	void	submit_end(struct submit_ctx *ctx);
 * DESCRIPTION
 *	Every way a message comes in (the command line; -bs, and with it
 *	the shim; -bd) hands it to submit_message(), which decides once,
 *	for all of them:
 * .IP \(bu
 *	its queue id, and the rewriting (rewrite_message()) as this caller;
 * .IP \(bu
 *	[queue] mode always: store first, then let the worker send it;
 * .IP \(bu
 *	otherwise the relay: on the context's relay session in -bs/-bd
 *	(reused or reopened by smtp_session_deliver()), one connection with
 *	failover from the command line;
 * .IP \(bu
 *	a partial acceptance: accepted recipients logged "sent", refused
 *	ones logged, deferred ones queued on their own ("queued"), or, when
 *	they cannot be, a temporary failure for the whole message (the
 *	caller's retry duplicates the accepted ones: a duplicate can be
 *	noticed, a loss not);
 * .IP \(bu
 *	a temporary failure: queued (exit 0, "250 ... queued as ID"),
 *	unless [queue] mode never or the spool refuses it (EX_CANTCREAT,
 *	still temporary for -bs);
 * .IP \(bu
 *	one log_delivery() record per outcome and group of recipients.
 * .PP
 *	The queue's own deliveries (spool_deliver.c) decide the same
 *	questions for an entry that is already stored: a partial acceptance
 *	becomes "done" lines in its state file, not a new entry, so it keeps
 *	its own settling; it shares smtp_result_accepted() and
 *	smtp_session_deliver() with this path.
 *
 *	submit_caller_init() fills in who runs us: login name, uid, host
 *	name (no DNS). submit_random() reads n bytes from the kernel.
 *
 *	submit_begin() prepares a context for one caller: smtp set for
 *	-bs/-bd, where the client hears an SMTP reply (the log record then
 *	goes to stderr too, and the relay session is kept across
 *	transactions). submit_start() marks when a message begins to
 *	arrive: the log's delay counts from there. submit_message() fills sub->user, uid, hostname
 *and queue_id from the context and a fresh id; the caller fills in the rest of sub (command line,
 *or bs_mode). With reply not NULL it writes the SMTP reply for the client there: the relay's own
 *2xx, or "250 2.0.0 Ok: queued as ID", or a 4xx/5xx of the error's class. submit_has_dsn() tells
 *whether the relay offers DSN (opening the session). submit_end() kicks the queue once for a
 *session that delivered, and closes the relay session. DIAGNOSTICS submit_message() returns 0 when
 *every recipient is delivered, refused for good or durably queued; otherwise a sysexits.h code with
 *	one line in err (temporary set when a retry may succeed). It prints
 *	nothing: main() does.
 *--*/

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "message.h"
#include "smtp.h"
#include "util.h"

/* Who called us, filled once. */
struct submit_caller {
	char user[256];
	unsigned long uid;
	char hostname[256];
};

/* One caller's submissions: the command line's one message, or one -bs/-bd session. */
struct submit_ctx {
	struct config *cfg;
	struct submit_caller caller;
	struct smtp_session *relay; /* -bs/-bd: kept across transactions; NULL */
	int smtp;		    /* -bs/-bd: failures become SMTP replies */
	struct timespec start;	    /* submit_start(): CLOCK_MONOTONIC */
};

extern void submit_caller_init(struct submit_caller *c);
extern void submit_random(unsigned char *p, size_t n);
extern void submit_begin(struct submit_ctx *ctx, struct config *cfg, int smtp);
extern void submit_start(struct submit_ctx *ctx);
extern int submit_message(struct submit_ctx *ctx, struct submit *sub, struct message *msg,
			  struct envelope *env, struct buf *reply, struct error *err);
extern int submit_has_dsn(struct submit_ctx *ctx);
extern void submit_end(struct submit_ctx *ctx);

#endif
