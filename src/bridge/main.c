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
   configuration) answers doveadm deltapush bridge status. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "ostream.h"
#include "restrict-access.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "deltapush-common.h"
#include "deltapush-client.h"
#include "deltapush-dovecot-settings.h"
#include "deltapush-bridge.h"

#include <unistd.h>

#define DELTAPUSH_BRIDGE_STATE_DIR "deltapush-bridge"
#define DELTAPUSH_BRIDGE_SOCKET "deltapush-bridge"

static struct deltapush_bridge bridge;
static ARRAY(struct deltapush_bridge_account *) bridge_accounts;

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

/* A status client (doveadm deltapush bridge status): it gets one line
   per account, then the connection is closed. */
struct deltapush_bridge_status_client {
	struct ostream *output;
};

static int
deltapush_bridge_status_flush(struct deltapush_bridge_status_client *client)
{
	int ret = o_stream_flush(client->output);

	if (ret == 0)
		return 0;
	o_stream_destroy(&client->output);
	i_free(client);
	master_service_client_connection_destroyed(master_service);
	return ret;
}

static void
deltapush_bridge_client_connected(struct master_service_connection *conn)
{
	struct deltapush_bridge_status_client *client;
	struct deltapush_bridge_account *account;
	string_t *str = t_str_new(256);

	master_service_client_connection_accept(conn);
	client = i_new(struct deltapush_bridge_status_client, 1);
	client->output = o_stream_create_fd_autoclose(&conn->fd, SIZE_MAX);
	o_stream_set_no_error_handling(client->output, TRUE);
	array_foreach_elem(&bridge_accounts, account) {
		str_truncate(str, 0);
		deltapush_bridge_account_status(account, str);
		o_stream_nsend(client->output, str_data(str), str_len(str));
	}
	o_stream_set_flush_callback(client->output,
				    deltapush_bridge_status_flush, client);
	(void)deltapush_bridge_status_flush(client);
}

static void
main_init(const ARRAY_TYPE(deltapush_bridge_account_settings) *accounts)
{
	struct deltapush_bridge_account_settings *set;
	struct deltapush_bridge_account *account;

	i_array_init(&bridge_accounts, array_count(accounts) + 1);
	array_foreach_elem(accounts, set) {
		account = deltapush_bridge_account_init(&bridge, set);
		array_push_back(&bridge_accounts, &account);
	}
	e_info(bridge.event, "Watching %u accounts", array_count(accounts));
}

static void main_deinit(void)
{
	struct deltapush_bridge_account **accountp;

	array_foreach_modifiable(&bridge_accounts, accountp)
		deltapush_bridge_account_deinit(accountp);
	array_free(&bridge_accounts);
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
#if DOVECOT_PREREQ(2, 4, 0)
	T_BEGIN {
		if (master_service_settings_read_simple(master_service,
							&error) < 0)
			i_fatal("%s", error);
	} T_END;
#endif
	master_service_init_log(master_service);
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
