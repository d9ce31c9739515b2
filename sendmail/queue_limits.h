#ifndef RELAYSHIM_QUEUE_LIMITS_H
#define RELAYSHIM_QUEUE_LIMITS_H

/*++
 * NAME
 *	queue_limits 3h
 * SUMMARY
 *	the thresholds of mailq --status and their argument syntax
 * SYNOPSIS
 *	#include "queue_limits.h"
 *
 *	struct queue_limits;
 *	int	queue_parse_duration(const char *s, unsigned long long *ms);
 *	int	queue_parse_count(const char *s, unsigned long *n);
 * DESCRIPTION
 *	struct queue_limits holds --max-age=DUR and --max-count=N. It and
 *	the two parsers live apart from queue_status so that the command
 *	line parser does not depend on the queue.
 *
 *	queue_parse_duration() reads DUR: digits with an optional unit ms,
 *	s, m, h, d or w (plain digits are seconds): "8s", "2m", "90".
 *	queue_parse_count() reads a decimal count. Both return 0, or -1
 *	for anything else (signs, spaces, overflow, a missing number).
 *--*/

struct queue_limits {
	int has_max_age;
	unsigned long long max_age_ms;
	int has_max_count;
	unsigned long max_count;
};

int queue_parse_duration(const char *s, unsigned long long *ms);
int queue_parse_count(const char *s, unsigned long *n);

#endif
