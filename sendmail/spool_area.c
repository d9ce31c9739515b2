/*++
 * NAME
 *	spool_area 3
 * SUMMARY
 *	queue areas: the spool directory, per-user areas, squatters, scope
 * SYNOPSIS
 *	#include "spool_int.h"
 *
 *	void	spool_list_ids(const struct spool_area *a, struct strlist *ids, int tidy);
 *	int	spool_scope_areas(const struct config *cfg, struct spool_area **out,
 *			size_t *n, int tidy, struct error *err);
 *	void	spool_scope_free(struct spool_area *areas, size_t n);
 *	int	spool_area_open(const char *top, uid_t uid, int create,
 *			struct spool_area *a, struct error *err);
 *	void	spool_area_close(struct spool_area *a);
 *	void	spool_area_adopt(const struct spool_area *a, int fd);
 * DESCRIPTION
 *	The spool directory (mode 1733, root's or the caller's) holds one
 *	area per user, dir/UID with tmp/, q/ and failed/, mode 0700. Anyone
 *	may create any name in a 1733 directory: spool_area_open() checks owner
 *	and mode of every area it opens, tries the names "UID.1" ...
 *	"UID.7" after a squatter's "UID", and for root moves a squatter's
 *	directory out of the way (spool.h, TRUST).
 *
 *	spool_area_open() opens (create: makes) the usable area of uid under top;
 *	spool_area_close() closes it. spool_area_adopt() hands a file root writes into
 *	another user's area to that user.
 *
 *	spool_scope_areas() opens the areas this process may handle: its own;
 *	every one for root. tidy (a pass, not a listing) lets root move
 *	squatters and logs refused areas. spool_list_ids() lists the committed
 *	entries of an area, oldest first, skipping whatever is not a plain
 *	file of the area's owner; tidy also removes orphaned state files
 *	and old tmp/ debris.
 * DIAGNOSTICS
 *	spool_area_open() and spool_scope_areas() return 0 or EX_CANTCREAT with one
 *	line in err. Warnings about skipped names go to log_msg().
 *--*/

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "spool_int.h"

/* ====================================================================
 * Areas: dir/UID with tmp/, q/, failed/
 * ==================================================================== */

/* area_init - nothing open */

static void area_init(struct spool_area *a)
{
	a->uid = 0;
	a->dir = a->tmp = a->q = a->failed = -1;
	a->path = 0;
}

/* spool_area_close - close what is open */

void spool_area_close(struct spool_area *a)
{
	int *fds[] = {&a->dir, &a->tmp, &a->q, &a->failed};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(a->path);
	area_init(a);
}

/* open_dir_at - open a directory for *at() calls and fsync, refusing symlinks */

