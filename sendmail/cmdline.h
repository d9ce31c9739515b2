#ifndef RELAYSHIM_CMDLINE_H
#define RELAYSHIM_CMDLINE_H

/*++
 * NAME
 *	cmdline 3h
 * SUMMARY
 *	the sendmail command line, parsed as leniently as Postfix does
 * SYNOPSIS
 *	#include "cmdline.h"
 *
 *	int	cmdline_parse(struct cmdline *cl, int argc, char **argv,
 *			struct error *err);
 *	void	cmdline_free(struct cmdline *cl);
 *	extern const char cmdline_usage[];
 * DESCRIPTION
 *	cmdline_parse() fills cl from argv. Invoked as "mailq" (argv[0]'s
 *	base name) the mode is CMD_LIST_QUEUE. Repeated flags are fine
 *	(PHPMailer passes -t twice); -fADDR and -f ADDR both work; flags
 *	without a value may be bundled (-ti); options and recipients may be
 *	mixed, "--" ends the options; the container options --status,
 *	--json, --max-age=DUR and --max-count=N (with -bp or as mailq; a
 *	threshold alone implies --status) and --deadline=DUR (with -q) take
 *	their value after "=" (queue_limits.h); a recipient argument holding a comma
 *	list (Debian cron's MAILTO) is split. -f/-r values lose one pair of
 *	angle brackets, so "<>" is the null sender (""). Accepted and
 *	ignored: -B, -o* (except -oi), -e*, -L, -h, -O, -G, -U, -bm, -odi.
 * DIAGNOSTICS
 *	EX_USAGE for an unknown option, a missing or malformed value, or a
 *	container option without its mode, EX_DATAERR for a
 *	CR or LF inside -f/-F (header injection); err says which. After a
 *	failure cl holds nothing to free; cmdline_free() may be called twice.
 *--*/

#include "queue_limits.h"
#include "util.h"

enum cmd_mode {
	CMD_DELIVER,	  /* -bm, the default */
	CMD_SMTP,	  /* -bs */
	CMD_DAEMON,	  /* -bd */
	CMD_LIST_QUEUE,	  /* -bp, mailq */
	CMD_RUN_QUEUE,	  /* -q */
	CMD_VERIFY,	  /* -bv */
	CMD_CONFIG_CHECK, /* --config-check */
	CMD_RELAY_CHECK,  /* --relay-check */
	CMD_WRITE_CONFIG, /* --write-config */
	CMD_VERSION,	  /* --version */
	CMD_HELP,	  /* --help */
};

struct cmdline {
	enum cmd_mode mode;
	int extract_recipients;	    /* -t */
	int ignore_dots;	    /* -i, -oi */
	int verbose;		    /* -v */
	char *sender;		    /* -f/-r: NULL unset, "" null sender */
	char *fullname;		    /* -F */
	char *config_path;	    /* -C */
	char *dsn_notify;	    /* -N */
	char *dsn_ret;		    /* -R */
	char *dsn_envid;	    /* -V */
	char *queue_arg;	    /* what followed -q ("", "30m", "Ifoo", "Rexample.com") */
	struct strlist args;	    /* recipients, or the addresses of -bv */
	int queue_status;	    /* -bp --status: one line, exit status by thresholds */
	int queue_json;		    /* -bp --json */
	struct queue_limits limits; /* --max-age=DUR, --max-count=N */
	int has_deadline;	    /* -q --deadline=DUR */
	unsigned long long deadline_ms;
};

int cmdline_parse(struct cmdline *cl, int argc, char **argv, struct error *err);
void cmdline_free(struct cmdline *cl);
extern const char cmdline_usage[];

#endif
