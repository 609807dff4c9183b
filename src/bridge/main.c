/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

/* deltapush-bridge: watches mailboxes on IMAP servers this Dovecot doesn't
   run and tells the deltapush service of their new mail, as a delivery
   here would. A service of its own, so a remote server that stalls can
   never hold up the deltapush service or deliveries.

   executable = deltapush-bridge [-s STATE_DIR] [-S SOCKET] ACCOUNTS_FILE

   SOCKET is the deltapush service's listener the bridge talks to
   (default deltapush-bridge, relative to base_dir): a listener of its
   own, so that the bridge needn't run as the mail user.

   Its own listener (deltapush-bridge-status in the shipped
   configuration) answers doveadm deltapush bridge status and reload:
   one request a line, no handshake,

     STATUS   -> a line per account (see deltapush_bridge_account_status()),
                 then an empty line
     RELOAD   -> OK <kept> <added> <changed> <removed>  or  FAIL <error>

   RELOAD reads the accounts file again and applies the difference:
   unchanged accounts (the password file's content included) keep their
   connection, changed ones reconnect, removed ones stop and their
   literal tokens are forgotten, new ones start. A file that doesn't
   parse changes nothing. Anything else closes the connection. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "ostream.h"
#include "hash.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "connection.h"
#include "restrict-access.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "deltapush-common.h"
#include "deltapush-client.h"
#include "deltapush-dovecot-settings.h"
#include "deltapush-bridge-state.h"
#include "deltapush-bridge.h"

#include <unistd.h>
#include <dirent.h>

#define DELTAPUSH_BRIDGE_STATE_DIR "deltapush-bridge"
#define DELTAPUSH_BRIDGE_SOCKET "deltapush-bridge"
/* At start (every doveadm reload restarts the bridge) the accounts
   connect at random times within this much per account, at most
   DELTAPUSH_BRIDGE_START_SPREAD_MAX_MSECS: 1000 accounts don't hit a
   provider with 1000 TLS handshakes at once. */
#define DELTAPUSH_BRIDGE_START_SPREAD_MSECS 10
#define DELTAPUSH_BRIDGE_START_SPREAD_MAX_MSECS (10 * 1000)
#define DELTAPUSH_BRIDGE_STATUS_MAX_LINE 1024
#define DELTAPUSH_BRIDGE_STATUS_IDLE_TIMEOUT_SECS 60

static struct deltapush_bridge bridge;
static const char *bridge_accounts_path;
static ARRAY_TYPE(deltapush_bridge_account) bridge_accounts;
static struct connection_list *bridge_status_clients;

static const struct deltapush_settings *
deltapush_bridge_read_settings(pool_t pool, const char **base_dir_r,
			       const char **state_dir_r)
{
	const struct master_service_settings *service_set;
	const struct deltapush_settings *set;

	set = deltapush_dovecot_settings_read_service(pool, "deltapush-bridge",
						      &service_set);
	*base_dir_r = p_strdup(pool, service_set->base_dir);
	*state_dir_r = p_strdup(pool, service_set->state_dir);
	return set;
}

static bool deltapush_bridge_idle_die(void)
{
	/* the bridge has no clients: idle is its normal state */
	return FALSE;
}

static void deltapush_bridge_status(string_t *dest)
{
	struct deltapush_bridge_account *account;

	array_foreach_elem(&bridge_accounts, account)
		deltapush_bridge_account_status(account, dest);
	str_append_c(dest, '\n');
}

static void
deltapush_bridge_remove(const char *name)
{
	const char *error;

	if (deltapush_bridge_account_forget(&bridge, name, &error) < 0) {
		e_error(bridge.event, "Account %s was removed, but forgetting "
			"its tokens failed (tried again at the next start): "
			"%s", name, error);
	}
}

/* Apply the accounts file as it is now. Returns 0 with what changed in
   reply (for the RELOAD reply), -1 with error_r when the file is not
   valid (nothing changed then). */
