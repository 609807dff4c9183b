#ifndef DELTAPUSH_STORE_H
#define DELTAPUSH_STORE_H

#include "deltapush-schedule.h"
#include "deltapush-settings.h"

/* The service's SQLite database: every user's push tokens and the push
   state of each token. Only the deltapush service opens it. */

struct deltapush_store;

struct deltapush_store_token {
	int64_t id;
	const char *user;
	const char *token;
	/* Unix times of the first registration and of the last one */
	time_t created, last_seen;
	/* in_flight is always FALSE in what the store returns */
	struct deltapush_push_state state;
};
ARRAY_DEFINE_TYPE(deltapush_store_token, struct deltapush_store_token);

/* Open (creating or upgrading the schema as needed) the database at path.
   With exclusive, this process keeps the file locked from its first
   write until it closes it (the service: it is the only user). Returns 0
   on success, -1 with error_r on failure, -2 with error_r when the file
   is corrupt or not an SQLite database at all. */
int deltapush_store_open(const char *path, bool exclusive,
			 struct event *event_parent,
			 struct deltapush_store **store_r,
			 const char **error_r);
void deltapush_store_close(struct deltapush_store **store);

/* How commits are synced to disk (see enum deltapush_fsync). */
void deltapush_store_set_fsync(struct deltapush_store *store,
			       enum deltapush_fsync mode);
/* Sync the next commits as a write whose success is acknowledged to a
   client (TRUE) or as background bookkeeping (FALSE). Call outside a
   transaction. */
int deltapush_store_set_acknowledged(struct deltapush_store *store,
				     bool acknowledged, const char **error_r);
/* SQLite's PRAGMA synchronous now (1 = NORMAL, 2 = FULL), for tests */
int deltapush_store_get_synchronous(struct deltapush_store *store,
				    int64_t *level_r, const char **error_r);

/* Group commit: the writes of one ioloop pass share one transaction and
   one disk sync. The first join begins the transaction; it is committed
   by a zero timeout once the pass is over, or by group_commit(). Each
   caller wraps its writes in a savepoint so that a failure undoes only
   its own, and acts on them (e.g. replies OK) only from its commit
   callback. acknowledged: the writes are acknowledged to a client, see
   deltapush_store_set_acknowledged(). */
typedef void deltapush_store_commit_callback_t(int ret, const char *error,
					       void *context);
int deltapush_store_group_join(struct deltapush_store *store,
			       bool acknowledged, const char **error_r);
/* Call callback once the group's transaction committed (ret 0) or failed
   (ret -1 with error). Only while a group is open. */
void deltapush_store_group_add_callback(struct deltapush_store *store,
					deltapush_store_commit_callback_t *callback,
					void *context);
#define deltapush_store_group_add_callback(store, callback, context) \
	deltapush_store_group_add_callback(store, \
		(deltapush_store_commit_callback_t *)callback, \
		TRUE ? context : CALLBACK_TYPECHECK(callback, \
			void (*)(int, const char *, typeof(context))))
/* Commit the open group now (nothing when none is open). */
int deltapush_store_group_commit(struct deltapush_store *store,
				 const char **error_r);
bool deltapush_store_group_is_open(struct deltapush_store *store);
/* The open group's commit syncs to disk (see deltapush_fsync). */
bool deltapush_store_group_is_synced(struct deltapush_store *store);
/* Transactions committed so far, for tests */
unsigned int deltapush_store_get_commit_count(struct deltapush_store *store);

/* A savepoint inside the group's transaction */
int deltapush_store_savepoint(struct deltapush_store *store,
			      const char **error_r);
int deltapush_store_release(struct deltapush_store *store,
			    const char **error_r);
void deltapush_store_rollback_to(struct deltapush_store *store);

/* Group the following calls into one transaction (and one disk sync). */
int deltapush_store_begin(struct deltapush_store *store, const char **error_r);
/* A failed commit has rolled the transaction back: no rollback after it. */
int deltapush_store_commit(struct deltapush_store *store, const char **error_r);
void deltapush_store_rollback(struct deltapush_store *store);

