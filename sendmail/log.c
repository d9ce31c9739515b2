/*++
 * NAME
 *	log 3
 * SUMMARY
 *	logging (interim: stderr only; targets, JSON and anonymize to come)
 *--*/

#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static enum log_level log_threshold = LOG_LEVEL_INFO;

/* log_setup - remember the level */

void log_setup(const struct config *cfg)
{
	log_threshold = cfg->log_level;
}

/* log_msg - one line on stderr */

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < log_threshold)
		return;
	fputs("sendmail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* log_delivery - one line per message */

void log_delivery(const struct log_record *rec)
{
	log_msg(rec->level, "%s: from=<%s> status=%s relay=%s (%s)", rec->queue_id ? rec->queue_id : "-",
		rec->from ? rec->from : "", rec->status, rec->relay ? rec->relay : "none",
		rec->text ? rec->text : "");
}