static int deltapush_bridge_reload(string_t *reply, const char **error_r)
{
	ARRAY_TYPE(deltapush_bridge_account_settings) new_sets;
	ARRAY_TYPE(deltapush_bridge_account) new_accounts;
	HASH_TABLE(const char *, struct deltapush_bridge_account *) old;
	const struct deltapush_bridge_account_settings *old_set;
	struct deltapush_bridge_account_settings *set;
	struct deltapush_bridge_account *account;
	struct hash_iterate_context *iter;
	const char *name, *error;
	unsigned int kept = 0, added = 0, changed = 0, removed = 0;
	pool_t pool;

	pool = pool_alloconly_create("deltapush bridge accounts", 4096);
	if (deltapush_bridge_accounts_read(pool, bridge_accounts_path,
					   &new_sets, &error) < 0) {
		*error_r = t_strdup(error);
		pool_unref(&pool);
		return -1;
	}

	hash_table_create(&old, pool, array_count(&bridge_accounts) + 1,
			  str_hash, strcmp);
	array_foreach_elem(&bridge_accounts, account) {
		hash_table_insert(old, deltapush_bridge_account_get_settings(
			account)->name, account);
	}
	i_array_init(&new_accounts, array_count(&new_sets) + 1);
	array_foreach_elem(&new_sets, set) {
		account = hash_table_lookup(old, set->name);
		if (account == NULL) {
			account = deltapush_bridge_account_init(&bridge, set,
								0, TRUE);
			added++;
			array_push_back(&new_accounts, &account);
			continue;
		}
		hash_table_remove(old, set->name);
		old_set = deltapush_bridge_account_get_settings(account);
		if (deltapush_bridge_account_settings_equal(old_set, set) &&
		    !deltapush_bridge_account_password_changed(account)) {
			/* connection and state untouched */
			kept++;
			array_push_back(&new_accounts, &account);
			continue;
		}
		if (!deltapush_bridge_account_settings_same_mailbox(old_set,
								    set)) {
			/* another mailbox: what is in it is not new */
			i_unlink_if_exists(deltapush_bridge_state_path(
				bridge.state_dir, set->name));
		}
		deltapush_bridge_account_deinit(&account);
		account = deltapush_bridge_account_init(&bridge, set, 0, FALSE);
		changed++;
		array_push_back(&new_accounts, &account);
	}
	iter = hash_table_iterate_init(old);
	while (hash_table_iterate(iter, old, &name, &account)) {
		name = t_strdup(name);
		deltapush_bridge_account_deinit(&account);
		deltapush_bridge_remove(name);
		removed++;
	}
	hash_table_iterate_deinit(&iter);
	hash_table_destroy(&old);
	array_free(&bridge_accounts);
	bridge_accounts = new_accounts;
	/* the accounts keep copies of their settings */
	pool_unref(&pool);

	e_info(bridge.event, "Reloaded %s: kept %u, added %u, changed %u, "
	       "removed %u accounts", bridge_accounts_path, kept, added,
	       changed, removed);
	str_printfa(reply, "OK\t%u\t%u\t%u\t%u\n", kept, added, changed,
		    removed);
	return 0;
}

/* doveadm deltapush bridge status|reload */
static int deltapush_bridge_status_input_args(struct connection *conn,
					      const char *const *args)
{
	string_t *reply = t_str_new(256);
	const char *error;

	if (args[0] == NULL || args[1] != NULL) {
		e_error(conn->event, "Invalid request, disconnecting");
		return -1;
	}
	if (strcmp(args[0], "STATUS") == 0)
		deltapush_bridge_status(reply);
	else if (strcmp(args[0], "RELOAD") == 0) {
		if (deltapush_bridge_reload(reply, &error) < 0) {
			e_error(bridge.event, "Reload refused: %s", error);
			str_append(reply, "FAIL\t");
			str_append_tabescaped(reply, error);
			str_append_c(reply, '\n');
		}
	} else {
		e_error(conn->event, "Unknown request '%s', disconnecting",
			str_sanitize(args[0], 32));
		return -1;
	}
	o_stream_nsend(conn->output, str_data(reply), str_len(reply));
	return 1;
}

