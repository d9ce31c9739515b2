#ifndef RELAYSHIM_SPOOL_INT_H
#define RELAYSHIM_SPOOL_INT_H

/*++
 * NAME
 *	spool_int 3h
 * SUMMARY
 *	what the spool modules share with each other, and nobody else
 * SYNOPSIS
 *	#include "spool_int.h"
 *
 *	extern spool_transport_fn spool_transport;
 *	extern long long spool_deadline_ms;
 *
 *	void	spool_crash_point(const char *step);
 *	int	spool_time_is_up(void);
 *	int	spool_lock_entry(int fd, int wait);
 *	double	spool_now(void);
 *	unsigned spool_random(void);
 *	double	spool_retry_base(void);
 *	double	spool_backoff(unsigned n);
 *
 *	int	spool_pread_all(int fd, void *p, size_t n, off_t off);
 *	int	spool_fsync_dir(int dirfd);
 *	DIR	*spool_opendir(int dirfd);
 *	int	spool_open_owned(int dirfd, const char *name, int flags, uid_t owner,
 *			struct stat *sb);
 *	int	spool_id_valid(const char *id);
 *	int	spool_read_entry(int qdir, int fd, const char *id, struct spool_entry *e);
 *	int	spool_read_message(int fd, const struct spool_entry *e,
 *			struct message *msg);
 *
 *	int	spool_area_open(const char *top, uid_t uid, int create,
 *			struct spool_area *a, struct error *err);
 *	void	spool_area_close(struct spool_area *a);
 *	void	spool_area_adopt(const struct spool_area *a, int fd);
 *	void	spool_list_ids(const struct spool_area *a, struct strlist *ids, int tidy);
 *	int	spool_scope_areas(const struct config *cfg, struct spool_area **out,
 *			size_t *n, int tidy, struct error *err);
 *	void	spool_scope_free(struct spool_area *areas, size_t n);
 *
 *	void	spool_hint_first_time(const char *id, const char *before, const char *now);
 *
 *	void	spool_state_write(const struct spool_area *a, const struct spool_entry *e,
 *			int durable);
 *	void	spool_log_result(enum log_level level, const struct spool_entry *e,
 *			const struct strlist *to, const char *status,
 *			const char *relay, const char *dsn, const char *text);
 *	void	spool_give_up(...);
 *	void	spool_give_up_notify(...);
 *
 *	enum entry_result spool_deliver_entry(const struct config *cfg,
 *			const struct spool_area *a, const char *id, int force,
 *			int wait_lock, double *next_due, struct relay_link *link,
 *			struct error *err);
 *	void	spool_removal_sync(const struct spool_area *a, struct relay_link *link);
 *	void	spool_link_sync(struct relay_link *link);
 * DESCRIPTION
 *	spool.h is the queue's contract with the rest of relayshim; this
 *	header is the seam between the files that implement it, one per
 *	section of the queue:
 * .IP spool.c
 *	knobs (crash points, the clock, backoff), small I/O helpers that
 *	refuse what another user may plant (spool_open_owned()), and reading an
 *	entry (spool_read_entry(), spool_read_message());
 * .IP spool_area.c
 *	the spool directory and the per-user areas, squatters, and the
 *	scope of a pass or listing (spool_scope_areas(), spool_list_ids());
 * .IP spool_commit.c
 *	the commit protocol: spool_store(), spool_usable();
 * .IP spool_notice.c
 *	state files, failed/ records, failure notices, delivery log lines;
 * .IP spool_deliver.c
 *	delivering one entry: spool_deliver_entry();
 * .IP spool_run.c
 *	passes (spool_run(), spool_deliver(), spool_load()) and the retry
 *	worker (spool_kick());
 * .IP spool_list.c
 *	spool_walk() and the -bp listing.
 * .PP
 *	Nothing outside sendmail/spool*.c includes this header.
 *
 *	spool_transport (spool_set_transport()) replaces smtp_deliver() in
 *	tests; spool_deadline_ms (spool_set_deadline()) is the end of a
 *	-q --deadline run on the net_now_ms() clock, 0 for none.
 *--*/

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "log.h"
#include "spool.h"
#include "spool_entry.h"

#define SPOOL_ENVELOPE_MAX                                                                         \
	(8 * 1024 * 1024)      /* envelope text of one entry: 1000                                 \
				* addresses of 2 KiB, escaped, fit */
