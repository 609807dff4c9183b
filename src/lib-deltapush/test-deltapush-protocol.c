/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "strescape.h"
#include "istream.h"
#include "test-common.h"
#include "deltapush-token.h"
#include "deltapush-protocol.h"

/* Values that must survive the trip through the line protocol: every
   byte with a meaning to the tab escaping or to line splitting. */
static const char *const protocol_values[] = {
	"user@example.org",
	"openpgp:wcBMA8Jd5mXZ8dd8AQf/Xr0ZZ+Aq/xy=",
	"a\tb",
	"\t",
	"\t\t",
	"tab at end\t",
	"\tat start",
	"line\nbreak",
	"\n",
	"cr\rcr",
	"ends in cr\r",
	"crlf\r\n",
	"back\\slash",
	"\\",
	"\\t\\n",
	"\001",
	"a\001b",
	"\001t\001n\001r\0011\0010",
	"\001\t\n\r\\",
	"caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x93\xac",
	"\x7f\x80\xff",
	"spaces in the middle ",
	"\"quoted\"",
	/* also used as a NULL-terminated field list */
	NULL
};
#define PROTOCOL_VALUES_COUNT (N_ELEMENTS(protocol_values) - 1)

static unsigned int str_count_char(const string_t *str, char c)
{
	const unsigned char *data = str_data(str);
	unsigned int count = 0;
	size_t i;

	for (i = 0; i < str_len(str); i++) {
		if (data[i] == (unsigned char)c)
			count++;
	}
	return count;
}

/* The escaped line carries nothing that would split it early: one LF, at
   its end, no CR and no NUL, and exactly field_count-1 field
   separators. */
static bool line_is_wellformed(const string_t *line, unsigned int field_count)
{
	const unsigned char *data = str_data(line);
	size_t len = str_len(line);

	return len > 0 && data[len - 1] == '\n' &&
		str_count_char(line, '\n') == 1 &&
		str_count_char(line, '\r') == 0 &&
		memchr(data, '\0', len) == NULL &&
		str_count_char(line, '\t') == field_count - 1;
}

/* Split a line as connection.h's default input handler does: without
   its LF, through t_strsplit_tabescaped(). */
static const char *const *line_split(const string_t *line)
{
	i_assert(str_len(line) > 0);
	return t_strsplit_tabescaped(t_strndup(str_data(line),
					       str_len(line) - 1));
}

static void test_deltapush_protocol_request_exact(void)
{
	static const struct {
		struct deltapush_request request;
		const char *line;
	} cases[] = {
		{ { DELTAPUSH_REQUEST_REGISTER, "bob", "tok", 0 },
		  "REGISTER\tbob\ttok\n" },
		{ { DELTAPUSH_REQUEST_GET, "bob", NULL, 0 }, "GET\tbob\n" },
		{ { DELTAPUSH_REQUEST_FORGET, "bob", NULL, 0 }, "FORGET\tbob\n" },
		{ { DELTAPUSH_REQUEST_NOTIFY, "bob", NULL, 0 }, "NOTIFY\tbob\n" },
		/* A token given to another command is not sent */
		{ { DELTAPUSH_REQUEST_GET, "bob", "tok", 0 }, "GET\tbob\n" },
		/* The escaping is str_tabescape()'s, which the other side
		   (and anyone speaking the protocol by hand) undoes */
		{ { DELTAPUSH_REQUEST_REGISTER, "a\tb", "c\nd\re\001f", 0 },
		  "REGISTER\ta\001tb\tc\001nd\001re\0011f\n" },
	};
	string_t *str = t_str_new(128);
	unsigned int i;

	test_begin("deltapush protocol request encoding");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		str_truncate(str, 0);
		deltapush_protocol_append_request(str, &cases[i].request);
		test_assert_strcmp_idx(str_c(str), cases[i].line, i);
	}
	/* Appending keeps what is already in the buffer */
	str_truncate(str, 0);
	str_append(str, "X");
	deltapush_protocol_append_request(str, &cases[1].request);
	test_assert_strcmp(str_c(str), "XGET\tbob\n");
	test_end();
}