static void deltapush_bridge_status_destroy(struct connection *conn)
{
	connection_deinit(conn);
	i_free(conn);
	master_service_client_connection_destroyed(master_service);
}

static const struct connection_settings deltapush_bridge_status_set = {
	/* no handshake: a request line is all doveadm sends */
	.major_version = 0,
	.input_max_size = DELTAPUSH_BRIDGE_STATUS_MAX_LINE,
	.output_max_size = SIZE_MAX,
	.input_idle_timeout_secs = DELTAPUSH_BRIDGE_STATUS_IDLE_TIMEOUT_SECS,
	.client = FALSE,
};

static const struct connection_vfuncs deltapush_bridge_status_vfuncs = {
	.destroy = deltapush_bridge_status_destroy,
	.input_args = deltapush_bridge_status_input_args,
};

static void
deltapush_bridge_client_connected(struct master_service_connection *conn)
{
	struct connection *client;

	master_service_client_connection_accept(conn);
	client = i_new(struct connection, 1);
	client->event_parent = bridge.event;
	connection_init_server(bridge_status_clients, client, conn->name,
			       conn->fd, conn->fd);
}

/* State files of accounts no longer in the accounts file: removed while
   the bridge was stopped, or their tokens could not be forgotten then. */
static void
deltapush_bridge_remove_stale(const ARRAY_TYPE(deltapush_bridge_account_settings) *accounts)
{
	struct deltapush_bridge_account_settings *set;
	const size_t suffix_len = strlen(DELTAPUSH_BRIDGE_STATE_SUFFIX);
	struct dirent *d;
	const char *name;
	size_t len;
	bool found;
	DIR *dir;

	dir = opendir(bridge.state_dir);
	if (dir == NULL) {
		e_error(bridge.event, "opendir(%s) failed: %m",
			bridge.state_dir);
		return;
	}
	while ((d = readdir(dir)) != NULL) T_BEGIN {
		len = strlen(d->d_name);
		if (len <= suffix_len || strcmp(d->d_name + len - suffix_len,
						DELTAPUSH_BRIDGE_STATE_SUFFIX) != 0)
			name = NULL;
		else
			name = t_strndup(d->d_name, len - suffix_len);
		found = name == NULL ||
			!deltapush_bridge_account_name_valid(name);
		if (!found) {
			array_foreach_elem(accounts, set) {
				if (strcmp(set->name, name) == 0) {
					found = TRUE;
					break;
				}
			}
		}
		if (!found) {
			e_info(bridge.event, "Account %s is no longer in %s: "
			       "forgetting its tokens", name,
			       bridge_accounts_path);
			deltapush_bridge_remove(name);
		}
	} T_END;
	if (closedir(dir) < 0)
		e_error(bridge.event, "closedir(%s) failed: %m",
			bridge.state_dir);
}

static void
main_init(const ARRAY_TYPE(deltapush_bridge_account_settings) *accounts)
{
	struct deltapush_bridge_account_settings *set;
	struct deltapush_bridge_account *account;
	unsigned int spread, delay;
	bool first = TRUE;

	/* backoffs saved by the last run end at wall-clock times */
	io_loop_time_refresh();
	bridge_status_clients =
		connection_list_init(&deltapush_bridge_status_set,
				     &deltapush_bridge_status_vfuncs);
	spread = I_MIN(array_count(accounts) *
		       DELTAPUSH_BRIDGE_START_SPREAD_MSECS,
		       DELTAPUSH_BRIDGE_START_SPREAD_MAX_MSECS);
	i_array_init(&bridge_accounts, array_count(accounts) + 1);
	array_foreach_elem(accounts, set) {
		delay = first ? 0 : i_rand_limit(spread + 1);
		account = deltapush_bridge_account_init(&bridge, set, delay,
							TRUE);
		array_push_back(&bridge_accounts, &account);
		first = FALSE;
	}
	e_info(bridge.event, "Watching %u accounts (connecting within %u ms)",
	       array_count(accounts), spread);
	deltapush_bridge_remove_stale(accounts);
}

