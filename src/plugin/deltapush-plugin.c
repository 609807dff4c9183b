/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "mail-user.h"
#include "mail-storage-hooks.h"
#include "mail-storage-settings.h"
#include "deltapush-common.h"
#include "deltapush-dovecot-settings.h"
#include "deltapush-client.h"
#include "deltapush-attributes.h"
#include "deltapush-server-entries.h"
#include "deltapush-driver.h"
#include "deltapush-plugin.h"

const char *deltapush_plugin_version = DOVECOT_ABI_VERSION;
const char *deltapush_plugin_dependencies[] = { "push_notification", NULL };

struct deltapush_user_module deltapush_user_module =
	MODULE_CONTEXT_INIT(&mail_user_module_register);
static struct module *deltapush_module;

#if DOVECOT_PREREQ(2, 4, 0)
static int
deltapush_user_settings_read(struct mail_user *user,
			     const struct deltapush_settings **set_r,
			     const char **error_r)
{
	return deltapush_dovecot_settings_get(user->event, user->pool,
					      set_r, error_r);
}
#else
static const char *
deltapush_user_getenv(const char *name, void *context)
{
	struct mail_user *user = context;

	return mail_user_plugin_getenv(user, name);
}

static int
deltapush_user_settings_read(struct mail_user *user,
			     const struct deltapush_settings **set_r,
			     const char **error_r)
{
	return deltapush_settings_parse(user->pool, deltapush_user_getenv,
					user, set_r, error_r);
}
#endif

static void deltapush_user_deinit(struct mail_user *user)
{
	struct deltapush_user *duser = DELTAPUSH_USER_CONTEXT(user);

	i_assert(duser != NULL);
	event_unref(&duser->event);
	duser->module_ctx.super.deinit(user);
}

static struct deltapush_user *deltapush_user_init(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct deltapush_user *duser;
	const char *error;

	duser = p_new(user->pool, struct deltapush_user, 1);
	duser->module_ctx.super = *v;
	user->vlast = &duser->module_ctx.super;
	v->deinit = deltapush_user_deinit;

	duser->event = event_create(user->event);
	event_add_category(duser->event, &event_category_deltapush);
	event_set_append_log_prefix(duser->event, "deltapush: ");

	if (deltapush_user_settings_read(user, &duser->set, &error) < 0) {
		duser->set_error = p_strdup_printf(user->pool,
			"Invalid settings: %s", error);
		e_error(duser->event, "%s", duser->set_error);
	} else if (duser->set->socket_path[0] == '/') {
		duser->socket_path = duser->set->socket_path;
	} else {
		duser->socket_path = p_strconcat(user->pool,
			user->set->base_dir, "/", duser->set->socket_path, NULL);
	}
	MODULE_CONTEXT_SET(user, deltapush_user_module, duser);
	return duser;
}

static void deltapush_mail_user_created(struct mail_user *user)
{
	/* push_notification's hook runs first (it is loaded first) and may
	   already have set us up through the driver's init. */
	if (DELTAPUSH_USER_CONTEXT(user) == NULL)
		(void)deltapush_user_init(user);
}

struct deltapush_user *deltapush_user_get(struct mail_user *user,
					  const char **error_r)
{
	struct deltapush_user *duser = DELTAPUSH_USER_CONTEXT(user);

	if (duser == NULL) {
		if (!mail_user_is_plugin_loaded(user, deltapush_module)) {
			*error_r = "deltapush is not enabled for this user";
			return NULL;
		}
		duser = deltapush_user_init(user);
	}
	if (duser->set == NULL) {
		*error_r = duser->set_error;
		return NULL;
	}
	return duser;
}

static struct mail_storage_hooks deltapush_mail_storage_hooks = {
	.mail_user_created = deltapush_mail_user_created,
};

void deltapush_plugin_init(struct module *module)
{
	deltapush_module = module;
	mail_storage_hooks_add(module, &deltapush_mail_storage_hooks);
	deltapush_attributes_init();
	deltapush_server_entries_init();
	deltapush_driver_init();
}

void deltapush_plugin_deinit(void)
{
	deltapush_client_deinit();
	deltapush_driver_deinit();
	deltapush_server_entries_deinit();
	deltapush_attributes_deinit();
	mail_storage_hooks_remove(&deltapush_mail_storage_hooks);
}
