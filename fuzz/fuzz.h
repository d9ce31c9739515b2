#ifndef RELAYSHIM_FUZZ_H
#define RELAYSHIM_FUZZ_H

/*++
 * NAME
 *	fuzz 3h
 * SUMMARY
 *	helpers shared by the libFuzzer targets
 * SYNOPSIS
 *	#include "fuzz.h"
 *
 *	int	fuzz_memfd(const uint8_t *data, size_t size);
 *	void	fuzz_quiet_log(void);
 *	int	fuzz_take(const uint8_t **data, size_t *size);
 *	void	fuzz_check(int cond, const char *what);
 * DESCRIPTION
 *	fuzz_memfd() returns a memory file holding data, positioned at its
 *	start: the readers under test use read(2) only, so a memory file
 *	stands in for a pipe without a writer thread and without the pipe
 *	buffer limit.
 *
 *	fuzz_quiet_log() sends the log to "none": a fuzzer that prints a line
 *	per input runs a hundred times slower.
 *
 *	fuzz_take() consumes one byte of input (0 when there is none): the
 *	targets use the first bytes as option switches so that one corpus
 *	explores every mode.
 *
 *	fuzz_check() aborts with what when an invariant does not hold, so
 *	that libFuzzer records the input as a crash.
 *--*/

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* fuzz_memfd - a memory file holding data, offset 0 */

static inline int fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		abort();
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);

		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

/* fuzz_quiet_log - no log output while fuzzing */

static inline void fuzz_quiet_log(void)
{
	static int done;
	static struct config cfg;

	if (done)
		return;
	cfg.log_target = (char *)"none";
	cfg.log_level = LOG_LEVEL_ERROR;
	log_setup(&cfg);
	done = 1;
}

/* fuzz_take - one option byte from the front of the input */

static inline int fuzz_take(const uint8_t **data, size_t *size)
{
	int c;

	if (*size == 0)
		return 0;
	c = **data;
	(*data)++;
	(*size)--;
	return c;
}

/* fuzz_check - an invariant violation is a finding */

static inline void fuzz_check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz invariant failed: %s\n", what);
		abort();
	}
}

#endif
