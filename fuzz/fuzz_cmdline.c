/*++
 * NAME
 *	fuzz_cmdline 1
 * SUMMARY
 *	libFuzzer target: the sendmail command line (cmdline_parse)
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_cmdline [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	The input is argv: NUL-separated arguments, the first one argv[0]
 *	(so "mailq" is reachable). cmdline_parse() runs once; the target also
 *	hands getopt-style state back and parses a second time, as a process
 *	never does but a library must survive.
 *
 *	Invariants: the status is 0, EX_USAGE or EX_DATAERR with a one-line
 *	message; on success -f and -F hold no CR or LF (header injection is
 *	refused here already) and no recipient is empty.
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <string.h>
#include <sysexits.h>

#include "cmdline.h"
#include "fuzz.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	const char *p = (const char *)data, *end = p + size;

	fuzz_quiet_log();
	argv[argc++] = util_strdup("sendmail");
	while (p < end && argc < MAX_ARGS) {
		const char *z = memchr(p, 0, (size_t)(end - p));
		size_t n = z ? (size_t)(z - p) : (size_t)(end - p);

		argv[argc] = malloc(n + 1);
		memcpy(argv[argc], p, n);
		argv[argc][n] = 0;
		argc++;
		p += n + 1;
	}
	argv[argc] = 0;
	/* An argv[0] of "mailq" reaches the -bp mode. */
	if (argc > 1 && strcmp(argv[1], "mailq") == 0) {
		free(argv[0]);
		argv[0] = util_strdup("/usr/bin/mailq");
	}

	for (int round = 0; round < 2; round++) {
		struct cmdline cl;
		struct error err;
		int rc;

		error_clear(&err);
		memset(&cl, 0, sizeof(cl));
		rc = cmdline_parse(&cl, argc, argv, &err);
		fuzz_check(rc == 0 || rc == EX_USAGE || rc == EX_DATAERR, "documented status");
		if (rc) {
			fuzz_check(strpbrk(err.text, "\r\n") == 0, "one-line error");
		} else {
			fuzz_check(!cl.sender || !strpbrk(cl.sender, "\r\n"),
				   "-f without line break");
			fuzz_check(!cl.fullname || !strpbrk(cl.fullname, "\r\n"),
				   "-F without line break");
		}
		cmdline_free(&cl);
	}
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return 0;
}
