/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "test-common.h"
#include "deltapush-token.h"

/* UTF-8 of the ellipsis the log prefix ends with */

struct token_case {
	const char *data;
	size_t size;
	bool valid;
};

/* Tokens given as explicit byte arrays so NUL and 8-bit bytes can be
   tested; size is what the IMAP literal would carry. */
static const struct token_case token_cases[] = {
	/* Real-looking tokens */
	{ "openpgp:wcBMA8Jd5mXZ8dd8AQf/Xr0ZZ+Aq/xy=", 40, TRUE },
	{ "0123456789abcdef", 16, TRUE },
	/* Boundaries of the printable range */
	{ "!", 1, TRUE },
	{ "~", 1, TRUE },
	{ "!~", 2, TRUE },
	/* Quotes and backslashes are printable, but Delta Chat never sends
	   them: refused as hostile */
	{ "\"", 1, FALSE },
	{ "\\", 1, FALSE },
	{ "a\"b\\c", 5, FALSE },
	{ "abc\\", 4, FALSE },
	/* Rejected */
	{ "", 0, FALSE },
	{ " ", 1, FALSE },
	{ "ab cd", 5, FALSE },
	{ "abcd ", 5, FALSE },
	{ " abcd", 5, FALSE },
	{ "ab\tcd", 5, FALSE },
	{ "ab\rcd", 5, FALSE },
	{ "ab\ncd", 5, FALSE },
	{ "abcd\r\n", 6, FALSE },
	{ "ab\0cd", 5, FALSE },
	{ "\0", 1, FALSE },
	{ "ab\x7f" "cd", 5, FALSE },
	{ "ab\x1f" "cd", 5, FALSE },
	{ "ab\x01" "cd", 5, FALSE },
	{ "ab\x80" "cd", 5, FALSE },
	{ "ab\xff" "cd", 5, FALSE },
	{ "caf\xc3\xa9", 5, FALSE },
};

static void test_deltapush_token_is_valid(void)
{
	const char *error;
	unsigned int i;
	bool valid;

	test_begin("deltapush token is_valid");
	for (i = 0; i < N_ELEMENTS(token_cases); i++) {
		const struct token_case *c = &token_cases[i];

		error = NULL;
		valid = deltapush_token_is_valid(
			(const unsigned char *)c->data, c->size, &error);
		test_assert_idx(valid == c->valid, i);
		if (!c->valid) {
			test_assert_idx(error != NULL && error[0] != '\0', i);
		}
	}
	test_end();
}

static void test_deltapush_token_every_byte(void)
{
	unsigned char buf[3];
	const char *error;
	unsigned int c;
	bool valid;

	test_begin("deltapush token every byte value");
	/* Each byte alone and in the middle of an otherwise valid token */
	for (c = 0; c < 256; c++) {
		bool expected = c >= 0x21 && c <= 0x7e &&
			c != '"' && c != '\\';

		buf[0] = c;
		error = NULL;
		valid = deltapush_token_is_valid(buf, 1, &error);
		test_assert_idx(valid == expected, c);
		test_assert_idx(expected || (error != NULL && *error != '\0'),
				c);

		buf[0] = 'a'; buf[1] = c; buf[2] = 'z';
		error = NULL;
		valid = deltapush_token_is_valid(buf, 3, &error);
		test_assert_idx(valid == expected, c);
		test_assert_idx(expected || (error != NULL && *error != '\0'),
				c);
	}
	test_end();
}

static void test_deltapush_token_size(void)
{
	static const struct {
		size_t size;
		bool valid;
	} sizes[] = {
		{ 1, TRUE },
		{ 2, TRUE },
		{ DELTAPUSH_TOKEN_MAX_SIZE - 1, TRUE },
		{ DELTAPUSH_TOKEN_MAX_SIZE, TRUE },
		{ DELTAPUSH_TOKEN_MAX_SIZE + 1, FALSE },
		{ DELTAPUSH_TOKEN_MAX_SIZE * 2, FALSE },
	};
	unsigned char *buf;
	const char *error;
	unsigned int i;
	bool valid;

	test_begin("deltapush token size limits");
	test_assert(DELTAPUSH_TOKEN_MAX_SIZE == 4096);
	buf = i_malloc(DELTAPUSH_TOKEN_MAX_SIZE * 2);
	memset(buf, 'A', DELTAPUSH_TOKEN_MAX_SIZE * 2);
	for (i = 0; i < N_ELEMENTS(sizes); i++) {
		error = NULL;
		valid = deltapush_token_is_valid(buf, sizes[i].size, &error);
		test_assert_idx(valid == sizes[i].valid, i);
		if (!sizes[i].valid)
			test_assert_idx(error != NULL && *error != '\0', i);
	}
	/* An invalid byte at the very end of a maximum-size token is still
	   found, and only the given size is looked at. */
	buf[DELTAPUSH_TOKEN_MAX_SIZE - 1] = ' ';
	test_assert(!deltapush_token_is_valid(buf, DELTAPUSH_TOKEN_MAX_SIZE,
					      &error));
	test_assert(deltapush_token_is_valid(buf, DELTAPUSH_TOKEN_MAX_SIZE - 1,
					     &error));
	i_free(buf);
	test_end();
}

