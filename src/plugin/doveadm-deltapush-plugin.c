/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "time-util.h"
#include "istream.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "write-full.h"
#include "doveadm.h"
#include "doveadm-cmd.h"
#include "doveadm-print.h"
#include "doveadm-settings.h"
#include "deltapush-dovecot-settings.h"
#include "deltapush-protocol.h"
#include "deltapush-client.h"
#include "deltapush-token.h"
#include "deltapush-chatmail.h"
#include "doveadm-deltapush-plugin.h"

#include <dirent.h>
#include <time.h>
#include <sys/stat.h>

/* doveadm waits for the service longer than a mail process would: an
   operator is looking at it. */
#define DOVEADM_DELTAPUSH_TIMEOUT_MSECS (10 * 1000)

const char *doveadm_deltapush_plugin_version = DOVECOT_ABI_VERSION;

#if DOVECOT_PREREQ(2, 4, 0)
static int
doveadm_deltapush_settings_read(struct doveadm_cmd_context *cctx,
				const struct deltapush_settings **set_r,
				const char **error_r)
{
	return deltapush_dovecot_settings_get(cctx->set_event,
					      pool_datastack_create(),
					      set_r, error_r);
}
#else
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

static int
doveadm_deltapush_settings_read(struct doveadm_cmd_context *cctx ATTR_UNUSED,
				const struct deltapush_settings **set_r,
				const char **error_r)
{
	return deltapush_settings_parse(pool_datastack_create(),
					doveadm_deltapush_getenv, NULL,
					set_r, error_r);
}
#endif

/* Read the deltapush_* settings and find the service's socket. On
   failure print the error, set the exit code and return -1. */
static int
doveadm_deltapush_settings_get(struct doveadm_cmd_context *cctx,
			       const struct deltapush_settings **set_r,
			       const char **socket_path_r)
{
	const struct deltapush_settings *set;
	const char *error;

	if (doveadm_deltapush_settings_read(cctx, &set, &error) < 0) {
		i_error("Invalid settings: %s", error);
		doveadm_exit_code = EX_CONFIG;
		return -1;
	}
	*set_r = set;
	*socket_path_r = set->socket_path[0] == '/' ? set->socket_path :
		t_strconcat(doveadm_settings->base_dir, "/",
			    set->socket_path, NULL);
	return 0;
}

/* Send one request to the service at socket_path; on failure print the
   error and set the exit code. Returns the reply's fields or NULL. */
static const char *const *
doveadm_deltapush_send(const char *socket_path,
		       const struct deltapush_request *request)
{
	const char *const *fields, *error;

	if (deltapush_client_request(socket_path,
				     DOVEADM_DELTAPUSH_TIMEOUT_MSECS,
				     NULL, request, FALSE, &fields,
				     &error) < 0) {
		i_error("deltapush service: %s", error);
		doveadm_exit_code = EX_TEMPFAIL;
		return NULL;
	}
	return fields;
}

/* Send one request; on failure print the error and set the exit code.
   Returns the reply's fields or NULL. */
static const char *const *
doveadm_deltapush_request(struct doveadm_cmd_context *cctx,
			  const struct deltapush_request *request)
{
	const struct deltapush_settings *set;
	const char *path;

	if (doveadm_deltapush_settings_get(cctx, &set, &path) < 0)
		return NULL;
	return doveadm_deltapush_send(path, request);
}

static const char *doveadm_deltapush_time(time_t t)
{
	return t == 0 ? "-" : t_strflocaltime("%Y-%m-%d %H:%M:%S", t);
}

static void cmd_deltapush_status(struct doveadm_cmd_context *cctx)
{
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_STATUS,
	};
	const char *const *fields;
	unsigned int i;

	if ((fields = doveadm_deltapush_request(cctx, &request)) == NULL)
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
		.type = DELTAPUSH_REQUEST_LIST,
	};
	const char *const *fields;
	unsigned int i, count;

	if (!doveadm_deltapush_get_user(cctx, TRUE, &request.user))
		return;
	if ((fields = doveadm_deltapush_request(cctx, &request)) == NULL)
		return;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	doveadm_print_header_simple("id");
	doveadm_print_header_simple("created");
	doveadm_print_header_simple("last_seen");
	doveadm_print_header_simple("state");
	doveadm_print_header_simple("next_attempt");
	doveadm_print_header_simple("failed_attempts");

	count = str_array_length(fields);
	for (i = 0; i + DELTAPUSH_PROTOCOL_LIST_FIELDS <= count;
	     i += DELTAPUSH_PROTOCOL_LIST_FIELDS) {
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
	if (!doveadm_cmd_param_str(cctx, "token-id", &request.token) ||
	    request.token[0] == '\0')
		request.token = NULL;
	if ((fields = doveadm_deltapush_request(cctx, &request)) == NULL)
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
	if ((fields = doveadm_deltapush_request(cctx, &request)) == NULL)
		return;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	doveadm_print_header_simple("flushed");
	doveadm_print(fields[0] != NULL ? fields[0] : "0");
}

