/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "deltapush-dovecot-settings.h"

void deltapush_dovecot_service_init_log(void)
{
#if DOVECOT_PREREQ(2, 4, 0)
	T_BEGIN {
		const char *error;

		if (master_service_settings_read_simple(master_service,
							&error) < 0)
			i_fatal("%s", error);
	} T_END;
#endif
	master_service_init_log(master_service);
}

#if DOVECOT_PREREQ(2, 4, 0)
#include "settings.h"

/* Every key is a plain string, empty by default: deltapush_settings_parse()
   applies the defaults and checks the values, the same code as on 2.3, so
   "empty = unset", defaults and error messages stay the same. */
struct deltapush_dovecot_settings {
	pool_t pool;

	const char *deltapush_notify_url;
	const char *deltapush_db;
	const char *deltapush_token_ttl;
	const char *deltapush_ca_file;
	const char *deltapush_max_parallel;
	const char *deltapush_http_timeout;
	const char *deltapush_debounce;
	const char *deltapush_retry_base;
	const char *deltapush_retry_deadline;
	const char *deltapush_socket;
	const char *deltapush_service_timeout;
	const char *deltapush_mailboxes;
	const char *deltapush_skip_self;
	const char *deltapush_skip_auto_submitted;
	const char *deltapush_max_smtp_recipients;
	const char *deltapush_iroh_relay;
	const char *deltapush_turn_server;
	const char *deltapush_turn_secret_file;
	const char *deltapush_turn_ttl;
	const char *deltapush_appversions_file;
	const char *deltapush_fsync;
	const char *deltapush_gone_limit;
};

#undef DEF
#define DEF(name) \
	SETTING_DEFINE_STRUCT_STR_NOVARS(#name, name, \
		struct deltapush_dovecot_settings)

static const struct setting_define deltapush_dovecot_setting_defines[] = {
	DEF(deltapush_notify_url),
	DEF(deltapush_db),
	DEF(deltapush_token_ttl),
	DEF(deltapush_ca_file),
	DEF(deltapush_max_parallel),
	DEF(deltapush_http_timeout),
	DEF(deltapush_debounce),
	DEF(deltapush_retry_base),
	DEF(deltapush_retry_deadline),
	DEF(deltapush_socket),
	DEF(deltapush_service_timeout),
	DEF(deltapush_mailboxes),
	DEF(deltapush_skip_self),
	DEF(deltapush_skip_auto_submitted),
	DEF(deltapush_max_smtp_recipients),
	DEF(deltapush_iroh_relay),
	DEF(deltapush_turn_server),
	DEF(deltapush_turn_secret_file),
	DEF(deltapush_turn_ttl),
	DEF(deltapush_appversions_file),
	DEF(deltapush_fsync),
	DEF(deltapush_gone_limit),

	SETTING_DEFINE_LIST_END
};

static const struct deltapush_dovecot_settings
deltapush_dovecot_default_settings = {
	.deltapush_notify_url = "",
	.deltapush_db = "",
	.deltapush_token_ttl = "",
	.deltapush_ca_file = "",
	.deltapush_max_parallel = "",
	.deltapush_http_timeout = "",
	.deltapush_debounce = "",
	.deltapush_retry_base = "",
	.deltapush_retry_deadline = "",
	.deltapush_socket = "",
	.deltapush_service_timeout = "",
	.deltapush_mailboxes = "",
	.deltapush_skip_self = "",
	.deltapush_skip_auto_submitted = "",
	.deltapush_max_smtp_recipients = "",
	.deltapush_iroh_relay = "",
	.deltapush_turn_server = "",
	.deltapush_turn_secret_file = "",
	.deltapush_turn_ttl = "",
	.deltapush_appversions_file = "",
	.deltapush_fsync = "",
	.deltapush_gone_limit = "",
};

static bool
deltapush_dovecot_settings_check(void *set, pool_t pool, const char **error_r);

const struct setting_parser_info deltapush_setting_parser_info = {
	.name = "deltapush",

	.defines = deltapush_dovecot_setting_defines,
	.defaults = &deltapush_dovecot_default_settings,

	.struct_size = sizeof(struct deltapush_dovecot_settings),
	.pool_offset1 = 1 + offsetof(struct deltapush_dovecot_settings, pool),
	.check_func = deltapush_dovecot_settings_check,
};

