/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "time-util.h"
#include "doveadm.h"
#include "doveadm-cmd.h"
#include "doveadm-print.h"
#include "doveadm-settings.h"
#include "deltapush-settings.h"
#include "deltapush-protocol.h"
#include "deltapush-client.h"
#include "doveadm-deltapush-plugin.h"

/* doveadm waits for the service longer than a mail process would: an
   operator is looking at it. */
#define DOVEADM_DELTAPUSH_TIMEOUT_MSECS (10 * 1000)

const char *doveadm_deltapush_plugin_version = DOVECOT_ABI_VERSION;

static const char *doveadm_deltapush_getenv(const char *name,
					    void *context ATTR_UNUSED)
{
	const char *const *envs;
	unsigned int i, count;

	if (!array_is_created(&doveadm_settings->plugin_envs))
		return NULL;
	envs = array_get(&doveadm_settings->plugin_envs, &count);
	for (i = 0; i + 1 < count; i += 2) {
		if (strcmp(envs[i], name) == 0)
			return envs[i + 1];
	}
	return NULL;
}

/* Send one request; on failure print the error and set the exit code.
   Returns the reply's fields or NULL. */
static const char *const *
doveadm_deltapush_request(const struct deltapush_request *request)
{
	const struct deltapush_settings *set;
	const char *const *fields, *error, *path;

	if (deltapush_settings_parse(pool_datastack_create(),
				     doveadm_deltapush_getenv, NULL, &set,
				     &error) < 0) {
		i_error("Invalid settings: %s", error);
		doveadm_exit_code = EX_CONFIG;
		return NULL;
	}
	path = set->socket_path[0] == '/' ? set->socket_path :
		t_strconcat(doveadm_settings->base_dir, "/",
			    set->socket_path, NULL);
	if (deltapush_client_request(path, DOVEADM_DELTAPUSH_TIMEOUT_MSECS,
				     NULL, request, &fields, &error) < 0) {
		i_error("deltapush service: %s", error);
		doveadm_exit_code = EX_TEMPFAIL;
		return NULL;
	}
	return fields;
}

static const char *doveadm_deltapush_time(time_t t)
{
	return t == 0 ? "-" : t_strflocaltime("%Y-%m-%d %H:%M:%S", t);
}

static void cmd_deltapush_status(struct doveadm_cmd_context *cctx ATTR_UNUSED)
{
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_STATUS,
	};
	const char *const *fields;
	unsigned int i;

	if ((fields = doveadm_deltapush_request(&request)) == NULL)
		return;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	/* name/value pairs become the columns of one row */
	for (i = 0; fields[i] != NULL && fields[i + 1] != NULL; i += 2)
		doveadm_print_header_simple(fields[i]);
	for (i = 0; fields[i] != NULL && fields[i + 1] != NULL; i += 2) {
		if (strcmp(fields[i], "last_error_time") == 0) {
			time_t t = strtoll(fields[i + 1], NULL, 10);
			doveadm_print(doveadm_deltapush_time(t));
		} else {
			doveadm_print(fields[i + 1]);
		}
	}
}

static bool doveadm_deltapush_get_user(struct doveadm_cmd_context *cctx,
				       bool required, const char **user_r)
{
	if (!doveadm_cmd_param_str(cctx, "user", user_r) ||
	    (*user_r)[0] == '\0') {
		*user_r = NULL;
		if (required) {
			i_error("Missing -u USER");
			doveadm_exit_code = EX_USAGE;
			return FALSE;
		}
	}
	return TRUE;
}

static void cmd_deltapush_list(struct doveadm_cmd_context *cctx)
{
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_TOKENS,
	};
	const char *const *fields;
	unsigned int i, count;

	if (!doveadm_deltapush_get_user(cctx, TRUE, &request.user))
		return;
	if ((fields = doveadm_deltapush_request(&request)) == NULL)
		return;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	doveadm_print_header_simple("token");
	doveadm_print_header_simple("created");
	doveadm_print_header_simple("last_seen");
	doveadm_print_header_simple("state");
	doveadm_print_header_simple("next_attempt");
	doveadm_print_header_simple("failed_attempts");

	count = str_array_length(fields);
	for (i = 0; i + DELTAPUSH_PROTOCOL_TOKENS_FIELDS <= count;
	     i += DELTAPUSH_PROTOCOL_TOKENS_FIELDS) {
		uint64_t due = strtoull(fields[i + 4], NULL, 10);

		doveadm_print(fields[i]);
		doveadm_print(doveadm_deltapush_time(strtoll(fields[i + 1],
							      NULL, 10)));
		doveadm_print(doveadm_deltapush_time(strtoll(fields[i + 2],
							      NULL, 10)));
		doveadm_print(fields[i + 3]);
		doveadm_print(doveadm_deltapush_time(due / 1000));
		doveadm_print(fields[i + 5]);
	}
}

static void cmd_deltapush_forget(struct doveadm_cmd_context *cctx)
{
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_FORGET,
	};
	const char *const *fields;

	if (!doveadm_deltapush_get_user(cctx, TRUE, &request.user))
		return;
	if (!doveadm_cmd_param_str(cctx, "token-prefix", &request.token) ||
	    request.token[0] == '\0')
		request.token = NULL;
	if ((fields = doveadm_deltapush_request(&request)) == NULL)
		return;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	doveadm_print_header_simple("removed");
	doveadm_print(fields[0] != NULL ? fields[0] : "0");
}

static void cmd_deltapush_flush(struct doveadm_cmd_context *cctx)
{
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_FLUSH,
	};
	const char *const *fields;

	if (!doveadm_deltapush_get_user(cctx, FALSE, &request.user))
		return;
	if ((fields = doveadm_deltapush_request(&request)) == NULL)
		return;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	doveadm_print_header_simple("flushed");
	doveadm_print(fields[0] != NULL ? fields[0] : "0");
}

static struct doveadm_cmd_ver2 doveadm_deltapush_commands[] = {
	{
		.name = "deltapush status",
		.cmd = cmd_deltapush_status,
		.usage = "",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "deltapush list",
		.cmd = cmd_deltapush_list,
		.usage = "-u <user>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAM('u', "user", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "deltapush forget",
		.cmd = cmd_deltapush_forget,
		.usage = "-u <user> [<token prefix>]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAM('u', "user", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "token-prefix", CMD_PARAM_STR,
		  CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "deltapush flush",
		.cmd = cmd_deltapush_flush,
		.usage = "[-u <user>]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAM('u', "user", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAMS_END
	},
};

void doveadm_deltapush_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(doveadm_deltapush_commands); i++)
		doveadm_cmd_register_ver2(&doveadm_deltapush_commands[i]);
}

void doveadm_deltapush_plugin_deinit(void)
{
}
