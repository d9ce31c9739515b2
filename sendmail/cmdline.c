/*++
 * NAME
 *	cmdline 3
 * SUMMARY
 *	the sendmail command line
 * DESCRIPTION
 *	See cmdline.h. The callers we must accept, as each of them runs
 *	us: PHP mail() "-t -i", PHPMailer "-t -i -oi -fX -t",
 *	Debian cron "-FCronDaemon -i -B8BITMIME -oem a@x,b@y", cronie
 *	"-FCronDaemon -i -odi -oem -oi -t -f root", git send-email "-i r1 r2",
 *	nodemailer "-i -f X r1 r2", mutt "-oem -oi -f X -N failure,delay
 *	-R hdrs -- r", Symfony/Laravel "-bs" and "-bs -i".
 *--*/

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "buf.h"
#include "cmdline.h"

const char cmdline_usage[] =
    "usage: sendmail [-t] [-i] [-f sender] [-F name] [-C file] [-v] [-bm|-bs|-bd|-bp|-bv|-q] "
    "[--config-check|--relay-check|--write-config|--version|--help] [--] [recipient ...]; "
    "mailq [--status|--json] [--max-age=DUR] [--max-count=N]; sendmail -q --deadline=DUR";

/* has_crlf - a CR or LF would let a value inject header lines */

static int has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != 0;
}

/* strip_angles - "<a@b>" -> "a@b", "<>" -> "" */

static char *strip_angles(const char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
		return util_strndup(s + 1, n - 2);
	return util_strdup(s);
}

/* set_string - replace an owned string value */

static void set_string(char **slot, char *value)
{
	free(*slot);
	*slot = value;
}

/* add_recipients - split one argument on commas, drop empty pieces */

static void add_recipients(struct strlist *l, const char *arg)
{
	const char *p = arg;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0)
			strlist_add_nodup(l, util_strndup(p, n));
		if (comma == 0)
			break;
		p = comma + 1;
	}
}

/* bad_arg - EX_USAGE naming an argument; control bytes escaped (one line on stderr) */

static int bad_arg(struct error *err, const char *what, const char *prefix, const char *arg,
		   size_t len)
{
	struct buf shown = BUF_INIT;
	int rc;

	buf_put_sanitized(&shown, arg, len);
	rc = error_set(err, EX_USAGE, "%s %s%s", what, prefix, buf_cstr(&shown));
	buf_free(&shown);
	return rc;
}

/* queue_option - --status, --json, --max-age=, --max-count=, --deadline=; 1 = not one */

static int queue_option(struct cmdline *cl, const char *arg, struct error *err)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
	const char *v = eq ? eq + 1 : 0;

	if (strcmp(arg, "--status") == 0) {
		cl->queue_status = 1;
		return 0;
	}
	if (strcmp(arg, "--json") == 0) {
		cl->queue_json = 1;
		return 0;
	}
	if (n == 9 && strncmp(arg, "--max-age", n) == 0) {
		if (v == 0 || queue_parse_duration(v, &cl->limits.max_age_ms) != 0)
			return bad_arg(err,
				       "--max-age needs a duration such as 30m, 1h or 3600:", "",
				       arg, strlen(arg));
		cl->limits.has_max_age = 1;
		return 0;
	}
	if (n == 11 && strncmp(arg, "--max-count", n) == 0) {
		if (v == 0 || queue_parse_count(v, &cl->limits.max_count) != 0)
			return bad_arg(err, "--max-count needs a number such as 100:", "", arg,
				       strlen(arg));
		cl->limits.has_max_count = 1;
		return 0;
	}
	if (n == 10 && strncmp(arg, "--deadline", n) == 0) {
		if (v == 0 || queue_parse_duration(v, &cl->deadline_ms) != 0 ||
		    cl->deadline_ms == 0)
			return bad_arg(err,
				       "--deadline needs a duration above 0 such as 8s or 2m:", "",
				       arg, strlen(arg));
		cl->has_deadline = 1;
		return 0;
	}
	return 1;
}

/* queue_options_fit - each container option with its mode, whatever the order */

static int queue_options_fit(struct cmdline *cl, struct error *err)
{
	int thresholds = cl->limits.has_max_age || cl->limits.has_max_count;

	if ((cl->queue_status || cl->queue_json || thresholds) && cl->mode != CMD_LIST_QUEUE)
		return error_set(err, EX_USAGE,
				 "--status, --json, --max-age and --max-count go with -bp (mailq)");
	if (cl->has_deadline && cl->mode != CMD_RUN_QUEUE)
		return error_set(err, EX_USAGE, "--deadline goes with -q");
	if (thresholds && !cl->queue_json)
		cl->queue_status = 1;
	return 0;
}

/* long_option - the "--" commands */

static int long_option(struct cmdline *cl, const char *arg, struct error *err)
{
	static const struct {
		const char *name;
		enum cmd_mode mode;
	} table[] = {
	    {"--config-check", CMD_CONFIG_CHECK},
	    {"--relay-check", CMD_RELAY_CHECK},
	    {"--write-config", CMD_WRITE_CONFIG},
	    {"--version", CMD_VERSION},
	    {"--help", CMD_HELP},
	};
	int rc = queue_option(cl, arg, err);

	if (rc != 1)
		return rc;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (strcmp(arg, table[i].name) == 0) {
			cl->mode = table[i].mode;
			return 0;
		}
	}
	return bad_arg(err, "unknown option", "", arg, strlen(arg));
}

