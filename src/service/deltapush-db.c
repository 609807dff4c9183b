/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "deltapush-common.h"
#include "deltapush-settings.h"
#include "deltapush-token.h"
#include "deltapush-store.h"
#include "deltapush-sender.h"
#include "deltapush-db.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long in-flight pushes may finish after SIGTERM before the process
   exits; what is unfinished stays due in the database. */
#define DELTAPUSH_DB_SHUTDOWN_GRACE_MSECS 2000
/* How often the drain looks whether the pushes in flight are done */
#define DELTAPUSH_DB_SHUTDOWN_CHECK_MSECS 10
/* How often tokens past deltapush_token_ttl are pruned. */
#define DELTAPUSH_DB_PRUNE_INTERVAL_MSECS (3600 * 1000)
/* How often the database file is checked (removed, replaced) and, while
   it cannot be used, opened again. */
#define DELTAPUSH_DB_CHECK_INTERVAL_MSECS (5 * 1000)
/* While the database can't be opened, requests try again at most this
   often: every open checks the directory and may wait for SQLite's busy
   timeout, which a burst of requests must not pay each. */
#define DELTAPUSH_DB_OPEN_RETRY_MSECS 1000
/* Retry writing the push states after a failure */
#define DELTAPUSH_DB_SYNC_RETRY_MSECS 1000

/* A push state handed over by the sender, to be written to the store */
struct deltapush_db_state {
	int64_t id;
	struct deltapush_push_state state;
};

struct deltapush_db {
	const struct deltapush_settings *set;
	/* state_dir when deltapush_db is the default; else NULL */
	char *state_dir;
	struct event *event;

	/* Both NULL while the database can't be used */
	struct deltapush_store *store;
	struct deltapush_sender *sender;
	struct timeout *to_prune, *to_check;

	/* The database file as opened, to notice it being removed or
	   replaced */
	dev_t dev;
	ino_t ino;
	/* Why requests are refused while store is NULL */
	char *unavailable_reason;
	/* The first error of the current failure streak, logged once; NULL
	   while it is open */
	char *open_error;
	/* When the last open was tried (ioloop msecs), and how many opens
	   failed in the streak */
	uint64_t open_tried_msecs;
	unsigned int open_failures;

	/* Write-behind: outcomes of finished pushes not yet committed,
	   written into the group commit of the ioloop pass they come in
	   (see deltapush_db_sync()). dirty[0 .. dirty_written) are written
	   in the open group. */
	ARRAY(struct deltapush_db_state) dirty;
	unsigned int dirty_written;
	bool dirty_callback:1;
	struct timeout *to_sync;

	/* Given up by deltapush_db_detach(): write nothing more until the
	   drain is over */
	bool detached:1;
	bool shutdown_timed_out:1;
};

static uint64_t deltapush_db_now_msecs(void)
{
	return (uint64_t)ioloop_timeval.tv_sec * 1000 +
		ioloop_timeval.tv_usec / 1000;
}

static void deltapush_db_sync(struct deltapush_db *db);

static void deltapush_db_sync_later(struct deltapush_db *db)
{
	if (db->to_sync == NULL) {
		db->to_sync = timeout_add_to(io_loop_get_root(),
					     DELTAPUSH_DB_SYNC_RETRY_MSECS,
					     deltapush_db_sync, db);
	}
}

static void deltapush_db_states_committed(int ret, const char *error,
					  struct deltapush_db *db)
{
	db->dirty_callback = FALSE;
	if (ret < 0) {
		/* Kept for the next try; until then a restart would send
		   these pushes again, which is safe. */
		e_error(db->event, "Couldn't save push states: %s", error);
		db->dirty_written = 0;
		deltapush_db_sync_later(db);
		return;
	}
	/* Only now are they on disk */
	array_delete(&db->dirty, 0, db->dirty_written);
	db->dirty_written = 0;
}

/* Write the queued push states not yet in the open group's transaction;
   they leave the queue when it commits. The caller is in a savepoint
   and resets dirty_written if it rolls back. */
