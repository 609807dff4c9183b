/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-compat.h"
#include "array.h"
#include "str.h"
#include "test-common.h"
#include "test-deltapush-common.h"
#include "deltapush-token.h"
#include "deltapush-chatmail.h"

#include <unistd.h>
#include <utime.h>
#include <sys/stat.h>

#define TEST_DIR ".test-deltapush-chatmail"
#define TEST_FILE TEST_DIR "/metadata.json"
/* what the list form's tokens get in the parse tests */
#define TEST_LIST_TIME 1600000000
/* DELTAPUSH_CHATMAIL_TIME_MAX in deltapush-chatmail.c */
#define TEST_TIME_MAX 999999999999999999LL
#define TEST_MAX_ENTRIES 8

struct test_entry {
	unsigned int index;
	const char *token;
	time_t last_seen;
	/* a substring of the entry's error, or NULL for none */
	const char *error;
};

struct test_parse {
	const char *input;
	unsigned int count;
	struct test_entry entries[TEST_MAX_ENTRIES];
};

static void
test_entries_check(const ARRAY_TYPE(deltapush_chatmail_token) *tokens,
		   unsigned int first, const struct test_parse *test,
		   unsigned int idx)
{
	const struct deltapush_chatmail_token *entry;
	const struct test_entry *expected;
	unsigned int i, count;

	entry = array_get(tokens, &count);
	test_assert_idx(count == first + test->count, idx);
	if (count != first + test->count)
		return;
	for (i = 0; i < test->count; i++) {
		expected = &test->entries[i];
		test_assert_idx(entry[first + i].index == expected->index, idx);
		test_assert_strcmp_idx(entry[first + i].token, expected->token,
				       idx);
		test_assert_idx(entry[first + i].last_seen ==
				expected->last_seen, idx);
		if (expected->error == NULL)
			test_assert_idx(entry[first + i].error == NULL, idx);
		else {
			test_assert_idx(entry[first + i].error != NULL &&
					strstr(entry[first + i].error,
					       expected->error) != NULL, idx);
		}
	}
}

