/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "ioloop.h"

#include <sys/stat.h>
#include <unistd.h>
#include "restrict-access.h"
#include "master-service.h"
#include "master-service-settings.h"
#if !DOVECOT_PREREQ(2, 4, 0)
#  include "mail-storage-settings.h"
#  include "mail-user.h"
#endif
#include "deltapush-common.h"
#include "deltapush-dovecot-settings.h"
#include "deltapush-store.h"
#include "deltapush-http.h"
#include "deltapush-sender.h"
#include "deltapush-connection.h"

/* How long in-flight pushes may finish after SIGTERM before the process
   exits; what is unfinished stays due in the database. */
#define DELTAPUSH_SHUTDOWN_GRACE_MSECS 2000
/* How often tokens past deltapush_token_ttl are pruned. */
#define DELTAPUSH_PRUNE_INTERVAL_MSECS (3600 * 1000)
/* How often the database file is checked (removed, replaced) and, while
   it cannot be used, opened again. */
#define DELTAPUSH_DB_CHECK_INTERVAL_MSECS (5 * 1000)

static struct event *deltapush_event;
static const struct deltapush_settings *deltapush_set;
static struct deltapush_store *deltapush_store;
static struct deltapush_sender *deltapush_sender;
static struct deltapush_connections *deltapush_conns;
static struct timeout *to_prune, *to_db_check;
/* The database file as opened, to notice it being removed or replaced */
static dev_t deltapush_db_dev;
static ino_t deltapush_db_ino;
/* The last error opening it; NULL while it is open */
static char *deltapush_db_error;
/* state_dir when deltapush_db is the default; else NULL */
static const char *deltapush_state_dir;

/* deltapush_db defaults to a file in a directory of the service's
   state_dir. */
static void deltapush_service_set_db_path(pool_t pool, const char *state_dir)
{
	struct deltapush_settings *set;

	if (deltapush_set->db_path != NULL)
		return;
	set = p_new(pool, struct deltapush_settings, 1);
	*set = *deltapush_set;
	deltapush_state_dir = p_strdup(pool, state_dir);
	set->db_path = p_strconcat(pool, state_dir,
				   "/" DELTAPUSH_DEFAULT_DB_DIR
				   "/" DELTAPUSH_DEFAULT_DB_NAME, NULL);
	deltapush_set = set;
}

#if DOVECOT_PREREQ(2, 4, 0)
static void deltapush_service_read_settings(pool_t pool)
{
	struct event *event = master_service_get_event(master_service);
	const char *error;

	if (deltapush_dovecot_settings_get(event, pool, &deltapush_set,
					   &error) < 0)
		i_fatal("Invalid settings: %s", error);
	deltapush_service_set_db_path(pool,
		master_service_get_service_settings(master_service)->state_dir);
}
#else
static const char *deltapush_service_getenv(const char *name, void *context)
{
	const struct mail_user_settings *user_set = context;

	return mail_user_set_plugin_getenv(user_set, name);
}

/* The service reads the same plugin {} settings as the mail plugin:
   one place for the operator to configure deltapush. */
static void deltapush_service_read_settings(pool_t pool)
{
	static const struct setting_parser_info *set_roots[] = {
		&mail_user_setting_parser_info,
		NULL
	};
	struct master_service_settings_input input;
	struct master_service_settings_output output;
	const struct mail_user_settings *user_set;
	const char *error;

	i_zero(&input);
	input.roots = set_roots;
	input.module = "mail";
	input.service = "deltapush";
	if (master_service_settings_read(master_service, &input, &output,
					 &error) < 0)
		i_fatal("Error reading configuration: %s", error);
	user_set = master_service_settings_get_others(master_service)[0];
	if (deltapush_settings_parse(pool, deltapush_service_getenv,
				     (void *)user_set, &deltapush_set,
				     &error) < 0)
		i_fatal("Invalid settings: %s", error);
	deltapush_service_set_db_path(pool,
		master_service_settings_get(master_service)->state_dir);
}
#endif

