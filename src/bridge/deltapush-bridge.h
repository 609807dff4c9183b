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
ARRAY_DEFINE_TYPE(deltapush_bridge_account, struct deltapush_bridge_account *);

/* Start watching the account: connect (after delay_msecs, or later while
   a backoff saved by an earlier run lasts, if resume_backoff), EXAMINE,
   IDLE or poll, and send the service a NOTIFY for new unseen mail.
   Failures are retried with backoff, and logged. set is copied. */
struct deltapush_bridge_account *
deltapush_bridge_account_init(struct deltapush_bridge *bridge,
			      const struct deltapush_bridge_account_settings *set,
			      unsigned int delay_msecs, bool resume_backoff);
void deltapush_bridge_account_deinit(struct deltapush_bridge_account **account);

const struct deltapush_bridge_account_settings *
deltapush_bridge_account_get_settings(struct deltapush_bridge_account *account);
/* Whether the account's password file now holds another password than
   the one it last read (or became readable or unreadable) */
bool deltapush_bridge_account_password_changed(
	struct deltapush_bridge_account *account);

/* A removed account: forget the literal tokens registered for its
   service user and delete its state file. Returns 0, or -1 with error_r
   (the state file is kept then). */
int deltapush_bridge_account_forget(struct deltapush_bridge *bridge,
				    const char *name, const char **error_r);

/* Append the account's line of the status socket's reply to dest:
   name, state (connecting, idling, polling, backing_off), last error,
   last trigger (unix time, 0 = none), triggers since the start;
   tab-separated and tab-escaped, ending in LF. */
void deltapush_bridge_account_status(struct deltapush_bridge_account *account,
				     string_t *dest);

#endif
