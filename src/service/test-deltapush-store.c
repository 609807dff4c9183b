/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "ioloop.h"
#include "write-full.h"
#include "unlink-directory.h"
#include "test-common.h"
#include "test-deltapush-common.h"
#include "deltapush-store.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sqlite3.h>

#define MAX_TOKENS 100

static char *test_dir;

/* Create a fresh temporary directory and return a database path in it. */
static const char *test_store_path(void)
{
	const char *tmpdir = getenv("TMPDIR");

	i_assert(test_dir == NULL);
	if (tmpdir == NULL || *tmpdir == '\0')
		tmpdir = "/tmp";
	test_dir = i_strconcat(tmpdir, "/test-deltapush-store.XXXXXX", NULL);
	if (mkdtemp(test_dir) == NULL)
		i_fatal("mkdtemp(%s) failed: %m", test_dir);
	return t_strconcat(test_dir, "/deltapush.db", NULL);
}

static void test_store_path_cleanup(void)
{
	const char *error;

	if (unlink_directory(test_dir, UNLINK_DIRECTORY_FLAG_RMDIR,
			     &error) < 0)
		i_error("unlink_directory(%s) failed: %s", test_dir, error);
	i_free(test_dir);
}

static struct deltapush_store *test_store_open(const char *path)
{
	struct deltapush_store *store;
	const char *error;

	if (deltapush_store_open(path, FALSE, NULL, &store, &error) < 0)
		i_fatal("deltapush_store_open(%s) failed: %s", path, error);
	return store;
}

static int
test_register(struct deltapush_store *store, const char *user,
	      const char *token, time_t now)
{
	const char *error;
	int ret;

	ret = deltapush_store_register(store, user, token, now, MAX_TOKENS,
				       pool_datastack_create(), NULL, &error);
	if (ret < 0)
		i_error("deltapush_store_register() failed: %s", error);
	return ret;
}

static ARRAY_TYPE(deltapush_store_token)
test_list(struct deltapush_store *store, const char *user,
	  time_t min_last_seen)
{
	ARRAY_TYPE(deltapush_store_token) tokens;
	const char *error;

	t_array_init(&tokens, 8);
	if (deltapush_store_list(store, user, min_last_seen,
				 pool_datastack_create(), &tokens, &error) < 0)
		i_error("deltapush_store_list() failed: %s", error);
	return tokens;
}

/* The user's tokens as one string, in list order: "a,b,c" */
static const char *
test_list_str(struct deltapush_store *store, const char *user,
	      time_t min_last_seen)
{
	ARRAY_TYPE(deltapush_store_token) tokens =
		test_list(store, user, min_last_seen);
	const struct deltapush_store_token *token;
	string_t *str = t_str_new(64);

	array_foreach(&tokens, token) {
		if (str_len(str) > 0)
			str_append_c(str, ',');
		str_append(str, token->token);
	}
	return str_c(str);
}

static const char *test_strlist(const ARRAY_TYPE(const_string) *list)
{
	const char *const *strp;
	string_t *str = t_str_new(64);

	array_foreach(list, strp) {
		if (str_len(str) > 0)
			str_append_c(str, ',');
		str_append(str, *strp);
	}
	return str_c(str);
}

static int64_t
test_token_id(struct deltapush_store *store, const char *user,
	      const char *token_str)
{
	ARRAY_TYPE(deltapush_store_token) tokens = test_list(store, user, 0);
	const struct deltapush_store_token *token;

	array_foreach(&tokens, token) {
		if (strcmp(token->token, token_str) == 0)
			return token->id;
	}
	return -1;
}

/* Run one SQL statement directly on the database file, returning the
   first column of the first row as an integer (or -1). */
static int64_t test_sqlite_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *stmt;
	int64_t value = -1;

	if (sqlite3_open(path, &db) != SQLITE_OK)
		i_fatal("sqlite3_open(%s) failed: %s", path,
			sqlite3_errmsg(db));
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		i_fatal("sqlite3_prepare(%s) failed: %s", sql,
			sqlite3_errmsg(db));
	if (sqlite3_step(stmt) == SQLITE_ROW)
		value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return value;
}

static void test_store_exclusive(void)
{
	struct deltapush_store *store;
	sqlite3 *db;
	sqlite3_stmt *stmt;
	const char *path, *error;
	struct stat st;
	int rc;

	test_begin("store exclusive mode");
	path = test_store_path();
	test_assert(deltapush_store_open(path, TRUE, NULL, &store,
					 &error) == 0);
	test_assert(test_register(store, "u", "a", 100) == 1);
	test_assert_strcmp(test_list_str(store, "u", 0), "a");
	/* no shared-memory WAL index: nothing mmap'd that could fault */
	test_assert(stat(t_strconcat(path, "-shm", NULL), &st) < 0 &&
		    errno == ENOENT);
	/* another process can't get at the file while we have it */
	test_assert(sqlite3_open(path, &db) == SQLITE_OK);
	rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM tokens", -1,
				&stmt, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(stmt);
		sqlite3_finalize(stmt);
	}
	test_assert(rc == SQLITE_BUSY);
	sqlite3_close(db);
	deltapush_store_close(&store);
	/* and all of it is there once we let go */
	test_assert(test_sqlite_int(path, "SELECT count(*) FROM tokens") == 1);
	test_store_path_cleanup();
	test_end();
}

static void test_store_open_reopen(void)
{
	struct deltapush_store *store;
	struct deltapush_store_stats stats;
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;
	struct stat st;
	const char *path, *error;

	test_begin("store open, close and reopen");
	path = test_store_path();
	store = test_store_open(path);

	/* tokens must not be readable by other local users */
	test_assert(stat(path, &st) == 0);
	test_assert((st.st_mode & 0777) == 0600);

	test_assert(deltapush_store_get_stats(store, &stats, &error) == 0);
	test_assert(stats.tokens == 0 && stats.users == 0 &&
		    stats.pending == 0 && stats.oldest_due_msecs == 0);
	test_assert(test_register(store, "alice", "tok-1", 1000) == 1);
	test_assert(test_register(store, "bob", "tok-2", 1001) == 1);
	deltapush_store_close(&store);
	test_assert(store == NULL);

	/* the schema is version 2 and the journal is WAL */
	test_assert(test_sqlite_int(path, "PRAGMA user_version") == 2);
	test_assert(test_sqlite_int(path,
		"SELECT COUNT(*) FROM sqlite_master "
		"WHERE type = 'index' AND name = 'tokens_pending'") == 1);

	store = test_store_open(path);
	tokens = test_list(store, "alice", 0);
	test_assert(array_count(&tokens) == 1);
	token = array_front(&tokens);
	test_assert_strcmp(token->user, "alice");
	test_assert_strcmp(token->token, "tok-1");
	test_assert(token->created == 1000 && token->last_seen == 1000);
	test_assert_strcmp(test_list_str(store, "bob", 0), "tok-2");
	test_assert(deltapush_store_get_stats(store, &stats, &error) == 0);
	test_assert(stats.tokens == 2 && stats.users == 2);
	deltapush_store_close(&store);

	/* WAL mode is stored in the file */
	test_assert(test_sqlite_int(path, "SELECT COUNT(*) FROM "
		"pragma_journal_mode WHERE journal_mode = 'wal'") == 1);
	test_store_path_cleanup();
	test_end();
}