static int open_dir_at(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* spool_top_check - the spool directory's owner and mode, as postfix check does */

static int spool_top_check(const char *top, int fd, struct error *err)
{
	struct stat sb;

	if (fstat(fd, &sb) != 0)
		return error_set(err, EX_CANTCREAT, "cannot stat queue directory %s: %s", top,
				 strerror(errno));
	/* The owner of a directory may rename or remove anything in it,
	 * sticky bit or not: another user's spool is that user's to empty. */
	if (sb.st_uid != 0 && sb.st_uid != geteuid())
		return error_set(err, EX_CANTCREAT,
				 "queue directory %s is owned by uid %lu, neither root nor you; "
				 "refusing it (make it root's, mode 1733, or set [queue] dir)",
				 top, (unsigned long)sb.st_uid);
	/* Writable by others without the sticky bit: anyone may rename
	 * another user's area away and put their own in its place. */
	if ((sb.st_mode & 022) != 0 && (sb.st_mode & S_ISVTX) == 0)
		return error_set(err, EX_CANTCREAT,
				 "queue directory %s has mode %04o: writable by others without the "
				 "sticky bit; refusing it (chmod 1733 %s)",
				 top, (unsigned)(sb.st_mode & 07777), top);
	return 0;
}

/* spool_top_open - open (creating with mode 1733 if needed) the spool directory */

static int spool_top_open(const char *top, int create, struct error *err)
{
	int fd;

	if (top == 0 || *top == 0) {
		error_set(err, EX_CANTCREAT, "no queue directory configured (set [queue] dir)");
		return -1;
	}
	if (create && mkdir(top, 01733) == 0) {
		/* mkdir() obeys the umask; the sticky world-writable mode is
		 * the point (several users, no setuid), so set it outright. */
		if (chmod(top, 01733) != 0) {
			error_set(err, EX_CANTCREAT,
				  "cannot set mode 1733 on queue directory %s: %s", top,
				  strerror(errno));
			return -1;
		}
	} else if (create && errno != EEXIST) {
		error_set(err, EX_CANTCREAT,
			  "cannot create queue directory %s: %s (create it, mode 1733, or set "
			  "[queue] dir)",
			  top, strerror(errno));
		return -1;
	}
	/* O_PATH: in a 1733 directory we may not read (list), only search. */
	fd = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		error_set(err, EX_CANTCREAT, "cannot open queue directory %s: %s", top,
			  strerror(errno));
		return -1;
	}
	if (spool_top_check(top, fd, err) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* area_name - the k-th name user uid may keep an area under: "UID", "UID.1", ... */

static void area_name(char *out, size_t n, uid_t uid, unsigned k)
{
	if (k == 0)
		snprintf(out, n, "%lu", (unsigned long)uid);
	else
		snprintf(out, n, "%lu.%u", (unsigned long)uid, k);
}

/* area_quarantine - root moves a squatter's directory out of an area's name */

static void area_quarantine(int topfd, const char *top, const char *name, const struct stat *sb)
{
	char to[96];

	/* A dot name: no reader takes it for an area. Its owner keeps it and
	 * may remove it; root only frees the name for the user it belongs to. */
	snprintf(to, sizeof(to), ".squatter.%s.%lu.%ld", name, (unsigned long)sb->st_uid,
		 (long)time(0));
	if (renameat(topfd, name, topfd, to) == 0)
		log_msg(LOG_LEVEL_WARNING,
			"moved %s/%s (owner uid %lu, mode %04o) out of the way to %s/%s: an area "
			"belongs to the user it is named after, mode 0700",
			top, name, (unsigned long)sb->st_uid, (unsigned)(sb->st_mode & 07777), top,
			to);
}

/* area_open_named - open one area name; 1 = no such name (not created) */

static int area_open_named(int topfd, const char *top, const char *name, uid_t uid, int create,
			   int quarantine, struct spool_area *a, struct error *err)
{
	static const char *subs[] = {"tmp", "q", "failed"};
	struct stat sb;
	int made = 0;

	area_init(a);
	a->uid = uid;
	{
		struct buf path = BUF_INIT;

		buf_printf(&path, "%s/%s", top, name);
		a->path = buf_steal(&path);
	}
	if (create) {
		if (mkdirat(topfd, name, 0700) == 0) {
			int syncfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			made = 1;
			/* Best effort: in a 1733 directory only its owner can
			 * open it for fsync; the journal usually carries the
			 * mkdir with the first entry's fsync anyway. */
			if (syncfd >= 0) {
				(void)fsync(syncfd);
				close(syncfd);
			}
		} else if (errno != EEXIST) {
			error_set(err, EX_CANTCREAT,
				  "cannot create queue area %s: %s (the queue directory must be "
				  "writable by every submitting user: mode 1733)",
				  a->path, strerror(errno));
			goto fail;
		}
	}
	if ((a->dir = open_dir_at(topfd, name)) < 0) {
		if (errno == ENOENT && !create) {
			spool_area_close(a);
			return 1;
		}
		error_set(err, EX_CANTCREAT, "cannot open queue area %s: %s", a->path,
			  strerror(errno));
		if (quarantine && fstatat(topfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			area_quarantine(topfd, top, name, &sb);
		goto fail;
	}
	if (fstat(a->dir, &sb) != 0 || sb.st_uid != uid || (sb.st_mode & 077) != 0) {
		/* Someone planted this directory for us, or opened it up:
		 * storing mail there could hand it to them. */
		error_set(err, EX_CANTCREAT,
			  "queue area %s is not owned by uid %lu with mode 0700; remove it or fix "
			  "its owner and mode",
			  a->path, (unsigned long)uid);
		if (quarantine && sb.st_uid != uid)
			area_quarantine(topfd, top, name, &sb);
		goto fail;
	}
	for (size_t i = 0; i < 3; i++) {
		int *slot = i == 0 ? &a->tmp : i == 1 ? &a->q : &a->failed;

		if (create && mkdirat(a->dir, subs[i], 0700) == 0)
			made = 1;
		if ((*slot = open_dir_at(a->dir, subs[i])) < 0) {
			error_set(err, EX_CANTCREAT, "cannot open %s/%s: %s", a->path, subs[i],
				  strerror(errno));
			goto fail;
		}
	}
	if (made)
		(void)spool_fsync_dir(a->dir);
	return 0;
fail:
	spool_area_close(a);
	return err->status ? err->status : EX_CANTCREAT;
}

/* spool_area_open - the caller's usable area of uid; create = it is the caller's own and may be
 * made */

int spool_area_open(const char *top, uid_t uid, int create, struct spool_area *a, struct error *err)
{
	struct error first;
	int topfd, rc = 1;

	area_init(a);
	error_clear(&first);
	if ((topfd = spool_top_open(top, create, err)) < 0)
		return err->status;
	/* Anyone may create any name in a 1733 directory, so another user
	 * can take "UID" first. Root moves such a squatter away (and tries
	 * the name again); for everyone else the next names are tried, so
	 * that a squatter costs its victim nothing but a name. */
	for (unsigned k = 0; k < SPOOL_AREA_NAMES && rc != 0; k++) {
		char name[48];

		area_name(name, sizeof(name), uid, k);
		error_clear(err);
		rc = area_open_named(topfd, top, name, uid, create, create && geteuid() == 0, a,
				     err);
		if (rc != 0 && create && geteuid() == 0)
			rc = area_open_named(topfd, top, name, uid, create, 0, a, err);
		if (rc > 1 && first.status == 0)
			first = *err;
	}
	close(topfd);
	if (rc == 0) {
		if (first.status && create)
			log_msg(LOG_LEVEL_WARNING, "%s; using %s instead", first.text, a->path);
		return 0;
	}
	if (first.status) {
		*err = first;
		return err->status;
	}
	return error_set(err, EX_CANTCREAT, "no queue area for uid %lu in %s", (unsigned long)uid,
			 top);
}

/* spool_area_adopt - root writes into another user's area: hand the file to its owner */

void spool_area_adopt(const struct spool_area *a, int fd)
{
	if (geteuid() == 0 && a->uid != 0)
		(void)!fchown(fd, a->uid, (gid_t)-1);
}

/* ====================================================================
 * Scope: the areas and entries a pass or a listing covers
 * ==================================================================== */

/* spool_list_ids - the committed ids in q/, oldest first (by mtime: ids need not sort) */

struct id_age {
	struct timespec mtime;
	char *id;
};

static int cmp_age(const void *x, const void *y)
{
	const struct id_age *a = x, *b = y;

	if (a->mtime.tv_sec != b->mtime.tv_sec)
		return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
	if (a->mtime.tv_nsec != b->mtime.tv_nsec)
		return a->mtime.tv_nsec < b->mtime.tv_nsec ? -1 : 1;
	return strcmp(a->id, b->id);
}

void spool_list_ids(const struct spool_area *a, struct strlist *ids, int tidy)
{
	DIR *d = spool_opendir(a->q);
	struct dirent *de;
	double now = spool_now();
	struct id_age *ages = 0;
	size_t n = 0, cap = 0;
	unsigned skipped = 0;

	if (d == 0)
		return;
	while ((de = readdir(d)) != 0) {
		char *dot = strchr(de->d_name, '.');
		struct stat sb;

		if (de->d_name[0] == '.')
			continue;
		if (dot == 0) {
			if (fstatat(a->q, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			/* Only the owner's plain files are entries. A FIFO, a
			 * directory, a symlink or a stranger's file is skipped,
			 * every pass, without being opened or retried. */
			if (!S_ISREG(sb.st_mode) || sb.st_uid != a->uid ||
			    !spool_id_valid(de->d_name)) {
				skipped++;
				continue;
			}
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				ages = util_realloc(ages, cap * sizeof(*ages));
			}
			ages[n].mtime = sb.st_mtim;
			ages[n++].id = util_strdup(de->d_name);
		} else if (tidy && strcmp(dot, ".st") == 0) {
			/* A state file whose entry is gone: a crash between the two unlinks. */
			char id[SPOOL_ID_MAX];

			if ((size_t)(dot - de->d_name) < sizeof(id)) {
				memcpy(id, de->d_name, (size_t)(dot - de->d_name));
				id[dot - de->d_name] = 0;
				if (fstatat(a->q, id, &sb, AT_SYMLINK_NOFOLLOW) != 0 &&
				    errno == ENOENT)
					(void)unlinkat(a->q, de->d_name, 0);
			}
		}
	}
	closedir(d);
	if (skipped && tidy)
		log_msg(LOG_LEVEL_WARNING,
			"%s/q: skipped %u name(s) that are not plain files of uid %lu; remove them",
			a->path, skipped, (unsigned long)a->uid);
	if (n > 1)
		qsort(ages, n, sizeof(*ages), cmp_age);
	for (size_t i = 0; i < n; i++)
		strlist_add_nodup(ids, ages[i].id);
	free(ages);

	/* tmp/ debris from crashed writers: invisible, removed when old. */
	if (tidy && (d = spool_opendir(a->tmp)) != 0) {
		while ((de = readdir(d)) != 0) {
			struct stat sb;

			if (de->d_name[0] == '.')
				continue;
			if (fstatat(a->tmp, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    now - (double)sb.st_mtime > SPOOL_TMP_MAX_AGE)
				(void)unlinkat(a->tmp, de->d_name, 0);
		}
		closedir(d);
	}
}

/* uid_name - the uid of an area name ("UID" or "UID.k", see area_name), or -1 */

static long uid_name(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || v < 0 || v > (long)(uid_t)-1)
		return -1;
	if (*end == 0)
		return v;
	if (end[0] == '.' && end[1] >= '1' && end[1] < '0' + SPOOL_AREA_NAMES && end[2] == 0)
		return v;
	return -1;
}

/* spool_scope_areas - the areas this process may handle: its own; all of them for root */

int spool_scope_areas(const struct config *cfg, struct spool_area **out, size_t *n, int tidy,
		      struct error *err)
{
	struct spool_area a;
	uid_t me = geteuid();
	unsigned refused = 0;
	DIR *d;
	struct dirent *de;
	int topfd;

	*out = 0;
	*n = 0;
	/* A missing spool holds nothing; a spool we must not trust is an error. */
	if (cfg->queue_dir == 0 || *cfg->queue_dir == 0 || access(cfg->queue_dir, F_OK) != 0)
		return 0;
	if ((topfd = spool_top_open(cfg->queue_dir, 0, err)) < 0)
		return err->status;
	if (me != 0) {
		/* Every name our areas may have: a squatter may hold the first. */
		for (unsigned k = 0; k < SPOOL_AREA_NAMES; k++) {
			char name[48];
			struct error ignored;

			area_name(name, sizeof(name), me, k);
			error_clear(&ignored);
			if (area_open_named(topfd, cfg->queue_dir, name, me, 0, 0, &a, &ignored) ==
			    0) {
				*out = util_realloc(*out, (*n + 1) * sizeof(a));
				(*out)[(*n)++] = a;
			}
		}
		close(topfd);
		return 0;
	}
	if ((d = opendir(cfg->queue_dir)) == 0) {
		close(topfd);
		return 0;
	}
	while ((de = readdir(d)) != 0) {
		long uid = uid_name(de->d_name);
		struct error aerr;

		if (uid < 0)
			continue;
		error_clear(&aerr);
		/* area_open_named() checks that the area belongs to its uid;
		 * in a pass (tidy) root moves a squatter out of the way. */
		if (area_open_named(topfd, cfg->queue_dir, de->d_name, (uid_t)uid, 0, tidy, &a,
				    &aerr) != 0) {
			/* One line per area, a bounded number per scan: a user
			 * who makes a million names gets a count, not a flood. */
			if (aerr.status && ++refused <= SPOOL_WARN_MAX && tidy)
				log_msg(LOG_LEVEL_WARNING, "skipping queue area: %s", aerr.text);
			continue;
		}
		*out = util_realloc(*out, (*n + 1) * sizeof(a));
		(*out)[(*n)++] = a;
	}
	closedir(d);
	close(topfd);
	if (refused > SPOOL_WARN_MAX && tidy)
		log_msg(LOG_LEVEL_WARNING, "skipped %u more queue area(s) in %s",
			refused - SPOOL_WARN_MAX, cfg->queue_dir);
	return 0;
}

/* spool_scope_free - close the areas */

void spool_scope_free(struct spool_area *areas, size_t n)
{
	for (size_t i = 0; i < n; i++)
		spool_area_close(&areas[i]);
	free(areas);
}
