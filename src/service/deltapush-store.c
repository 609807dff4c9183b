/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "strnum.h"
#include "ioloop.h"
#include "time-util.h"
#include "hash-method.h"
#include "deltapush-common.h"
#include "deltapush-store.h"

#include <fcntl.h>
#include <unistd.h>
#include <sqlite3.h>

/* How long a statement waits for a lock held by another connection (such
   as an admin's sqlite3 shell) before failing. Kept short because the
   service blocks its ioloop meanwhile. */
#define DELTAPUSH_STORE_BUSY_TIMEOUT_MSECS 1000
/* A registration refreshes last_seen only once it is older than
   1/DIVISOR of the TTL, or than MAX_SECS, whichever is less; see
   deltapush_store_refresh_secs(). */
#define DELTAPUSH_STORE_REFRESH_TTL_DIVISOR 16
#define DELTAPUSH_STORE_REFRESH_MAX_SECS (24 * 3600)

/* Schema upgrade steps: deltapush_store_upgrades[n] brings a database from
   user_version n to n + 1 and ends by setting user_version. A new schema
   version appends a step; existing steps never change, because databases
   out there were created by them. */
static const char *const deltapush_store_upgrades[] = {
	/* 0 -> 1: the initial schema. AUTOINCREMENT because the service keeps
	   ids in memory (timers, requests on the wire): a removed token's id
	   must never be given to a new token. due_ms is NULL when nothing is
	   pending, so that the pending index only holds the pending rows. */
	"CREATE TABLE tokens ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" username TEXT NOT NULL,"
	" token TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL,"
	" last_sent_ms INTEGER NOT NULL DEFAULT 0,"
	" due_ms INTEGER,"
	" deadline_ms INTEGER NOT NULL DEFAULT 0,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" waiting INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (username, token)"
	");"
	"CREATE INDEX tokens_last_seen ON tokens (last_seen);"
	"CREATE INDEX tokens_pending ON tokens (due_ms, id)"
	" WHERE due_ms IS NOT NULL;"
	"PRAGMA user_version = 1;",
	/* 1 -> 2: UNIQUE (username, token) kept a second copy of every
	   token in its index. The index holds a 64-bit hash of the token
	   instead (deltapush_token_hash(), see deltapush_store_token_hash());
	   lookups compare the whole token, and the service, the only
	   writer, keeps (username, token) unique. SQLite can't drop a
	   constraint, so the table is copied; the AUTOINCREMENT counter goes
	   along, so that no removed token's id is given out again. */
	"CREATE TABLE tokens_v2 ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" username TEXT NOT NULL,"
	" token TEXT NOT NULL,"
	" token_hash INTEGER NOT NULL,"
	" created INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL,"
	" last_sent_ms INTEGER NOT NULL DEFAULT 0,"
	" due_ms INTEGER,"
	" deadline_ms INTEGER NOT NULL DEFAULT 0,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" waiting INTEGER NOT NULL DEFAULT 0"
	");"
	"INSERT INTO sqlite_sequence (name, seq)"
	" SELECT 'tokens_v2', seq FROM sqlite_sequence WHERE name = 'tokens';"
	"INSERT INTO tokens_v2 (id, username, token, token_hash, created,"
	" last_seen, last_sent_ms, due_ms, deadline_ms, attempts, waiting)"
	" SELECT id, username, token, deltapush_token_hash(token), created,"
	" last_seen, last_sent_ms, due_ms, deadline_ms, attempts, waiting"
	" FROM tokens ORDER BY id;"
	"DROP TABLE tokens;"
	"ALTER TABLE tokens_v2 RENAME TO tokens;"
	"CREATE INDEX tokens_user ON tokens (username, token_hash);"
	"CREATE INDEX tokens_last_seen ON tokens (last_seen);"
	"CREATE INDEX tokens_pending ON tokens (due_ms, id)"
	" WHERE due_ms IS NOT NULL;"
	"PRAGMA user_version = 2;",
};
#define DELTAPUSH_STORE_SCHEMA_VERSION \
	((int64_t)N_ELEMENTS(deltapush_store_upgrades))

#define DELTAPUSH_STORE_COLUMNS \
	"id, username, token, created, last_seen, " \
	"last_sent_ms, due_ms, deadline_ms, attempts, waiting"

/* The statements used after open. They are prepared once, because the
   service runs them on every delivery, and every value is bound. */
enum deltapush_store_stmt {
	DELTAPUSH_STORE_STMT_BEGIN,
	DELTAPUSH_STORE_STMT_COMMIT,
	DELTAPUSH_STORE_STMT_ROLLBACK,
	DELTAPUSH_STORE_STMT_SAVEPOINT,
	DELTAPUSH_STORE_STMT_RELEASE,
	DELTAPUSH_STORE_STMT_ROLLBACK_TO,
	DELTAPUSH_STORE_STMT_SEEN,
	DELTAPUSH_STORE_STMT_REFRESH,
	DELTAPUSH_STORE_STMT_INSERT,
	DELTAPUSH_STORE_STMT_EXCESS,
	DELTAPUSH_STORE_STMT_LIST,
	DELTAPUSH_STORE_STMT_GET,
	DELTAPUSH_STORE_STMT_FORGET,
	DELTAPUSH_STORE_STMT_REMOVE,
	DELTAPUSH_STORE_STMT_PRUNE,
	DELTAPUSH_STORE_STMT_UPDATE_STATE,
	DELTAPUSH_STORE_STMT_PENDING,
	DELTAPUSH_STORE_STMT_STATS,

	DELTAPUSH_STORE_STMT_COUNT
};

