#ifndef DELTAPUSH_BRIDGE_H
#define DELTAPUSH_BRIDGE_H

#include "deltapush-bridge-accounts.h"

/* What all accounts of the bridge share */
struct deltapush_bridge {
	struct event *event;
	/* the service's socket (absolute) and how long to wait for it */
	const char *socket_path;
	unsigned int service_timeout_msecs;
	/* deltapush_skip_auto_submitted, for accounts that don't say */
	bool skip_auto_submitted;
	/* one state file per account, and imapc's temporary files */
	const char *state_dir;
	/* Dovecot's dns-client socket */
	const char *dns_client_socket_path;
};

struct deltapush_bridge_account;

/* Start watching the account: connect, EXAMINE, IDLE or poll, and send
   the service a NOTIFY for new unseen mail. Failures are retried with
   backoff, and logged. */
struct deltapush_bridge_account *
deltapush_bridge_account_init(struct deltapush_bridge *bridge,
			      const struct deltapush_bridge_account_settings *set);
void deltapush_bridge_account_deinit(struct deltapush_bridge_account **account);

/* Append the account's line of the status socket's reply to dest:
   name, state (connecting, idling, polling, backing_off), last error,
   last trigger (unix time, 0 = none), triggers since the start;
   tab-separated and tab-escaped, ending in LF. */
void deltapush_bridge_account_status(struct deltapush_bridge_account *account,
				     string_t *dest);

#endif
