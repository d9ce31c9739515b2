/*++
 * NAME
 *	message 3
 * SUMMARY
 *	a message and its envelope
 * DESCRIPTION
 *	See message.h.
 *--*/

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "message.h"

/* message_init - empty message */

void message_init(struct message *msg)
{
	memset(msg, 0, sizeof(*msg));
	msg->body.fd = -1;
}

/* message_free - release buffers and the spill file */

void message_free(struct message *msg)
{
	buf_free(&msg->header);
	buf_free(&msg->body.mem);
	if (msg->body.fd >= 0)
		close(msg->body.fd);
	message_init(msg);
}

/* message_size - bytes on the wire before dot-stuffing */

unsigned long long message_size(const struct message *msg)
{
	return msg->header.len + 2 + msg->body.len;
}

/* body_read - read from the in-memory body or the spill file */

ssize_t body_read(const struct body *body, unsigned long long off, char *dst, size_t n)
{
	if (off >= body->len)
		return 0;
	if (n > body->len - off)
		n = (size_t)(body->len - off);
	if (body->fd < 0) {
		memcpy(dst, body->mem.data + off, n);
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t r = pread(body->fd, dst, n, (off_t)(body->fd_offset + off));

		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

/* envelope_init - empty envelope */

void envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
}

/* envelope_free - release everything */

void envelope_free(struct envelope *env)
{
	free(env->sender);
	strlist_free(&env->rcpts);
	free(env->dsn_notify);
	free(env->dsn_ret);
	free(env->dsn_envid);
	envelope_init(env);
}