static const char *
deltapush_dovecot_settings_getenv(const char *name, void *context)
{
	const struct deltapush_dovecot_settings *set = context;
	const struct setting_define *def;

	/* A plain strcmp() over our own keys: they have no aliases or
	   list suffixes, and this runs for every key at every mail user's
	   creation */
	for (def = deltapush_dovecot_setting_defines; def->key != NULL; def++) {
		if (strcmp(def->key, name) == 0) {
			i_assert(def->type == SET_STR_NOVARS);
			return *(const char *const *)
				CONST_PTR_OFFSET(set, def->offset);
		}
	}
	i_panic("deltapush setting %s is not declared", name);
}

/* Run by the config process (so doveconf and the start refuse an invalid
   value, naming it) and by every settings_get(). */
static bool
deltapush_dovecot_settings_check(void *set, pool_t pool ATTR_UNUSED,
				 const char **error_r)
{
	const struct deltapush_settings *parsed;
	pool_t parse_pool;
	int ret;

	parse_pool = pool_alloconly_create("deltapush settings check", 1024);
	ret = deltapush_settings_parse(parse_pool,
				       deltapush_dovecot_settings_getenv, set,
				       &parsed, error_r);
	pool_unref(&parse_pool);
	return ret == 0;
}

int deltapush_dovecot_settings_get(struct event *event, pool_t pool,
				   const struct deltapush_settings **set_r,
				   const char **error_r)
{
	const struct deltapush_dovecot_settings *set;
	int ret;

	/* The parse below checks the values as check_func does (the config
	   process still runs that one): without the flag they would be
	   parsed twice for every mail user */
	if (settings_get(event, &deltapush_setting_parser_info,
			 SETTINGS_GET_FLAG_NO_CHECK, &set, error_r) < 0)
		return -1;
	/* the parsed settings are copied into pool */
	ret = deltapush_settings_parse(pool, deltapush_dovecot_settings_getenv,
				       (void *)set, set_r, error_r);
	settings_free(set);
	return ret;
}

const struct deltapush_settings *
deltapush_dovecot_settings_read_service(pool_t pool,
	const char *service_name ATTR_UNUSED,
	const struct master_service_settings **service_set_r)
{
	struct event *event = master_service_get_event(master_service);
	const struct deltapush_settings *set;
	const char *error;

	if (deltapush_dovecot_settings_get(event, pool, &set, &error) < 0)
		i_fatal("Invalid settings: %s", error);
	*service_set_r = master_service_get_service_settings(master_service);
	return set;
}
#else
#include "mail-storage-settings.h"
#include "mail-user.h"

static const char *
deltapush_dovecot_settings_service_getenv(const char *name, void *context)
{
	const struct mail_user_settings *user_set = context;

	return mail_user_set_plugin_getenv(user_set, name);
}

/* The services read the same plugin {} settings as the mail plugin: one
   place for the operator to configure deltapush. */
const struct deltapush_settings *
deltapush_dovecot_settings_read_service(pool_t pool, const char *service_name,
	const struct master_service_settings **service_set_r)
{
	static const struct setting_parser_info *set_roots[] = {
		&mail_user_setting_parser_info,
		NULL
	};
	struct master_service_settings_input input;
	struct master_service_settings_output output;
	const struct mail_user_settings *user_set;
	const struct deltapush_settings *set;
	const char *error;

	i_zero(&input);
	input.roots = set_roots;
	input.module = "mail";
	input.service = service_name;
	if (master_service_settings_read(master_service, &input, &output,
					 &error) < 0)
		i_fatal("Error reading configuration: %s", error);
	user_set = master_service_settings_get_others(master_service)[0];
	if (deltapush_settings_parse(pool,
				     deltapush_dovecot_settings_service_getenv,
				     (void *)user_set, &set, &error) < 0)
		i_fatal("Invalid settings: %s", error);
	*service_set_r = master_service_settings_get(master_service);
	return set;
}
#endif
