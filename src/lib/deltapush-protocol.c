/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "deltapush-protocol.h"

static const char *const deltapush_request_names[] = {
	[DELTAPUSH_REQUEST_REGISTER] = DELTAPUSH_PROTOCOL_CMD_REGISTER,
	[DELTAPUSH_REQUEST_LIST] = DELTAPUSH_PROTOCOL_CMD_LIST,
	[DELTAPUSH_REQUEST_FORGET] = DELTAPUSH_PROTOCOL_CMD_FORGET,
	[DELTAPUSH_REQUEST_NOTIFY] = DELTAPUSH_PROTOCOL_CMD_NOTIFY,
};

void deltapush_protocol_append_request(string_t *dest,
				       const struct deltapush_request *request)
{
	i_assert(request->type < N_ELEMENTS(deltapush_request_names));

	str_append(dest, deltapush_request_names[request->type]);
	str_append_c(dest, '\t');
	str_append_tabescaped(dest, request->user);
	if (request->type == DELTAPUSH_REQUEST_REGISTER) {
		str_append_c(dest, '\t');
		str_append_tabescaped(dest, request->token);
	}
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
	unsigned int i, count = str_array_length(args);

	i_zero(request_r);
	if (count == 0) {
		*error_r = "Empty request";
		return -1;
	}
	for (i = 0; i < N_ELEMENTS(deltapush_request_names); i++) {
		if (strcmp(args[0], deltapush_request_names[i]) == 0)
			break;
	}
	if (i == N_ELEMENTS(deltapush_request_names)) {
		*error_r = t_strdup_printf("Unknown command: %s",
					   str_sanitize(args[0], 32));
		return -1;
	}
	request_r->type = i;

	/* REGISTER <user> <token>; the others: <CMD> <user> */
	if (count != (request_r->type == DELTAPUSH_REQUEST_REGISTER ? 3U : 2U)) {
		*error_r = t_strdup_printf("%s: Wrong parameter count",
					   args[0]);
		return -1;
	}
	if (args[1][0] == '\0') {
		*error_r = t_strdup_printf("%s: Empty user name", args[0]);
		return -1;
	}
	request_r->user = args[1];
	if (request_r->type == DELTAPUSH_REQUEST_REGISTER)
		request_r->token = args[2];
	return 0;
}