static const char *const deltapush_store_sql[DELTAPUSH_STORE_STMT_COUNT] = {
	/* IMMEDIATE takes the write lock at once: a deferred transaction
	   that reads first could fail to upgrade its lock with SQLITE_BUSY
	   without the busy timeout helping. */
	[DELTAPUSH_STORE_STMT_BEGIN] = "BEGIN IMMEDIATE",
	[DELTAPUSH_STORE_STMT_COMMIT] = "COMMIT",
	[DELTAPUSH_STORE_STMT_ROLLBACK] = "ROLLBACK",
	[DELTAPUSH_STORE_STMT_SAVEPOINT] = "SAVEPOINT deltapush_call",
	[DELTAPUSH_STORE_STMT_RELEASE] = "RELEASE deltapush_call",
	[DELTAPUSH_STORE_STMT_ROLLBACK_TO] = "ROLLBACK TO deltapush_call",
	/* ?3 is the token's hash */
	[DELTAPUSH_STORE_STMT_SEEN] =
		"SELECT last_seen,"
		" (SELECT COUNT(*) FROM tokens WHERE username = ?1)"
		" FROM tokens"
		" WHERE username = ?1 AND token_hash = ?3 AND token = ?2",
	[DELTAPUSH_STORE_STMT_REFRESH] =
		"UPDATE tokens SET last_seen = MAX(last_seen, ?4)"
		" WHERE username = ?1 AND token_hash = ?3 AND token = ?2",
	[DELTAPUSH_STORE_STMT_INSERT] =
		"INSERT INTO tokens (username, token, token_hash, created,"
		" last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
	/* The user's tokens beyond the ?2 most recently seen ones (of equal
	   last_seen the newer registration stays), oldest first */
	[DELTAPUSH_STORE_STMT_EXCESS] =
		"SELECT id, token FROM tokens"
		" WHERE username = ?1 AND id NOT IN ("
		"  SELECT id FROM tokens WHERE username = ?1"
		"  ORDER BY last_seen DESC, id DESC LIMIT ?2)"
		" ORDER BY last_seen, id",
	[DELTAPUSH_STORE_STMT_LIST] =
		"SELECT "DELTAPUSH_STORE_COLUMNS" FROM tokens"
		" WHERE username = ?1 AND last_seen >= ?2"
		" ORDER BY created, id",
	[DELTAPUSH_STORE_STMT_GET] =
		"SELECT "DELTAPUSH_STORE_COLUMNS" FROM tokens WHERE id = ?1",
	[DELTAPUSH_STORE_STMT_FORGET] =
		"DELETE FROM tokens WHERE username = ?1",
	[DELTAPUSH_STORE_STMT_REMOVE] =
		"DELETE FROM tokens WHERE id = ?1",
	[DELTAPUSH_STORE_STMT_PRUNE] =
		"DELETE FROM tokens WHERE last_seen < ?1",
	[DELTAPUSH_STORE_STMT_UPDATE_STATE] =
		"UPDATE tokens SET last_sent_ms = ?2, due_ms = ?3,"
		" deadline_ms = ?4, attempts = ?5, waiting = ?6"
		" WHERE id = ?1",
	[DELTAPUSH_STORE_STMT_PENDING] =
		"SELECT "DELTAPUSH_STORE_COLUMNS" FROM tokens"
		" WHERE due_ms IS NOT NULL AND (due_ms, id) > (?1, ?2)"
		" ORDER BY due_ms, id LIMIT ?3",
	[DELTAPUSH_STORE_STMT_STATS] =
		"SELECT COUNT(*), COUNT(DISTINCT username), COUNT(due_ms),"
		" MIN(due_ms) FROM tokens",
};

struct deltapush_store_commit_callback {
	deltapush_store_commit_callback_t *callback;
	void *context;
};

struct deltapush_store {
	struct event *event;
	char *path;
	sqlite3 *db;
	sqlite3_stmt *stmts[DELTAPUSH_STORE_STMT_COUNT];

	enum deltapush_fsync fsync;
	/* PRAGMA synchronous is FULL */
	bool synchronous_full:1;
	/* The group commit of this ioloop pass */
	struct timeout *to_group;
	ARRAY(struct deltapush_store_commit_callback) group_callbacks;
	unsigned int group_members, commit_count;
	bool group_open:1;
	bool group_acknowledged:1;
	/* Inside deltapush_store_begin() .. commit/rollback */
	bool in_transaction:1;
	bool exclusive:1;
};

/* A token about to be evicted */
struct deltapush_store_evictee {
	int64_t id;
	const char *token;
};
ARRAY_DEFINE_TYPE(deltapush_store_evictee, struct deltapush_store_evictee);

static int
deltapush_store_failed(struct deltapush_store *store, const char *func,
		       const char *sql, int rc, const char **error_r)
{
	const char *error = sqlite3_errmsg(store->db);

	*error_r = t_strdup_printf("%s(%s) failed: %s", func, sql, error);
	/* The caller logs the error; this adds the SQLite details for
	   debugging. */
	e_debug(event_create_passthrough(store->event)->
		add_str("error", error)->
		add_int("error_code", rc)->event(),
		"%s (%d)", *error_r, rc);
	return -1;
}

static int
deltapush_store_exec(struct deltapush_store *store, const char *sql,
		     const char **error_r)
{
	char *errmsg = NULL;
	int rc;

	rc = sqlite3_exec(store->db, sql, NULL, NULL, &errmsg);
	if (rc == SQLITE_OK)
		return 0;
	*error_r = t_strdup_printf("sqlite3_exec(%s) failed: %s", sql,
				   errmsg != NULL ? errmsg :
				   sqlite3_errstr(rc));
	sqlite3_free(errmsg);
	return -1;
}

