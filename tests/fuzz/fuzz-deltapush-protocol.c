/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "strescape.h"
#include "istream.h"
#include "fuzz-deltapush.h"
#include "deltapush-token.h"
#include "deltapush-protocol.h"

/* The service reads lines from any process that can open its socket.
   Split the input into lines and fields the way connection.h does
   (i_stream_next_line(), then t_strsplit_tabescaped()) and parse each
   line as a request. Oracles: a parsed request is written back by
   deltapush_protocol_append_request() as one well-formed line that parses
   to the same request, and any fields survive a reply line's round
   trip. */

static bool fuzz_str_eq(const char *s1, const char *s2)
{
	return null_strcmp(s1, s2) == 0;
}

/* For panic messages: the line with its control bytes made visible */
static const char *fuzz_printable(const string_t *str)
{
	string_t *out = t_str_new(256);
	const unsigned char *data = str_data(str);
	size_t i;

	for (i = 0; i < str_len(str) && i < 200; i++) {
		if (data[i] >= 0x20 && data[i] < 0x7f)
			str_append_c(out, data[i]);
		else
			str_printfa(out, "\\x%02x", data[i]);
	}
	return str_c(out);
}

/* The line without its LF, split as connection.h splits it */
static const char *const *fuzz_split(const string_t *line)
{
	const unsigned char *data = str_data(line);
	size_t len = str_len(line);

	if (len == 0 || data[len - 1] != '\n')
		i_panic("written line does not end in LF");
	if (memchr(data, '\n', len - 1) != NULL ||
	    memchr(data, '\r', len) != NULL ||
	    memchr(data, '\0', len) != NULL)
		i_panic("written line has a raw LF, CR or NUL inside");
	return t_strsplit_tabescaped(t_strndup(data, len - 1));
}

static void
fuzz_request_roundtrip(const struct deltapush_request *request)
{
	struct deltapush_request request2;
	const char *error = NULL;
	string_t *line = t_str_new(256);

	deltapush_protocol_append_request(line, request);
	if (deltapush_protocol_parse_request(fuzz_split(line), &request2,
					     &error) < 0) {
		i_panic("written request %s does not parse: %s",
			fuzz_printable(line), error);
	}
	if (request2.type != request->type ||
	    !fuzz_str_eq(request2.user, request->user) ||
	    !fuzz_str_eq(request2.token, request->token) ||
	    request2.last_seen != request->last_seen) {
		i_panic("written request %s parses differently",
			fuzz_printable(line));
	}
}

static void fuzz_reply_roundtrip(const char *const *fields)
{
	const char *const *args;
	string_t *line = t_str_new(256);
	unsigned int i;

	deltapush_protocol_append_reply(line, DELTAPUSH_PROTOCOL_REPLY_OK,
					fields);
	args = fuzz_split(line);
	if (strcmp(args[0], DELTAPUSH_PROTOCOL_REPLY_OK) != 0)
		i_panic("reply status changed");
	for (i = 0; fields[i] != NULL; i++) {
		if (args[i + 1] == NULL || strcmp(args[i + 1], fields[i]) != 0)
			i_panic("reply field %u changed", i);
	}
	if (args[i + 1] != NULL)
		i_panic("reply has extra fields");
}

static void fuzz_line(const char *line)
{
	const char *const *args = t_strsplit_tabescaped(line);
	struct deltapush_request request;
	const char *error = NULL;

	if (deltapush_protocol_parse_request(args, &request, &error) < 0) {
		if (error == NULL || error[0] == '\0')
			i_panic("request rejected without a reason");
	} else {
		if (request.user != NULL && request.user[0] == '\0')
			i_panic("request accepted with an empty user");
		if (request.type == DELTAPUSH_REQUEST_REGISTER &&
		    (request.user == NULL || request.token == NULL))
			i_panic("REGISTER accepted without user or token");
		/* what the service does next with a REGISTER */
		if (request.token != NULL) {
			(void)deltapush_token_is_valid(
				(const unsigned char *)request.token,
				strlen(request.token), &error);
		}
		fuzz_request_roundtrip(&request);
	}
	fuzz_reply_roundtrip(args);
}

static void fuzz_protocol(const unsigned char *data, size_t size)
{
	struct istream *input;
	const char *line;

	input = i_stream_create_from_data(data, size);
	i_stream_set_max_buffer_size(input, DELTAPUSH_PROTOCOL_MAX_LINE_SIZE);
	while ((line = i_stream_read_next_line(input)) != NULL)
		fuzz_line(line);
	i_stream_unref(&input);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	deltapush_fuzz_init();
	T_BEGIN {
		fuzz_protocol(data, size);
	} T_END;
	return 0;
}