/* Add token to the user's set, or refresh its last_seen when the user
   already has it (an older now never moves last_seen back, so importing
   old registrations is safe). When the user then has more than max_tokens tokens, the
   least recently seen ones are removed (their tokens are added to
   evicted_r when it is not NULL). Returns 1 if added, 0 if refreshed, -1
   on error. */
int deltapush_store_register(struct deltapush_store *store, const char *user,
			     const char *token, time_t now,
			     unsigned int max_tokens, pool_t pool,
			     ARRAY_TYPE(const_string) *evicted_r,
			     const char **error_r);

/* Delta Chat registers the same token again at every IMAP login, so a
   registration of a token the user has is a read: last_seen is written
   only once it lags by more than this, a sixteenth of the TTL but at most
   a day. A token then expires at most that much before the TTL has
   passed since its last registration (with the default 90 days: after
   89 to 90 days), and a device that logs in all the time costs one write
   a day instead of one per login. 0 for a TTL under 16 s. */
unsigned int deltapush_store_refresh_secs(unsigned int token_ttl_secs);
/* Returns 1 if the user has token with a last_seen at or after
   min_last_seen and fewer than max_tokens tokens (registering it again
   need not write), 0 if not, -1 on error. A full set is written on every
   registration: the next token evicts the least recently seen one, and
   that must be the one the user's devices really saw least recently. */
int deltapush_store_is_fresh(struct deltapush_store *store, const char *user,
			     const char *token, time_t min_last_seen,
			     unsigned int max_tokens, const char **error_r);

/* Get the user's tokens last seen at or after min_last_seen, oldest
   registration first. Returns 0 on success (also when there are none),
   -1 on error. */
int deltapush_store_list(struct deltapush_store *store, const char *user,
			 time_t min_last_seen, pool_t pool,
			 ARRAY_TYPE(deltapush_store_token) *tokens_r,
			 const char **error_r);

/* Get one token by its id. Returns 1 if found, 0 if not, -1 on error. */
int deltapush_store_get(struct deltapush_store *store, int64_t id,
			pool_t pool, struct deltapush_store_token *token_r,
			const char **error_r);

/* Remove all of the user's tokens. */
int deltapush_store_forget(struct deltapush_store *store, const char *user,
			   unsigned int *count_r, const char **error_r);
/* Remove one token by id. Returns 1 if removed, 0 if it was not there. */
int deltapush_store_remove(struct deltapush_store *store, int64_t id,
			   const char **error_r);
/* Remove every token last seen before min_last_seen. */
int deltapush_store_prune(struct deltapush_store *store, time_t min_last_seen,
			  unsigned int *count_r, const char **error_r);

/* Save a token's push state. Returns 1 if saved, 0 if the token no
   longer exists, -1 on error. */
int deltapush_store_update_state(struct deltapush_store *store, int64_t id,
				 const struct deltapush_push_state *state,
				 const char **error_r);

/* Get up to limit tokens with a pending push (state.due_msecs != 0), in
   (due_msecs, id) order, starting after the given position (0, 0 for the
   start). Used to load pending work in batches at startup. */
int deltapush_store_get_pending(struct deltapush_store *store,
				uint64_t after_due_msecs, int64_t after_id,
				unsigned int limit, pool_t pool,
				ARRAY_TYPE(deltapush_store_token) *tokens_r,
				const char **error_r);

/* Counts for status output. */
struct deltapush_store_stats {
	uint64_t tokens;
	uint64_t users;
	uint64_t pending;
	/* Smallest due_msecs of the pending pushes; 0 if none */
	uint64_t oldest_due_msecs;
};
int deltapush_store_get_stats(struct deltapush_store *store,
			      struct deltapush_store_stats *stats_r,
			      const char **error_r);

#endif