static void
test_request_roundtrip(const struct deltapush_request *request,
		       unsigned int idx)
{
	string_t *line = t_str_new(256);
	struct deltapush_request parsed;
	const char *const *args;
	const char *error = NULL;
	bool is_register = request->type == DELTAPUSH_REQUEST_REGISTER ||
		(request->type == DELTAPUSH_REQUEST_FORGET &&
		 request->token != NULL);

	deltapush_protocol_append_request(line, request);
	test_assert_idx(line_is_wellformed(line, is_register ? 3 : 2), idx);

	args = line_split(line);
	test_assert_idx(str_array_length(args) == (is_register ? 3U : 2U),
			idx);
	test_assert_idx(deltapush_protocol_parse_request(args, &parsed,
							 &error) == 0, idx);
	test_assert_idx(error == NULL, idx);
	test_assert_idx(parsed.type == request->type, idx);
	test_assert_strcmp_idx(parsed.user, request->user, idx);
	if (is_register)
		test_assert_strcmp_idx(parsed.token, request->token, idx);
	else
		test_assert_idx(parsed.token == NULL, idx);
}

static void test_deltapush_protocol_request_roundtrip(void)
{
	static const enum deltapush_request_type types[] = {
		DELTAPUSH_REQUEST_REGISTER,
		DELTAPUSH_REQUEST_GET,
		DELTAPUSH_REQUEST_FORGET,
		DELTAPUSH_REQUEST_NOTIFY,
	};
	struct deltapush_request request;
	unsigned int t, u, k, idx = 0;

	test_begin("deltapush protocol request round trip");
	for (t = 0; t < N_ELEMENTS(types); t++) {
		for (u = 0; u < PROTOCOL_VALUES_COUNT; u++) {
			for (k = 0; k < PROTOCOL_VALUES_COUNT; k++) {
				i_zero(&request);
				request.type = types[t];
				request.user = protocol_values[u];
				request.token = protocol_values[k];
				T_BEGIN {
					test_request_roundtrip(&request, idx);
				} T_END;
				idx++;
				if (types[t] == DELTAPUSH_REQUEST_FORGET) {
					/* and once without a prefix */
					request.token = NULL;
					T_BEGIN {
						test_request_roundtrip(&request,
								       idx);
					} T_END;
					idx++;
				}
				if (types[t] != DELTAPUSH_REQUEST_REGISTER &&
				    types[t] != DELTAPUSH_REQUEST_FORGET)
					break;
			}
		}
	}
	test_end();
}

static void test_deltapush_protocol_request_all_bytes(void)
{
	struct deltapush_request request;
	char user[1024], token[DELTAPUSH_TOKEN_MAX_SIZE + 1];
	unsigned int i;

	test_begin("deltapush protocol request with every byte value");
	/* Every byte but NUL, several times over */
	for (i = 0; i < sizeof(user) - 1; i++)
		user[i] = 1 + i % 255;
	user[i] = '\0';
	for (i = 0; i < sizeof(token) - 1; i++)
		token[i] = 255 - i % 255;
	token[i] = '\0';

	i_zero(&request);
	request.type = DELTAPUSH_REQUEST_REGISTER;
	request.user = user;
	request.token = token;
	test_request_roundtrip(&request, 0);
	test_end();
}

