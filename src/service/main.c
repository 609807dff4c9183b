/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "ioloop.h"

#include "restrict-access.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "deltapush-common.h"
#include "deltapush-dovecot-settings.h"
#include "deltapush-http.h"
#include "deltapush-db.h"
#include "deltapush-connection.h"

static struct event *deltapush_event;
static const struct deltapush_settings *deltapush_set;
static struct deltapush_db *deltapush_db;
static struct deltapush_connections *deltapush_conns;
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

static void deltapush_service_read_settings(pool_t pool)
{
	const struct master_service_settings *service_set;

	deltapush_set = deltapush_dovecot_settings_read_service(pool,
		"deltapush", &service_set);
	deltapush_service_set_db_path(pool, service_set->state_dir);
}

static bool deltapush_idle_die(void)
{
	/* process_min_avail keeps us running anyway; never die with work
	   left if an operator configured otherwise. */
	return deltapush_db_get_pending(deltapush_db) == 0;
}

static void client_connected(struct master_service_connection *conn)
{
	deltapush_connection_create(deltapush_conns, conn);
}

static void main_init(void)
{
	deltapush_event = event_create(NULL);
	event_add_category(deltapush_event, &event_category_deltapush);

	deltapush_http_global_init();
	deltapush_db = deltapush_db_init(deltapush_set, deltapush_state_dir,
					 deltapush_event);
	deltapush_conns = deltapush_connections_init(deltapush_set,
						     deltapush_db,
						     deltapush_event);
	master_service_set_idle_die_callback(master_service,
					     deltapush_idle_die);
	e_debug(deltapush_event, "Started: database %s, proxy %s",
		deltapush_set->db_path, deltapush_set->notify_url);
}

static void main_deinit(void)
{
	/* The database is given up before the clients and the drain, so
	   that on doveadm reload the new process has it at once. */
	deltapush_db_detach(deltapush_db);
	deltapush_connections_deinit(&deltapush_conns);
	deltapush_db_deinit(&deltapush_db);
	deltapush_http_global_deinit();
	event_unref(&deltapush_event);
}

int main(int argc, char *argv[])
{
	pool_t pool;

	master_service = master_service_init("deltapush", 0, &argc, &argv, "");
	if (master_getopt(master_service) > 0)
		return FATAL_DEFAULT;
	deltapush_dovecot_service_init_log();

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