static void test_chatmail_parse_valid(void)
{
	static const struct test_parse tests[] = {
		/* the current form: integer and float times */
		{ "{\"devicetoken\": {\"tokA\": 1700000000, "
		  "\"tokB\": 1700000001.75}}", 2,
		  { { 1, "tokA", 1700000000, NULL },
		    { 2, "tokB", 1700000001, NULL } } },
		/* as Python's json.dump writes it */
		{ "{\"devicetoken\": {\"openpgp:wcBMA\\/b+c=\": "
		  "1712345678.123456}}", 1,
		  { { 1, "openpgp:wcBMA/b+c=", 1712345678, NULL } } },
		/* the older list form: the caller's time */
		{ "{\"devicetoken\": [\"t1\", \"t2\"]}", 2,
		  { { 1, "t1", TEST_LIST_TIME, NULL },
		    { 2, "t2", TEST_LIST_TIME, NULL } } },
		/* other keys, before and after, even nested devicetokens */
		{ "{\"other\": {\"devicetoken\": [\"no1\"]}, "
		  "\"list\": [1, {\"devicetoken\": {\"no2\": 1}}, [\"x\"]], "
		  "\"s\": \"devicetoken\", \"n\": null, \"b\": true, "
		  "\"devicetoken\": {\"yes\": 1700000000}, "
		  "\"after\": {\"a\": {\"b\": [{}]}}, \"num\": 1.5e3}", 1,
		  { { 1, "yes", 1700000000, NULL } } },
		/* nothing to import */
		{ "{}", 0, { { 0, NULL, 0, NULL } } },
		{ " \n{ }\n", 0, { { 0, NULL, 0, NULL } } },
		{ "{\"devicetoken\": {}}", 0, { { 0, NULL, 0, NULL } } },
		{ "{\"devicetoken\": []}", 0, { { 0, NULL, 0, NULL } } },
		{ "{\"devicetoken\": null}", 0, { { 0, NULL, 0, NULL } } },
		{ "{\"dict\": {\"tok\": 1}}", 0, { { 0, NULL, 0, NULL } } },
		/* times written every way JSON allows */
		{ "{\"devicetoken\": {\"a\": 1.7e9, \"b\": 1.7000000019E+9, "
		  "\"c\": 17000000009e-1, \"d\": 0.9, \"e\": 0, \"f\": -5, "
		  "\"g\": -0.5, \"h\": 1700000000.0}}", 8,
		  { { 1, "a", 1700000000, NULL },
		    { 2, "b", 1700000001, NULL },
		    { 3, "c", 1700000000, NULL },
		    { 4, "d", 0, NULL },
		    { 5, "e", 0, NULL },
		    { 6, "f", 0, NULL },
		    { 7, "g", 0, NULL },
		    { 8, "h", 1700000000, NULL } } },
		/* absurd times are clamped, not wrapped */
		{ "{\"devicetoken\": {\"a\": 1e999999999999, \"b\": 1e-999, "
		  "\"c\": 0e999, \"d\": 123456789012345678901234, "
		  "\"e\": 999999999999999999, \"f\": 0.00000017e16, "
		  "\"g\": 1e17}}", 7,
		  { { 1, "a", TEST_TIME_MAX, NULL },
		    { 2, "b", 0, NULL },
		    { 3, "c", 0, NULL },
		    { 4, "d", TEST_TIME_MAX, NULL },
		    { 5, "e", TEST_TIME_MAX, NULL },
		    { 6, "f", 1700000000, NULL },
		    { 7, "g", 100000000000000000LL, NULL } } },
		/* many digits and a large negative exponent: the digits
		   count, not just the exponent (found by the fuzzer) */
		{ "{\"devicetoken\": {\"a\": 17"
		  "0000000000000000000000000000000000000000000000000000000000"
		  "0000000000000000000000000000000000000000000000000000000000"
		  "000000000000"
		  "e-120, \"b\": 17000000000000000000000000000000000e-25}}", 2,
		  { { 1, "a", 1700000000, NULL },
		    { 2, "b", 1700000000, NULL } } },
		/* times of the wrong type: reported per entry */
		{ "{\"devicetoken\": {\"a\": \"1700000000\", \"b\": null, "
		  "\"c\": true, \"d\": [1, [2]], \"e\": {\"x\": {\"y\": 1}}, "
		  "\"f\": false, \"g\": 1700000000}}", 7,
		  { { 1, "a", 0, "is a string, not a number" },
		    { 2, "b", 0, "is null, not a number" },
		    { 3, "c", 0, "is a boolean" },
		    { 4, "d", 0, "is a list" },
		    { 5, "e", 0, "is an object" },
		    { 6, "f", 0, "is a boolean" },
		    { 7, "g", 1700000000, NULL } } },
		/* list entries of the wrong type */
		{ "{\"devicetoken\": [\"t1\", 5, {\"a\": [\"b\"]}, [\"c\"], "
		  "null, \"t2\"]}", 6,
		  { { 1, "t1", TEST_LIST_TIME, NULL },
		    { 2, NULL, 0, "is a number, not a token string" },
		    { 3, NULL, 0, "is an object" },
		    { 4, NULL, 0, "is a list" },
		    { 5, NULL, 0, "is null" },
		    { 6, "t2", TEST_LIST_TIME, NULL } } },
		/* duplicates: once, at the latest time */
		{ "{\"devicetoken\": {\"a\": 1700000005, \"b\": 6, "
		  "\"a\": 1700000009, \"a\": 1700000001, \"c\": 7}}", 3,
		  { { 1, "a", 1700000009, NULL },
		    { 2, "b", 6, NULL },
		    { 5, "c", 7, NULL } } },
		{ "{\"devicetoken\": [\"a\", \"b\", \"a\", \"c\"]}", 3,
		  { { 1, "a", TEST_LIST_TIME, NULL },
		    { 2, "b", TEST_LIST_TIME, NULL },
		    { 4, "c", TEST_LIST_TIME, NULL } } },
		/* invalid tokens are parsed; token_check() rejects them */
		{ "{\"devicetoken\": {\"\": 1, \"a b\": 2, \"\\u00e9\": 3}}", 3,
		  { { 1, "", 1, NULL },
		    { 2, "a b", 2, NULL },
		    { 3, "\xc3\xa9", 3, NULL } } },
	};
	ARRAY_TYPE(deltapush_chatmail_token) tokens;
	pool_t pool;
	const char *error;
	unsigned int i;
	int ret;

	test_begin("deltapush_chatmail_parse() valid");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		pool = pool_alloconly_create("test chatmail", 1024);
		t_array_init(&tokens, 4);
		error = NULL;
		ret = deltapush_chatmail_parse(
			(const unsigned char *)tests[i].input,
			strlen(tests[i].input), TEST_LIST_TIME, pool,
			&tokens, &error);
		test_assert_idx(ret == 0, i);
		if (ret < 0)
			i_error("test %u: %s", i, error);
		test_entries_check(&tokens, 0, &tests[i], i);
		pool_unref(&pool);
	} T_END;
	test_end();
}