static void test_deltapush_protocol_request_stream(void)
{
	static const struct deltapush_request requests[] = {
		{ DELTAPUSH_REQUEST_REGISTER, "alice", "a\r", 0 },
		{ DELTAPUSH_REQUEST_NOTIFY, "bob\r", NULL, 0 },
		{ DELTAPUSH_REQUEST_GET, "line\none", NULL, 0 },
		{ DELTAPUSH_REQUEST_FORGET, "\n", NULL, 0 },
		{ DELTAPUSH_REQUEST_REGISTER, "\t", "\r\n", 0 },
		{ DELTAPUSH_REQUEST_NOTIFY, "last", NULL, 0 },
	};
	string_t *buf = t_str_new(256);
	struct istream *input;
	struct deltapush_request parsed;
	const char *line, *error;
	unsigned int i;

	test_begin("deltapush protocol requests read as a stream");
	/* Several requests back to back, read line by line as the
	   connection API reads them (which drops a CR before the LF, so
	   values ending in CR depend on the escaping). */
	for (i = 0; i < N_ELEMENTS(requests); i++)
		deltapush_protocol_append_request(buf, &requests[i]);
	input = i_stream_create_from_string(buf);
	for (i = 0; i < N_ELEMENTS(requests); i++) {
		line = i_stream_read_next_line(input);
		test_assert_idx(line != NULL, i);
		if (line == NULL)
			break;
		error = NULL;
		test_assert_idx(deltapush_protocol_parse_request(
			t_strsplit_tabescaped(line), &parsed, &error) == 0, i);
		test_assert_idx(parsed.type == requests[i].type, i);
		test_assert_strcmp_idx(parsed.user, requests[i].user, i);
		if (requests[i].type == DELTAPUSH_REQUEST_REGISTER) {
			test_assert_strcmp_idx(parsed.token,
					       requests[i].token, i);
		}
	}
	test_assert(i_stream_read_next_line(input) == NULL);
	test_assert(input->eof);
	i_stream_unref(&input);
	test_end();
}

static void test_deltapush_protocol_parse_valid(void)
{
	static const struct {
		const char *args[4];
		enum deltapush_request_type type;
	} cases[] = {
		{ { "REGISTER", "u", "t", NULL }, DELTAPUSH_REQUEST_REGISTER },
		{ { "GET", "u", NULL, NULL }, DELTAPUSH_REQUEST_GET },
		{ { "FORGET", "u", NULL, NULL }, DELTAPUSH_REQUEST_FORGET },
		{ { "NOTIFY", "u", NULL, NULL }, DELTAPUSH_REQUEST_NOTIFY },
	};
	struct deltapush_request parsed;
	const char *error;
	unsigned int i;

	test_begin("deltapush protocol parse valid requests");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		/* Garbage in the output struct is overwritten */
		memset(&parsed, 0xaa, sizeof(parsed));
		error = NULL;
		test_assert_idx(deltapush_protocol_parse_request(
			cases[i].args, &parsed, &error) == 0, i);
		test_assert_idx(error == NULL, i);
		test_assert_idx(parsed.type == cases[i].type, i);
		/* The strings point into args, not into copies */
		test_assert_idx(parsed.user == cases[i].args[1], i);
		if (cases[i].type == DELTAPUSH_REQUEST_REGISTER)
			test_assert_idx(parsed.token == cases[i].args[2], i);
		else
			test_assert_idx(parsed.token == NULL, i);
	}
	test_end();
}

static void test_deltapush_protocol_admin_requests(void)
{
	static const struct {
		struct deltapush_request request;
		const char *line;
	} cases[] = {
		{ { DELTAPUSH_REQUEST_FORGET, "bob", "openpgp:ab", 0 },
		  "FORGET\tbob\topenpgp:ab\n" },
		{ { DELTAPUSH_REQUEST_IMPORT, "bob", "tok", 1700000000 },
		  "IMPORT\tbob\ttok\t1700000000\n" },
		{ { DELTAPUSH_REQUEST_LIST, "bob", NULL, 0 },
		  "LIST\tbob\n" },
		{ { DELTAPUSH_REQUEST_FLUSH, "bob", NULL, 0 }, "FLUSH\tbob\n" },
		{ { DELTAPUSH_REQUEST_FLUSH, NULL, NULL, 0 }, "FLUSH\n" },
		{ { DELTAPUSH_REQUEST_STATUS, NULL, NULL, 0 }, "STATUS\n" },
	};
	struct deltapush_request parsed;
	string_t *str = t_str_new(128);
	const char *error;
	unsigned int i;

	test_begin("deltapush protocol admin requests");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		str_truncate(str, 0);
		deltapush_protocol_append_request(str, &cases[i].request);
		test_assert_strcmp_idx(str_c(str), cases[i].line, i);
		error = NULL;
		test_assert_idx(deltapush_protocol_parse_request(
			line_split(str), &parsed, &error) == 0, i);
		test_assert_idx(parsed.type == cases[i].request.type, i);
		test_assert_strcmp_idx(parsed.user, cases[i].request.user, i);
		test_assert_strcmp_idx(parsed.token, cases[i].request.token, i);
		test_assert_idx(parsed.last_seen ==
				cases[i].request.last_seen, i);
	}
	test_end();
}