static int deltapush_db_write_states(struct deltapush_db *db,
				     const char **error_r)
{
	const struct deltapush_db_state *dirty;
	unsigned int i, count = array_count(&db->dirty);

	for (i = db->dirty_written; i < count; i++) {
		dirty = array_idx(&db->dirty, i);
		/* 0 = the token is gone meanwhile: nothing to save */
		if (deltapush_store_update_state(db->store, dirty->id,
						 &dirty->state, error_r) < 0)
			return -1;
		/* A retried state may be older than a trigger's since */
		if (db->sender != NULL)
			deltapush_sender_state_written(db->sender, dirty->id);
	}
	db->dirty_written = count;
	if (!db->dirty_callback && count > 0) {
		deltapush_store_group_add_callback(db->store,
			deltapush_db_states_committed, db);
		db->dirty_callback = TRUE;
	}
	return 0;
}

/* Write the queued push states into the group commit of this pass, in
   a savepoint of their own. acknowledged: the group is one whose
   success a client waits for (see deltapush_store_group_join()). */
static int deltapush_db_write_behind(struct deltapush_db *db,
				     bool acknowledged, const char **error_r)
{
	unsigned int old_written = db->dirty_written;

	if (db->dirty_written == array_count(&db->dirty))
		return 0;
	if (deltapush_store_group_join(db->store, acknowledged,
				       error_r) < 0 ||
	    deltapush_store_savepoint(db->store, error_r) < 0)
		return -1;
	if (deltapush_db_write_states(db, error_r) < 0) {
		deltapush_store_rollback_to(db->store);
		db->dirty_written = old_written;
		return -1;
	}
	if (deltapush_store_release(db->store, error_r) < 0) {
		db->dirty_written = old_written;
		return -1;
	}
	return 0;
}

/* Write the outcomes of finished pushes now, so that reads of the store
   see them; retried after a failure. */
static void deltapush_db_sync(struct deltapush_db *db)
{
	const char *error;

	timeout_remove(&db->to_sync);
	if (db->store == NULL)
		return;
	if (deltapush_db_write_behind(db, FALSE, &error) < 0) {
		e_error(db->event, "Couldn't save push states: %s", error);
		deltapush_db_sync_later(db);
	}
}

void deltapush_db_save_state(struct deltapush_db *db, int64_t id,
			     const struct deltapush_push_state *state)
{
	struct deltapush_db_state *dirty;

	dirty = array_append_space(&db->dirty);
	dirty->id = id;
	dirty->state = *state;
	/* In this pass's group commit, unless a retry is waiting or the
	   database was given up (then deltapush_db_deinit() saves it) */
	if (db->to_sync == NULL && db->store != NULL && !db->detached)
		deltapush_db_sync(db);
}

/* Forget what is not written: ids belong to the database file they came
   from, and a push whose outcome is lost is only sent again. */
static void deltapush_db_states_clear(struct deltapush_db *db)
{
	timeout_remove(&db->to_sync);
	array_clear(&db->dirty);
	db->dirty_written = 0;
}

static void deltapush_db_prune(struct deltapush_db *db)
{
	unsigned int count;
	const char *error;

	if (db->store == NULL)
		return;
	if (deltapush_store_prune(db->store,
				  ioloop_time - db->set->token_ttl_secs,
				  &count, &error) < 0) {
		e_error(db->event, "Pruning expired tokens failed: %s", error);
		return;
	}
	if (count == 0)
		return;
	/* one event per token, so metrics count tokens */
	for (unsigned int i = 0; i < count; i++) {
		e_debug(event_create_passthrough(db->event)->
			set_name("deltapush_token_removed")->
			add_str("reason", "expired")->
			add_int("count", 1)->event(),
			"Pruned an expired token");
	}
	e_info(db->event, "Pruned %u token(s) unseen for %u s",
	       count, db->set->token_ttl_secs);
}

/* Move a database file that SQLite can't read out of the way, keeping it
   (and its -wal) for the administrator. Returns the new name, or NULL. */
static const char *
deltapush_db_move_aside(struct deltapush_db *db, const char *error)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	const char *path = db->set->db_path, *dest;
	unsigned int i;

	dest = t_strdup_printf("%s.corrupt-%ld", path, (long)ioloop_time);
	for (i = 0; i < N_ELEMENTS(suffixes); i++) {
		const char *from = t_strconcat(path, suffixes[i], NULL);
		const char *to = t_strconcat(dest, suffixes[i], NULL);

		if (rename(from, to) < 0 && errno != ENOENT) {
			e_error(db->event, "Database %s is unreadable "
				"(%s), and moving it aside failed: "
				"rename(%s, %s) failed: %m", path, error,
				from, to);
			return NULL;
		}
	}
	e_error(db->event, "Database %s is corrupt or not a database "
		"(%s): moved it to %s and started a new, empty one. The tokens "
		"in it are lost until it is restored (devices register again "
		"when Delta Chat restarts)", path, error, dest);
	return dest;
}

