#ifndef DELTAPUSH_DOVECOT_SETTINGS_H
#define DELTAPUSH_DOVECOT_SETTINGS_H

/* The deltapush_* settings as Dovecot hands them over. 2.3: the plugin {}
   block, read by each user through its own getenv (mail user, doveadm,
   service). 2.4: a settings struct of our own, declared by the settings
   module lib30_deltapush_settings.so so that the config process knows
   and checks the keys, and looked up with settings_get(). Either way the
   values go through deltapush_settings_parse(). */

#include "deltapush-settings.h"

#if DOVECOT_PREREQ(2, 4, 0)
#include "settings-parser.h"

extern const struct setting_parser_info deltapush_setting_parser_info;

/* Read and parse the settings that apply to event (the mail user's, the
   doveadm command's, the service's). Returns 0 on success, -1 with
   error_r naming the setting or saying why they couldn't be read. */
int deltapush_dovecot_settings_get(struct event *event, pool_t pool,
				   const struct deltapush_settings **set_r,
				   const char **error_r);
#endif

struct master_service_settings;

/* Start a service of ours logging where Dovecot's master says: 2.4 has
   the log settings in the configuration, read first. */
void deltapush_dovecot_service_init_log(void);

/* The settings of a service of ours started by Dovecot's master (the
   deltapush service, the bridge), read while it still runs as root;
   service_set_r has its base_dir and state_dir. i_fatal()s naming the
   setting when one is invalid: the master restarts it later. */
const struct deltapush_settings *
deltapush_dovecot_settings_read_service(pool_t pool, const char *service_name,
	const struct master_service_settings **service_set_r);

#endif