/* Run a one-off query (used while opening) and return the first column of
   its first row, or NULL if there is no row. */
static int
deltapush_store_query_value(struct deltapush_store *store, const char *sql,
			    const char **value_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	const unsigned char *value;
	int rc, ret = 0;

	*value_r = NULL;
	rc = sqlite3_prepare_v2(store->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		return deltapush_store_failed(store, "sqlite3_prepare", sql,
					      rc, error_r);
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		value = sqlite3_column_text(stmt, 0);
		*value_r = t_strdup(value == NULL ? "" : (const char *)value);
	} else if (rc != SQLITE_DONE) {
		ret = deltapush_store_failed(store, "sqlite3_step", sql, rc,
					     error_r);
	}
	if (ret < 0) {
		/* finalize only repeats the step's error */
		(void)sqlite3_finalize(stmt);
	} else if ((rc = sqlite3_finalize(stmt)) != SQLITE_OK) {
		e_warning(store->event, "sqlite3_finalize(%s) failed: %s",
			  sql, sqlite3_errmsg(store->db));
	}
	return ret;
}

static int
deltapush_store_query_int(struct deltapush_store *store, const char *sql,
			  int64_t *value_r, const char **error_r)
{
	const char *value;

	if (deltapush_store_query_value(store, sql, &value, error_r) < 0)
		return -1;
	if (value == NULL || str_to_int64(value, value_r) < 0) {
		*error_r = t_strdup_printf("%s returned an invalid value: %s",
					   sql, value == NULL ? "(no row)" :
					   value);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *
deltapush_store_stmt(struct deltapush_store *store,
		     enum deltapush_store_stmt idx)
{
	i_assert(store->stmts[idx] != NULL);
	return store->stmts[idx];
}

/* Returns 1 for a row, 0 when done, -1 on error. */
static int
deltapush_store_step(struct deltapush_store *store, sqlite3_stmt *stmt,
		     const char **error_r)
{
	int rc = sqlite3_step(stmt);

	switch (rc) {
	case SQLITE_ROW:
		return 1;
	case SQLITE_DONE:
		return 0;
	default:
		return deltapush_store_failed(store, "sqlite3_step",
					      sqlite3_sql(stmt), rc, error_r);
	}
}

static void deltapush_store_reset(sqlite3_stmt *stmt)
{
	/* reset repeats the error of the last step, already reported */
	(void)sqlite3_reset(stmt);
	(void)sqlite3_clear_bindings(stmt);
}

static int
deltapush_store_bind_failed(struct deltapush_store *store, sqlite3_stmt *stmt,
			    const char **error_r)
{
	int rc = sqlite3_errcode(store->db);

	(void)deltapush_store_failed(store, "sqlite3_bind", sqlite3_sql(stmt),
				     rc, error_r);
	deltapush_store_reset(stmt);
	return -1;
}

/* The strings stay ours until the statement is reset, which happens
   before every return, so SQLite need not copy them. */
static int
deltapush_store_bind_str(sqlite3_stmt *stmt, int idx, const char *str)
{
	return sqlite3_bind_text(stmt, idx, str, -1, SQLITE_STATIC);
}

/* Run a statement that takes no values and returns no rows. */
static int
deltapush_store_run(struct deltapush_store *store,
		    enum deltapush_store_stmt idx, const char **error_r)
{
	sqlite3_stmt *stmt = deltapush_store_stmt(store, idx);
	int ret;

	ret = deltapush_store_step(store, stmt, error_r);
	deltapush_store_reset(stmt);
	return ret < 0 ? -1 : 0;
}

/* Run a statement that changes rows and return how many it changed. */
static int
deltapush_store_change(struct deltapush_store *store, sqlite3_stmt *stmt,
		       unsigned int *count_r, const char **error_r)
{
	int ret;

	ret = deltapush_store_step(store, stmt, error_r);
	*count_r = ret < 0 ? 0 : (unsigned int)sqlite3_changes(store->db);
	deltapush_store_reset(stmt);
	return ret < 0 ? -1 : 0;
}

static int
deltapush_store_check_transaction(struct deltapush_store *store,
				  const char **error_r)
{
	/* Some errors (disk full, I/O errors) make SQLite roll back the
	   whole transaction. Running further statements would then commit
	   them one by one, so refuse until the caller ends the
	   transaction. */
	if (store->in_transaction && sqlite3_get_autocommit(store->db) != 0) {
		*error_r = "The transaction was rolled back after an earlier "
			"error";
		return -1;
	}
	return 0;
}

/* Make a call of several statements atomic: its own transaction, or a
   savepoint inside the caller's explicit transaction so that a failure
   undoes only this call. */
static int
deltapush_store_call_begin(struct deltapush_store *store,
			   const char **error_r)
{
	return deltapush_store_run(store, store->in_transaction ?
				   DELTAPUSH_STORE_STMT_SAVEPOINT :
				   DELTAPUSH_STORE_STMT_BEGIN, error_r);
}

static void deltapush_store_call_rollback(struct deltapush_store *store)
{
	const char *error;

	if (sqlite3_get_autocommit(store->db) != 0) {
		/* SQLite already rolled back everything */
		return;
	}
	if (!store->in_transaction) {
		if (deltapush_store_run(store, DELTAPUSH_STORE_STMT_ROLLBACK,
					&error) < 0)
			e_error(store->event, "%s", error);
		return;
	}
	/* ROLLBACK TO keeps the savepoint open; RELEASE ends it */
	if (deltapush_store_run(store, DELTAPUSH_STORE_STMT_ROLLBACK_TO,
				&error) < 0 ||
	    deltapush_store_run(store, DELTAPUSH_STORE_STMT_RELEASE,
				&error) < 0)
		e_error(store->event, "%s", error);
}

static int
deltapush_store_call_commit(struct deltapush_store *store,
			    const char **error_r)
{
	if (deltapush_store_run(store, store->in_transaction ?
				DELTAPUSH_STORE_STMT_RELEASE :
				DELTAPUSH_STORE_STMT_COMMIT, error_r) < 0) {
		/* A failed COMMIT leaves the transaction open */
		deltapush_store_call_rollback(store);
		return -1;
	}
	return 0;
}

static int
deltapush_store_create_file(struct deltapush_store *store,
			    const char **error_r)
{
	int fd;

	/* SQLite would create the file with 0644 (less the umask). Create it
	   ourselves so that tokens are not readable by others; SQLite gives
	   the -wal and -shm files the database file's mode. An existing
	   file's mode is left as the administrator set it. */
	fd = open(store->path, O_RDWR | O_CREAT, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", store->path);
		return -1;
	}
	i_close_fd(&fd);
	return 0;
}

/* The index key of a token: the first 8 bytes of its SHA-256. It is
   stored, so it must never change. */
static int64_t deltapush_store_token_hash(const char *token, size_t size)
{
	const struct hash_method *sha256 = hash_method_lookup("sha256");
	unsigned char digest[32];
	uint64_t hash = 0;
	unsigned int i;

	i_assert(sha256 != NULL && sha256->digest_size == sizeof(digest));
	hash_method_get_digest(sha256, token, size, digest);
	for (i = 0; i < sizeof(hash); i++)
		hash = (hash << 8) | digest[i];
	return (int64_t)hash;
}

/* deltapush_token_hash(token) in SQL, for the schema upgrade */
static void
deltapush_store_sql_token_hash(sqlite3_context *ctx, int argc ATTR_UNUSED,
			       sqlite3_value **argv)
{
	const unsigned char *token = sqlite3_value_text(argv[0]);

	if (token == NULL) {
		sqlite3_result_null(ctx);
		return;
	}
	sqlite3_result_int64(ctx, deltapush_store_token_hash(
		(const char *)token, sqlite3_value_bytes(argv[0])));
}

static int
deltapush_store_upgrade(struct deltapush_store *store, const char **error_r)
{
	int64_t version, count;

	/* Read again under the write lock: another process may have
	   upgraded the database since the first look. */
	if (deltapush_store_query_int(store, "PRAGMA user_version",
				      &version, error_r) < 0)
		return -1;
	if (version == 0) {
		if (deltapush_store_query_int(store,
				"SELECT COUNT(*) FROM sqlite_master",
				&count, error_r) < 0)
			return -1;
		if (count > 0) {
			*error_r = t_strdup_printf(
				"%s is not a deltapush database "
				"(it has tables but no schema version)",
				store->path);
			return -1;
		}
	}
	for (; version < DELTAPUSH_STORE_SCHEMA_VERSION; version++) {
		if (deltapush_store_exec(store,
				deltapush_store_upgrades[version],
				error_r) < 0)
			return -1;
	}
	e_debug(store->event, "Database %s schema version %"PRId64" ready",
		store->path, version);
	return 0;
}

static void
deltapush_store_upgraded(struct deltapush_store *store, int64_t old_version)
{
	const char *error;

	e_info(store->event, "Upgraded database %s from schema version "
	       "%"PRId64" to %"PRId64, store->path, old_version,
	       DELTAPUSH_STORE_SCHEMA_VERSION);
	/* An upgrade that copies the table leaves a WAL file as large as
	   the table, which SQLite would keep at that size for reuse */
	if (deltapush_store_exec(store, "PRAGMA wal_checkpoint(TRUNCATE)",
				 &error) < 0)
		e_warning(store->event, "%s", error);
}

static int
deltapush_store_init_schema(struct deltapush_store *store,
			    const char **error_r)
{
	int64_t version;
	int rc, ret;

	if (deltapush_store_query_int(store, "PRAGMA user_version",
				      &version, error_r) < 0)
		return -1;
	if (version == DELTAPUSH_STORE_SCHEMA_VERSION)
		return 0;
	if (version < 0 || version > DELTAPUSH_STORE_SCHEMA_VERSION) {
		/* A newer deltapush wrote it: what we would write could break
		   its data. */
		*error_r = t_strdup_printf(
			"%s has database schema version %"PRId64", but this "
			"deltapush supports only up to version %"PRId64
			" (downgrade is not supported)", store->path,
			version, DELTAPUSH_STORE_SCHEMA_VERSION);
		return -1;
	}

	/* The upgrade to version 2 hashes every token */
	rc = sqlite3_create_function_v2(store->db, "deltapush_token_hash", 1,
					SQLITE_UTF8 | SQLITE_DETERMINISTIC,
					NULL, deltapush_store_sql_token_hash,
					NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		return deltapush_store_failed(store,
			"sqlite3_create_function", "deltapush_token_hash",
			rc, error_r);
	}

	/* Create or upgrade in one transaction, so that a crash leaves the
	   old version intact. */
	if (deltapush_store_exec(store, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	ret = deltapush_store_upgrade(store, error_r);
	if (ret == 0)
		ret = deltapush_store_exec(store, "COMMIT", error_r);
	if (ret < 0 && sqlite3_get_autocommit(store->db) == 0) {
		const char *error;

		if (deltapush_store_exec(store, "ROLLBACK", &error) < 0)
			e_error(store->event, "%s", error);
	}
	if (ret == 0 && version > 0)
		deltapush_store_upgraded(store, version);
	return ret;
}

static bool deltapush_store_is_corrupt(struct deltapush_store *store)
{
	int rc = sqlite3_errcode(store->db) & 0xff;

	return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
}

static int
deltapush_store_init_db(struct deltapush_store *store, const char **error_r)
{
	const char *journal_mode;
	unsigned int i;
	int rc;

	if (deltapush_store_create_file(store, error_r) < 0)
		return -1;

	rc = sqlite3_open_v2(store->path, &store->db,
			     SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		*error_r = t_strdup_printf("open(%s) failed: %s", store->path,
			store->db != NULL ? sqlite3_errmsg(store->db) :
			sqlite3_errstr(rc));
		return -1;
	}
	sqlite3_busy_timeout(store->db, DELTAPUSH_STORE_BUSY_TIMEOUT_MSECS);
	(void)sqlite3_extended_result_codes(store->db, 1);

	/* Exclusive: the WAL index lives in our memory instead of a shared
	   mmap'd -shm file, which would SIGBUS the process if the file system
	   turned read-only, and the lock calls per transaction go away. */
	if (store->exclusive &&
	    deltapush_store_exec(store, "PRAGMA locking_mode = EXCLUSIVE",
				 error_r) < 0)
		return -1;
	/* The first statement reads the file, so this is also where a file
	   that is not a database is noticed. WAL with synchronous=NORMAL
	   keeps every commit across a crash of the process (only a power
	   loss may lose the last ones); deltapush_store_set_acknowledged()
	   switches to FULL, which syncs the WAL at every commit, for what
	   deltapush_fsync wants on disk. */
	if (deltapush_store_query_value(store, "PRAGMA journal_mode = WAL",
					&journal_mode, error_r) < 0) {
		*error_r = t_strdup_printf("%s: %s", store->path, *error_r);
		return deltapush_store_is_corrupt(store) ? -2 : -1;
	}
	if (journal_mode == NULL || strcasecmp(journal_mode, "wal") != 0) {
		e_warning(store->event, "%s: Could not enable WAL journal "
			  "mode, using %s", store->path,
			  journal_mode == NULL ? "(unknown)" : journal_mode);
	}
	if (deltapush_store_exec(store, "PRAGMA synchronous = NORMAL; "
				 "PRAGMA foreign_keys = ON", error_r) < 0)
		return -1;
	if (deltapush_store_init_schema(store, error_r) < 0)
		return deltapush_store_is_corrupt(store) ? -2 : -1;

	for (i = 0; i < DELTAPUSH_STORE_STMT_COUNT; i++) {
		rc = sqlite3_prepare_v3(store->db, deltapush_store_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT,
					&store->stmts[i], NULL);
		if (rc != SQLITE_OK) {
			return deltapush_store_failed(store,
				"sqlite3_prepare", deltapush_store_sql[i], rc,
				error_r);
		}
	}
	return 0;
}

int deltapush_store_open(const char *path, bool exclusive,
			 struct event *event_parent,
			 struct deltapush_store **store_r,
			 const char **error_r)
{
	struct deltapush_store *store;
	int ret;

	store = i_new(struct deltapush_store, 1);
	store->path = i_strdup(path);
	store->exclusive = exclusive;
	i_array_init(&store->group_callbacks, 16);
	store->event = event_create(event_parent);
	event_add_category(store->event, &event_category_deltapush);
	event_set_append_log_prefix(store->event, "deltapush-store: ");

	if ((ret = deltapush_store_init_db(store, error_r)) < 0) {
		deltapush_store_close(&store);
		return ret;
	}
	*store_r = store;
	return 0;
}

void deltapush_store_close(struct deltapush_store **_store)
{
	struct deltapush_store *store = *_store;
	unsigned int i;
	int rc;

	if (store == NULL)
		return;
	*_store = NULL;

	if (store->group_open) {
		/* The writes of this pass were acknowledged or are about to
		   be: keep them */
		const char *error;

		(void)deltapush_store_group_commit(store, &error);
	}
	if (store->in_transaction) {
		e_warning(store->event, "Closed inside a transaction, "
			  "rolling it back");
		deltapush_store_rollback(store);
	}
	array_free(&store->group_callbacks);
	for (i = 0; i < DELTAPUSH_STORE_STMT_COUNT; i++) {
		if (store->stmts[i] == NULL)
			continue;
		rc = sqlite3_finalize(store->stmts[i]);
		if (rc != SQLITE_OK) {
			e_warning(store->event,
				  "sqlite3_finalize(%s) failed: %s",
				  deltapush_store_sql[i],
				  sqlite3_errmsg(store->db));
		}
	}
	/* Also called for a failed open, where db may be a handle that only
	   holds the error; closing it is still needed. */
	rc = sqlite3_close(store->db);
	if (rc != SQLITE_OK) {
		e_error(store->event, "sqlite3_close(%s) failed: %s",
			store->path, sqlite3_errstr(rc));
	}
	event_unref(&store->event);
	i_free(store->path);
	i_free(store);
}

void deltapush_store_set_fsync(struct deltapush_store *store,
			       enum deltapush_fsync mode)
{
	store->fsync = mode;
}

static int
deltapush_store_set_synchronous(struct deltapush_store *store,
				bool acknowledged, const char **error_r)
{
	bool full;

	switch (store->fsync) {
	case DELTAPUSH_FSYNC_OPTIMIZED:
		full = acknowledged;
		break;
	case DELTAPUSH_FSYNC_ALWAYS:
		full = TRUE;
		break;
	case DELTAPUSH_FSYNC_NEVER:
	default:
		full = FALSE;
		break;
	}
	if (full == store->synchronous_full)
		return 0;
	if (deltapush_store_exec(store, full ? "PRAGMA synchronous = FULL" :
				 "PRAGMA synchronous = NORMAL", error_r) < 0)
		return -1;
	store->synchronous_full = full;
	return 0;
}

int deltapush_store_set_acknowledged(struct deltapush_store *store,
				     bool acknowledged, const char **error_r)
{
	i_assert(!store->in_transaction);
	return deltapush_store_set_synchronous(store, acknowledged, error_r);
}

static void deltapush_store_group_timeout(struct deltapush_store *store)
{
	const char *error;

	/* The members' callbacks report a failure */
	(void)deltapush_store_group_commit(store, &error);
}

int deltapush_store_group_join(struct deltapush_store *store,
			       bool acknowledged, const char **error_r)
{
	const char *error;

	if (store->group_open && acknowledged && !store->group_acknowledged &&
	    store->fsync == DELTAPUSH_FSYNC_OPTIMIZED) {
		/* SQLite takes the sync level only outside a transaction:
		   commit the bookkeeping so far unsynced and sync the
		   acknowledged writes in a new one. */
		(void)deltapush_store_group_commit(store, &error);
	}
	if (!store->group_open) {
		i_assert(!store->in_transaction);
		if (deltapush_store_set_synchronous(store, acknowledged,
						    error_r) < 0 ||
		    deltapush_store_begin(store, error_r) < 0)
			return -1;
		store->group_open = TRUE;
		store->group_acknowledged = FALSE;
		store->group_members = 0;
		/* After everything else that is ready in this pass */
		store->to_group = timeout_add_short_to(io_loop_get_root(), 0,
			deltapush_store_group_timeout, store);
	}
	store->group_members++;
	if (acknowledged)
		store->group_acknowledged = TRUE;
	return 0;
}

#undef deltapush_store_group_add_callback
void deltapush_store_group_add_callback(struct deltapush_store *store,
					deltapush_store_commit_callback_t *callback,
					void *context)
{
	struct deltapush_store_commit_callback *cb;

	i_assert(store->group_open);
	cb = array_append_space(&store->group_callbacks);
	cb->callback = callback;
	cb->context = context;
}

bool deltapush_store_group_is_open(struct deltapush_store *store)
{
	return store->group_open;
}

bool deltapush_store_group_is_synced(struct deltapush_store *store)
{
	return store->group_open && store->synchronous_full;
}

unsigned int deltapush_store_get_commit_count(struct deltapush_store *store)
{
	return store->commit_count;
}

int deltapush_store_group_commit(struct deltapush_store *store,
				 const char **error_r)
{
	ARRAY(struct deltapush_store_commit_callback) callbacks;
	const struct deltapush_store_commit_callback *cb;
	struct timeval start, end;
	long long usecs;
	const char *error = NULL;
	int ret;

	if (!store->group_open)
		return 0;
	timeout_remove(&store->to_group);
	store->group_open = FALSE;
	i_gettimeofday(&start);
	ret = deltapush_store_commit(store, &error);
	if (ret == 0)
		store->commit_count++;
	i_gettimeofday(&end);
	usecs = timeval_diff_usecs(&end, &start);
	e_debug(event_create_passthrough(store->event)->
		set_name("deltapush_commit")->
		add_int("requests", store->group_members)->
		add_int("synced", store->synchronous_full ? 1 : 0)->
		add_int("duration_usecs", I_MAX(usecs, 0))->
		add_str("error", error)->event(),
		"Committed %u write(s)%s%s", store->group_members,
		ret < 0 ? ": failed: " : "", ret < 0 ? error : "");
	if (ret < 0)
		e_error(store->event, "Commit failed: %s", error);

	/* Callbacks may join a new group */
	t_array_init(&callbacks, array_count(&store->group_callbacks) + 1);
	array_append_array(&callbacks, &store->group_callbacks);
	array_clear(&store->group_callbacks);
	array_foreach(&callbacks, cb)
		cb->callback(ret, error, cb->context);
	if (ret < 0)
		*error_r = error;
	return ret;
}

int deltapush_store_savepoint(struct deltapush_store *store,
			      const char **error_r)
{
	i_assert(store->in_transaction);
	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	return deltapush_store_run(store, DELTAPUSH_STORE_STMT_SAVEPOINT,
				   error_r);
}

int deltapush_store_release(struct deltapush_store *store,
			    const char **error_r)
{
	i_assert(store->in_transaction);
	if (deltapush_store_run(store, DELTAPUSH_STORE_STMT_RELEASE,
				error_r) < 0) {
		deltapush_store_rollback_to(store);
		return -1;
	}
	return 0;
}

void deltapush_store_rollback_to(struct deltapush_store *store)
{
	i_assert(store->in_transaction);
	deltapush_store_call_rollback(store);
}

int deltapush_store_get_synchronous(struct deltapush_store *store,
				    int64_t *level_r, const char **error_r)
{
	return deltapush_store_query_int(store, "PRAGMA synchronous",
					 level_r, error_r);
}

int deltapush_store_begin(struct deltapush_store *store, const char **error_r)
{
	i_assert(!store->in_transaction);

	if (deltapush_store_run(store, DELTAPUSH_STORE_STMT_BEGIN,
				error_r) < 0)
		return -1;
	store->in_transaction = TRUE;
	return 0;
}

int deltapush_store_commit(struct deltapush_store *store, const char **error_r)
{
	int ret;

	i_assert(store->in_transaction);

	ret = deltapush_store_check_transaction(store, error_r);
	store->in_transaction = FALSE;
	if (ret < 0)
		return -1;
	/* On failure this rolls back, so the caller's changes are either
	   all on disk or none are. */
	return deltapush_store_call_commit(store, error_r);
}

void deltapush_store_rollback(struct deltapush_store *store)
{
	i_assert(store->in_transaction);

	store->in_transaction = FALSE;
	deltapush_store_call_rollback(store);
}

static const char *
deltapush_store_column_str(sqlite3_stmt *stmt, int col, pool_t pool)
{
	const unsigned char *value = sqlite3_column_text(stmt, col);

	/* The columns are NOT NULL; NULL would mean out of memory */
	return p_strdup(pool, value == NULL ? "" : (const char *)value);
}

static int
deltapush_store_register_locked(struct deltapush_store *store,
				const char *user, const char *token,
				int64_t token_hash, time_t now,
				unsigned int max_tokens,
				ARRAY_TYPE(deltapush_store_evictee) *evictees,
				const char **error_r)
{
	struct deltapush_store_evictee *new_evictee;
	const struct deltapush_store_evictee *evictee;
	sqlite3_stmt *stmt;
	unsigned int count;
	int ret, added;

	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_REFRESH);
	if (deltapush_store_bind_str(stmt, 1, user) != SQLITE_OK ||
	    deltapush_store_bind_str(stmt, 2, token) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, token_hash) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 4, now) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	if (deltapush_store_change(store, stmt, &count, error_r) < 0)
		return -1;
	added = count == 0 ? 1 : 0;

	if (added == 1) {
		stmt = deltapush_store_stmt(store,
					    DELTAPUSH_STORE_STMT_INSERT);
		if (deltapush_store_bind_str(stmt, 1, user) != SQLITE_OK ||
		    deltapush_store_bind_str(stmt, 2, token) != SQLITE_OK ||
		    sqlite3_bind_int64(stmt, 3, token_hash) != SQLITE_OK ||
		    sqlite3_bind_int64(stmt, 4, now) != SQLITE_OK)
			return deltapush_store_bind_failed(store, stmt,
							   error_r);
		if (deltapush_store_change(store, stmt, &count, error_r) < 0)
			return -1;
	}

	/* Checked also on a refresh: the limit may have been lowered. */
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_EXCESS);
	if (deltapush_store_bind_str(stmt, 1, user) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 2, max_tokens) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	while ((ret = deltapush_store_step(store, stmt, error_r)) > 0) {
		new_evictee = array_append_space(evictees);
		new_evictee->id = sqlite3_column_int64(stmt, 0);
		new_evictee->token = deltapush_store_column_str(stmt, 1,
						unsafe_data_stack_pool);
	}
	deltapush_store_reset(stmt);
	if (ret < 0)
		return -1;

	/* Deleted only after the SELECT is done, so as not to change the
	   table under a running query. */
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_REMOVE);
	array_foreach(evictees, evictee) {
		if (sqlite3_bind_int64(stmt, 1, evictee->id) != SQLITE_OK)
			return deltapush_store_bind_failed(store, stmt,
							   error_r);
		if (deltapush_store_change(store, stmt, &count, error_r) < 0)
			return -1;
	}
	return added;
}

