#ifndef DELTAPUSH_DB_H
#define DELTAPUSH_DB_H

#include "deltapush-store.h"
#include "deltapush-sender.h"

struct deltapush_settings;

/* The one owner of the database: opens it (moving a corrupt file aside),
   checks that the file at the path is still the one open and reopens it,
   prunes expired tokens, writes the push states the sender hands it
   behind, and runs the sender on it. The connections only call the
   functions below. While the database can't be used every call is
   refused with the reason, and it is tried again (at most once a second
   for requests, and every few seconds by itself). */
struct deltapush_db;

/* state_dir is where the default database directory lives (NULL when
   deltapush_db was set). */
struct deltapush_db *
deltapush_db_init(const struct deltapush_settings *set, const char *state_dir,
		  struct event *event_parent);
/* Give the database up (shutdown, doveadm reload): what finished is
   written, in-flight pushes stay due in it. Only deinit may follow. */
void deltapush_db_detach(struct deltapush_db *db);
/* After detach: close the database, let in-flight pushes finish for a
   short grace period, save the successes when no new process has taken
   the database meanwhile, and free everything. */
void deltapush_db_deinit(struct deltapush_db **db);

/* Before each request: is the database the file at its path, and open?
   Returns FALSE with reason_r when requests must be refused. sync writes
   the outcomes of finished pushes first, so that reads see them. */
bool deltapush_db_request_begin(struct deltapush_db *db, bool sync,
				const char **reason_r);

/* Register (or with seen in the past, import) a token. Returns 1 if it
   was added, 0 if refreshed, -1 with error_r. Tokens evicted to make room
   are added to evicted. */
int deltapush_db_register(struct deltapush_db *db, const char *user,
			  const char *token, time_t seen, pool_t pool,
			  ARRAY_TYPE(const_string) *evicted,
			  const char **error_r);
/* The user's live tokens, oldest first. */
int deltapush_db_get_tokens(struct deltapush_db *db, const char *user,
			    pool_t pool,
			    ARRAY_TYPE(deltapush_store_token) *tokens,
			    const char **error_r);
/* Remove the user's tokens, or (prefix != NULL) the one whose id or
   whole token is prefix; removed gets what was removed. Returns 0, -1
   with error_r, or -2 when prefix matches more than one token (then
   nothing is removed and removed holds the matches). */
int deltapush_db_forget(struct deltapush_db *db, const char *user,
			const char *prefix, pool_t pool,
			ARRAY_TYPE(deltapush_store_token) *removed,
			const char **error_r);
/* The push state of token as it is now (in flight, due). */
void deltapush_db_get_push_state(struct deltapush_db *db,
				 const struct deltapush_store_token *token,
				 struct deltapush_push_state *state_r);

/* The sender hands over a token's new push state (the outcome of a
   push, a flush, a clamp). It is written into this ioloop pass's group
   commit, unacknowledged, and kept until that commits; after a failure
   it is retried. A state lost in a crash only sends a push again. */
void deltapush_db_save_state(struct deltapush_db *db, int64_t id,
			     const struct deltapush_push_state *state);

/* New mail for user; see deltapush_sender_notify(). written_r is FALSE
   when the trigger was folded into durably pending pushes without a
   write (deltapush_sender_notify_fold()): its reply need not wait for
   a commit. */
int deltapush_db_notify(struct deltapush_db *db, const char *user,
			bool *written_r, const char **error_r);
/* Make pending pushes due now; see deltapush_sender_flush(). */
int deltapush_db_flush(struct deltapush_db *db, const char *user,
		       const char **error_r);
int deltapush_db_get_status(struct deltapush_db *db,
			    struct deltapush_store_stats *stats_r,
			    struct deltapush_sender_status *status_r,
			    const char **error_r);

/* Group commit: is a write of this ioloop pass waiting to be committed?
   Then callback is called once it is on disk (ret 0) or failed. */
bool deltapush_db_group_is_open(struct deltapush_db *db);
void deltapush_db_group_add_callback(struct deltapush_db *db,
				     deltapush_store_commit_callback_t *callback,
				     void *context);
#define deltapush_db_group_add_callback(db, callback, context) \
	deltapush_db_group_add_callback(db, \
		(deltapush_store_commit_callback_t *)callback, \
		TRUE ? context : CALLBACK_TYPECHECK(callback, \
			void (*)(int, const char *, typeof(context))))

/* Pushes waiting or in flight (the process must not idle-die) */
unsigned int deltapush_db_get_pending(struct deltapush_db *db);

#endif