/* The service runs unprivileged: say clearly what the operator must do
   when the database's directory is not ours, and never start an empty
   database next to the one 0.1 kept in state_dir. */
static int deltapush_db_dir_check(struct deltapush_db *db,
				  const char **error_r)
{
	const char *path = db->set->db_path;
	const char *dir, *old_path, *p;
	struct stat st;

	p = strrchr(path, '/');
	dir = p == NULL ? "." : (p == path ? "/" : t_strdup_until(path, p));
	if (db->state_dir != NULL && stat(path, &st) < 0 && errno == ENOENT) {
		old_path = t_strconcat(db->state_dir,
				       "/" DELTAPUSH_DEFAULT_DB_NAME, NULL);
		if (stat(old_path, &st) == 0) {
			*error_r = t_strdup_printf("Found the database of "
				"deltapush 0.1 at %s: move it (with its -wal "
				"file, if any) to %s, owned by the service's "
				"user (uid %ld), or set deltapush_db to it",
				old_path, path, (long)geteuid());
			return -1;
		}
		/* The default directory: created when we may (as root) */
		if (mkdir(dir, 0700) < 0 && errno != EEXIST &&
		    errno != EACCES && errno != EPERM) {
			*error_r = t_strdup_printf("mkdir(%s) failed: %m", dir);
			return -1;
		}
	}
	if (access(dir, W_OK | X_OK) < 0) {
		*error_r = t_strdup_printf("%s: the directory %s must exist "
			"and be writable by the service's user (uid %ld): "
			"access() failed: %m", path, dir, (long)geteuid());
		return -1;
	}
	return 0;
}

/* Open the store, moving a file SQLite can't read aside once, and
   remember which file it is. */
static int deltapush_db_open_store(struct deltapush_db *db,
				   const char **error_r)
{
	const char *path = db->set->db_path;
	struct stat st;
	int ret;

	if (deltapush_db_dir_check(db, error_r) < 0)
		return -1;
	ret = deltapush_store_open(path, TRUE, db->event, &db->store, error_r);
	if (ret == -2 && deltapush_db_move_aside(db, *error_r) != NULL) {
		ret = deltapush_store_open(path, TRUE, db->event, &db->store,
					   error_r);
	}
	if (ret < 0)
		return -1;
	if (stat(path, &st) < 0) {
		*error_r = t_strdup_printf("stat(%s) failed: %m", path);
		deltapush_store_close(&db->store);
		return -1;
	}
	db->dev = st.st_dev;
	db->ino = st.st_ino;
	return 0;
}

static void deltapush_db_set_unavailable(struct deltapush_db *db,
					 const char *reason)
{
	i_free(db->unavailable_reason);
	db->unavailable_reason = i_strdup(reason);
}

/* Open the database and start sending what is pending in it. Until that
   works the service stays up and answers every request with FAIL, so mail
   processes get a prompt answer instead of a dead socket. */
static int deltapush_db_open(struct deltapush_db *db)
{
	const char *error;

	db->open_tried_msecs = deltapush_db_now_msecs();
	if (deltapush_db_open_store(db, &error) < 0) {
		db->open_failures++;
		if (db->open_error == NULL) {
			/* once per failure streak, not every retry */
			e_error(db->event, "Database unavailable, "
				"registrations and pushes are refused until "
				"it can be opened: %s", error);
			db->open_error = i_strdup(error);
		} else {
			e_debug(db->event, "Database still unavailable "
				"(attempt %u): %s", db->open_failures, error);
		}
		deltapush_db_set_unavailable(db, error);
		return -1;
	}
	deltapush_store_set_fsync(db->store, db->set->fsync);
	db->sender = deltapush_sender_init(db->set, db, db->store, db->event);
	if (deltapush_sender_load(db->sender, &error) < 0) {
		e_error(db->event, "Loading pending pushes failed: %s",
			error);
	}
	if (db->open_error != NULL) {
		e_info(db->event, "Database %s is available again "
		       "(after %u failed attempt(s))", db->set->db_path,
		       db->open_failures);
		i_free(db->open_error);
	}
	db->open_failures = 0;
	deltapush_db_prune(db);
	return 0;
}