static void main_deinit(void)
{
	struct deltapush_bridge_account **accountp;

	array_foreach_modifiable(&bridge_accounts, accountp)
		deltapush_bridge_account_deinit(accountp);
	array_free(&bridge_accounts);
	connection_list_deinit(&bridge_status_clients);
	deltapush_client_deinit();
}

int main(int argc, char *argv[])
{
	ARRAY_TYPE(deltapush_bridge_account_settings) accounts;
	const struct deltapush_settings *set;
	const char *state_dir = NULL, *socket = DELTAPUSH_BRIDGE_SOCKET;
	const char *base_dir, *dovecot_state_dir;
	const char *accounts_path, *error;
	pool_t pool;
	int c;

	master_service = master_service_init("deltapush-bridge", 0,
					     &argc, &argv, "s:S:");
	while ((c = master_getopt(master_service)) > 0) {
		switch (c) {
		case 's':
			state_dir = t_strdup(optarg);
			break;
		case 'S':
			socket = t_strdup(optarg);
			break;
		default:
			return FATAL_DEFAULT;
		}
	}
	if (optind + 1 != argc)
		i_fatal("Usage: deltapush-bridge [-s STATE_DIR] [-S SOCKET] "
			"ACCOUNTS_FILE");
	accounts_path = t_strdup(argv[optind]);
	deltapush_dovecot_service_init_log();
	master_service_set_die_with_master(master_service, TRUE);

	pool = pool_alloconly_create("deltapush bridge", 4096);
	set = deltapush_bridge_read_settings(pool, &base_dir,
					     &dovecot_state_dir);
	/* Not root: the bridge talks to servers elsewhere. The password
	   files and the accounts are read as the bridge's user, which
	   must be able to read them. No core dumps: they hold passwords. */
	restrict_access_by_env(0, NULL);
	restrict_access_allow_coredumps(FALSE);

	i_zero(&bridge);
	bridge.event = event_create(NULL);
	event_add_category(bridge.event, &event_category_deltapush);
	bridge.socket_path = socket[0] == '/' ? p_strdup(pool, socket) :
		p_strconcat(pool, base_dir, "/", socket, NULL);
	bridge.service_timeout_msecs = set->service_timeout_msecs;
	bridge.skip_auto_submitted = set->skip_auto_submitted;
	bridge.state_dir = state_dir != NULL ? p_strdup(pool, state_dir) :
		p_strconcat(pool, dovecot_state_dir,
			    "/" DELTAPUSH_BRIDGE_STATE_DIR, NULL);
	bridge.dns_client_socket_path =
		p_strconcat(pool, base_dir, "/dns-client", NULL);
	if (access(bridge.state_dir, W_OK | X_OK) < 0) {
		i_fatal("The state directory %s must exist and be writable by "
			"the bridge's user: access() failed: %m",
			bridge.state_dir);
	}
	bridge_accounts_path = p_strdup(pool, accounts_path);
	if (deltapush_bridge_accounts_read(pool, accounts_path, &accounts,
					   &error) < 0)
		i_fatal("%s", error);

	master_service_set_idle_die_callback(master_service,
					     deltapush_bridge_idle_die);
	master_service_init_finish(master_service);
	main_init(&accounts);
	master_service_run(master_service, deltapush_bridge_client_connected);
	main_deinit();
	event_unref(&bridge.event);
	pool_unref(&pool);
	master_service_deinit(&master_service);
	return 0;
}
