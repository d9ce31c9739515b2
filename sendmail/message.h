#ifndef RELAYSHIM_MESSAGE_H
#define RELAYSHIM_MESSAGE_H

/*++
 * NAME
 *	message 3h
 * SUMMARY
 *	a message and its envelope, as they travel from input to relay
 * SYNOPSIS
 *	#include "message.h"
 *
 *	struct body;
 *	struct message;
 *	struct envelope;
 *	struct submit;
 *
 *	void	message_init(struct message *msg);
 *	void	message_free(struct message *msg);
 *	unsigned long long message_size(const struct message *msg);
 *	ssize_t	body_read(const struct body *body, unsigned long long off,
 *			char *dst, size_t n);
 *	void	envelope_init(struct envelope *env);
 *	void	envelope_free(struct envelope *env);
 * DESCRIPTION
 *	struct message is what input.c produces and what the SMTP client
 *	sends. Both parts are already normalised: every line ends in CRLF
 *	(lone CRs inside lines kept), the mbox "From " line is gone, and dots
 *	are literal (no dot-stuffing: the SMTP client stuffs on the wire).
 *
 *	header: the header section, complete lines (continuations included),
 *	without the blank separator line. May be empty (a message without
 *	headers). The rewrite code parses and re-serialises it in place.
 *
 *	body: everything after the separator. Small bodies live in body.mem;
 *	a large one is spilled to an unlinked temporary file body.fd
 *	(body.mem then empty), so a 25 MB message never sits in memory.
 *	The queue hands a spool file over as body.fd with fd_offset past its
 *	header section. body_read() reads n bytes at offset off from either
 *	(pread on the fd, so several readers may share it); returns bytes read, 0 at the end,
 *	-1 with errno on error.
 *
 *	message_size() is the size on the wire without dot-stuffing:
 *	header + CRLF + body.
 *
 *	struct envelope is the SMTP envelope: sender ("" = null sender),
 *	recipients (unique, fully qualified after rewriting), and the DSN
 *	parameters from -N/-R/-V (NULL when not given).
 *
 *	struct submit is what the caller told us (command line, or the -bs
 *	session) and who the caller is; the rewrite pipeline reads it.
 *--*/

#include <sys/types.h>

#include "buf.h"
#include "util.h"

struct body {
	struct buf mem;
	int fd;			      /* -1, or a file holding the body bytes ... */
	unsigned long long fd_offset; /* ... starting at this offset (spool files) */
	unsigned long long len;	      /* total body bytes */
};

struct message {
	struct buf header;
	struct body body;
	int has_8bit;	     /* a byte >= 0x80 in header or body */
	int has_nul;	     /* a NUL byte somewhere */
	size_t longest_line; /* longest line, without CRLF */
};

struct envelope {
	char *sender; /* "" = <> */
	struct strlist rcpts;
	char *dsn_notify; /* -N: "failure,delay" / "never" */
	char *dsn_ret;	  /* -R: "hdrs" / "full" */
	char *dsn_envid;  /* -V */
	int smtputf8;	  /* an address is not ASCII */
};

struct submit {
	int extract_recipients; /* -t */
	int ignore_dots;	/* -i / -oi */
	const char *sender;	/* -f / -r, NULL when not given, "" for <> */
	const char *fullname;	/* -F */
	struct strlist rcpts;	/* argv recipients, comma lists already split */
	const char *user;	/* invoking login name ("root", "www-data") */
	unsigned long uid;
	const char *hostname; /* our host name, for Received and defaults */
	const char *queue_id; /* for the Received header and the log */
	const char *dsn_notify, *dsn_ret, *dsn_envid;
	int bs_mode; /* submitted through -bs: envelope given by MAIL/RCPT */
};

void message_init(struct message *msg);
void message_free(struct message *msg);
unsigned long long message_size(const struct message *msg);
ssize_t body_read(const struct body *body, unsigned long long off, char *dst, size_t n);
void envelope_init(struct envelope *env);
void envelope_free(struct envelope *env);

#endif