static void test_deltapush_token_error_text(void)
{
	static const struct {
		const char *data;
		size_t size;
	} cases[] = {
		{ "", 0 },
		{ "a b", 3 },
		{ "a\0b", 3 },
		{ "a\x80" "b", 3 },
		{ "a\x7f" "b", 3 },
	};
	const char *errors[N_ELEMENTS(cases)];
	unsigned int i;

	test_begin("deltapush token error texts");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		errors[i] = NULL;
		test_assert_idx(!deltapush_token_is_valid(
			(const unsigned char *)cases[i].data, cases[i].size,
			&errors[i]), i);
		test_assert_idx(errors[i] != NULL && errors[i][0] != '\0', i);
		if (errors[i] == NULL)
			errors[i] = "";
		/* The reason is readable text: the raw bad byte never
		   reaches the IMAP reply or the log */
		test_assert_idx(strchr(errors[i], '\x80') == NULL &&
				strchr(errors[i], '\x7f') == NULL, i);
	}
	/* An empty token and a bad byte are told apart */
	test_assert(strcmp(errors[0], errors[1]) != 0);
	test_end();
}

static void test_deltapush_token_id(void)
{
	/* Two Delta Chat tokens: the same OpenPGP header, different ids */
	static const char *const tokens[] = {
		"openpgp:wcBMA8Jd5mXZAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"openpgp:wcBMA8Jd5mXZAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
		"x",
	};
	const char *id, *ids[N_ELEMENTS(tokens)];
	unsigned int i, j;

	test_begin("deltapush token id");
	for (i = 0; i < N_ELEMENTS(tokens); i++) {
		id = deltapush_token_id(tokens[i]);
		ids[i] = t_strdup(id);
		test_assert_idx(strlen(id) == DELTAPUSH_TOKEN_ID_LEN, i);
		test_assert_idx(deltapush_token_id_is_valid(id), i);
		/* Stable, and nothing of the token in it */
		test_assert_idx(strcmp(deltapush_token_id(tokens[i]), id) == 0, i);
		test_assert_idx(strstr(tokens[i], id) == NULL, i);
		for (j = 0; j < i; j++)
			test_assert_idx(strcmp(ids[j], id) != 0, i);
	}
	/* The first 4 bytes of SHA-256("x") */
	test_assert_strcmp(deltapush_token_id("x"), "2d711642");
	test_assert(!deltapush_token_id_is_valid("2d71164"));
	test_assert(!deltapush_token_id_is_valid("2d7116421"));
	test_assert(!deltapush_token_id_is_valid("2d71164g"));
	test_assert(deltapush_token_id_is_valid("2D711642"));
	test_end();
}

static void test_deltapush_token_event_id(void)
{
	struct event *event;
	const char *id;

	test_begin("deltapush token id for an event");
	event = event_create(NULL);
	/* Debug is not wanted: nothing is hashed, nothing added */
	test_assert(deltapush_token_event_id(event, LOG_TYPE_DEBUG,
					     "x") == NULL);
	test_assert(event_find_field_recursive(event, "token") == NULL);
	/* Wanted: the id, in the event too */
	event_set_forced_debug(event, TRUE);
	id = deltapush_token_event_id(event, LOG_TYPE_DEBUG, "x");
	test_assert_strcmp(id, "2d711642");
	test_assert_strcmp(event_find_field_recursive_str(event, "token"),
			   "2d711642");
	event_unref(&event);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_deltapush_token_is_valid,
		test_deltapush_token_every_byte,
		test_deltapush_token_size,
		test_deltapush_token_error_text,
		test_deltapush_token_id,
		test_deltapush_token_event_id,
		NULL
	};
	return test_run(test_functions);
}
