/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-compat.h"
#include "strnum.h"
#include "deltapush-settings.h"

struct deltapush_settings_reader {
	pool_t pool;
	deltapush_settings_getenv_t *getenv;
	void *context;
	const char *error;
};

static const char *
deltapush_settings_get(struct deltapush_settings_reader *reader,
		       const char *name)
{
	const char *value = reader->getenv(name, reader->context);

	/* An empty value means "unset", as elsewhere in dovecot.conf. */
	return value == NULL || value[0] == '\0' ? NULL : value;
}

static const char *
deltapush_settings_str(struct deltapush_settings_reader *reader,
		       const char *name, const char *default_value)
{
	const char *value = deltapush_settings_get(reader, name);

	return p_strdup(reader->pool, value != NULL ? value : default_value);
}

static int
deltapush_settings_time(struct deltapush_settings_reader *reader,
			const char *name, const char *default_value,
			bool msecs, unsigned int *value_r)
{
	const char *value = deltapush_settings_get(reader, name);
	const char *error;
	int ret;

	if (value == NULL)
		value = default_value;
	if (msecs)
		ret = deltapush_parse_interval_msecs(value, value_r, &error);
	else
		ret = deltapush_parse_interval(value, value_r, &error);
	if (ret < 0) {
		reader->error = t_strdup_printf("%s: %s", name, error);
		return -1;
	}
	return 0;
}

static int
deltapush_settings_uint(struct deltapush_settings_reader *reader,
			const char *name, unsigned int default_value,
			bool positive, unsigned int *value_r)
{
	const char *value = deltapush_settings_get(reader, name);

	if (value == NULL) {
		*value_r = default_value;
		return 0;
	}
	if (str_to_uint(value, value_r) < 0 || (positive && *value_r == 0)) {
		reader->error = t_strdup_printf(
			"%s: Invalid value '%s' (expected a %snumber)", name,
			value, positive ? "positive " : "");
		return -1;
	}
	return 0;
}

static int
deltapush_settings_bool(struct deltapush_settings_reader *reader,
			const char *name, bool default_value, bool *value_r)
{
	const char *value = deltapush_settings_get(reader, name);

	if (value == NULL)
		*value_r = default_value;
	else if (strcasecmp(value, "yes") == 0)
		*value_r = TRUE;
	else if (strcasecmp(value, "no") == 0)
		*value_r = FALSE;
	else {
		reader->error = t_strdup_printf(
			"%s: Invalid value '%s' (expected yes or no)",
			name, value);
		return -1;
	}
	return 0;
}

static int
deltapush_settings_url(struct deltapush_settings_reader *reader,
		       const char *name, const char *default_value,
		       const char **value_r)
{
	const char *value = deltapush_settings_str(reader, name, default_value);

	if (value != NULL && !str_begins_with(value, "https://") &&
	    !str_begins_with(value, "http://")) {
		reader->error = t_strdup_printf(
			"%s: Invalid URL '%s' (expected http:// or https://)",
			name, value);
		return -1;
	}
	*value_r = value;
	return 0;
}

static int
deltapush_settings_fsync(struct deltapush_settings_reader *reader,
			 const char *name, enum deltapush_fsync *value_r)
{
	const char *value = deltapush_settings_get(reader, name);

	if (value == NULL || strcmp(value, "optimized") == 0)
		*value_r = DELTAPUSH_FSYNC_OPTIMIZED;
	else if (strcmp(value, "always") == 0)
		*value_r = DELTAPUSH_FSYNC_ALWAYS;
	else if (strcmp(value, "never") == 0)
		*value_r = DELTAPUSH_FSYNC_NEVER;
	else {
		reader->error = t_strdup_printf(
			"%s: Invalid value '%s' (expected optimized, always "
			"or never)", name, value);
		return -1;
	}
	return 0;
}