/* b_mode - -bX */

static int b_mode(struct cmdline *cl, const char *v, struct error *err)
{
	if (strcmp(v, "m") == 0)
		cl->mode = CMD_DELIVER;
	else if (strcmp(v, "s") == 0)
		cl->mode = CMD_SMTP;
	else if (strcmp(v, "d") == 0)
		cl->mode = CMD_DAEMON;
	else if (strcmp(v, "p") == 0)
		cl->mode = CMD_LIST_QUEUE;
	else if (strcmp(v, "v") == 0)
		cl->mode = CMD_VERIFY;
	else
		return bad_arg(err, "unsupported mode", "-b", v, strlen(v));
	return 0;
}

/* option_with_value - the flags that take a value; returns 0 or a status */

static int option_with_value(struct cmdline *cl, char opt, const char *v, struct error *err)
{
	switch (opt) {
	case 'f':
	case 'r':
		if (has_crlf(v))
			return error_set(err, EX_DATAERR,
					 "-%c value contains a line break: refused", opt);
		set_string(&cl->sender, strip_angles(v));
		return 0;
	case 'F':
		if (has_crlf(v))
			return error_set(err, EX_DATAERR,
					 "-F value contains a line break: refused");
		set_string(&cl->fullname, util_strdup(v));
		return 0;
	case 'C':
		set_string(&cl->config_path, util_strdup(v));
		return 0;
	case 'N':
		set_string(&cl->dsn_notify, util_strdup(v));
		return 0;
	case 'R':
		set_string(&cl->dsn_ret, util_strdup(v));
		return 0;
	case 'V':
		set_string(&cl->dsn_envid, util_strdup(v));
		return 0;
	case 'b':
		return b_mode(cl, v, err);
	case 'o':
		/* -oi is -i; -oem, -odi, -oQ..., -oA... are sendmail 8 options we ignore. */
		if (strcmp(v, "i") == 0)
			cl->ignore_dots = 1;
		return 0;
	case 'B':
	case 'L':
	case 'h':
	case 'O':
	case 'e':
		return 0;
	default:
		util_panic("option_with_value: -%c", opt);
	}
}

/* parse_args - argv -> struct cmdline; cmdline_parse() cleans up after a failure */

static int parse_args(struct cmdline *cl, int argc, char **argv, struct error *err)
{
	const char *base;
	int i;

	memset(cl, 0, sizeof(*cl));
	if (argc > 0 && argv[0]) {
		base = strrchr(argv[0], '/');
		base = base ? base + 1 : argv[0];
		if (strcmp(base, "mailq") == 0)
			cl->mode = CMD_LIST_QUEUE;
	}
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--") == 0) {
			for (i++; i < argc; i++)
				add_recipients(&cl->args, argv[i]);
			break;
		}
		if (arg[0] == '-' && arg[1] == '-') {
			if (long_option(cl, arg, err))
				return err->status;
			continue;
		}
		if (arg[0] != '-' || arg[1] == 0) {
			add_recipients(&cl->args, arg);
			continue;
		}
		for (const char *p = arg + 1; *p; p++) {
			char opt = *p;

			switch (opt) {
			case 't':
				cl->extract_recipients = 1;
				continue;
			case 'i':
				cl->ignore_dots = 1;
				continue;
			case 'v':
				cl->verbose = 1;
				continue;
			case 'G':
			case 'U':
			case 'n':
				continue;
			case 'q':
				set_string(&cl->queue_arg, util_strdup(p + 1));
				cl->mode = CMD_RUN_QUEUE;
				break;
			case 'f':
			case 'r':
			case 'F':
			case 'C':
			case 'N':
			case 'R':
			case 'V':
			case 'b':
			case 'o':
			case 'B':
			case 'L':
			case 'h':
			case 'O':
			case 'e':
				if (p[1] == 0) {
					if (i + 1 >= argc)
						return error_set(err, EX_USAGE,
								 "option -%c needs a value", opt);
					if (option_with_value(cl, opt, argv[++i], err))
						return err->status;
				} else if (option_with_value(cl, opt, p + 1, err)) {
					return err->status;
				}
				break;
			default:
				return bad_arg(err, "unknown option", "-", &opt, 1);
			}
			break;
		}
	}
	return queue_options_fit(cl, err);
}

/* cmdline_parse - argv -> struct cmdline; nothing left to free after a failure */

int cmdline_parse(struct cmdline *cl, int argc, char **argv, struct error *err)
{
	int rc = parse_args(cl, argc, argv, err);

	/* main() returns at once: values taken before the bad argument (-C x
	 * --bogus) would be reported as leaks by the sanitizer build. */
	if (rc != 0)
		cmdline_free(cl);
	return rc;
}

/* cmdline_free - release owned strings */

void cmdline_free(struct cmdline *cl)
{
	free(cl->sender);
	free(cl->fullname);
	free(cl->config_path);
	free(cl->dsn_notify);
	free(cl->dsn_ret);
	free(cl->dsn_envid);
	free(cl->queue_arg);
	strlist_free(&cl->args);
	memset(cl, 0, sizeof(*cl)); /* a second cmdline_free() is harmless */
}
