/*++
 * NAME
 *	queue_limits 3
 * SUMMARY
 *	the thresholds of mailq --status and their argument syntax
 * DESCRIPTION
 *	See queue_limits.h.
 *--*/

#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "queue_limits.h"

/* queue_parse_count - a decimal count, nothing else */

int queue_parse_count(const char *s, unsigned long *n)
{
	unsigned long v = 0;

	if (s == 0 || *s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (ULONG_MAX - (unsigned long)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (*s)
		return -1;
	*n = v;
	return 0;
}

/* queue_parse_duration - "8s", "2m", "1h", "1d", "1w", "500ms", bare seconds */

int queue_parse_duration(const char *s, unsigned long long *ms)
{
	static const struct {
		const char *unit;
		unsigned long long ms;
	} units[] = {
	    {"", 1000},	    {"ms", 1},	     {"s", 1000},      {"m", 60000},
	    {"h", 3600000}, {"d", 86400000}, {"w", 604800000},
	};
	unsigned long long v = 0;

	if (s == 0 || *s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (ULLONG_MAX - (unsigned long long)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned long long)(*s - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) != 0)
			continue;
		if (v > ULLONG_MAX / units[i].ms)
			return -1;
		*ms = v * units[i].ms;
		return 0;
	}
	return -1;
}
