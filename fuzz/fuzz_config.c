/*++
 * NAME
 *	fuzz_config 1
 * SUMMARY
 *	libFuzzer target: the configuration loader (file + environment)
 * SYNOPSIS
 *	build-fuzz/fuzz/fuzz_config [libFuzzer options] [corpus...]
 * DESCRIPTION
 *	The input up to the first NUL byte is the INI file, handed to
 *	config_load() as /proc/self/fd/N of a memory file; each following
 *	NUL-separated piece is one "NAME=value" environment entry. Then
 *	config_finish(), the --config-check listing and the --write-config
 *	snapshot run, and the snapshot is loaded again.
 *
 *	Invariants: config_load() and config_finish() return 0 or EX_CONFIG
 *	with a one-line message; the listing shows the password as "(set)"; a
 *	configuration that loaded and finished writes a snapshot that loads
 *	again (what --write-config prints is a valid file), unless the
 *	snapshot says that a value could not be written in INI syntax.
 * DIAGNOSTICS
 *	A crash, a sanitizer report or "fuzz invariant failed: ...".
 *--*/

#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fuzz.h"

#define MAX_ENV 32

/* load_text - config_load of text with envp */

static int load_text(struct config *cfg, const char *text, size_t len, char **envp,
		     struct error *err)
{
	char path[64];
	int fd = fuzz_memfd((const uint8_t *)text, len);
	int rc;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = config_load(cfg, path, 1, envp, err);
	close(fd);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *nul = memchr(p, 0, size);
	size_t file_len = nul ? (size_t)(nul - p) : size;
	char *envp[MAX_ENV + 1];
	size_t nenv = 0;
	struct config cfg;
	struct error err;
	struct buf listing = BUF_INIT, snapshot = BUF_INIT;
	int rc;

	fuzz_quiet_log();
	for (const char *q = nul ? nul + 1 : end; q < end && nenv < MAX_ENV;) {
		const char *z = memchr(q, 0, (size_t)(end - q));
		size_t n = z ? (size_t)(z - q) : (size_t)(end - q);

		envp[nenv] = malloc(n + 1);
		memcpy(envp[nenv], q, n);
		envp[nenv][n] = 0;
		nenv++;
		q += n + 1;
	}
	envp[nenv] = 0;

	config_init(&cfg);
	error_clear(&err);
	rc = load_text(&cfg, p, file_len, envp, &err);
	if (rc == 0)
		rc = config_finish(&cfg, &err);
	fuzz_check(rc == 0 || rc == EX_CONFIG, "status is 0 or EX_CONFIG");
	if (rc)
		fuzz_check(strpbrk(err.text, "\r\n") == 0, "one-line error");
	config_write(&cfg, &listing, CONFIG_WRITE_REDACT | CONFIG_WRITE_SOURCES);
	if (cfg.password && *cfg.password) {
		/* The value itself may equal another key's text: look at its own line. */
		const char *line = strstr(listing.data, "\npassword = ");

		fuzz_check(line && strncmp(line, "\npassword = (set)", 17) == 0,
			   "listing hides the password");
	}
	if (rc == 0) {
		struct config again;
		char *noenv[] = {0};

		config_write(&cfg, &snapshot, 0);
		/* A value iniparser cannot hold (over its 1024-byte line) is written as a
		 * comment saying so; such a snapshot is knowingly incomplete. */
		if (strstr(snapshot.data, "cannot be written in INI syntax"))
			goto done;
		config_init(&again);
		error_clear(&err);
		rc = load_text(&again, snapshot.data, snapshot.len, noenv, &err);
		if (rc == 0)
			rc = config_finish(&again, &err);
		if (rc)
			fprintf(stderr, "snapshot does not load: %s\n", err.text);
		fuzz_check(rc == 0, "--write-config output loads again");
		config_free(&again);
	}
done:
	config_free(&cfg);
	buf_free(&listing);
	buf_free(&snapshot);
	for (size_t i = 0; i < nenv; i++)
		free(envp[i]);
	return 0;
}