int deltapush_store_register(struct deltapush_store *store, const char *user,
			     const char *token, time_t now,
			     unsigned int max_tokens, pool_t pool,
			     ARRAY_TYPE(const_string) *evicted_r,
			     const char **error_r)
{
	ARRAY_TYPE(deltapush_store_evictee) evictees;
	const struct deltapush_store_evictee *evictee;
	const char *str;
	int ret;

	/* 0 would evict even the token being registered */
	i_assert(max_tokens > 0);

	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	if (deltapush_store_call_begin(store, error_r) < 0)
		return -1;
	t_array_init(&evictees, 4);
	ret = deltapush_store_register_locked(store, user, token,
			deltapush_store_token_hash(token, strlen(token)), now,
			max_tokens, &evictees, error_r);
	if (ret < 0) {
		deltapush_store_call_rollback(store);
		return -1;
	}
	if (deltapush_store_call_commit(store, error_r) < 0)
		return -1;

	/* Reported only once they are really gone */
	if (evicted_r != NULL) {
		array_foreach(&evictees, evictee) {
			str = p_strdup(pool, evictee->token);
			array_push_back(evicted_r, &str);
		}
	}
	return ret;
}

unsigned int deltapush_store_refresh_secs(unsigned int token_ttl_secs)
{
	return I_MIN(token_ttl_secs / DELTAPUSH_STORE_REFRESH_TTL_DIVISOR,
		     DELTAPUSH_STORE_REFRESH_MAX_SECS);
}