static void deltapush_db_close(struct deltapush_db *db, const char *reason)
{
	deltapush_db_set_unavailable(db, reason);
	if (db->store != NULL) {
		/* Closing commits the open group */
		deltapush_db_sync(db);
		deltapush_store_close(&db->store);
	}
	deltapush_db_states_clear(db);
	if (db->sender != NULL)
		deltapush_sender_deinit(&db->sender);
}

/* Without a database, try to open it now, but not more often than
   DELTAPUSH_DB_OPEN_RETRY_MSECS. */
static void deltapush_db_try_open(struct deltapush_db *db)
{
	uint64_t now = deltapush_db_now_msecs();

	if (db->open_failures > 0 && now >= db->open_tried_msecs &&
	    now - db->open_tried_msecs < DELTAPUSH_DB_OPEN_RETRY_MSECS)
		return;
	(void)deltapush_db_open(db);
}

/* Never acknowledge a write into a database file that was removed
   meanwhile: it would be gone at the next start. Without a database, try
   to open it now: the previous process may just have let it go (doveadm
   reload). */
static void deltapush_db_check(struct deltapush_db *db)
{
	struct stat st;
	const char *reason;

	if (db->store == NULL) {
		deltapush_db_try_open(db);
		return;
	}
	if (stat(db->set->db_path, &st) == 0 &&
	    st.st_dev == db->dev && st.st_ino == db->ino)
		return;
	/* Writing on into a removed file would lose everything at the next
	   restart: switch to what is at the path now. */
	reason = errno == ENOENT ? "removed" : "replaced";
	e_error(db->event, "Database file %s was %s while in use; "
		"opening it again", db->set->db_path, reason);
	deltapush_db_close(db, t_strdup_printf("Database file was %s",
					       reason));
	(void)deltapush_db_open(db);
}

bool deltapush_db_request_begin(struct deltapush_db *db, bool sync,
				const char **reason_r)
{
	deltapush_db_check(db);
	if (db->store == NULL) {
		*reason_r = t_strdup(db->unavailable_reason);
		return FALSE;
	}
	/* Reads of push state must see how finished pushes ended */
	if (sync)
		deltapush_db_sync(db);
	return TRUE;
}

int deltapush_db_register(struct deltapush_db *db, const char *user,
			  const char *token, time_t seen, pool_t pool,
			  ARRAY_TYPE(const_string) *evicted,
			  const char **error_r)
{
	time_t min_last_seen = seen -
		deltapush_store_refresh_secs(db->set->token_ttl_secs);
	int ret;

	/* A token registered again while its last_seen is fresh is a read:
	   answered at once, without a write or a disk sync */
	ret = deltapush_store_is_fresh(db->store, user, token, min_last_seen,
				       DELTAPUSH_TOKENS_MAX_PER_USER, error_r);
	if (ret != 0)
		return ret < 0 ? -1 : 0;
	/* The client is told the token is stored once the group commit of
	   this pass is on disk */
	if (deltapush_store_group_join(db->store, TRUE, error_r) < 0)
		return -1;
	return deltapush_store_register(db->store, user, token, seen,
					DELTAPUSH_TOKENS_MAX_PER_USER,
					pool, evicted, error_r);
}

int deltapush_db_get_tokens(struct deltapush_db *db, const char *user,
			    pool_t pool,
			    ARRAY_TYPE(deltapush_store_token) *tokens,
			    const char **error_r)
{
	return deltapush_store_list(db->store, user,
				    ioloop_time - db->set->token_ttl_secs,
				    pool, tokens, error_r);
}

static bool deltapush_db_token_matches(const struct deltapush_store_token *token,
				       const char *prefix)
{
	return prefix == NULL || strcmp(token->token, prefix) == 0 ||
		strcasecmp(deltapush_token_id(token->token), prefix) == 0;
}

/* The user's tokens that prefix names (all of them for NULL), expired
   ones included. */