/* One import-chatmail run */
struct doveadm_deltapush_import {
	const struct deltapush_settings *set;
	const char *socket_path;
	time_t now;

	/* users: user directories whose metadata.json was read */
	unsigned int users;
	unsigned int tokens_imported, tokens_known;
	unsigned int tokens_expired, tokens_invalid;
	unsigned int files_failed;
	/* the service failed a request: stop, a later run picks up */
	bool service_failed:1;
};

/* Import one token. Returns 0 on success, -1 when the service failed. */
static int
doveadm_deltapush_import_token(struct doveadm_deltapush_import *ctx,
			       const char *user,
			       const struct deltapush_chatmail_token *token)
{
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_IMPORT,
		.user = user,
		.token = token->token,
		.last_seen = token->last_seen,
	};
	const char *const *fields;

	fields = doveadm_deltapush_send(ctx->socket_path, &request);
	if (fields == NULL)
		return -1;
	/* "0" also when the service's clock finds the token too old: both
	   mean this run added nothing */
	if (fields[0] != NULL && strcmp(fields[0], "1") == 0)
		ctx->tokens_imported++;
	else
		ctx->tokens_known++;
	return 0;
}

static void
doveadm_deltapush_import_user(struct doveadm_deltapush_import *ctx,
			      const char *dir, const char *user)
{
	ARRAY_TYPE(deltapush_chatmail_token) tokens;
	const struct deltapush_chatmail_token *token;
	const char *path, *error;
	int ret;

	path = t_strconcat(dir, "/", user, "/",
			   DELTAPUSH_CHATMAIL_METADATA_FILE, NULL);
	t_array_init(&tokens, 8);
	ret = deltapush_chatmail_read(path, pool_datastack_create(), &tokens,
				      &error);
	if (ret < 0) {
		i_error("%s", error);
		ctx->files_failed++;
		return;
	}
	if (ret == 0) {
		/* the user never registered a token */
		return;
	}
	ctx->users++;

	array_foreach(&tokens, token) {
		switch (deltapush_chatmail_token_check(token, ctx->now,
						       ctx->set->token_ttl_secs,
						       &error)) {
		case DELTAPUSH_CHATMAIL_TOKEN_OK:
			if (doveadm_deltapush_import_token(ctx, user,
							   token) < 0) {
				ctx->service_failed = TRUE;
				return;
			}
			break;
		case DELTAPUSH_CHATMAIL_TOKEN_EXPIRED:
			ctx->tokens_expired++;
			break;
		case DELTAPUSH_CHATMAIL_TOKEN_FUTURE:
			/* the relay drops these too; its clock or the
			   file is wrong, so say so */
			i_warning("%s: Skipping token %s: %s", path,
				  deltapush_token_id(token->token),
				  error);
			ctx->tokens_invalid++;
			break;
		case DELTAPUSH_CHATMAIL_TOKEN_INVALID:
			/* the token itself may be garbage: name its
			   position instead */
			i_warning("%s: Skipping devicetoken entry %u: %s",
				  path, token->index, error);
			ctx->tokens_invalid++;
			break;
		}
	}
}

/* The names of DIR's subdirectories, sorted so runs are repeatable.
   Returns 0 on success, -1 (printed, exit code set) when DIR can't be
   read. */
