/*++
 * NAME
 *	spool_list 3
 * SUMMARY
 *	the queue listing (-bp, mailq) and spool_walk()
 * SYNOPSIS
 *	#include "spool_int.h"
 *
 *	int	spool_walk(const struct config *cfg, int brief,
 *			spool_visit_fn visit, void *ctx, unsigned *failed,
 *			struct error *err);
 *	int	spool_list(const struct config *cfg, struct buf *out, struct error *err);
 * DESCRIPTION
 *	Both go through scope_walk(): every entry of every area in scope,
 *	opened with spool_open_owned() (a FIFO a user planted must not hang
 *	root's listing) and read with spool_read_entry(); failed/ entries are
 *	counted. spool_walk() hands each as a struct spool_info to
 *	queue_status.c; spool_list() writes the sendmail -bp text, with
 *	every string that came from an entry sanitized.
 * DIAGNOSTICS
 *	0 or a sysexits.h code with one line in err (a spool that must not
 *	be trusted).
 *--*/

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "relay_hint.h"
#include "spool_int.h"

/* ====================================================================
 * Listing (-bp, mailq)
 * ==================================================================== */

/* put_age - "3d4h", "2h13m", "5m12s", "42s" */

static void put_age(struct buf *out, double secs)
{
	unsigned long s = secs > 0 ? (unsigned long)secs : 0;

	if (s >= 86400)
		buf_printf(out, "%lud%luh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		buf_printf(out, "%luh%lum", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		buf_printf(out, "%lum%lus", s / 60, s % 60);
	else
		buf_printf(out, "%lus", s);
}

/* count_failed - entries in failed/ (files without a dot) */

static unsigned count_failed(const struct spool_area *a)
{
	DIR *d = spool_opendir(a->failed);
	struct dirent *de;
	unsigned n = 0;

	if (d == 0)
		return 0;
	while ((de = readdir(d)) != 0)
		if (de->d_name[0] != '.' && strchr(de->d_name, '.') == 0)
			n++;
	closedir(d);
	return n;
}

/*
 * One entry as scope_walk() hands it over: e is NULL in a brief walk (the
 * entry was not read) and when corrupt is set (it could not be parsed); sb
 * is the entry file's fstat (lstat in a brief walk).
 */
struct walk_item {
	const struct spool_area *area;
	const char *id;
	const struct stat *sb;
	const struct spool_entry *e;
	int corrupt;
};

typedef void (*walk_fn)(void *ctx, const struct walk_item *item);

/* scope_walk - every entry in scope, oldest first per area; failed/ entries counted */

static int scope_walk(const struct config *cfg, int brief, walk_fn fn, void *ctx, unsigned *failed,
		      struct error *err)
{
	struct spool_area *areas;
	size_t nareas;

	error_clear(err);
	*failed = 0;
	if (spool_scope_areas(cfg, &areas, &nareas, 0, err) != 0)
		return err->status;
	for (size_t ai = 0; ai < nareas; ai++) {
		struct strlist ids = STRLIST_INIT;

		spool_list_ids(&areas[ai], &ids, 0);
		*failed += count_failed(&areas[ai]);
		for (size_t i = 0; i < ids.n; i++) {
			struct walk_item item;
			struct spool_entry e;
			struct stat sb;
			int fd;

			memset(&item, 0, sizeof(item));
			item.area = &areas[ai];
			item.id = ids.v[i];
			item.sb = &sb;
			if (brief) {
				/* The file's time stands for its creation: no read. */
				if (fstatat(areas[ai].q, ids.v[i], &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
				    !S_ISREG(sb.st_mode) || sb.st_uid != areas[ai].uid)
					continue;
				fn(ctx, &item);
				continue;
			}
			/* A FIFO a user planted in their q/ must not hang root's probe. */
			fd = spool_open_owned(areas[ai].q, ids.v[i], O_RDONLY, areas[ai].uid, &sb);
			if (fd < 0)
				continue;
			spool_entry_init(&e);
			if (spool_read_entry(areas[ai].q, fd, ids.v[i], &e) != 0)
				item.corrupt = 1;
			else
				item.e = &e;
			close(fd);
			fn(ctx, &item);
			spool_entry_free(&e);
		}
		strlist_free(&ids);
	}
	spool_scope_free(areas, nareas);
	return 0;
}

/* file_time - the modification time of an entry's file, in seconds */

static double file_time(const struct stat *sb)
{
	return (double)sb->st_mtim.tv_sec + (double)sb->st_mtim.tv_nsec / 1e9;
}

struct walk_visit {
	spool_visit_fn visit;
	void *ctx;
};

/* walk_visit - one entry as a struct spool_info for spool_walk()'s caller */

static void walk_visit(void *ctx, const struct walk_item *item)
{
	const struct walk_visit *wv = ctx;
	const struct spool_entry *e = item->e;
	struct spool_info info;

	memset(&info, 0, sizeof(info));
	info.id = item->id;
	info.owner = (unsigned long)item->area->uid;
	info.corrupt = item->corrupt;
	if (e == 0) {
		/* Brief, or corrupt (counted, with its file's age: a pass
		 * moves it to failed/). */
		info.created = file_time(item->sb);
	} else {
		info.created = e->created;
		info.attempts = e->attempts;
		info.next_try = e->next_try;
		info.last_error = e->last_error ? e->last_error : e->first_error;
		info.sender = e->env.sender;
		for (size_t r = 0; r < e->env.rcpts.n; r++)
			if (!strlist_contains_ci(&e->done, e->env.rcpts.v[r]))
				info.rcpts++;
		info.size = e->header_len + 2 + e->body_len;
	}
	wv->visit(wv->ctx, &info);
}

/* spool_walk - every entry in scope, for queue_status.c; failed/ entries counted */

int spool_walk(const struct config *cfg, int brief, spool_visit_fn visit, void *ctx,
	       unsigned *failed, struct error *err)
{
	struct walk_visit wv = {visit, ctx};

	return scope_walk(cfg, brief, walk_visit, &wv, failed, err);
}

struct list_state {
	struct buf *out;
	unsigned count;
	unsigned long long bytes;
	double now;
	int root;
};

/* list_entry - the -bp lines of one entry */

static void list_entry(void *ctx, const struct walk_item *item)
{
	struct list_state *ls = ctx;
	struct buf *out = ls->out;
	const struct spool_entry *e = item->e;
	struct buf tmp = BUF_INIT;
	unsigned long long size;
	const char *lasterr;

	if (e == 0) {
		buf_printf(out, "%-24s (corrupt entry, will be moved to failed/)\n\n", item->id);
		return;
	}
	size = e->header_len + 2 + e->body_len;
	ls->count++;
	ls->bytes += size;
	buf_printf(out, "%-24s %9llu  ", e->id, size);
	put_age(&tmp, ls->now - e->created);
	buf_printf(out, "%-7s <", tmp.data);
	buf_put_sanitized(out, e->env.sender, strlen(e->env.sender));
	buf_putc(out, '>');
	lasterr = e->last_error ? e->last_error : e->first_error;
	/* A deferral that only the relay's configuration can fix. */
	if (relay_hint_classify(lasterr) != RELAY_HINT_NONE)
		buf_printf(out, "  !relay-config:%s",
			   relay_hint_mark(relay_hint_classify(lasterr)));
	buf_putc(out, '\n');
	buf_printf(out, "    attempts: %u", e->attempts);
	if (e->next_try > ls->now) {
		buf_reset(&tmp);
		put_age(&tmp, e->next_try - ls->now);
		buf_printf(out, ", next try in %s", tmp.data);
	} else {
		buf_puts(out, ", due now");
	}
	if (ls->root) {
		struct passwd *pw = getpwuid(item->area->uid);

		if (pw)
			buf_printf(out, ", owner: %s", pw->pw_name);
		else
			buf_printf(out, ", owner: uid %lu", (unsigned long)item->area->uid);
	}
	buf_putc(out, '\n');
	if (lasterr) {
		buf_puts(out, "    last error: ");
		buf_put_sanitized(out, lasterr, strlen(lasterr));
		buf_putc(out, '\n');
	}
	for (size_t r = 0; r < e->env.rcpts.n; r++) {
		buf_puts(out, "    to: <");
		buf_put_sanitized(out, e->env.rcpts.v[r], strlen(e->env.rcpts.v[r]));
		buf_puts(out,
			 strlist_contains_ci(&e->done, e->env.rcpts.v[r]) ? "> (done)\n" : ">\n");
	}
	buf_putc(out, '\n');
	buf_free(&tmp);
}

/* spool_list - the -bp listing */

int spool_list(const struct config *cfg, struct buf *out, struct error *err)
{
	struct list_state ls;
	unsigned failed = 0;

	memset(&ls, 0, sizeof(ls));
	ls.out = out;
	ls.now = spool_now();
	ls.root = geteuid() == 0;
	if (scope_walk(cfg, 0, list_entry, &ls, &failed, err) != 0)
		return err->status;
	if (ls.count == 0)
		buf_puts(out, "Mail queue is empty\n");
	else
		buf_printf(out, "-- %u message%s, %llu bytes in the queue\n", ls.count,
			   ls.count == 1 ? "" : "s", ls.bytes);
	if (failed > 0)
		buf_printf(out, "-- %u message%s given up on, in %s/<uid>/failed\n", failed,
			   failed == 1 ? "" : "s", cfg->queue_dir);
	return 0;
}