static int
deltapush_db_forget_collect(struct deltapush_db *db, const char *user,
			    const char *prefix, pool_t pool,
			    ARRAY_TYPE(deltapush_store_token) *removed,
			    const char **error_r)
{
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;

	t_array_init(&tokens, 8);
	if (deltapush_store_list(db->store, user, 0, pool, &tokens,
				 error_r) < 0)
		return -1;
	array_foreach(&tokens, token) {
		if (deltapush_db_token_matches(token, prefix))
			array_push_back(removed, token);
	}
	return 0;
}

static int
deltapush_db_forget_remove(struct deltapush_db *db, const char *user,
			   const char *prefix,
			   const ARRAY_TYPE(deltapush_store_token) *removed,
			   const char **error_r)
{
	const struct deltapush_store_token *token;
	unsigned int count;

	if (prefix == NULL)
		return deltapush_store_forget(db->store, user, &count, error_r);
	array_foreach(removed, token) {
		if (deltapush_store_remove(db->store, token->id, error_r) < 0)
			return -1;
	}
	return 0;
}

int deltapush_db_forget(struct deltapush_db *db, const char *user,
			const char *prefix, pool_t pool,
			ARRAY_TYPE(deltapush_store_token) *removed,
			const char **error_r)
{
	int ret;

	if (deltapush_store_group_join(db->store, TRUE, error_r) < 0 ||
	    deltapush_store_savepoint(db->store, error_r) < 0)
		return -1;
	ret = deltapush_db_forget_collect(db, user, prefix, pool, removed,
					  error_r);
	if (ret == 0 && prefix != NULL && array_count(removed) > 1)
		ret = -2;
	else if (ret == 0) {
		ret = deltapush_db_forget_remove(db, user, prefix, removed,
						 error_r);
	}
	if (ret < 0) {
		deltapush_store_rollback_to(db->store);
		return ret;
	}
	/* a failed release has rolled back already */
	return deltapush_store_release(db->store, error_r);
}

void deltapush_db_get_push_state(struct deltapush_db *db,
				 const struct deltapush_store_token *token,
				 struct deltapush_push_state *state_r)
{
	if (!deltapush_sender_get_state(db->sender, token->id, state_r))
		*state_r = token->state;
}

int deltapush_db_notify(struct deltapush_db *db, const char *user,
			bool *written_r, const char **error_r)
{
	int ret;

	/* Pushes durably pending already cover the trigger: it needs
	   neither the write-behind's states nor a write of its own */
	*written_r = FALSE;
	ret = deltapush_sender_notify_fold(db->sender, user, error_r);
	if (ret != 0)
		return ret;
	*written_r = TRUE;
	/* The trigger starts from the stored push states: the outcomes of
	   finished pushes go first into the same, acknowledged group */
	if (deltapush_db_write_behind(db, TRUE, error_r) < 0)
		return -1;
	return deltapush_sender_notify(db->sender, user, error_r);
}

int deltapush_db_flush(struct deltapush_db *db, const char *user,
		       const char **error_r)
{
	return deltapush_sender_flush(db->sender, user, error_r);
}

int deltapush_db_get_status(struct deltapush_db *db,
			    struct deltapush_store_stats *stats_r,
			    struct deltapush_sender_status *status_r,
			    const char **error_r)
{
	if (deltapush_store_get_stats(db->store, stats_r, error_r) < 0)
		return -1;
	deltapush_sender_get_status(db->sender, status_r);
	return 0;
}

bool deltapush_db_group_is_open(struct deltapush_db *db)
{
	return db->store != NULL && deltapush_store_group_is_open(db->store);
}

#undef deltapush_db_group_add_callback
void deltapush_db_group_add_callback(struct deltapush_db *db,
				     deltapush_store_commit_callback_t *callback,
				     void *context)
{
	(deltapush_store_group_add_callback)(db->store, callback, context);
}

unsigned int deltapush_db_get_pending(struct deltapush_db *db)
{
	return db->sender == NULL ? 0 :
		deltapush_sender_get_pending(db->sender);
}

static void deltapush_db_prune_timeout(struct deltapush_db *db)
{
	deltapush_db_prune(db);
}

static void deltapush_db_check_timeout(struct deltapush_db *db)
{
	deltapush_db_check(db);
}

struct deltapush_db *
deltapush_db_init(const struct deltapush_settings *set, const char *state_dir,
		  struct event *event_parent)
{
	struct deltapush_db *db;