int deltapush_store_is_fresh(struct deltapush_store *store, const char *user,
			     const char *token, time_t min_last_seen,
			     unsigned int max_tokens, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_SEEN);
	if (deltapush_store_bind_str(stmt, 1, user) != SQLITE_OK ||
	    deltapush_store_bind_str(stmt, 2, token) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, deltapush_store_token_hash(token,
				strlen(token))) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	ret = deltapush_store_step(store, stmt, error_r);
	if (ret > 0 && (sqlite3_column_int64(stmt, 0) < min_last_seen ||
			sqlite3_column_int64(stmt, 1) >= max_tokens))
		ret = 0;
	deltapush_store_reset(stmt);
	return ret;
}

static void
deltapush_store_read_token(sqlite3_stmt *stmt, pool_t pool,
			   struct deltapush_store_token *token_r)
{
	i_zero(token_r);
	token_r->id = sqlite3_column_int64(stmt, 0);
	token_r->user = deltapush_store_column_str(stmt, 1, pool);
	token_r->token = deltapush_store_column_str(stmt, 2, pool);
	token_r->created = (time_t)sqlite3_column_int64(stmt, 3);
	token_r->last_seen = (time_t)sqlite3_column_int64(stmt, 4);
	token_r->state.last_sent_msecs =
		(uint64_t)sqlite3_column_int64(stmt, 5);
	/* NULL (nothing pending) reads as 0 */
	token_r->state.due_msecs = (uint64_t)sqlite3_column_int64(stmt, 6);
	token_r->state.deadline_msecs =
		(uint64_t)sqlite3_column_int64(stmt, 7);
	token_r->state.attempts = (unsigned int)sqlite3_column_int64(stmt, 8);
	token_r->state.waiting = (unsigned int)sqlite3_column_int64(stmt, 9);
}

