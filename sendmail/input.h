#ifndef RELAYSHIM_INPUT_H
#define RELAYSHIM_INPUT_H

/*++
 * NAME
 *	input 3h
 * SUMMARY
 *	read a message from a caller, the way every real caller gives it
 * SYNOPSIS
 *	#include "input.h"
 *
 *	int	input_read(int fd, int ignore_dots, struct message *msg, struct error *err);
 *
 *	void	msgbuild_init(struct msgbuild *mb, struct message *msg);
 *	int	msgbuild_line(struct msgbuild *mb, const char *line, size_t len,
 *			struct error *err);
 *	int	msgbuild_finish(struct msgbuild *mb, struct error *err);
 *	void	msgbuild_abort(struct msgbuild *mb);
 * DESCRIPTION
 *	input_read() reads fd with read(2) to end of file (a pipe, a regular
 *	file or a socket: never lseek) and fills msg (message.h). Line
 *	endings may be LF, CRLF or mixed; each line loses one LF and one CR
 *	just before it, lone CRs inside a line stay. A last line without a
 *	newline is kept. Without ignore_dots (-i/-oi) a line that is exactly
 *	"." ends the input and a line starting ".." loses one dot (sendmail 8
 *	semantics, which Symfony relies on). A leading mbox "From " line is
 *	dropped.
 *
 *	The message builder is the line-oriented core shared with the -bs
 *	server's DATA reader: feed it lines without their line ending (dots
 *	already unstuffed), then msgbuild_finish(). It splits the header
 *	section from the body: header fields and their continuation lines
 *	(header_field_name() and header_is_continuation(), header.h: the one
 *	grammar, "BCC : x" included) form the header; the first empty line is the separator
 *(consumed); a first line that is neither a field nor a continuation starts the body (a message
 *without headers, as curl sends). Bodies beyond INPUT_SPILL_BYTES are moved to an unlinked
 *temporary file in $TMPDIR (or /tmp), so memory stays bounded whatever the message size.
 *	msgbuild_abort() releases a half-built message (the caller's msg is
 *	then reset). The mbox "From " line is dropped only from command-line
 *	input: the -bs server sets keep_from_line after msgbuild_init(), as
 *	Postfix keeps such a line in SMTP DATA.
 *
 *	The header section is bounded by INPUT_MAX_HEADER_BYTES: past it, the
 *	remaining lines go to the body, as Postfix does past
 *	header_size_limit.
 *
 *	input_read() bounds a line to INPUT_LINE_MAX bytes (line ending not
 *	counted), the same bound as a DATA line in -bs (SMTPD_DATA_LINE_MAX):
 *	a longer line is refused rather than held in memory whole. RFC 5322
 *	allows 998; Postfix's own sendmail takes longer lines, so the bound is
 *	generous. The -bs reader bounds its lines itself before
 *	msgbuild_line().
 * DIAGNOSTICS
 *	EX_IOERR when reading fd or writing the spill file fails
 *	("cannot read the message: ...", "cannot write temporary file ...").
 *	EX_DATAERR for a line longer than INPUT_LINE_MAX ("line N of the
 *	message is longer than 1048576 bytes; ...").
 *--*/

#include <stddef.h>

#include "buf.h"
#include "message.h"
#include "util.h"

#define INPUT_SPILL_BYTES (256 * 1024)
#define INPUT_MAX_HEADER_BYTES (1024 * 1024)
#define INPUT_LINE_MAX (1024 * 1024) /* bytes per line, line ending excluded */

struct msgbuild {
	struct message *msg;
	struct buf wbuf; /* pending body bytes once spilled */
	int state;	 /* 0 first line, 1 header, 2 body */
	int spilled;
	int keep_from_line; /* SMTP DATA: a first "From " line is data (Postfix keeps it) */
};

int input_read(int fd, int ignore_dots, struct message *msg, struct error *err);
void msgbuild_init(struct msgbuild *mb, struct message *msg);
int msgbuild_line(struct msgbuild *mb, const char *line, size_t len, struct error *err);
int msgbuild_finish(struct msgbuild *mb, struct error *err);
void msgbuild_abort(struct msgbuild *mb);

#endif