	db = i_new(struct deltapush_db, 1);
	db->set = set;
	db->state_dir = i_strdup(state_dir);
	db->event = event_parent;
	event_ref(db->event);
	db->unavailable_reason = i_strdup("Not opened yet");
	i_array_init(&db->dirty, 64);
	(void)deltapush_db_open(db);
	db->to_prune = timeout_add(DELTAPUSH_DB_PRUNE_INTERVAL_MSECS,
				   deltapush_db_prune_timeout, db);
	db->to_check = timeout_add(DELTAPUSH_DB_CHECK_INTERVAL_MSECS,
				   deltapush_db_check_timeout, db);
	return db;
}

void deltapush_db_detach(struct deltapush_db *db)
{
	const char *error;

	/* Give the database and the clients up before draining: on doveadm
	   reload the new process opens the database at once, and the
	   clients' retries reach it. What is in flight stays due there. */
	if (db->sender != NULL)
		deltapush_sender_detach(db->sender);
	if (db->store != NULL) {
		deltapush_db_sync(db);
		if (deltapush_store_group_commit(db->store, &error) < 0) {
			e_error(db->event, "Couldn't save push states: %s",
				error);
		}
	}
	/* What could not be written stays due: sent again later */
	deltapush_db_states_clear(db);
	db->detached = TRUE;
}

static void deltapush_db_shutdown_timeout(struct deltapush_db *db)
{
	db->shutdown_timed_out = TRUE;
	io_loop_stop(current_ioloop);
}

static void deltapush_db_shutdown_check(struct deltapush_db *db)
{
	if (deltapush_sender_get_in_flight(db->sender) == 0)
		io_loop_stop(current_ioloop);
}

/* Give in-flight pushes a short grace period to finish. */
static void deltapush_db_drain(struct deltapush_db *db)
{
	struct timeout *to, *to_check;

	if (db->sender == NULL ||
	    deltapush_sender_get_in_flight(db->sender) == 0)
		return;
	to = timeout_add(DELTAPUSH_DB_SHUTDOWN_GRACE_MSECS,
			 deltapush_db_shutdown_timeout, db);
	to_check = timeout_add_short(DELTAPUSH_DB_SHUTDOWN_CHECK_MSECS,
				     deltapush_db_shutdown_check, db);
	/* The master going away stops the ioloop too (once): run on until
	   the pushes are done or the grace period is over. */
	db->shutdown_timed_out = FALSE;
	while (!db->shutdown_timed_out &&
	       deltapush_sender_get_in_flight(db->sender) > 0)
		io_loop_run(current_ioloop);
	timeout_remove(&to_check);
	timeout_remove(&to);
	if (deltapush_sender_get_in_flight(db->sender) > 0) {
		e_warning(db->event, "Exiting with %u push(es) in flight: "
			  "they stay due and are sent after the next start",
			  deltapush_sender_get_in_flight(db->sender));
	}
}

/* Save the pushes that finished while draining, so that they are not
   sent again, unless a new process has the database (doveadm reload). */
static void deltapush_db_save_drained(struct deltapush_db *db)
{
	const char *error;

	if (array_count(&db->dirty) == 0)
		return;
	if (deltapush_store_open(db->set->db_path, TRUE, db->event,
				 &db->store, &error) < 0)
		return;
	if (deltapush_db_write_behind(db, FALSE, &error) < 0 ||
	    deltapush_store_group_commit(db->store, &error) < 0) {
		e_debug(db->event, "Couldn't save the pushes finished "
			"while exiting (they are sent again): %s", error);
	}
	deltapush_store_close(&db->store);
	deltapush_db_states_clear(db);
}

void deltapush_db_deinit(struct deltapush_db **_db)
{
	struct deltapush_db *db = *_db;

	*_db = NULL;
	timeout_remove(&db->to_check);
	timeout_remove(&db->to_prune);
	if (db->store != NULL)
		deltapush_store_close(&db->store);
	deltapush_db_drain(db);
	deltapush_db_save_drained(db);
	if (db->sender != NULL)
		deltapush_sender_deinit(&db->sender);
	deltapush_db_states_clear(db);
	array_free(&db->dirty);
	i_free(db->open_error);
	i_free(db->unavailable_reason);
	i_free(db->state_dir);
	event_unref(&db->event);
	i_free(db);
}