static int
doveadm_deltapush_import_list(struct doveadm_deltapush_import *ctx,
			      const char *dir,
			      ARRAY_TYPE(const_string) *names)
{
	struct dirent *d;
	struct stat st;
	const char *path, *name;
	DIR *dirp;
	int ret = 0;

	dirp = opendir(dir);
	if (dirp == NULL) {
		i_error("opendir(%s) failed: %m", dir);
		doveadm_exit_code = errno == ENOENT || errno == ENOTDIR ?
			EX_NOINPUT : EX_TEMPFAIL;
		return -1;
	}
	for (errno = 0; (d = readdir(dirp)) != NULL; errno = 0) {
		/* ".", ".." and whatever else a tool hid there */
		if (d->d_name[0] == '.')
			continue;
		path = t_strconcat(dir, "/", d->d_name, NULL);
		if (stat(path, &st) < 0) {
			/* gone meanwhile, or a dangling symlink: no user */
			if (errno != ENOENT) {
				i_error("stat(%s) failed: %m", path);
				ctx->files_failed++;
			}
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			continue;
		if (!deltapush_chatmail_user_is_valid(d->d_name)) {
			i_warning("Skipping %s: the directory name is not "
				  "an email address", path);
			continue;
		}
		name = t_strdup(d->d_name);
		array_push_back(names, &name);
	}
	if (errno != 0) {
		i_error("readdir(%s) failed: %m", dir);
		doveadm_exit_code = EX_TEMPFAIL;
		ret = -1;
	}
	if (closedir(dirp) < 0)
		i_error("closedir(%s) failed: %m", dir);
	if (ret == 0)
		array_sort(names, i_strcmp_p);
	return ret;
}

static void doveadm_deltapush_print_count(unsigned int count)
{
	doveadm_print(dec2str(count));
}

/* Exit codes: 0 when everything was read (tokens skipped as expired or
   invalid only give warnings), DOVEADM_EX_NOTPOSSIBLE (EX_DATAERR, 65)
   when a metadata.json file could not be read or parsed (the other users
   are still imported), EX_TEMPFAIL when the service failed (the import
   stops; running it again continues where it stopped), EX_NOINPUT when
   DIR doesn't exist. */
static void cmd_deltapush_import_chatmail(struct doveadm_cmd_context *cctx)
{
	struct doveadm_deltapush_import ctx;
	ARRAY_TYPE(const_string) names;
	const char *dir, *const *namep;

	if (!doveadm_cmd_param_str(cctx, "dir", &dir) || dir[0] == '\0') {
		i_error("Missing the chatmail relay's mail directory");
		doveadm_exit_code = EX_USAGE;
		return;
	}
	i_zero(&ctx);
	if (doveadm_deltapush_settings_get(cctx, &ctx.set,
					   &ctx.socket_path) < 0)
		return;
	/* one clock for the whole run: every file is judged alike */
	ctx.now = time(NULL);

	t_array_init(&names, 64);
	if (doveadm_deltapush_import_list(&ctx, dir, &names) < 0)
		return;
	array_foreach(&names, namep) {
		T_BEGIN {
			doveadm_deltapush_import_user(&ctx, dir, *namep);
		} T_END;
		if (ctx.service_failed)
			break;
	}

	/* Counts even after a failure: they say how far it got. */
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	doveadm_print_header_simple("users");
	doveadm_print_header_simple("tokens_imported");
	doveadm_print_header_simple("tokens_known");
	doveadm_print_header_simple("tokens_expired");
	doveadm_print_header_simple("tokens_invalid");
	doveadm_print_header_simple("files_failed");
	doveadm_deltapush_print_count(ctx.users);
	doveadm_deltapush_print_count(ctx.tokens_imported);
	doveadm_deltapush_print_count(ctx.tokens_known);
	doveadm_deltapush_print_count(ctx.tokens_expired);
	doveadm_deltapush_print_count(ctx.tokens_invalid);
	doveadm_deltapush_print_count(ctx.files_failed);

	if (!ctx.service_failed && ctx.files_failed > 0)
		doveadm_exit_code = DOVEADM_EX_NOTPOSSIBLE;
}

/* deltapush-bridge's status listener, in base_dir */
#define DOVEADM_DELTAPUSH_BRIDGE_STATUS_SOCKET "deltapush-bridge-status"

/* Send the bridge a request (STATUS or RELOAD) and return a blocking
   stream of its reply, or NULL (logged). */
static struct istream *doveadm_deltapush_bridge_request(const char *request)
{
	const char *path = t_strconcat(doveadm_settings->base_dir, "/",
		DOVEADM_DELTAPUSH_BRIDGE_STATUS_SOCKET, NULL);
	const char *line = t_strconcat(request, "\n", NULL);
	int fd;

	fd = net_connect_unix(path);
	if (fd == -1) {
		i_error("net_connect_unix(%s) failed: %m "
			"(is service deltapush-bridge configured?)", path);
		doveadm_exit_code = EX_TEMPFAIL;
		return NULL;
	}
	net_set_nonblock(fd, FALSE);
	if (write_full(fd, line, strlen(line)) < 0) {
		i_error("write(%s) failed: %m", path);
		doveadm_exit_code = EX_TEMPFAIL;
		i_close_fd(&fd);
		return NULL;
	}
	return i_stream_create_fd_autoclose(&fd, SIZE_MAX);
}

static void
doveadm_deltapush_bridge_read_failed(struct istream *input)
{
	if (input->stream_errno != 0) {
		i_error("read(%s) failed: %s", i_stream_get_name(input),
			i_stream_get_error(input));
	} else {
		i_error("The bridge closed the connection without an answer");
	}
	doveadm_exit_code = EX_TEMPFAIL;
}

static void cmd_deltapush_bridge_status(struct doveadm_cmd_context *cctx ATTR_UNUSED)
{
	const char *const *fields, *line;
	struct istream *input;

	input = doveadm_deltapush_bridge_request("STATUS");
	if (input == NULL)
		return;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	doveadm_print_header_simple("account");
	doveadm_print_header_simple("state");
	doveadm_print_header_simple("last_trigger");
	doveadm_print_header_simple("triggers");
	doveadm_print_header_simple("last_error");
	/* a line per account, then an empty line */
	while ((line = i_stream_read_next_line(input)) != NULL &&
	       line[0] != '\0') {
		fields = t_strsplit_tabescaped(line);
		if (str_array_length(fields) != 5)
			continue;
		doveadm_print(fields[0]);
		doveadm_print(fields[1]);
		doveadm_print(doveadm_deltapush_time(strtoll(fields[3],
							      NULL, 10)));
		doveadm_print(fields[4]);
		doveadm_print(fields[2]);
	}
	if (line == NULL)
		doveadm_deltapush_bridge_read_failed(input);
	i_stream_destroy(&input);
}

static void cmd_deltapush_bridge_reload(struct doveadm_cmd_context *cctx ATTR_UNUSED)
{
	static const char *const names[] = {
		"kept", "added", "changed", "removed"
	};
	const char *const *fields, *line;
	struct istream *input;
	unsigned int i;

	input = doveadm_deltapush_bridge_request("RELOAD");
	if (input == NULL)
		return;
	line = i_stream_read_next_line(input);
	if (line == NULL) {
		doveadm_deltapush_bridge_read_failed(input);
		i_stream_destroy(&input);
		return;
	}
	fields = t_strsplit_tabescaped(line);
	if (strcmp(fields[0], "OK") == 0 &&
	    str_array_length(fields) == N_ELEMENTS(names) + 1) {
		doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
		for (i = 0; i < N_ELEMENTS(names); i++)
			doveadm_print_header_simple(names[i]);
		for (i = 0; i < N_ELEMENTS(names); i++)
			doveadm_print(fields[i + 1]);
	} else if (strcmp(fields[0], "FAIL") == 0 && fields[1] != NULL) {
		/* the accounts file is wrong: nothing was changed */
		i_error("Reload refused, the bridge goes on with the accounts "
			"it has: %s", fields[1]);
		doveadm_exit_code = EX_DATAERR;
	} else {
		i_error("Invalid reply from the bridge: %s",
			str_sanitize(line, 128));
		doveadm_exit_code = EX_TEMPFAIL;
	}
	i_stream_destroy(&input);
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
		.usage = "-u <user> [<token id>]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAM('u', "user", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "token-id", CMD_PARAM_STR,
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
	{
		.name = "deltapush import-chatmail",
		.cmd = cmd_deltapush_import_chatmail,
		.usage = "<chatmail mail dir>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAM('\0', "dir", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "deltapush bridge status",
		.cmd = cmd_deltapush_bridge_status,
		.usage = "",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAMS_END
	},
	{
		.name = "deltapush bridge reload",
		.cmd = cmd_deltapush_bridge_reload,
		.usage = "",
DOVEADM_CMD_PARAMS_START
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
	deltapush_client_deinit();
}
