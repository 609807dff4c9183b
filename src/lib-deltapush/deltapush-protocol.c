/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "strnum.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "deltapush-protocol.h"

/* The shape of each request: how many fields follow the command. */
struct deltapush_request_def {
	const char *name;
	unsigned int min_args, max_args;
	bool has_user;
};

static const struct deltapush_request_def deltapush_request_defs[] = {
	[DELTAPUSH_REQUEST_REGISTER] =
		{ DELTAPUSH_PROTOCOL_CMD_REGISTER, 2, 2, TRUE },
	[DELTAPUSH_REQUEST_GET] = { DELTAPUSH_PROTOCOL_CMD_GET, 1, 1, TRUE },
	[DELTAPUSH_REQUEST_FORGET] =
		{ DELTAPUSH_PROTOCOL_CMD_FORGET, 1, 2, TRUE },
	[DELTAPUSH_REQUEST_NOTIFY] =
		{ DELTAPUSH_PROTOCOL_CMD_NOTIFY, 1, 1, TRUE },
	[DELTAPUSH_REQUEST_IMPORT] =
		{ DELTAPUSH_PROTOCOL_CMD_IMPORT, 3, 3, TRUE },
	[DELTAPUSH_REQUEST_LIST] =
		{ DELTAPUSH_PROTOCOL_CMD_LIST, 1, 1, TRUE },
	[DELTAPUSH_REQUEST_FLUSH] = { DELTAPUSH_PROTOCOL_CMD_FLUSH, 0, 1, TRUE },
	[DELTAPUSH_REQUEST_STATUS] =
		{ DELTAPUSH_PROTOCOL_CMD_STATUS, 0, 0, FALSE },
};

void deltapush_protocol_append_request(string_t *dest,
				       const struct deltapush_request *request)
{
	const struct deltapush_request_def *def;

	i_assert(request->type < N_ELEMENTS(deltapush_request_defs));
	def = &deltapush_request_defs[request->type];

	str_append(dest, def->name);
	if (request->user != NULL && def->has_user) {
		str_append_c(dest, '\t');
		str_append_tabescaped(dest, request->user);
	}
	if (request->token != NULL && def->max_args >= 2) {
		i_assert(request->user != NULL);
		str_append_c(dest, '\t');
		str_append_tabescaped(dest, request->token);
	}
	if (request->type == DELTAPUSH_REQUEST_IMPORT)
		str_printfa(dest, "\t%lld", (long long)request->last_seen);
	str_append_c(dest, '\n');
}

void deltapush_protocol_append_reply(string_t *dest, const char *status,
				     const char *const *fields)
{
	str_append(dest, status);
	for (; fields != NULL && *fields != NULL; fields++) {
		str_append_c(dest, '\t');
		str_append_tabescaped(dest, *fields);
	}
	str_append_c(dest, '\n');
}

int deltapush_protocol_parse_request(const char *const *args,
				     struct deltapush_request *request_r,
				     const char **error_r)
{
	const struct deltapush_request_def *def;
	unsigned int i, count = str_array_length(args);
	int64_t last_seen;

	i_zero(request_r);
	if (count == 0) {
		*error_r = "Empty request";
		return -1;
	}
	for (i = 0; i < N_ELEMENTS(deltapush_request_defs); i++) {
		if (strcmp(args[0], deltapush_request_defs[i].name) == 0)
			break;
	}
	if (i == N_ELEMENTS(deltapush_request_defs)) {
		*error_r = t_strdup_printf("Unknown command: %s",
					   str_sanitize(args[0], 32));
		return -1;
	}
	def = &deltapush_request_defs[i];
	request_r->type = i;

	if (count - 1 < def->min_args || count - 1 > def->max_args) {
		*error_r = t_strdup_printf("%s: Wrong parameter count",
					   args[0]);
		return -1;
	}
	if (def->has_user && count > 1) {
		if (args[1][0] == '\0') {
			*error_r = t_strdup_printf("%s: Empty user name",
						   args[0]);
			return -1;
		}
		request_r->user = args[1];
	}
	if (count > 2)
		request_r->token = args[2];
	if (request_r->type == DELTAPUSH_REQUEST_IMPORT) {
		if (str_to_int64(args[3], &last_seen) < 0 || last_seen < 0) {
			*error_r = t_strdup_printf(
				"%s: Invalid last seen time", args[0]);
			return -1;
		}
		request_r->last_seen = last_seen;
	}
	return 0;
}