static void test_chatmail_parse_append(void)
{
	static const struct test_parse second = {
		"{\"devicetoken\": [\"a\", \"b\"]}", 2,
		{ { 1, "a", 7, NULL }, { 2, "b", 7, NULL } }
	};
	static const char first[] = "{\"devicetoken\": {\"a\": 5}}";
	ARRAY_TYPE(deltapush_chatmail_token) tokens;
	const struct deltapush_chatmail_token *entry;
	const char *error;

	test_begin("deltapush_chatmail_parse() appends");
	t_array_init(&tokens, 4);
	test_assert(deltapush_chatmail_parse(
		(const unsigned char *)first, strlen(first), 0,
		pool_datastack_create(), &tokens, &error) == 0);
	/* a second file's tokens are its own: "a" isn't merged into the
	   first file's entry */
	test_assert(deltapush_chatmail_parse(
		(const unsigned char *)second.input, strlen(second.input), 7,
		pool_datastack_create(), &tokens, &error) == 0);
	test_entries_check(&tokens, 1, &second, 0);
	entry = array_front(&tokens);
	test_assert(entry->index == 1 && strcmp(entry->token, "a") == 0 &&
		    entry->last_seen == 5);
	test_end();
}

static void test_chatmail_parse_invalid(void)
{
	static const struct test_invalid_input tests[] = {
		/* not a JSON object */
		TEST_INVALID("", "Invalid JSON"),
		TEST_INVALID(" \n", "Invalid JSON"),
		TEST_INVALID("[]", "Invalid JSON: The document is a list, not an object"),
		TEST_INVALID("[{\"devicetoken\": []}]", "Invalid JSON"),
		TEST_INVALID("\"devicetoken\"", "Invalid JSON"),
		TEST_INVALID("5", "Invalid JSON"),
		TEST_INVALID("null", "Invalid JSON"),
		TEST_INVALID("devicetoken", "Invalid JSON"),
		/* truncated, as by a full disk */
		TEST_INVALID("{", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\"", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": {\"a\": 1}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": {\"a\": 17", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": {\"a\": 1", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": [\"a\"", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": [\"ab", "Invalid JSON"),
		TEST_INVALID("{\"x\": [1, 2", "Invalid JSON"),
		/* syntax */
		TEST_INVALID("{} x", "Invalid JSON"),
		TEST_INVALID("{}{}", "Invalid JSON"),
		TEST_INVALID("{\"a\" 1}", "Invalid JSON"),
		TEST_INVALID("{'devicetoken': []}", "Invalid JSON"),
		TEST_INVALID("{devicetoken: []}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": [\"a\"}}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": {\"a\": 1,}}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": [\"a\",]}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": {\"a\": 01}}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": {\"a\": NaN}}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": {\"a\": 1e}}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": [\"\\x\"]}", "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": [\"a\\u0000b\"]}",
			     "Invalid JSON"),
		TEST_INVALID("{\"devicetoken\": [\"a\0b\"]}", "Invalid JSON"),
		TEST_INVALID("{\"x\": 1, \"devicetoken\": []} ]",
			     "Invalid JSON"),
		/* devicetoken of the wrong type */
		TEST_INVALID("{\"devicetoken\": \"tok\"}",
			     "\"devicetoken\" is a string, not an object"),
		TEST_INVALID("{\"devicetoken\": 1700000000}",
			     "\"devicetoken\" is a number"),
		TEST_INVALID("{\"devicetoken\": true}",
			     "\"devicetoken\" is a boolean"),
		TEST_INVALID("{\"devicetoken\": [], \"devicetoken\": 5}",
			     "\"devicetoken\" is a number"),
		/* reported even when the rest is broken too */
		TEST_INVALID("{\"devicetoken\": \"tok\"",
			     "\"devicetoken\" is a string"),
	};
	ARRAY_TYPE(deltapush_chatmail_token) tokens;
	struct deltapush_chatmail_token *entry;
	const char *error;
	unsigned int i;

	test_begin("deltapush_chatmail_parse() invalid");
	t_array_init(&tokens, 4);
	entry = array_append_space(&tokens);
	entry->index = 1;
	entry->token = "earlier";
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		error = NULL;
		test_assert_idx(deltapush_chatmail_parse(
			(const unsigned char *)tests[i].input,
			tests[i].size, TEST_LIST_TIME,
			pool_datastack_create(), &tokens, &error) == -1, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].error) != NULL, i);
		if (error != NULL && strstr(error, tests[i].error) == NULL)
			i_error("test %u: unexpected error: %s", i, error);
		/* nothing of a rejected file is kept, and nothing before */
		test_assert_idx(array_count(&tokens) == 1, i);
		entry = array_idx_modifiable(&tokens, 0);
		test_assert_strcmp_idx(entry->token, "earlier", i);
	} T_END;
	test_end();
}

static void test_chatmail_read(void)
{
	static const char object_form[] =
		"{\"devicetoken\": {\"tokA\": 1700000000.5}}";
	static const char list_form[] = "{\"devicetoken\": [\"tokL\"]}";
	static const char malformed[] = "{\"devicetoken\": [\"tokL\"";
	ARRAY_TYPE(deltapush_chatmail_token) tokens;
	const struct deltapush_chatmail_token *entry;
	struct utimbuf times;
	const char *error;
	char *big;
	size_t big_size = DELTAPUSH_CHATMAIL_MAX_FILE_SIZE + 1;
	pool_t pool;

	test_begin("deltapush_chatmail_read()");
	if (mkdir(TEST_DIR, 0700) < 0 && errno != EEXIST)
		i_fatal("mkdir(%s) failed: %m", TEST_DIR);
	pool = pool_alloconly_create("test chatmail", 1024);
	t_array_init(&tokens, 4);

	/* no file: nothing to import, not an error */
	i_unlink_if_exists(TEST_FILE);
	test_assert(deltapush_chatmail_read(TEST_FILE, pool, &tokens,
					    &error) == 0);
	test_assert(array_count(&tokens) == 0);

	/* the object form keeps its own times */
	test_file_write(TEST_FILE, object_form, sizeof(object_form) - 1);
	times.actime = times.modtime = 1650000000;
	if (utime(TEST_FILE, &times) < 0)
		i_fatal("utime(%s) failed: %m", TEST_FILE);
	test_assert(deltapush_chatmail_read(TEST_FILE, pool, &tokens,
					    &error) == 1);
	test_assert(array_count(&tokens) == 1);
	entry = array_back(&tokens);
	test_assert_strcmp(entry->token, "tokA");
	test_assert(entry->last_seen == 1700000000);

	/* the list form gets the file's mtime */
	test_file_write(TEST_FILE, list_form, sizeof(list_form) - 1);
	if (utime(TEST_FILE, &times) < 0)
		i_fatal("utime(%s) failed: %m", TEST_FILE);
	test_assert(deltapush_chatmail_read(TEST_FILE, pool, &tokens,
					    &error) == 1);
	test_assert(array_count(&tokens) == 2);
	entry = array_back(&tokens);
	test_assert_strcmp(entry->token, "tokL");
	test_assert(entry->last_seen == 1650000000);

	/* errors name the file */
	test_file_write(TEST_FILE, malformed, sizeof(malformed) - 1);
	error = NULL;
	test_assert(deltapush_chatmail_read(TEST_FILE, pool, &tokens,
					    &error) == -1);
	test_assert(error != NULL && str_begins_with(error, TEST_FILE ": ") &&
		    strstr(error, "Invalid JSON") != NULL);
	test_assert(array_count(&tokens) == 2);

	/* an oversized file isn't read */
	big = i_malloc(big_size);
	memset(big, ' ', big_size);
	memcpy(big, list_form, sizeof(list_form) - 1);
	test_file_write(TEST_FILE, big, big_size);
	i_free(big);
	error = NULL;
	test_assert(deltapush_chatmail_read(TEST_FILE, pool, &tokens,
					    &error) == -1);
	test_assert(error != NULL && strstr(error, "too large") != NULL &&
		    strstr(error, TEST_FILE) != NULL);
	test_assert(array_count(&tokens) == 2);
	/* not a file */
	i_unlink(TEST_FILE);
	if (mkdir(TEST_FILE, 0700) < 0)
		i_fatal("mkdir(%s) failed: %m", TEST_FILE);
	error = NULL;
	test_assert(deltapush_chatmail_read(TEST_FILE, pool, &tokens,
					    &error) == -1);
	test_assert(error != NULL && strstr(error, TEST_FILE) != NULL);
	test_assert(array_count(&tokens) == 2);
	if (rmdir(TEST_FILE) < 0)
		i_fatal("rmdir(%s) failed: %m", TEST_FILE);

	if (rmdir(TEST_DIR) < 0)
		i_fatal("rmdir(%s) failed: %m", TEST_DIR);
	pool_unref(&pool);
	test_end();
}

static void test_chatmail_read_max_size(void)
{
	static const char list_form[] = "{\"devicetoken\": [\"tokM\"]}";
	size_t size = DELTAPUSH_CHATMAIL_MAX_FILE_SIZE;
	ARRAY_TYPE(deltapush_chatmail_token) tokens;
	const struct deltapush_chatmail_token *entry;
	const char *error = NULL;
	char *data;
	int ret;

	test_begin("deltapush_chatmail_read() at the size limit");
	if (mkdir(TEST_DIR, 0700) < 0 && errno != EEXIST)
		i_fatal("mkdir(%s) failed: %m", TEST_DIR);
	/* whitespace padding is valid JSON */
	data = i_malloc(size);
	memset(data, '\n', size);
	memcpy(data, list_form, sizeof(list_form) - 1);
	test_file_write(TEST_FILE, data, size);
	i_free(data);
	t_array_init(&tokens, 4);
	ret = deltapush_chatmail_read(TEST_FILE, pool_datastack_create(),
				      &tokens, &error);
	test_assert(ret == 1);
	if (ret < 0)
		i_error("%s", error);
	test_assert(array_count(&tokens) == 1);
	if (array_count(&tokens) == 1) {
		entry = array_idx(&tokens, 0);
		test_assert_strcmp(entry->token, "tokM");
	}
	i_unlink(TEST_FILE);
	if (rmdir(TEST_DIR) < 0)
		i_fatal("rmdir(%s) failed: %m", TEST_DIR);
	test_end();
}

static void test_chatmail_token_check(void)
{
	const time_t now = 1700000000;
	const unsigned int ttl = 90 * 24 * 3600;
	/* one byte too long, and the longest accepted */
	char *long_token = t_malloc0(DELTAPUSH_TOKEN_MAX_SIZE + 2);
	const char *max_token = long_token + 1;
	const struct {
		const char *token;
		time_t last_seen;
		const char *entry_error;
		enum deltapush_chatmail_token_status status;
		/* a substring of error_r */
		const char *error;
	} tests[] = {
		{ "openpgp:abc", now, NULL, DELTAPUSH_CHATMAIL_TOKEN_OK, NULL },
		{ "tok", now - 3600, NULL, DELTAPUSH_CHATMAIL_TOKEN_OK, NULL },
		/* the TTL: seen exactly ttl ago is still kept */
		{ "tok", now - ttl, NULL, DELTAPUSH_CHATMAIL_TOKEN_OK, NULL },
		{ "tok", now - ttl - 1, NULL,
		  DELTAPUSH_CHATMAIL_TOKEN_EXPIRED, NULL },
		{ "tok", 0, NULL, DELTAPUSH_CHATMAIL_TOKEN_EXPIRED, NULL },
		/* the future: less than 60 s ahead is clock skew */
		{ "tok", now + 59, NULL, DELTAPUSH_CHATMAIL_TOKEN_OK, NULL },
		{ "tok", now + 60, NULL, DELTAPUSH_CHATMAIL_TOKEN_FUTURE,
		  "60 seconds in the future" },
		{ "tok", TEST_TIME_MAX, NULL,
		  DELTAPUSH_CHATMAIL_TOKEN_FUTURE, "in the future" },
		/* the entry itself was unusable */
		{ NULL, 0, "List entry is a number, not a token string",
		  DELTAPUSH_CHATMAIL_TOKEN_INVALID, "List entry is a number" },
		{ "tok", 0, "Last seen time is a string, not a number",
		  DELTAPUSH_CHATMAIL_TOKEN_INVALID, "Last seen time is a str" },
		/* tokens deltapush doesn't accept, however recent */
		{ "", now, NULL, DELTAPUSH_CHATMAIL_TOKEN_INVALID, "empty" },
		{ "a b", now, NULL, DELTAPUSH_CHATMAIL_TOKEN_INVALID,
		  "invalid byte 0x20" },
		{ "\xc3\xa9", now, NULL, DELTAPUSH_CHATMAIL_TOKEN_INVALID,
		  "invalid byte 0xc3" },
		{ long_token, now, NULL, DELTAPUSH_CHATMAIL_TOKEN_INVALID,
		  "too long" },
		/* invalid wins over expired */
		{ "a\tb", 0, NULL, DELTAPUSH_CHATMAIL_TOKEN_INVALID,
		  "invalid byte 0x09" },
		{ max_token, now, NULL, DELTAPUSH_CHATMAIL_TOKEN_OK, NULL },
	};
	struct deltapush_chatmail_token token;
	enum deltapush_chatmail_token_status status;
	const char *error;
	unsigned int i;

	memset(long_token, 'x', DELTAPUSH_TOKEN_MAX_SIZE + 1);

	test_begin("deltapush_chatmail_token_check()");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		i_zero(&token);
		token.index = i + 1;
		token.token = tests[i].token;
		token.last_seen = tests[i].last_seen;
		token.error = tests[i].entry_error;
		error = NULL;
		status = deltapush_chatmail_token_check(&token, now, ttl,
							&error);
		test_assert_idx(status == tests[i].status, i);
		if (tests[i].error != NULL) {
			test_assert_idx(error != NULL &&
					strstr(error, tests[i].error) != NULL,
					i);
		}
	}
	test_end();
}

static void test_chatmail_user_is_valid(void)
{
	static const struct {
		const char *name;
		bool valid;
	} tests[] = {
		{ "alice@example.org", TRUE },
		{ "a@b", TRUE },
		{ "x7k2p9@c.example.org", TRUE },
		{ "first.last+tag@sub.example.org", TRUE },
		{ "\xc3\xa9@example.org", TRUE },
		{ "odd@local@example.org", TRUE },
		{ "", FALSE },
		{ ".", FALSE },
		{ "..", FALSE },
		{ "example.org", FALSE },
		{ "@example.org", FALSE },
		{ "alice@", FALSE },
		{ "@", FALSE },
		{ "al ice@example.org", FALSE },
		{ "alice@example.org\n", FALSE },
		{ "alice\t@example.org", FALSE },
		{ "alice@exa\x7fmple.org", FALSE },
		{ "../alice@example.org", FALSE },
	};
	unsigned int i;

	test_begin("deltapush_chatmail_user_is_valid()");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_assert_idx(deltapush_chatmail_user_is_valid(
			tests[i].name) == tests[i].valid, i);
	}
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_chatmail_parse_valid,
		test_chatmail_parse_append,
		test_chatmail_parse_invalid,
		test_chatmail_read,
		test_chatmail_read_max_size,
		test_chatmail_token_check,
		test_chatmail_user_is_valid,
		NULL
	};
	return test_run(test_functions);
}