/* Step through a bound query, appending every row to tokens_r. */
static int
deltapush_store_read_tokens(struct deltapush_store *store, sqlite3_stmt *stmt,
			    pool_t pool,
			    ARRAY_TYPE(deltapush_store_token) *tokens_r,
			    const char **error_r)
{
	struct deltapush_store_token *token;
	int ret;

	if (!array_is_created(tokens_r))
		p_array_init(tokens_r, pool, 8);
	while ((ret = deltapush_store_step(store, stmt, error_r)) > 0) {
		token = array_append_space(tokens_r);
		deltapush_store_read_token(stmt, pool, token);
	}
	deltapush_store_reset(stmt);
	return ret < 0 ? -1 : 0;
}

int deltapush_store_list(struct deltapush_store *store, const char *user,
			 time_t min_last_seen, pool_t pool,
			 ARRAY_TYPE(deltapush_store_token) *tokens_r,
			 const char **error_r)
{
	sqlite3_stmt *stmt;

	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_LIST);
	if (deltapush_store_bind_str(stmt, 1, user) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 2, min_last_seen) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	return deltapush_store_read_tokens(store, stmt, pool, tokens_r,
					   error_r);
}

int deltapush_store_get(struct deltapush_store *store, int64_t id,
			pool_t pool, struct deltapush_store_token *token_r,
			const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_GET);
	if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	ret = deltapush_store_step(store, stmt, error_r);
	if (ret > 0)
		deltapush_store_read_token(stmt, pool, token_r);
	deltapush_store_reset(stmt);
	return ret;
}

