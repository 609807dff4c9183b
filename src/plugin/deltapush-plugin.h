#ifndef DELTAPUSH_PLUGIN_H
#define DELTAPUSH_PLUGIN_H

#include "module-context.h"
#include "mail-user.h"

struct deltapush_settings;

/* Per-user state of the mail plugin. */
struct deltapush_user {
	union mail_user_module_context module_ctx;
	struct event *event;

	/* NULL when the settings are invalid; set_error says why */
	const struct deltapush_settings *set;
	const char *set_error;
	/* The service socket, made absolute */
	const char *socket_path;
};

#define DELTAPUSH_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, deltapush_user_module)
extern MODULE_CONTEXT_DEFINE(deltapush_user_module, &mail_user_module_register);

/* Returns the user's deltapush state, or NULL with error_r when the
   plugin is not enabled for the user or its settings are invalid. */
struct deltapush_user *deltapush_user_get(struct mail_user *user,
					  const char **error_r);

void deltapush_plugin_init(struct module *module);
void deltapush_plugin_deinit(void);

#endif