int deltapush_settings_parse(pool_t pool, deltapush_settings_getenv_t *getenv,
			     void *context,
			     const struct deltapush_settings **set_r,
			     const char **error_r)
{
	struct deltapush_settings_reader reader = {
		.pool = pool,
		.getenv = getenv,
		.context = context,
	};
	struct deltapush_settings *set;
	const char *mailboxes;

	set = p_new(pool, struct deltapush_settings, 1);
	set->db_path = deltapush_settings_str(&reader, "deltapush_db", NULL);
	set->socket_path = deltapush_settings_str(&reader, "deltapush_socket",
						  DELTAPUSH_DEFAULT_SOCKET);
	set->ca_file = deltapush_settings_str(&reader, "deltapush_ca_file",
					      NULL);
	set->turn_server = deltapush_settings_str(&reader,
		"deltapush_turn_server", NULL);
	set->turn_secret_file = deltapush_settings_str(&reader,
		"deltapush_turn_secret_file", NULL);
	set->appversions_file = deltapush_settings_str(&reader,
		"deltapush_appversions_file", NULL);
	mailboxes = deltapush_settings_str(&reader, "deltapush_mailboxes",
					   "INBOX");
	set->mailboxes = (const char *const *)
		p_strsplit_spaces(pool, mailboxes, " ");

	if (deltapush_settings_url(&reader, "deltapush_notify_url",
				   DELTAPUSH_DEFAULT_NOTIFY_URL,
				   &set->notify_url) < 0 ||
	    deltapush_settings_url(&reader, "deltapush_iroh_relay", NULL,
				   &set->iroh_relay) < 0 ||
	    deltapush_settings_time(&reader, "deltapush_token_ttl", "90d",
				    FALSE, &set->token_ttl_secs) < 0 ||
	    deltapush_settings_uint(&reader, "deltapush_max_parallel", 64,
				    TRUE, &set->max_parallel) < 0 ||
	    deltapush_settings_time(&reader, "deltapush_http_timeout", "30s",
				    TRUE, &set->http_timeout_msecs) < 0 ||
	    deltapush_settings_time(&reader, "deltapush_debounce", "10s",
				    TRUE, &set->debounce_msecs) < 0 ||
	    deltapush_settings_time(&reader, "deltapush_retry_base", "8s",
				    TRUE, &set->retry_base_msecs) < 0 ||
	    deltapush_settings_time(&reader, "deltapush_retry_deadline", "5h",
				    FALSE, &set->retry_deadline_secs) < 0 ||
	    deltapush_settings_uint(&reader, "deltapush_gone_limit", 100,
				    TRUE, &set->gone_limit) < 0 ||
	    deltapush_settings_fsync(&reader, "deltapush_fsync",
				     &set->fsync) < 0 ||
	    deltapush_settings_time(&reader, "deltapush_service_timeout", "2s",
				    TRUE, &set->service_timeout_msecs) < 0 ||
	    deltapush_settings_bool(&reader, "deltapush_skip_self", TRUE,
				    &set->skip_self) < 0 ||
	    deltapush_settings_bool(&reader, "deltapush_skip_auto_submitted",
				    FALSE, &set->skip_auto_submitted) < 0 ||
	    deltapush_settings_uint(&reader, "deltapush_max_smtp_recipients",
				    0, TRUE, &set->max_smtp_recipients) < 0 ||
	    deltapush_settings_time(&reader, "deltapush_turn_ttl", "5d",
				    FALSE, &set->turn_ttl_secs) < 0) {
		*error_r = reader.error;
		return -1;
	}
	if (set->token_ttl_secs == 0) {
		*error_r = "deltapush_token_ttl: Must be longer than 0";
		return -1;
	}
	if (set->http_timeout_msecs == 0) {
		*error_r = "deltapush_http_timeout: Must be longer than 0";
		return -1;
	}
	if (set->retry_base_msecs == 0) {
		*error_r = "deltapush_retry_base: Must be longer than 0";
		return -1;
	}
	if (set->service_timeout_msecs == 0) {
		*error_r = "deltapush_service_timeout: Must be longer than 0";
		return -1;
	}
	if (set->mailboxes[0] == NULL) {
		*error_r = "deltapush_mailboxes: No mailbox given";
		return -1;
	}
	*set_r = set;
	return 0;
}

bool deltapush_settings_mailbox_wanted(const struct deltapush_settings *set,
				       const char *vname)
{
	return str_array_find(set->mailboxes, vname);
}