static void deltapush_prune(void *context ATTR_UNUSED)
{
	unsigned int count;
	const char *error;

	if (deltapush_store == NULL)
		return;
	if (deltapush_store_prune(deltapush_store,
				  ioloop_time - deltapush_set->token_ttl_secs,
				  &count, &error) < 0)
		e_error(deltapush_event, "Pruning expired tokens failed: %s",
			error);
	else if (count > 0) {
		/* one event per token, so metrics count tokens */
		for (unsigned int i = 0; i < count; i++) {
			e_debug(event_create_passthrough(deltapush_event)->
				set_name("deltapush_token_removed")->
				add_str("reason", "expired")->
				add_int("count", 1)->event(),
				"Pruned an expired token");
		}
		e_info(deltapush_event, "Pruned %u token(s) unseen for %u s",
		       count, deltapush_set->token_ttl_secs);
	}
}

static bool deltapush_idle_die(void)
{
	/* process_min_avail keeps us running anyway; never die with work
	   left if an operator configured otherwise. */
	return deltapush_sender == NULL ||
		deltapush_sender_get_pending(deltapush_sender) == 0;
}

/* Open the database and start sending what is pending in it. Until that
   works the service stays up and answers every request with FAIL, so mail
   processes get a prompt answer instead of a dead socket. */
static void deltapush_db_check(void *context);

/* Move a database file that SQLite can't read out of the way, keeping it
   (and its -wal) for the administrator. Returns the new name, or NULL. */
static const char *deltapush_db_move_aside(const char *error)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	const char *path = deltapush_set->db_path, *dest;
	unsigned int i;

	dest = t_strdup_printf("%s.corrupt-%ld", path, (long)ioloop_time);
	for (i = 0; i < N_ELEMENTS(suffixes); i++) {
		const char *from = t_strconcat(path, suffixes[i], NULL);
		const char *to = t_strconcat(dest, suffixes[i], NULL);

		if (rename(from, to) < 0 && errno != ENOENT) {
			e_error(deltapush_event, "Database %s is unreadable "
				"(%s), and moving it aside failed: "
				"rename(%s, %s) failed: %m", path, error,
				from, to);
			return NULL;
		}
	}
	e_error(deltapush_event, "Database %s is corrupt or not a database "
		"(%s): moved it to %s and started a new, empty one. The tokens "
		"in it are lost until it is restored (devices register again "
		"when Delta Chat restarts)", path, error, dest);
	return dest;
}

/* The service runs unprivileged: say clearly what the operator must do
   when the database's directory is not ours, and never start an empty
   database next to the one 0.1 kept in state_dir. */
static int deltapush_db_dir_check(const char **error_r)
{
	const char *dir, *old_path, *p;
	struct stat st;

	p = strrchr(deltapush_set->db_path, '/');
	dir = p == NULL ? "." : (p == deltapush_set->db_path ? "/" :
		t_strdup_until(deltapush_set->db_path, p));
	if (deltapush_state_dir != NULL &&
	    stat(deltapush_set->db_path, &st) < 0 && errno == ENOENT) {
		old_path = t_strconcat(deltapush_state_dir,
				       "/" DELTAPUSH_DEFAULT_DB_NAME, NULL);
		if (stat(old_path, &st) == 0) {
			*error_r = t_strdup_printf("Found the database of "
				"deltapush 0.1 at %s: move it (with its -wal "
				"file, if any) to %s, owned by the service's "
				"user (uid %ld), or set deltapush_db to it",
				old_path, deltapush_set->db_path,
				(long)geteuid());
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
			"access() failed: %m", deltapush_set->db_path, dir,
			(long)geteuid());
		return -1;
	}
	return 0;
}