static void test_store_register_refresh(void)
{
	struct deltapush_store *store;
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;
	int64_t id;

	test_begin("store register and refresh");
	store = test_store_open(test_store_path());

	test_assert(test_register(store, "alice", "tok-1", 1000) == 1);
	id = test_token_id(store, "alice", "tok-1");
	test_assert(id > 0);
	/* registering again refreshes last_seen only */
	test_assert(test_register(store, "alice", "tok-1", 2000) == 0);
	test_assert(test_register(store, "alice", "tok-1", 3000) == 0);
	tokens = test_list(store, "alice", 0);
	test_assert(array_count(&tokens) == 1);
	token = array_front(&tokens);
	test_assert(token->id == id);
	test_assert(token->created == 1000);
	test_assert(token->last_seen == 3000);
	/* a new token is stored beside the first one */
	test_assert(test_register(store, "alice", "tok-2", 3000) == 1);
	test_assert_strcmp(test_list_str(store, "alice", 0), "tok-1,tok-2");

	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

/* What the service does for a registration at now (fake clock):
   deltapush_db_register(). wrote_r says whether it wrote. */
static int
test_register_again(struct deltapush_store *store, const char *user,
		    const char *token, time_t now, unsigned int ttl_secs,
		    bool *wrote_r)
{
	const char *error;
	int ret;

	ret = deltapush_store_is_fresh(store, user, token, now -
			deltapush_store_refresh_secs(ttl_secs), MAX_TOKENS,
			&error);
	if (ret < 0)
		i_error("deltapush_store_is_fresh() failed: %s", error);
	*wrote_r = ret == 0;
	if (ret != 0)
		return ret < 0 ? -1 : 0;
	return test_register(store, user, token, now);
}

static time_t test_last_seen(struct deltapush_store *store, const char *user)
{
	ARRAY_TYPE(deltapush_store_token) tokens = test_list(store, user, 0);
	const struct deltapush_store_token *token;

	if (array_count(&tokens) != 1)
		return -1;
	token = array_front(&tokens);
	return token->last_seen;
}

/* The WAL file as it is now: every commit writes to it */
static void test_wal_stat(const char *path, struct stat *st_r)
{
	const char *wal = t_strconcat(path, "-wal", NULL);

	if (stat(wal, st_r) < 0)
		i_fatal("stat(%s) failed: %m", wal);
}

static bool test_wal_unchanged(const char *path, const struct stat *old)
{
	struct stat st;

	test_wal_stat(path, &st);
	return st.st_size == old->st_size &&
		st.st_mtim.tv_sec == old->st_mtim.tv_sec &&
		st.st_mtim.tv_nsec == old->st_mtim.tv_nsec;
}

static void test_store_register_fresh(void)
{
	const unsigned int ttl = 90 * 24 * 3600, day = 24 * 3600;
	const time_t t0 = 1700000000;
	struct deltapush_store *store;
	struct stat st;
	const char *path;
	bool wrote;

	test_begin("store registration of a fresh token is a read");
	/* a sixteenth of the TTL, at most a day */
	test_assert(deltapush_store_refresh_secs(ttl) == day);
	test_assert(deltapush_store_refresh_secs(7 * day) == 7 * day / 16);
	test_assert(deltapush_store_refresh_secs(16) == 1);
	test_assert(deltapush_store_refresh_secs(15) == 0);
	test_assert(deltapush_store_refresh_secs(0) == 0);

	path = test_store_path();
	store = test_store_open(path);
	test_assert(test_register_again(store, "alice", "tok", t0, ttl,
					&wrote) == 1 && wrote);
	test_wal_stat(path, &st);
	/* every login within a day: nothing written, last_seen stays */
	test_assert(test_register_again(store, "alice", "tok", t0 + 1, ttl,
					&wrote) == 0 && !wrote);
	test_assert(test_register_again(store, "alice", "tok", t0 + day, ttl,
					&wrote) == 0 && !wrote);
	test_assert(test_last_seen(store, "alice") == t0);
	test_assert(test_wal_unchanged(path, &st));
	/* an import of an older registration: nothing to move either */
	test_assert(test_register_again(store, "alice", "tok", t0 - 10 * day,
					ttl, &wrote) == 0 && !wrote);
	test_assert(test_wal_unchanged(path, &st));
	/* stale by more than a day: refreshed */
	test_assert(test_register_again(store, "alice", "tok",
					t0 + day + 1, ttl, &wrote) == 0 &&
		    wrote);
	test_assert(test_last_seen(store, "alice") == t0 + day + 1);
	test_assert(!test_wal_unchanged(path, &st));
	/* the same token of another user is another token */
	test_assert(test_register_again(store, "bob", "tok", t0 + 2, ttl,
					&wrote) == 1 && wrote);
	test_assert(test_last_seen(store, "bob") == t0 + 2);
	/* a short TTL refreshes every second, as without the check */
	test_assert(test_register_again(store, "bob", "tok", t0 + 2, 2,
					&wrote) == 0 && !wrote);
	test_assert(test_register_again(store, "bob", "tok", t0 + 3, 2,
					&wrote) == 0 && wrote);
	test_assert(test_last_seen(store, "bob") == t0 + 3);
	/* a full set is written on every registration: it decides which
	   token the next one evicts */
	for (unsigned int i = 1; i < MAX_TOKENS; i++) {
		test_assert_idx(test_register(store, "bob",
			t_strdup_printf("tok-%u", i), t0 + 3) == 1, i);
	}
	test_assert(test_register_again(store, "bob", "tok", t0 + 4, ttl,
					&wrote) == 0 && wrote);
	/* expiry still goes by the stored last_seen */
	test_assert_strcmp(test_list_str(store, "alice", t0 + day + 1), "tok");
	test_assert_strcmp(test_list_str(store, "alice", t0 + day + 2), "");
	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

/* A database as deltapush 0.2 (schema version 1) left it */
static void test_store_create_v1(const char *path)
{
	static const char *const sql =
		"PRAGMA journal_mode = WAL;"
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
		"PRAGMA user_version = 1;"
		"INSERT INTO tokens (username, token, created, last_seen)"
		" VALUES ('alice', 'tok-1', 100, 500), ('alice', 'tok-2', 200, 600),"
		"  ('bob', 'tok-1', 300, 700), ('carol', 'gone', 400, 400);"
		"UPDATE tokens SET last_sent_ms = 7, due_ms = 9000,"
		" deadline_ms = 99000, attempts = 2, waiting = 1 WHERE id = 2;"
		/* the highest id was given out and removed again */
		"DELETE FROM tokens WHERE id = 4;";
	sqlite3 *db;
	char *errmsg = NULL;

	if (sqlite3_open(path, &db) != SQLITE_OK)
		i_fatal("sqlite3_open(%s) failed: %s", path, sqlite3_errmsg(db));
	if (sqlite3_exec(db, sql, NULL, NULL, &errmsg) != SQLITE_OK)
		i_fatal("sqlite3_exec() failed: %s", errmsg);
	(void)sqlite3_close(db);
}

static void test_store_upgrade_v1(void)
{
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;
	struct deltapush_store *store;
	const char *path, *error;
	struct stat st;

	test_begin("store upgrades a version 1 database in place");
	path = test_store_path();
	test_store_create_v1(path);
	test_assert(test_sqlite_int(path, "SELECT COUNT(*) FROM sqlite_master "
		"WHERE name = 'sqlite_autoindex_tokens_1'") == 1);

	store = test_store_open(path);
	test_assert(test_sqlite_int(path, "PRAGMA user_version") == 2);
	/* the copy of the table left no large WAL file behind */
	test_assert(stat(t_strconcat(path, "-wal", NULL), &st) == 0 &&
		    st.st_size == 0);
	/* no index holds a copy of the tokens any more */
	test_assert(test_sqlite_int(path, "SELECT COUNT(*) FROM sqlite_master "
		"WHERE name = 'sqlite_autoindex_tokens_1'") == 0);
	test_assert(test_sqlite_int(path, "SELECT COUNT(*) FROM sqlite_master "
		"WHERE type = 'index' AND tbl_name = 'tokens'") == 3);

	/* everything is there as it was */
	test_assert_strcmp(test_list_str(store, "alice", 0), "tok-1,tok-2");
	test_assert_strcmp(test_list_str(store, "bob", 0), "tok-1");
	test_assert_strcmp(test_list_str(store, "carol", 0), "");
	tokens = test_list(store, "alice", 0);
	test_assert(array_count(&tokens) == 2);
	token = array_idx(&tokens, 1);
	test_assert(token->id == 2 && token->created == 200 &&
		    token->last_seen == 600);
	test_assert(token->state.last_sent_msecs == 7 &&
		    token->state.due_msecs == 9000 &&
		    token->state.deadline_msecs == 99000 &&
		    token->state.attempts == 2 && token->state.waiting == 1);
	t_array_init(&tokens, 4);
	test_assert(deltapush_store_get_pending(store, 0, 0, 10,
		pool_datastack_create(), &tokens, &error) == 0);
	test_assert(array_count(&tokens) == 1);

	/* and found by its hash: registering it again refreshes it */
	test_assert(deltapush_store_is_fresh(store, "alice", "tok-1", 500,
					     MAX_TOKENS, &error) == 1);
	test_assert(deltapush_store_is_fresh(store, "bob", "tok-2", 0,
					     MAX_TOKENS, &error) == 0);
	test_assert(test_register(store, "alice", "tok-1", 800) == 0);
	test_assert(test_register(store, "bob", "tok-1", 800) == 0);
	test_assert_strcmp(test_list_str(store, "alice", 800), "tok-1");
	/* a new token never gets the id of a removed one */
	test_assert(test_register(store, "carol", "new", 800) == 1);
	test_assert(test_token_id(store, "carol", "new") == 5);
	deltapush_store_close(&store);

	/* opened again: nothing more to do */
	store = test_store_open(path);
	test_assert_strcmp(test_list_str(store, "alice", 0), "tok-1,tok-2");
	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_list_order(void)
{
	struct deltapush_store *store;

	test_begin("store list order");
	store = test_store_open(test_store_path());

	/* ordered by first registration, then by id */
	test_assert(test_register(store, "u", "t1", 300) == 1);
	test_assert(test_register(store, "u", "t2", 100) == 1);
	test_assert(test_register(store, "u", "t3", 200) == 1);
	test_assert(test_register(store, "u", "t4", 100) == 1);
	test_assert_strcmp(test_list_str(store, "u", 0), "t2,t4,t3,t1");
	/* a refresh does not move a token */
	test_assert(test_register(store, "u", "t2", 400) == 0);
	test_assert_strcmp(test_list_str(store, "u", 0), "t2,t4,t3,t1");
	test_assert_strcmp(test_list_str(store, "nobody", 0), "");

	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_evict(void)
{
	struct deltapush_store *store;
	ARRAY_TYPE(const_string) evicted;
	pool_t pool = pool_datastack_create();
	const char *error;

	test_begin("store evicts beyond max tokens");
	store = test_store_open(test_store_path());
	t_array_init(&evicted, 4);

	test_assert(deltapush_store_register(store, "u", "a", 100, 3, pool,
					     &evicted, &error) == 1);
	test_assert(deltapush_store_register(store, "u", "b", 200, 3, pool,
					     &evicted, &error) == 1);
	test_assert(deltapush_store_register(store, "u", "c", 300, 3, pool,
					     &evicted, &error) == 1);
	test_assert(deltapush_store_register(store, "u", "a", 400, 3, pool,
					     &evicted, &error) == 0);
	/* another user's tokens don't count against u's limit */
	test_assert(deltapush_store_register(store, "v", "z", 50, 3, pool,
					     &evicted, &error) == 1);
	test_assert(array_count(&evicted) == 0);
	/* b is now the least recently seen */
	test_assert(deltapush_store_register(store, "u", "d", 500, 3, pool,
					     &evicted, &error) == 1);
	test_assert_strcmp(test_strlist(&evicted), "b");
	test_assert_strcmp(test_list_str(store, "u", 0), "a,c,d");
	test_assert_strcmp(test_list_str(store, "v", 0), "z");

	/* ties in last_seen: the lowest id goes first */
	array_clear(&evicted);
	test_assert(deltapush_store_register(store, "w", "x", 100, 3, pool,
					     &evicted, &error) == 1);
	test_assert(deltapush_store_register(store, "w", "y", 100, 3, pool,
					     &evicted, &error) == 1);
	test_assert(deltapush_store_register(store, "w", "z", 100, 3, pool,
					     &evicted, &error) == 1);
	test_assert(deltapush_store_register(store, "w", "q", 100, 3, pool,
					     &evicted, &error) == 1);
	test_assert_strcmp(test_strlist(&evicted), "x");
	test_assert_strcmp(test_list_str(store, "w", 0), "y,z,q");

	/* a lowered limit applies on the next refresh, oldest first */
	array_clear(&evicted);
	test_assert(deltapush_store_register(store, "u", "d", 600, 1, pool,
					     &evicted, &error) == 0);
	test_assert_strcmp(test_strlist(&evicted), "c,a");
	test_assert_strcmp(test_list_str(store, "u", 0), "d");

	/* evicted_r may be NULL */
	test_assert(deltapush_store_register(store, "u", "e", 700, 1, pool,
					     NULL, &error) == 1);
	test_assert_strcmp(test_list_str(store, "u", 0), "e");

	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_expiry(void)
{
	struct deltapush_store *store;
	unsigned int count;
	const char *error;

	test_begin("store hides and prunes expired tokens");
	store = test_store_open(test_store_path());

	test_assert(test_register(store, "u", "old", 100) == 1);
	test_assert(test_register(store, "u", "edge", 200) == 1);
	test_assert(test_register(store, "u", "new", 300) == 1);
	test_assert(test_register(store, "v", "old-v", 150) == 1);
	test_assert(test_register(store, "v", "new-v", 250) == 1);

	/* last_seen == min_last_seen is still live */
	test_assert_strcmp(test_list_str(store, "u", 200), "edge,new");
	test_assert_strcmp(test_list_str(store, "u", 301), "");
	/* hidden tokens are still stored until pruned */
	test_assert_strcmp(test_list_str(store, "u", 0), "old,edge,new");

	test_assert(deltapush_store_prune(store, 200, &count, &error) == 0);
	test_assert(count == 2);
	test_assert_strcmp(test_list_str(store, "u", 0), "edge,new");
	test_assert_strcmp(test_list_str(store, "v", 0), "new-v");
	test_assert(deltapush_store_prune(store, 200, &count, &error) == 0);
	test_assert(count == 0);
	/* a refreshed token survives a later prune */
	test_assert(test_register(store, "u", "edge", 500) == 0);
	test_assert(deltapush_store_prune(store, 400, &count, &error) == 0);
	test_assert(count == 2);
	test_assert_strcmp(test_list_str(store, "u", 0), "edge");

	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_forget_remove(void)
{
	struct deltapush_store *store;
	struct deltapush_store_token token;
	unsigned int count;
	const char *error;
	int64_t id;

	test_begin("store forget and remove");
	store = test_store_open(test_store_path());

	test_assert(test_register(store, "u", "a", 100) == 1);
	test_assert(test_register(store, "u", "b", 100) == 1);
	test_assert(test_register(store, "v", "c", 100) == 1);

	test_assert(deltapush_store_forget(store, "u", &count, &error) == 0);
	test_assert(count == 2);
	test_assert_strcmp(test_list_str(store, "u", 0), "");
	test_assert_strcmp(test_list_str(store, "v", 0), "c");
	test_assert(deltapush_store_forget(store, "u", &count, &error) == 0);
	test_assert(count == 0);

	test_assert(test_register(store, "v", "d", 100) == 1);
	id = test_token_id(store, "v", "c");
	test_assert(deltapush_store_get(store, id, pool_datastack_create(),
					&token, &error) == 1);
	test_assert_strcmp(token.token, "c");
	test_assert(deltapush_store_remove(store, id, &error) == 1);
	test_assert(deltapush_store_remove(store, id, &error) == 0);
	test_assert(deltapush_store_get(store, id, pool_datastack_create(),
					&token, &error) == 0);
	test_assert_strcmp(test_list_str(store, "v", 0), "d");

	/* ids are never reused, so a stale id can't hit a new token */
	test_assert(test_register(store, "v", "c", 100) == 1);
	test_assert(test_token_id(store, "v", "c") > id);
	id = test_token_id(store, "v", "c");
	test_assert(deltapush_store_remove(store, id, &error) == 1);
	test_assert(test_register(store, "v", "e", 100) == 1);
	test_assert(test_token_id(store, "v", "e") > id);

	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_update_state(void)
{
	static const struct deltapush_push_state states[] = {
		{ .last_sent_msecs = 0, .due_msecs = 1700000000123ULL,
		  .deadline_msecs = 1700000600123ULL },
		{ .last_sent_msecs = 1700000000123ULL,
		  .due_msecs = 1700000001123ULL,
		  .deadline_msecs = 1700000600123ULL,
		  .attempts = 3, .waiting = 1, .in_flight = TRUE },
		{ .last_sent_msecs = 1700000002000ULL, .due_msecs = 0,
		  .deadline_msecs = 0, .attempts = 0, .waiting = 0 },
		{ .last_sent_msecs = 0x7fffffffffffffffULL,
		  .due_msecs = 0x7ffffffffffffffeULL,
		  .deadline_msecs = 0x7fffffffffffffffULL,
		  .attempts = 4000000000U, .waiting = 4000000001U },
		{ .last_sent_msecs = 5, .due_msecs = 0,
		  .deadline_msecs = 7, .attempts = 1, .waiting = 2 },
	};
	struct deltapush_store *store;
	struct deltapush_store_token token;
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *listed;
	const char *path, *error, *sql;
	unsigned int i;
	int64_t id;

	test_begin("store update_state round trip");
	path = test_store_path();
	store = test_store_open(path);

	test_assert(test_register(store, "u", "a", 100) == 1);
	id = test_token_id(store, "u", "a");
	/* a new token has nothing pending */
	test_assert(deltapush_store_get(store, id, pool_datastack_create(),
					&token, &error) == 1);
	test_assert(token.state.last_sent_msecs == 0 &&
		    token.state.due_msecs == 0 &&
		    token.state.deadline_msecs == 0 &&
		    token.state.attempts == 0 && token.state.waiting == 0 &&
		    !token.state.in_flight);

	sql = t_strdup_printf("SELECT due_ms IS NULL FROM tokens "
			      "WHERE id = %"PRId64, id);
	for (i = 0; i < N_ELEMENTS(states); i++) {
		test_assert_idx(deltapush_store_update_state(store, id,
				&states[i], &error) == 1, i);
		test_assert_idx(deltapush_store_get(store, id,
				pool_datastack_create(), &token,
				&error) == 1, i);
		test_assert_idx(token.state.last_sent_msecs ==
				states[i].last_sent_msecs, i);
		test_assert_idx(token.state.due_msecs ==
				states[i].due_msecs, i);
		test_assert_idx(token.state.deadline_msecs ==
				states[i].deadline_msecs, i);
		test_assert_idx(token.state.attempts ==
				states[i].attempts, i);
		test_assert_idx(token.state.waiting == states[i].waiting, i);
		test_assert_idx(!token.state.in_flight, i);
		/* the rest of the row is untouched */
		test_assert_strcmp_idx(token.user, "u", i);
		test_assert_strcmp_idx(token.token, "a", i);
		test_assert_idx(token.created == 100 &&
				token.last_seen == 100, i);
		/* due 0 is stored as NULL, which keeps it out of the
		   pending index */
		test_assert_idx(test_sqlite_int(path, sql) ==
				(states[i].due_msecs == 0 ? 1 : 0), i);

		/* list returns the same state */
		tokens = test_list(store, "u", 0);
		test_assert_idx(array_count(&tokens) == 1, i);
		listed = array_front(&tokens);
		test_assert_idx(listed->state.due_msecs ==
				states[i].due_msecs &&
				listed->state.attempts ==
				states[i].attempts, i);
	}

	/* the state survives a restart */
	test_assert(deltapush_store_update_state(store, id, &states[1],
						 &error) == 1);
	deltapush_store_close(&store);
	store = test_store_open(path);
	test_assert(deltapush_store_get(store, id, pool_datastack_create(),
					&token, &error) == 1);
	test_assert(token.state.due_msecs == states[1].due_msecs &&
		    token.state.waiting == states[1].waiting);

	/* a removed token */
	test_assert(deltapush_store_remove(store, id, &error) == 1);
	test_assert(deltapush_store_update_state(store, id, &states[1],
						 &error) == 0);

	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_pending(void)
{
	static const struct {
		const char *token;
		uint64_t due;
	} input[] = {
		{ "p1", 5000 },
		{ "idle1", 0 },
		{ "p2", 3000 },
		{ "p3", 5000 },
		{ "p4", 1000 },
		{ "idle2", 0 },
		{ "p5", 3000 },
	};
	/* by due, then by id (registration order) */
	static const char *const expected[] = {
		"p4", "p2", "p5", "p1", "p3"
	};
	struct deltapush_store *store;
	struct deltapush_store_stats stats;
	struct deltapush_push_state state;
	ARRAY_TYPE(deltapush_store_token) batch;
	const struct deltapush_store_token *token;
	uint64_t after_due = 0;
	int64_t after_id = 0;
	unsigned int i, n = 0, batches = 0;
	const char *error;
	int64_t id;

	test_begin("store get_pending batches");
	store = test_store_open(test_store_path());

	for (i = 0; i < N_ELEMENTS(input); i++) {
		/* spread over users: pending work is global */
		const char *user = i % 2 == 0 ? "u" : "v";

		test_assert(test_register(store, user, input[i].token,
					  100) == 1);
		id = test_token_id(store, user, input[i].token);
		i_zero(&state);
		state.due_msecs = input[i].due;
		state.deadline_msecs = input[i].due + 1;
		test_assert(deltapush_store_update_state(store, id, &state,
							 &error) == 1);
	}

	test_assert(deltapush_store_get_stats(store, &stats, &error) == 0);
	test_assert(stats.tokens == N_ELEMENTS(input));
	test_assert(stats.users == 2);
	test_assert(stats.pending == N_ELEMENTS(expected));
	test_assert(stats.oldest_due_msecs == 1000);

	/* batches of 2 with the cursor: 2 + 2 + 1, then an empty one */
	t_array_init(&batch, 4);
	for (;;) {
		array_clear(&batch);
		test_assert(deltapush_store_get_pending(store, after_due,
				after_id, 2, pool_datastack_create(), &batch,
				&error) == 0);
		if (array_count(&batch) == 0)
			break;
		test_assert(array_count(&batch) <= 2);
		batches++;
		array_foreach(&batch, token) {
			test_assert_idx(n < N_ELEMENTS(expected), n);
			if (n < N_ELEMENTS(expected))
				test_assert_strcmp_idx(token->token,
						       expected[n], n);
			test_assert_idx(token->state.deadline_msecs ==
					token->state.due_msecs + 1, n);
			n++;
			after_due = token->state.due_msecs;
			after_id = token->id;
		}
		if (batches > N_ELEMENTS(input))
			break;
	}
	test_assert(n == N_ELEMENTS(expected));
	test_assert(batches == 3);

	/* one call with a big limit returns the same order */
	array_clear(&batch);
	test_assert(deltapush_store_get_pending(store, 0, 0, 100,
			pool_datastack_create(), &batch, &error) == 0);
	test_assert(array_count(&batch) == N_ELEMENTS(expected));
	/* a cursor in the middle of equal due times */
	token = array_idx(&batch, 1);
	after_due = token->state.due_msecs;
	after_id = token->id;
	array_clear(&batch);
	test_assert(deltapush_store_get_pending(store, after_due, after_id,
			100, pool_datastack_create(), &batch, &error) == 0);
	test_assert(array_count(&batch) == 3);
	if (array_count(&batch) == 3) {
		token = array_idx(&batch, 0);
		test_assert_strcmp(token->token, "p5");
		token = array_idx(&batch, 2);
		test_assert_strcmp(token->token, "p3");
	}

	/* finished pushes are no longer pending */
	i_zero(&state);
	state.last_sent_msecs = 1000;
	id = test_token_id(store, "u", "p4");
	test_assert(deltapush_store_update_state(store, id, &state,
						 &error) == 1);
	test_assert(deltapush_store_get_stats(store, &stats, &error) == 0);
	test_assert(stats.pending == N_ELEMENTS(expected) - 1);
	test_assert(stats.oldest_due_msecs == 3000);

	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_user_isolation(void)
{
	struct deltapush_store *store;
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;
	unsigned int count;
	const char *error;

	test_begin("store user isolation");
	store = test_store_open(test_store_path());

	test_assert(test_register(store, "alice", "shared", 100) == 1);
	test_assert(test_register(store, "alice", "a-only", 100) == 1);
	/* the same token for another user is a separate entry */
	test_assert(test_register(store, "bob", "shared", 200) == 1);
	test_assert(test_register(store, "Alice", "A-only", 100) == 1);
	test_assert(test_register(store, "alice ", "space", 100) == 1);
	test_assert(test_register(store, "ali%", "pct", 100) == 1);
	test_assert(test_register(store, "al_ce", "underscore", 100) == 1);

	test_assert_strcmp(test_list_str(store, "alice", 0), "shared,a-only");
	test_assert_strcmp(test_list_str(store, "bob", 0), "shared");
	test_assert_strcmp(test_list_str(store, "Alice", 0), "A-only");
	test_assert_strcmp(test_list_str(store, "alice ", 0), "space");
	test_assert_strcmp(test_list_str(store, "ali%", 0), "pct");
	test_assert_strcmp(test_list_str(store, "al_ce", 0), "underscore");
	test_assert_strcmp(test_list_str(store, "", 0), "");

	/* bob's refresh does not touch alice's copy */
	test_assert(test_register(store, "bob", "shared", 300) == 0);
	tokens = test_list(store, "alice", 0);
	token = array_front(&tokens);
	test_assert(token->last_seen == 100);
	test_assert(deltapush_store_forget(store, "alice", &count,
					   &error) == 0);
	test_assert(count == 2);
	test_assert_strcmp(test_list_str(store, "bob", 0), "shared");
	test_assert_strcmp(test_list_str(store, "Alice", 0), "A-only");

	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_strange_strings(void)
{
	static const char *const strings[] = {
		"x'); DROP TABLE tokens;--",
		"'",
		"\"; DELETE FROM tokens; --",
		"100%_%s%n",
		"a;b;c",
		"back\\slash",
		"tab\there\r\nnewline",
		"Grüße, 日本語, 😀",
		"\xff\xfe invalid utf-8 \xc3",
		" leading and trailing ",
		"?1 ?2 :name @x $y",
		"42",
	};
	struct deltapush_store *store;
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;
	struct deltapush_store_stats stats;
	const char *path, *error;
	unsigned int i, count;

	test_begin("store strange strings round trip");
	path = test_store_path();
	store = test_store_open(path);

	for (i = 0; i < N_ELEMENTS(strings); i++) {
		test_assert_idx(test_register(store, strings[i], strings[i],
					      100 + i) == 1, i);
		test_assert_idx(test_register(store, "plain", strings[i],
					      100 + i) == 1, i);
	}
	deltapush_store_close(&store);
	store = test_store_open(path);

	for (i = 0; i < N_ELEMENTS(strings); i++) {
		tokens = test_list(store, strings[i], 0);
		test_assert_idx(array_count(&tokens) == 1, i);
		if (array_count(&tokens) != 1)
			continue;
		token = array_front(&tokens);
		test_assert_strcmp_idx(token->user, strings[i], i);
		test_assert_strcmp_idx(token->token, strings[i], i);
		/* same bytes again: a refresh, not a second entry */
		test_assert_idx(test_register(store, strings[i], strings[i],
					      1000) == 0, i);
	}
	tokens = test_list(store, "plain", 0);
	test_assert(array_count(&tokens) == N_ELEMENTS(strings));
	for (i = 0; i < N_ELEMENTS(strings) && i < array_count(&tokens); i++) {
		token = array_idx(&tokens, i);
		test_assert_strcmp_idx(token->token, strings[i], i);
	}

	test_assert(deltapush_store_get_stats(store, &stats, &error) == 0);
	test_assert(stats.tokens == 2 * N_ELEMENTS(strings));
	test_assert(stats.users == N_ELEMENTS(strings) + 1);
	test_assert(deltapush_store_forget(store, strings[0], &count,
					   &error) == 0);
	test_assert(count == 1);
	test_assert(deltapush_store_get_stats(store, &stats, &error) == 0);
	test_assert(stats.tokens == 2 * N_ELEMENTS(strings) - 1);

	deltapush_store_close(&store);
	test_assert(test_sqlite_int(path, "SELECT COUNT(*) FROM tokens") ==
		    (int64_t)(2 * N_ELEMENTS(strings) - 1));
	test_store_path_cleanup();
	test_end();
}

static void test_store_transactions(void)
{
	struct deltapush_store *store, *store2;
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *listed;
	ARRAY_TYPE(const_string) evicted;
	struct deltapush_push_state state;
	struct deltapush_store_token token;
	const char *path, *error;
	int64_t id;

	test_begin("store transactions");
	path = test_store_path();
	store = test_store_open(path);
	store2 = test_store_open(path);

	/* rolled back: nothing stays */
	test_assert(deltapush_store_begin(store, &error) == 0);
	test_assert(test_register(store, "u", "a", 100) == 1);
	test_assert(test_register(store, "u", "b", 100) == 1);
	test_assert_strcmp(test_list_str(store, "u", 0), "a,b");
	deltapush_store_rollback(store);
	test_assert_strcmp(test_list_str(store, "u", 0), "");

	/* committed: another connection sees all of it, and only after
	   the commit */
	test_assert(deltapush_store_begin(store, &error) == 0);
	test_assert(test_register(store, "u", "a", 100) == 1);
	test_assert(test_register(store, "u", "b", 100) == 1);
	id = test_token_id(store, "u", "a");
	i_zero(&state);
	state.due_msecs = 12345;
	test_assert(deltapush_store_update_state(store, id, &state,
						 &error) == 1);
	test_assert_strcmp(test_list_str(store2, "u", 0), "");
	test_assert(deltapush_store_commit(store, &error) == 0);
	test_assert_strcmp(test_list_str(store2, "u", 0), "a,b");
	test_assert(deltapush_store_get(store2, id, pool_datastack_create(),
					&token, &error) == 1);
	test_assert(token.state.due_msecs == 12345);

	/* an eviction inside a transaction is undone by a rollback */
	t_array_init(&evicted, 4);
	test_assert(deltapush_store_begin(store, &error) == 0);
	test_assert(deltapush_store_register(store, "u", "c", 200, 2,
					     pool_datastack_create(),
					     &evicted, &error) == 1);
	test_assert_strcmp(test_strlist(&evicted), "a");
	test_assert_strcmp(test_list_str(store, "u", 0), "b,c");
	deltapush_store_rollback(store);
	test_assert_strcmp(test_list_str(store, "u", 0), "a,b");

	/* per-call work nests inside an explicit transaction */
	test_assert(deltapush_store_begin(store, &error) == 0);
	test_assert(test_register(store, "v", "x", 100) == 1);
	test_assert(test_register(store, "v", "x", 200) == 0);
	test_assert(deltapush_store_commit(store, &error) == 0);
	tokens = test_list(store2, "v", 0);
	listed = array_front(&tokens);
	test_assert(listed->last_seen == 200);

	/* close inside a transaction rolls back (with a warning) */
	test_assert(deltapush_store_begin(store, &error) == 0);
	test_assert(test_register(store, "v", "y", 100) == 1);
	test_expect_error_string("Closed inside a transaction");
	deltapush_store_close(&store);
	test_expect_no_more_errors();
	test_assert_strcmp(test_list_str(store2, "v", 0), "x");

	deltapush_store_close(&store2);
	test_store_path_cleanup();
	test_end();
}

static void test_copy_file(const char *src, const char *dest)
{
	unsigned char buf[4096];
	ssize_t ret;
	int fd_in, fd_out;

	fd_in = open(src, O_RDONLY);
	if (fd_in == -1)
		i_fatal("open(%s) failed: %m", src);
	fd_out = open(dest, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd_out == -1)
		i_fatal("open(%s) failed: %m", dest);
	while ((ret = read(fd_in, buf, sizeof(buf))) > 0) {
		if (write_full(fd_out, buf, ret) < 0)
			i_fatal("write(%s) failed: %m", dest);
	}
	if (ret < 0)
		i_fatal("read(%s) failed: %m", src);
	i_close_fd(&fd_in);
	i_close_fd(&fd_out);
}

static void test_store_fsync(void)
{
	static const struct {
		enum deltapush_fsync mode;
		bool acknowledged;
		int64_t level;
	} cases[] = {
		{ DELTAPUSH_FSYNC_OPTIMIZED, TRUE, 2 },
		{ DELTAPUSH_FSYNC_OPTIMIZED, FALSE, 1 },
		{ DELTAPUSH_FSYNC_OPTIMIZED, TRUE, 2 },
		{ DELTAPUSH_FSYNC_ALWAYS, FALSE, 2 },
		{ DELTAPUSH_FSYNC_ALWAYS, TRUE, 2 },
		{ DELTAPUSH_FSYNC_NEVER, TRUE, 1 },
		{ DELTAPUSH_FSYNC_NEVER, FALSE, 1 },
	};
	struct deltapush_store *store;
	const char *path, *error;
	int64_t level;
	unsigned int i;

	test_begin("store fsync modes");
	path = test_store_path();
	store = test_store_open(path);
	/* synchronous = FULL syncs the WAL at every commit: what an
	   acknowledged request needs to survive a power loss */
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		deltapush_store_set_fsync(store, cases[i].mode);
		test_assert_idx(deltapush_store_set_acknowledged(store,
			cases[i].acknowledged, &error) == 0, i);
		test_assert_idx(deltapush_store_get_synchronous(store, &level,
								&error) == 0, i);
		test_assert_idx(level == cases[i].level, i);
		test_assert_idx(test_register(store, "u", "t", 1000) >= 0, i);
	}
	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

struct test_group_ctx {
	struct deltapush_store *store;
	struct timeout *to;
	const char *prefix;
	unsigned int requests, commits_seen, failures_seen;
	unsigned int commit_count_at_callback;
	bool callbacks_before_pass_end;
};

static void test_group_committed(int ret, const char *error ATTR_UNUSED,
				 struct test_group_ctx *ctx)
{
	if (ret == 0)
		ctx->commits_seen++;
	else
		ctx->failures_seen++;
	ctx->commit_count_at_callback =
		deltapush_store_get_commit_count(ctx->store);
}

/* What the service does for each request of one ioloop pass */
static void test_group_requests(struct test_group_ctx *ctx)
{
	const char *error;
	unsigned int i;

	timeout_remove(&ctx->to);
	for (i = 0; i < ctx->requests; i++) {
		test_assert_idx(deltapush_store_group_join(ctx->store, TRUE,
							   &error) == 0, i);
		test_assert_idx(deltapush_store_savepoint(ctx->store,
							  &error) == 0, i);
		test_assert_idx(test_register(ctx->store, "u",
			t_strdup_printf("%s%u", ctx->prefix, i), 1000) == 1, i);
		test_assert_idx(deltapush_store_release(ctx->store,
							&error) == 0, i);
		deltapush_store_group_add_callback(ctx->store,
			test_group_committed, ctx);
	}
	/* the replies wait for the commit */
	if (ctx->commits_seen + ctx->failures_seen > 0)
		ctx->callbacks_before_pass_end = TRUE;
}

static void test_group_stop(struct ioloop *ioloop)
{
	io_loop_stop(ioloop);
}

static void test_group_run(struct test_group_ctx *ctx)
{
	struct ioloop *ioloop = io_loop_create();
	struct timeout *to_stop;

	ctx->to = timeout_add_short(0, test_group_requests, ctx);
	to_stop = timeout_add_short(100, test_group_stop, ioloop);
	io_loop_run(ioloop);
	timeout_remove(&to_stop);
	io_loop_destroy(&ioloop);
}

static void test_store_group_commit(void)
{
	ARRAY_TYPE(deltapush_store_token) tokens;
	struct test_group_ctx ctx;
	struct deltapush_store *store;
	const char *path;
	sqlite3 *db;
	unsigned int before;

	test_begin("store group commit");
	path = test_store_path();
	store = test_store_open(path);

	/* 10 requests in one pass: one transaction, callbacks after it */
	i_zero(&ctx);
	ctx.store = store;
	ctx.requests = 10;
	ctx.prefix = "first";
	before = deltapush_store_get_commit_count(store);
	test_group_run(&ctx);
	test_assert(deltapush_store_get_commit_count(store) == before + 1);
	test_assert(ctx.commits_seen == 10);
	test_assert(ctx.failures_seen == 0);
	test_assert(!ctx.callbacks_before_pass_end);
	test_assert(ctx.commit_count_at_callback == before + 1);
	tokens = test_list(store, "u", 0);
	test_assert(array_count(&tokens) == 10);
	test_assert(!deltapush_store_group_is_open(store));
	deltapush_store_close(&store);

	/* A commit that fails (here a deferred constraint, as a full disk
	   would) fails every request of the pass, and nothing is kept */
	test_assert(sqlite3_open(path, &db) == SQLITE_OK);
	test_assert(sqlite3_exec(db,
		"CREATE TABLE parent (id INTEGER PRIMARY KEY);"
		"CREATE TABLE child (pid INTEGER REFERENCES parent(id)"
		" DEFERRABLE INITIALLY DEFERRED);"
		"CREATE TRIGGER fail_commit AFTER INSERT ON tokens"
		" BEGIN INSERT INTO child VALUES (999); END;",
		NULL, NULL, NULL) == SQLITE_OK);
	(void)sqlite3_close(db);
	store = test_store_open(path);
	i_zero(&ctx);
	ctx.store = store;
	ctx.requests = 3;
	test_expect_error_string("FOREIGN KEY constraint failed");
	ctx.prefix = "second";
	before = deltapush_store_get_commit_count(store);
	test_group_run(&ctx);
	test_assert(ctx.commits_seen == 0);
	test_assert(ctx.failures_seen == 3);
	test_assert(deltapush_store_get_commit_count(store) == before);
	tokens = test_list(store, "u", 0);
	test_assert(array_count(&tokens) == 10);
	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

/* Whether the open group's commit syncs: what makes a trigger's pending
   push durable (deltapush_sender_notify_fold()) */
static void test_store_group_synced(void)
{
	static const struct {
		enum deltapush_fsync mode;
		bool unacknowledged_first;
		bool synced;
	} cases[] = {
		{ DELTAPUSH_FSYNC_OPTIMIZED, FALSE, TRUE },
		/* the unsynced group is committed, a synced one opened */
		{ DELTAPUSH_FSYNC_OPTIMIZED, TRUE, TRUE },
		{ DELTAPUSH_FSYNC_ALWAYS, FALSE, TRUE },
		{ DELTAPUSH_FSYNC_ALWAYS, TRUE, TRUE },
		{ DELTAPUSH_FSYNC_NEVER, FALSE, FALSE },
		{ DELTAPUSH_FSYNC_NEVER, TRUE, FALSE },
	};
	struct ioloop *ioloop = io_loop_create();
	struct deltapush_store *store;
	const char *path, *error;
	unsigned int i;

	test_begin("store group synced");
	path = test_store_path();
	store = test_store_open(path);
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		deltapush_store_set_fsync(store, cases[i].mode);
		test_assert_idx(!deltapush_store_group_is_synced(store), i);
		if (cases[i].unacknowledged_first) {
			test_assert_idx(deltapush_store_group_join(store,
				FALSE, &error) == 0, i);
			test_assert_idx(deltapush_store_group_is_synced(store) ==
				(cases[i].mode == DELTAPUSH_FSYNC_ALWAYS), i);
		}
		test_assert_idx(deltapush_store_group_join(store, TRUE,
							   &error) == 0, i);
		test_assert_idx(deltapush_store_group_is_synced(store) ==
				cases[i].synced, i);
		test_assert_idx(deltapush_store_group_commit(store,
							     &error) == 0, i);
		test_assert_idx(!deltapush_store_group_is_synced(store), i);
	}
	deltapush_store_close(&store);
	io_loop_destroy(&ioloop);
	test_store_path_cleanup();
	test_end();
}

static void test_store_crash(void)
{
	struct deltapush_store *store;
	const char *path, *crash_path, *error;

	test_begin("store keeps commits across a crash");
	path = test_store_path();
	crash_path = t_strconcat(test_dir, "/crashed.db", NULL);

	store = test_store_open(path);
	test_assert(test_register(store, "u", "committed", 100) == 1);
	test_assert(deltapush_store_begin(store, &error) == 0);
	test_assert(test_register(store, "u", "uncommitted", 100) == 1);

	/* What a kill -9 leaves behind is the files as they are now,
	   without a close or a checkpoint: the database and its WAL (the
	   shared memory index is rebuilt from the WAL). */
	test_copy_file(path, crash_path);
	test_copy_file(t_strconcat(path, "-wal", NULL),
		       t_strconcat(crash_path, "-wal", NULL));
	deltapush_store_rollback(store);
	deltapush_store_close(&store);

	store = test_store_open(crash_path);
	test_assert_strcmp(test_list_str(store, "u", 0), "committed");
	deltapush_store_close(&store);
	test_store_path_cleanup();
	test_end();
}

static void test_store_open_errors(void)
{
	static const unsigned char garbage[] =
		"this is not an SQLite database, just some garbage bytes "
		"\x01\x02\x03\xff\xfe\xfd and then more bytes to fill the "
		"header area of the file with nonsense ...................";
	struct deltapush_store *store = (void *)1;
	struct stat st;
	const char *path, *error;
	unsigned char big[8192];
	unsigned int i;

	test_begin("store open errors");
	path = test_store_path();

	/* a path in a directory that doesn't exist */
	error = NULL;
	test_assert(deltapush_store_open(t_strconcat(test_dir,
			"/nonexistent/deltapush.db", NULL), FALSE, NULL, &store,
			&error) == -1);
	test_assert(error != NULL && strstr(error, "nonexistent") != NULL);
	test_assert(store == (void *)1);

	/* a database written by a newer deltapush */
	store = test_store_open(path);
	test_assert(test_register(store, "u", "a", 100) == 1);
	deltapush_store_close(&store);
	test_assert(test_sqlite_int(path, "PRAGMA user_version = 3") == -1);
	error = NULL;
	test_assert(deltapush_store_open(path, FALSE, NULL, &store, &error) == -1);
	test_assert(error != NULL && strstr(error, "version 3") != NULL);
	/* and it was left alone */
	test_assert(test_sqlite_int(path, "PRAGMA user_version") == 3);
	test_assert(test_sqlite_int(path, "SELECT COUNT(*) FROM tokens") == 1);
	i_unlink(path);

	/* an SQLite database of something else */
	test_assert(test_sqlite_int(path, "CREATE TABLE foo (x)") == -1);
	error = NULL;
	test_assert(deltapush_store_open(path, FALSE, NULL, &store, &error) == -1);
	test_assert(error != NULL &&
		    strstr(error, "not a deltapush database") != NULL);
	test_assert(test_sqlite_int(path, "SELECT COUNT(*) FROM sqlite_master "
				    "WHERE name = 'tokens'") == 0);
	i_unlink(path);

	/* garbage, short and long: -2 tells the service to move it aside */
	test_file_write(path, garbage, sizeof(garbage));
	error = NULL;
	test_assert(deltapush_store_open(path, FALSE, NULL, &store, &error) == -2);
	test_assert(error != NULL && strstr(error, path) != NULL);
	/* the file is not overwritten */
	test_assert(stat(path, &st) == 0 &&
		    st.st_size == (off_t)sizeof(garbage));

	for (i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7 + 13);
	test_file_write(path, big, sizeof(big));
	error = NULL;
	test_assert(deltapush_store_open(path, FALSE, NULL, &store, &error) == -2);
	test_assert(error != NULL && strstr(error, path) != NULL);
	test_assert(stat(path, &st) == 0 && st.st_size == (off_t)sizeof(big));

	test_store_path_cleanup();
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_store_open_reopen,
		test_store_register_refresh,
		test_store_register_fresh,
		test_store_upgrade_v1,
		test_store_list_order,
		test_store_evict,
		test_store_expiry,
		test_store_forget_remove,
		test_store_update_state,
		test_store_pending,
		test_store_user_isolation,
		test_store_strange_strings,
		test_store_transactions,
		test_store_exclusive,
		test_store_crash,
		test_store_fsync,
		test_store_group_commit,
		test_store_group_synced,
		test_store_open_errors,
		NULL
	};
	return test_run(test_functions);
}