int deltapush_store_forget(struct deltapush_store *store, const char *user,
			   unsigned int *count_r, const char **error_r)
{
	sqlite3_stmt *stmt;

	*count_r = 0;
	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_FORGET);
	if (deltapush_store_bind_str(stmt, 1, user) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	return deltapush_store_change(store, stmt, count_r, error_r);
}

int deltapush_store_remove(struct deltapush_store *store, int64_t id,
			   const char **error_r)
{
	sqlite3_stmt *stmt;
	unsigned int count;

	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_REMOVE);
	if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	if (deltapush_store_change(store, stmt, &count, error_r) < 0)
		return -1;
	return count > 0 ? 1 : 0;
}

int deltapush_store_prune(struct deltapush_store *store, time_t min_last_seen,
			  unsigned int *count_r, const char **error_r)
{
	sqlite3_stmt *stmt;

	*count_r = 0;
	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_PRUNE);
	if (sqlite3_bind_int64(stmt, 1, min_last_seen) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	return deltapush_store_change(store, stmt, count_r, error_r);
}

int deltapush_store_update_state(struct deltapush_store *store, int64_t id,
				 const struct deltapush_push_state *state,
				 const char **error_r)
{
	sqlite3_int64 last_sent = (sqlite3_int64)state->last_sent_msecs;
	sqlite3_int64 deadline = (sqlite3_int64)state->deadline_msecs;
	sqlite3_stmt *stmt;
	unsigned int count;
	int rc;

	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_UPDATE_STATE);
	/* NULL keeps tokens without a pending push out of the pending
	   index. */
	rc = state->due_msecs == 0 ? sqlite3_bind_null(stmt, 3) :
		sqlite3_bind_int64(stmt, 3, (sqlite3_int64)state->due_msecs);
	if (rc != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 2, last_sent) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 4, deadline) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 5, state->attempts) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 6, state->waiting) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	if (deltapush_store_change(store, stmt, &count, error_r) < 0)
		return -1;
	return count > 0 ? 1 : 0;
}

