#ifndef DELTAPUSH_BRIDGE_IMAPC_H
#define DELTAPUSH_BRIDGE_IMAPC_H

/* The only code that differs between Dovecot 2.3 and 2.4: creating an
   imapc client for an account. 2.3 takes a settings struct; 2.4 reads
   imapc_* and ssl_client_* from the settings of the event it is given,
   so the account's values are overrides in a settings instance of the
   account's event, as imapc storage does for its namespaces. */

#include "imapc-client.h"

struct deltapush_bridge;
struct deltapush_bridge_account_settings;

struct deltapush_bridge_imapc;

/* Create a client for the account, logging with event (which must live
   as long as the client). Returns 0, or -1 with error_r when the TLS
   settings can't be used. */
int deltapush_bridge_imapc_init(const struct deltapush_bridge *bridge,
				const struct deltapush_bridge_account_settings *set,
				const char *password, struct event *event,
				struct deltapush_bridge_imapc **imapc_r,
				const char **error_r);
struct imapc_client *
deltapush_bridge_imapc_client(struct deltapush_bridge_imapc *imapc);
void deltapush_bridge_imapc_deinit(struct deltapush_bridge_imapc **imapc);

#endif