static void test_deltapush_protocol_parse_invalid(void)
{
	static const char *const cases[][5] = {
		/* Empty line */
		{ NULL },
		/* Unknown commands: exact, case-sensitive names only */
		{ "", NULL },
		{ "", "u", NULL },
		{ "HELLO", "u", NULL },
		{ "register", "u", "t", NULL },
		{ "List", "u", NULL },
		{ "REGISTER ", "u", "t", NULL },
		{ "NOTIFYX", "u", NULL },
		{ "OK", "1", NULL },
		{ "VERSION", "deltapush", "1", "0", NULL },
		/* Wrong parameter counts */
		{ "REGISTER", NULL },
		{ "REGISTER", "u", NULL },
		{ "REGISTER", "u", "t", "x", NULL },
		{ "GET", NULL },
		{ "GET", "u", "t", NULL },
		{ "GET", "u", "t", "x", NULL },
		{ "FORGET", NULL },
		{ "FORGET", "u", "t", "x", NULL },
		{ "IMPORT", "u", "t", NULL },
		{ "IMPORT", "u", "t", "-1", NULL },
		{ "IMPORT", "u", "t", "x", NULL },
		{ "LIST", NULL },
		{ "FLUSH", "u", "x", NULL },
		{ "FLUSH", "", NULL },
		{ "STATUS", "u", NULL },
		{ "NOTIFY", NULL },
		{ "NOTIFY", "u", "t", NULL },
		{ "NOTIFY", "u", "", NULL },
		/* Empty user */
		{ "REGISTER", "", "t", NULL },
		{ "GET", "", NULL },
		{ "FORGET", "", NULL },
		{ "NOTIFY", "", NULL },
	};
	struct deltapush_request parsed;
	const char *error;
	unsigned int i;

	test_begin("deltapush protocol parse invalid requests");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		error = NULL;
		test_assert_idx(deltapush_protocol_parse_request(
			cases[i], &parsed, &error) == -1, i);
		test_assert_idx(error != NULL && error[0] != '\0', i);
	}
	test_end();
}

static void test_deltapush_protocol_invalid_lines(void)
{
	/* Raw lines (without LF) a peer might send */
	static const char *const lines[] = {
		"",
		"\t",
		"GET",
		"GET\t",
		"GET\tu\t",
		"FORGET\t\t",
		"REGISTER\tu",
		"REGISTER\t\tt",
		"REGISTER\tu\tt\t",
		"GET u",
	};
	struct deltapush_request parsed;
	const char *error;
	unsigned int i;

	test_begin("deltapush protocol parse invalid lines");
	for (i = 0; i < N_ELEMENTS(lines); i++) {
		error = NULL;
		test_assert_idx(deltapush_protocol_parse_request(
			t_strsplit_tabescaped(lines[i]), &parsed,
			&error) == -1, i);
		test_assert_idx(error != NULL && error[0] != '\0', i);
	}
	test_end();
}

static void
test_reply_roundtrip(const char *status, const char *const *fields,
		     unsigned int idx)
{
	string_t *line = t_str_new(256);
	const char *const *args;
	unsigned int i, count = fields == NULL ? 0 : str_array_length(fields);

	deltapush_protocol_append_reply(line, status, fields);
	test_assert_idx(line_is_wellformed(line, count + 1), idx);

	args = line_split(line);
	test_assert_idx(str_array_length(args) == count + 1, idx);
	if (str_array_length(args) != count + 1)
		return;
	test_assert_strcmp_idx(args[0], status, idx);
	for (i = 0; i < count; i++)
		test_assert_strcmp_idx(args[i + 1], fields[i], idx);
}