#define SPOOL_TMP_MAX_AGE 3600 /* seconds before tmp/ debris goes */
#define SPOOL_STREAK_MAX 3     /* temporary failures that end a pass */
#define SPOOL_COPY_CHUNK (256 * 1024)
#define SPOOL_AREA_NAMES 8    /* "UID", "UID.1" ... "UID.7" */
#define SPOOL_AREA_BUDGET 200 /* delivery attempts per area and pass */
#define SPOOL_WARN_MAX 10     /* warnings of one kind per scan */
#define SPOOL_SYNC_BATCH 64   /* removals per fsync of q/ in a pass */

extern spool_transport_fn spool_transport;
extern long long spool_deadline_ms;

/* Knobs: crash points, time, randomness, backoff (spool.c) */
extern void spool_crash_point(const char *step);
extern int spool_time_is_up(void);
extern int spool_lock_entry(int fd, int wait);
extern double spool_now(void);
extern unsigned spool_random(void);
extern double spool_retry_base(void);
extern double spool_backoff(unsigned n);

/* Small I/O helpers and reading entries (spool.c) */
extern int spool_pread_all(int fd, void *p, size_t n, off_t off);
extern int spool_fsync_dir(int dirfd);
extern DIR *spool_opendir(int dirfd);
extern int spool_open_owned(int dirfd, const char *name, int flags, uid_t owner, struct stat *sb);
extern int spool_id_valid(const char *id);
extern int spool_read_entry(int qdir, int fd, const char *id, struct spool_entry *e);
extern int spool_read_message(int fd, const struct spool_entry *e, struct message *msg);

/* One user's area: dir/UID with tmp/, q/, failed/ (spool_area.c) */
struct spool_area {
	uid_t uid;
	int dir; /* dir/UID */
	int tmp;
	int q;
	int failed;
	char *path; /* "dir/UID", for messages */
};

extern int spool_area_open(const char *top, uid_t uid, int create, struct spool_area *a,
			   struct error *err);
extern void spool_area_close(struct spool_area *a);
extern void spool_area_adopt(const struct spool_area *a, int fd);
extern void spool_list_ids(const struct spool_area *a, struct strlist *ids, int tidy);
extern int spool_scope_areas(const struct config *cfg, struct spool_area **out, size_t *n, int tidy,
			     struct error *err);
extern void spool_scope_free(struct spool_area *areas, size_t n);

/* The commit protocol (spool_commit.c) */
extern void spool_hint_first_time(const char *id, const char *before, const char *now);

/* State file, failure records, notices (spool_notice.c) */
extern void spool_state_write(const struct spool_area *a, const struct spool_entry *e, int durable);
extern void spool_log_result(enum log_level level, const struct spool_entry *e,
			     const struct strlist *to, const char *status, const char *relay,
			     const char *dsn, const char *text);
extern void spool_give_up_notify(const struct config *cfg, const struct spool_area *a, int fd,
				 const struct spool_entry *e, const char *reason,
				 const struct strlist *failed, const struct strlist *why, int keep,
				 int notify);
extern void spool_give_up(const struct config *cfg, const struct spool_area *a, int fd,
			  const struct spool_entry *e, const char *reason,
			  const struct strlist *failed, const struct strlist *why, int keep);

/* Delivering one entry (spool_deliver.c) */
enum entry_result {
	ENTRY_DONE,	     /* delivered and removed */
	ENTRY_DEFERRED,	     /* tried, temporary failure, still queued */
	ENTRY_FAILED,	     /* given up: failed/ */
	ENTRY_NOT_DUE,	     /* not tried: next_try in the future */
	ENTRY_BUSY,	     /* locked by another deliverer */
	ENTRY_GONE,	     /* vanished (delivered by someone else) */
	ENTRY_UNREADABLE,    /* not ours to read */
	ENTRY_LOCAL_FAULT,   /* could not be read: retried later, not the relay's fault */
	ENTRY_LEFT_TO_OWNER, /* another user's, only its owner's worker may send it */
};

/* The relay connection of one pass, and whether it could be opened at all. */
struct relay_link {
	struct smtp_session *session;
	int unreachable;   /* the last attempt could not even connect */
	int unsynced_dir;  /* q/ with removals not yet fsync'ed ... */
	unsigned unsynced; /* ... and how many (spool_removal_sync()) */
};

/* Batched fsync of q/ after removals (spool_deliver.c) */
extern void spool_removal_sync(const struct spool_area *a, struct relay_link *link);
extern void spool_link_sync(struct relay_link *link);

extern enum entry_result spool_deliver_entry(const struct config *cfg, const struct spool_area *a,
					     const char *id, int force, int wait_lock,
					     double *next_due, struct relay_link *link,
					     struct error *err);

#endif