int deltapush_store_get_pending(struct deltapush_store *store,
				uint64_t after_due_msecs, int64_t after_id,
				unsigned int limit, pool_t pool,
				ARRAY_TYPE(deltapush_store_token) *tokens_r,
				const char **error_r)
{
	sqlite3_stmt *stmt;

	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_PENDING);
	if (sqlite3_bind_int64(stmt, 1,
			       (sqlite3_int64)after_due_msecs) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 2, after_id) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, limit) != SQLITE_OK)
		return deltapush_store_bind_failed(store, stmt, error_r);
	return deltapush_store_read_tokens(store, stmt, pool, tokens_r,
					   error_r);
}

int deltapush_store_get_stats(struct deltapush_store *store,
			      struct deltapush_store_stats *stats_r,
			      const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(stats_r);
	if (deltapush_store_check_transaction(store, error_r) < 0)
		return -1;
	stmt = deltapush_store_stmt(store, DELTAPUSH_STORE_STMT_STATS);
	ret = deltapush_store_step(store, stmt, error_r);
	if (ret > 0) {
		stats_r->tokens = (uint64_t)sqlite3_column_int64(stmt, 0);
		stats_r->users = (uint64_t)sqlite3_column_int64(stmt, 1);
		stats_r->pending = (uint64_t)sqlite3_column_int64(stmt, 2);
		/* MIN() of no rows is NULL, which reads as 0 */
		stats_r->oldest_due_msecs =
			(uint64_t)sqlite3_column_int64(stmt, 3);
	}
	deltapush_store_reset(stmt);
	return ret < 0 ? -1 : 0;
}
