/*++
 * NAME
 *	smtp 3
 * SUMMARY
 *	the RFC 5321 client (stub: being written)
 * DESCRIPTION
 *	See smtp.h.
 *--*/

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "smtp.h"

/* smtp_result_init - empty result */

void smtp_result_init(struct smtp_result *r)
{
	memset(r, 0, sizeof(*r));
}

/* smtp_result_free - release everything */

void smtp_result_free(struct smtp_result *r)
{
	free(r->relay);
	strlist_free(&r->rejected);
	strlist_free(&r->rejected_replies);
	strlist_free(&r->deferred);
	strlist_free(&r->deferred_replies);
	free(r->reply);
	smtp_result_init(r);
}

/* smtp_deliver - stub */

int smtp_deliver(const struct config *cfg, const struct envelope *env, const struct message *msg,
		 struct smtp_result *res, struct error *err)
{
	(void)cfg;
	(void)env;
	(void)msg;
	(void)res;
	err->temporary = 1;
	return error_set(err, EX_TEMPFAIL, "SMTP client not implemented yet");
}
