/*++
 * NAME
 *	rewrite 3
 * SUMMARY
 *	the message processing pipeline (SPEC 4)
 * DESCRIPTION
 *	See rewrite.h. This is a placeholder so that main.c can be wired
 *	against the final interface; the pipeline is being written.
 *--*/

#include <sysexits.h>

#include "rewrite.h"

/* rewrite_message - placeholder: refuses until the pipeline lands */

int rewrite_message(const struct config *cfg, const struct submit *sub, struct message *msg,
		    struct envelope *env, time_t now, const unsigned char *random, size_t nrandom,
		    struct error *err)
{
	(void)cfg, (void)sub, (void)msg, (void)env, (void)now, (void)random, (void)nrandom;
	return error_set(err, EX_SOFTWARE, "rewrite_message is not implemented yet");
}

/* rewrite_explain_host - placeholder */

void rewrite_explain_host(const struct config *cfg, const char *hostname, const char *addr,
			  struct buf *out)
{
	(void)cfg, (void)hostname;
	buf_printf(out, "%s\n", addr);
}

/* rewrite_explain - placeholder */

void rewrite_explain(const struct config *cfg, const char *addr, struct buf *out)
{
	rewrite_explain_host(cfg, 0, addr, out);
}
