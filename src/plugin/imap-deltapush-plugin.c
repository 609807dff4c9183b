/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "imap-common.h"
#include "imap-client.h"
#include "mail-user.h"
#include "imap-deltapush-plugin.h"

/* Delta Chat registers its push token only on servers that advertise
   XDELTAPUSH; advertise it to exactly the users the mail plugin serves. */
#define DELTAPUSH_IMAP_CAPABILITY "XDELTAPUSH"

const char *imap_deltapush_plugin_version = DOVECOT_ABI_VERSION;
const char *imap_deltapush_plugin_dependencies[] = { "deltapush", NULL };
const char imap_deltapush_plugin_binary_dependency[] = "imap";

static struct module *imap_deltapush_module;
static imap_client_created_func_t *next_hook_client_created;

static void imap_deltapush_client_created(struct client **clientp)
{
	struct client *client = *clientp;

	if (mail_user_is_plugin_loaded(client->user, imap_deltapush_module))
		client_add_capability(client, DELTAPUSH_IMAP_CAPABILITY);

	if (next_hook_client_created != NULL)
		next_hook_client_created(clientp);
}

void imap_deltapush_plugin_init(struct module *module)
{
	imap_deltapush_module = module;
	next_hook_client_created =
		imap_client_created_hook_set(imap_deltapush_client_created);
}

void imap_deltapush_plugin_deinit(void)
{
	imap_client_created_hook_set(next_hook_client_created);
}
