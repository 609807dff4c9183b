/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "ioloop.h"
#include "mail-storage-private.h"
#include "mailbox-attribute.h"
#include "deltapush-settings.h"
#include "deltapush-turn.h"
#include "deltapush-appversions.h"
#include "deltapush-plugin.h"
#include "deltapush-server-entries.h"

#define DELTAPUSH_SERVER_ENTRY(name) \
	MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER "vendor/deltachat/" name

/* A client whose GETMETADATA "" fails disconnects and retries in a loop,
   so every problem here means "no value" (NIL) plus a log line, never an
   error. */
static const struct deltapush_settings *
deltapush_server_entry_settings(struct mailbox *box,
				struct deltapush_user **duser_r)
{
	const char *error;

	*duser_r = deltapush_user_get(box->storage->user, &error);
	return *duser_r == NULL ? NULL : (*duser_r)->set;
}

static int
deltapush_entry_maxsmtprecipients_get(struct mailbox *box,
				      const char *key ATTR_UNUSED,
				      struct mail_attribute_value *value_r)
{
	struct deltapush_user *duser;
	const struct deltapush_settings *set =
		deltapush_server_entry_settings(box, &duser);

	if (set == NULL || set->max_smtp_recipients == 0)
		return 0;
	value_r->value = t_strdup(dec2str(set->max_smtp_recipients));
	return 1;
}

static int
deltapush_entry_irohrelay_get(struct mailbox *box, const char *key ATTR_UNUSED,
			      struct mail_attribute_value *value_r)
{
	struct deltapush_user *duser;
	const struct deltapush_settings *set =
		deltapush_server_entry_settings(box, &duser);

	if (set == NULL || set->iroh_relay == NULL)
		return 0;
	value_r->value = set->iroh_relay;
	return 1;
}

static int
deltapush_entry_turn_get(struct mailbox *box, const char *key ATTR_UNUSED,
			 struct mail_attribute_value *value_r)
{
	struct deltapush_user *duser;
	const struct deltapush_settings *set =
		deltapush_server_entry_settings(box, &duser);
	const char *secret, *error;

	if (set == NULL || set->turn_server == NULL ||
	    set->turn_secret_file == NULL)
		return 0;
	/* Read at every request so a rotated secret applies at once. */
	if (deltapush_turn_read_secret(set->turn_secret_file,
				       pool_datastack_create(), &secret,
				       &error) < 0) {
		e_warning(duser->event, "Not serving TURN credentials: %s",
			  error);
		return 0;
	}
	value_r->value = deltapush_turn_value(set->turn_server,
		(const unsigned char *)secret, strlen(secret),
		ioloop_time, set->turn_ttl_secs);
	return 1;
}

static int
deltapush_entry_appversions_get(struct mailbox *box,
				const char *key ATTR_UNUSED,
				struct mail_attribute_value *value_r)
{
	struct deltapush_user *duser;
	const struct deltapush_settings *set =
		deltapush_server_entry_settings(box, &duser);
	const char *json, *error;

	if (set == NULL || set->appversions_file == NULL)
		return 0;
	if (deltapush_appversions_read(set->appversions_file,
				       pool_datastack_create(), &json,
				       &error) < 0) {
		e_warning(duser->event, "Not serving appversions: %s", error);
		return 0;
	}
	value_r->value = json;
	return 1;
}

static int
deltapush_entry_set(struct mailbox_transaction_context *t, const char *key,
		    const struct mail_attribute_value *value ATTR_UNUSED)
{
	/* Without set() Dovecot would refuse with the internal key name;
	   say which entry it is and where its value comes from. */
	mail_storage_set_error(t->box->storage, MAIL_ERROR_PERM,
		t_strdup_printf("/shared/vendor/deltachat/%s is read-only: "
				"the server configuration provides it",
				strrchr(key, '/') + 1));
	return -1;
}

static const struct mailbox_attribute_internal deltapush_server_entries[] = {
	{
		.type = MAIL_ATTRIBUTE_TYPE_SHARED,
		.key = DELTAPUSH_SERVER_ENTRY("maxsmtprecipients"),
		.rank = MAIL_ATTRIBUTE_INTERNAL_RANK_AUTHORITY,
		.flags = MAIL_ATTRIBUTE_INTERNAL_FLAG_VALIDATED,
		.get = deltapush_entry_maxsmtprecipients_get,
		.set = deltapush_entry_set,
	},
	{
		.type = MAIL_ATTRIBUTE_TYPE_SHARED,
		.key = DELTAPUSH_SERVER_ENTRY("irohrelay"),
		.rank = MAIL_ATTRIBUTE_INTERNAL_RANK_AUTHORITY,
		.flags = MAIL_ATTRIBUTE_INTERNAL_FLAG_VALIDATED,
		.get = deltapush_entry_irohrelay_get,
		.set = deltapush_entry_set,
	},
	{
		.type = MAIL_ATTRIBUTE_TYPE_SHARED,
		.key = DELTAPUSH_SERVER_ENTRY("turn"),
		.rank = MAIL_ATTRIBUTE_INTERNAL_RANK_AUTHORITY,
		.flags = MAIL_ATTRIBUTE_INTERNAL_FLAG_VALIDATED,
		.get = deltapush_entry_turn_get,
		.set = deltapush_entry_set,
	},
	{
		.type = MAIL_ATTRIBUTE_TYPE_SHARED,
		.key = DELTAPUSH_SERVER_ENTRY("appversions"),
		.rank = MAIL_ATTRIBUTE_INTERNAL_RANK_AUTHORITY,
		.flags = MAIL_ATTRIBUTE_INTERNAL_FLAG_VALIDATED,
		.get = deltapush_entry_appversions_get,
		.set = deltapush_entry_set,
	},
};

void deltapush_server_entries_init(void)
{
	mailbox_attribute_register_internals(deltapush_server_entries,
		N_ELEMENTS(deltapush_server_entries));
}

void deltapush_server_entries_deinit(void)
{
	mailbox_attribute_unregister_internals(deltapush_server_entries,
		N_ELEMENTS(deltapush_server_entries));
}