static void test_deltapush_protocol_reply_roundtrip(void)
{
	static const char *const no_fields[] = { NULL };
	static const char *const one[] = { "1", NULL };
	static const char *const zero[] = { "0", NULL };
	static const char *const tokens[] = {
		"openpgp:first", "second\twith tab", "third\nwith lf",
		"\\", "\001", "ends in cr\r", NULL
	};
	static const char *const reason[] = {
		"Database error:\n\tdisk full\r\n", NULL
	};
	/* Empty fields keep their place */
	static const char *const empty[] = { "", "a", "", NULL };
	static const struct {
		const char *status;
		const char *const *fields;
	} cases[] = {
		{ DELTAPUSH_PROTOCOL_REPLY_OK, NULL },
		{ DELTAPUSH_PROTOCOL_REPLY_OK, no_fields },
		{ DELTAPUSH_PROTOCOL_REPLY_OK, one },
		{ DELTAPUSH_PROTOCOL_REPLY_OK, zero },
		{ DELTAPUSH_PROTOCOL_REPLY_OK, tokens },
		{ DELTAPUSH_PROTOCOL_REPLY_FAIL, reason },
		{ DELTAPUSH_PROTOCOL_REPLY_OK, empty },
		{ DELTAPUSH_PROTOCOL_REPLY_OK, protocol_values },
	};
	string_t *str;
	unsigned int i;

	test_begin("deltapush protocol reply round trip");
	for (i = 0; i < N_ELEMENTS(cases); i++) T_BEGIN {
		test_reply_roundtrip(cases[i].status, cases[i].fields, i);
	} T_END;

	/* Each value on its own, as a one-token GET reply */
	for (i = 0; i < PROTOCOL_VALUES_COUNT; i++) T_BEGIN {
		const char *fields[] = { protocol_values[i], NULL };

		test_reply_roundtrip(DELTAPUSH_PROTOCOL_REPLY_OK, fields,
				     100 + i);
	} T_END;

	/* An empty GET is just the status */
	str = t_str_new(32);
	deltapush_protocol_append_reply(str, DELTAPUSH_PROTOCOL_REPLY_OK,
					NULL);
	test_assert_strcmp(str_c(str), "OK\n");
	str_truncate(str, 0);
	deltapush_protocol_append_reply(str, DELTAPUSH_PROTOCOL_REPLY_OK,
					tokens);
	test_assert_strcmp(str_c(str), "OK\topenpgp:first\tsecond\001twith tab"
			   "\tthird\001nwith lf\t\\\t\0011\tends in cr\001r\n");
	test_end();
}

static void test_deltapush_protocol_max_line(void)
{
	struct deltapush_request request;
	const char *tokens[DELTAPUSH_TOKENS_MAX_PER_USER + 1];
	string_t *line;
	char *token;
	unsigned int i;

	test_begin("deltapush protocol longest line fits");
	/* The biggest reply there is: a GET of the most tokens a user can
	   have, each as long as allowed. Valid tokens need no escaping. */
	token = t_malloc0(DELTAPUSH_TOKEN_MAX_SIZE + 1);
	memset(token, '~', DELTAPUSH_TOKEN_MAX_SIZE);
	for (i = 0; i < DELTAPUSH_TOKENS_MAX_PER_USER; i++)
		tokens[i] = token;
	tokens[i] = NULL;
	line = t_str_new(DELTAPUSH_PROTOCOL_MAX_LINE_SIZE);
	deltapush_protocol_append_reply(line, DELTAPUSH_PROTOCOL_REPLY_OK,
					tokens);
	test_assert(str_len(line) <= DELTAPUSH_PROTOCOL_MAX_LINE_SIZE);

	/* A REGISTER with the longest token and a long user name too */
	i_zero(&request);
	request.type = DELTAPUSH_REQUEST_REGISTER;
	request.user = t_strndup(token, 255);
	request.token = token;
	str_truncate(line, 0);
	deltapush_protocol_append_request(line, &request);
	test_assert(str_len(line) <= DELTAPUSH_PROTOCOL_MAX_LINE_SIZE);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_deltapush_protocol_request_exact,
		test_deltapush_protocol_request_roundtrip,
		test_deltapush_protocol_request_all_bytes,
		test_deltapush_protocol_request_stream,
		test_deltapush_protocol_parse_valid,
		test_deltapush_protocol_admin_requests,
		test_deltapush_protocol_parse_invalid,
		test_deltapush_protocol_invalid_lines,
		test_deltapush_protocol_reply_roundtrip,
		test_deltapush_protocol_max_line,
		NULL
	};
	return test_run(test_functions);
}