static int deltapush_db_open(void)
{
	struct stat st;
	const char *error;
	int ret;

	ret = deltapush_db_dir_check(&error);
	if (ret == 0) {
		ret = deltapush_store_open(deltapush_set->db_path, TRUE,
					   deltapush_event, &deltapush_store,
					   &error);
	}
	if (ret == -2 && deltapush_db_move_aside(error) != NULL) {
		ret = deltapush_store_open(deltapush_set->db_path, TRUE,
					   deltapush_event, &deltapush_store,
					   &error);
	}
	if (ret < 0 ||
	    stat(deltapush_set->db_path, &st) < 0) {
		if (deltapush_store == NULL) {
			/* error is set */
		} else {
			error = t_strdup_printf("stat(%s) failed: %m",
						deltapush_set->db_path);
			deltapush_store_close(&deltapush_store);
		}
		if (null_strcmp(error, deltapush_db_error) != 0) {
			/* once per distinct error, not every retry */
			e_error(deltapush_event, "Database unavailable, "
				"registrations and pushes are refused until "
				"it can be opened: %s", error);
			i_free(deltapush_db_error);
			deltapush_db_error = i_strdup(error);
		}
		deltapush_connections_set_backend(deltapush_conns, NULL, NULL,
						  error);
		return -1;
	}
	deltapush_store_set_fsync(deltapush_store, deltapush_set->fsync);
	deltapush_db_dev = st.st_dev;
	deltapush_db_ino = st.st_ino;
	deltapush_sender = deltapush_sender_init(deltapush_set,
						 deltapush_store,
						 deltapush_event);
	if (deltapush_sender_load(deltapush_sender, &error) < 0) {
		e_error(deltapush_event, "Loading pending pushes failed: %s",
			error);
	}
	deltapush_connections_set_backend(deltapush_conns, deltapush_store,
					  deltapush_sender, NULL);
	if (deltapush_db_error != NULL) {
		e_info(deltapush_event, "Database %s is available again",
		       deltapush_set->db_path);
		i_free(deltapush_db_error);
	}
	deltapush_prune(NULL);
	return 0;
}

static void deltapush_db_close(const char *reason)
{
	deltapush_connections_set_backend(deltapush_conns, NULL, NULL, reason);
	if (deltapush_sender != NULL)
		deltapush_sender_deinit(&deltapush_sender);
	if (deltapush_store != NULL)
		deltapush_store_close(&deltapush_store);
}

static void deltapush_db_check_now(void)
{
	deltapush_db_check(NULL);
}

static void deltapush_db_check(void *context ATTR_UNUSED)
{
	struct stat st;
	const char *reason;

	if (deltapush_store == NULL) {
		(void)deltapush_db_open();
		return;
	}
	if (stat(deltapush_set->db_path, &st) == 0 &&
	    st.st_dev == deltapush_db_dev && st.st_ino == deltapush_db_ino)
		return;
	/* Writing on into a removed file would lose everything at the next
	   restart: switch to what is at the path now. */
	reason = errno == ENOENT ? "removed" : "replaced";
	e_error(deltapush_event, "Database file %s was %s while in use; "
		"opening it again", deltapush_set->db_path, reason);
	deltapush_db_close(t_strdup_printf("Database file was %s", reason));
	(void)deltapush_db_open();
}

static void client_connected(struct master_service_connection *conn)
{
	deltapush_connection_create(deltapush_conns, conn);
}

static bool deltapush_shutdown_timed_out;

static void deltapush_shutdown_timeout(struct ioloop *ioloop)
{
	deltapush_shutdown_timed_out = TRUE;
	io_loop_stop(ioloop);
}

static void deltapush_shutdown_check(struct ioloop *ioloop)
{
	if (deltapush_sender == NULL ||
	    deltapush_sender_get_in_flight(deltapush_sender) == 0)
		io_loop_stop(ioloop);
}

/* Give in-flight pushes a short grace period to finish. */
static void deltapush_shutdown_drain(void)
{
	struct ioloop *ioloop = current_ioloop;
	struct timeout *to, *to_check;

	if (deltapush_sender == NULL ||
	    deltapush_sender_get_in_flight(deltapush_sender) == 0)
		return;
	to = timeout_add(DELTAPUSH_SHUTDOWN_GRACE_MSECS,
			 deltapush_shutdown_timeout, ioloop);
	to_check = timeout_add_short(10, deltapush_shutdown_check, ioloop);
	/* The master going away stops the ioloop too (once): run on until
	   the pushes are done or the grace period is over. */
	deltapush_shutdown_timed_out = FALSE;
	while (!deltapush_shutdown_timed_out &&
	       deltapush_sender_get_in_flight(deltapush_sender) > 0)
		io_loop_run(ioloop);
	timeout_remove(&to_check);
	timeout_remove(&to);
	if (deltapush_sender_get_in_flight(deltapush_sender) > 0) {
		e_warning(deltapush_event, "Exiting with %u push(es) in flight: "
			  "they stay due and are sent after the next start",
			  deltapush_sender_get_in_flight(deltapush_sender));
	}
}

static void main_init(void)
{
	deltapush_event = event_create(NULL);
	event_add_category(deltapush_event, &event_category_deltapush);

	deltapush_http_global_init();
	deltapush_conns = deltapush_connections_init(deltapush_set,
						     deltapush_db_check_now,
						     deltapush_event);
	(void)deltapush_db_open();
	to_prune = timeout_add(DELTAPUSH_PRUNE_INTERVAL_MSECS,
			       deltapush_prune, NULL);
	to_db_check = timeout_add(DELTAPUSH_DB_CHECK_INTERVAL_MSECS,
				  deltapush_db_check, NULL);
	master_service_set_idle_die_callback(master_service,
					     deltapush_idle_die);
	e_debug(deltapush_event, "Started: database %s, proxy %s",
		deltapush_set->db_path, deltapush_set->notify_url);
}

static void main_deinit(void)
{
	/* Give the database and the clients up before draining: on doveadm
	   reload the new process opens the database at once, and the
	   clients' retries reach it. What is in flight stays due there. */
	if (deltapush_sender != NULL)
		deltapush_sender_detach(deltapush_sender);
	deltapush_connections_deinit(&deltapush_conns);
	timeout_remove(&to_db_check);
	timeout_remove(&to_prune);
	if (deltapush_store != NULL)
		deltapush_store_close(&deltapush_store);
	deltapush_shutdown_drain();
	if (deltapush_sender != NULL &&
	    deltapush_sender_have_unsaved(deltapush_sender)) {
		/* Save the pushes that finished meanwhile, so that they are
		   not sent again, unless a new process has the database */
		const char *error;

		if (deltapush_store_open(deltapush_set->db_path, TRUE,
					 deltapush_event, &deltapush_store,
					 &error) == 0) {
			deltapush_sender_reattach(deltapush_sender,
						  deltapush_store);
			deltapush_store_close(&deltapush_store);
		}
	}
	if (deltapush_sender != NULL)
		deltapush_sender_deinit(&deltapush_sender);
	i_free(deltapush_db_error);
	deltapush_http_global_deinit();
	event_unref(&deltapush_event);
}

int main(int argc, char *argv[])
{
	pool_t pool;

	master_service = master_service_init("deltapush", 0, &argc, &argv, "");
	if (master_getopt(master_service) > 0)
		return FATAL_DEFAULT;
#if DOVECOT_PREREQ(2, 4, 0)
	/* 2.4: the log settings come with the rest of the configuration;
	   ours are looked up from it below */
	T_BEGIN {
		const char *error;

		if (master_service_settings_read_simple(master_service,
							&error) < 0)
			i_fatal("%s", error);
	} T_END;
#endif
	master_service_init_log(master_service);

	/* The master going away (doveadm reload, shutdown) means a new
	   process wants the database: don't wait for the clients to leave
	   (lmtp processes keep their connections). */
	master_service_set_die_with_master(master_service, TRUE);

	pool = pool_alloconly_create("deltapush settings", 1024);
	/* The config socket is root's: read it before dropping to the
	   service's user ($default_internal_user in the shipped
	   configuration; root still works for older ones). No core dumps:
	   the process holds every user's tokens. */
	deltapush_service_read_settings(pool);
	restrict_access_by_env(RESTRICT_ACCESS_FLAG_ALLOW_ROOT, NULL);
	restrict_access_allow_coredumps(FALSE);
	main_init();
	master_service_init_finish(master_service);
	master_service_run(master_service, client_connected);
	main_deinit();
	pool_unref(&pool);
	master_service_deinit(&master_service);
	return 0;
}
