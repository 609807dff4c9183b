/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-compat.h"
#include "str.h"
#include "test-common.h"
#include "test-deltapush-common.h"
#include "deltapush-appversions.h"

#include <unistd.h>

#define TEST_JSON_PATH ".test-deltapush-appversions.json"
#define TEST_MISSING_PATH ".test-deltapush-appversions-missing"
/* DELTAPUSH_APPVERSIONS_MAX_SIZE in deltapush-appversions.c */
#define TEST_JSON_MAX_SIZE (64 * 1024)
/* what dest holds before the call: appended to, restored on error */
#define TEST_PREFIX "prefix="

static void test_appversions_compact_valid(void)
{
	static const struct {
		const char *input;
		const char *output;
	} tests[] = {
		/* pretty-printed, with every kind of JSON whitespace */
		{ "{\n"
		  "  \"android\": {\n"
		  "    \"latest\": \"1.50.0\",\n"
		  "    \"min\": \"1.40.0\"\n"
		  "  },\r\n"
		  "\t\"ios\" : [ 1, 2.5, -3e10 ],\n"
		  "  \"beta\": true, \"none\": null,\n"
		  "  \"off\": false\n"
		  "}\n",
		  "{\"android\":{\"latest\":\"1.50.0\",\"min\":\"1.40.0\"},"
		  "\"ios\":[1,2.5,-3e10],\"beta\":true,\"none\":null,"
		  "\"off\":false}" },
		/* nesting, empty containers */
		{ "[ [ ], { }, [ [ 1 ], { \"a\" : [ { } , [ ] ] } ], [[[]]] ]",
		  "[[],{},[[1],{\"a\":[{},[]]}],[[[]]]]" },
		{ "{\"a\":{\"b\":{\"c\":[{\"d\":[1,{\"e\":{}}]}]}},\"f\":2}",
		  "{\"a\":{\"b\":{\"c\":[{\"d\":[1,{\"e\":{}}]}]}},\"f\":2}" },
		/* string escapes: the value survives, in canonical form */
		{ "[\"q\\\"b\\\\s\\nl\\tt\\rr\\bb\\ff\"]",
		  "[\"q\\\"b\\\\s\\nl\\tt\\rr\\bb\\ff\"]" },
		{ "[ \"\\u00e9 \xc3\xa9 \\u00E9\" ]",
		  "[\"\xc3\xa9 \xc3\xa9 \xc3\xa9\"]" },
		{ "\"\\ud83d\\ude00 \xf0\x9f\x98\x80 \\u20ac \\/\"",
		  "\"\xf0\x9f\x98\x80 \xf0\x9f\x98\x80 \xe2\x82\xac /\"" },
		{ "[\"\\u0001\\u001f\"]", "[\"\\u0001\\u001f\"]" },
		{ "{ \"k\\\"e\\ny\" : \"v\" , \"\" : \"\" }",
		  "{\"k\\\"e\\ny\":\"v\",\"\":\"\"}" },
		/* whitespace inside strings is content */
		{ "{ \"a b\" : \"  c\\td \" }", "{\"a b\":\"  c\\td \"}" },
		/* numbers as written, not re-formatted */
		{ "[ -0, 0, -12.50, 1E+2, 1e-7, 3.0e0, 12345678901234567890 ]",
		  "[-0,0,-12.50,1E+2,1e-7,3.0e0,12345678901234567890]" },
		/* any value may be the document */
		{ " \"x\" ", "\"x\"" },
		{ "42\n", "42" },
		{ "-1.5e+10", "-1.5e+10" },
		{ "\nnull\n", "null" },
		{ "true", "true" },
	};
	string_t *dest = t_str_new(256);
	const char *error;
	unsigned int i;
	int ret;

	test_begin("deltapush_appversions_compact() valid");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		str_truncate(dest, 0);
		str_append(dest, TEST_PREFIX);
		error = NULL;
		ret = deltapush_appversions_compact(
			(const unsigned char *)tests[i].input,
			strlen(tests[i].input), dest, &error);
		test_assert_idx(ret == 0, i);
		if (ret < 0)
			i_error("test %u: %s", i, error);
		test_assert_strcmp_idx(str_c(dest), t_strconcat(
			TEST_PREFIX, tests[i].output, NULL), i);
		test_assert_idx(strchr(str_c(dest), '\n') == NULL &&
				strchr(str_c(dest), '\r') == NULL, i);

		/* compact output is a fixed point */
		str_truncate(dest, 0);
		test_assert_idx(deltapush_appversions_compact(
			(const unsigned char *)tests[i].output,
			strlen(tests[i].output), dest, &error) == 0, i);
		test_assert_strcmp_idx(str_c(dest), tests[i].output, i);
	}
	test_end();
}

static void test_appversions_compact_invalid(void)
{
	static const struct test_invalid_input tests[] = {
		TEST_INVALID("", "JSON is empty"),
		TEST_INVALID(" \r\n\t \n", "JSON is empty"),
		/* trailing garbage */
		TEST_INVALID("{\"a\":1} x", "Invalid JSON"),
		TEST_INVALID("[1] [2]", "Invalid JSON"),
		TEST_INVALID("{\"a\":1}}", "Invalid JSON"),
		TEST_INVALID("\"a\" \"b\"", "Invalid JSON"),
		TEST_INVALID("42 x", "Invalid JSON"),
		TEST_INVALID("truex", "Invalid JSON"),
		TEST_INVALID("[1] // comment", "Invalid JSON"),
		/* structure */
		TEST_INVALID("{\"a\":1,}", "Invalid JSON"),
		TEST_INVALID("[1,]", "Invalid JSON"),
		TEST_INVALID("[,1]", "Invalid JSON"),
		TEST_INVALID("{\"a\" 1}", "Invalid JSON"),
		TEST_INVALID("{\"a\":}", "Invalid JSON"),
		TEST_INVALID("{a:1}", "Invalid JSON"),
		TEST_INVALID("{'a':1}", "Invalid JSON"),
		TEST_INVALID("[1 2]", "Invalid JSON"),
		TEST_INVALID("[1}", "Invalid JSON"),
		TEST_INVALID("{\"a\":1 /* c */}", "Invalid JSON"),
		TEST_INVALID("\xef\xbb\xbf{}", "Invalid JSON"),
		/* truncated */
		TEST_INVALID("[", "Invalid JSON"),
		TEST_INVALID("{", "Invalid JSON"),
		TEST_INVALID("[1", "Invalid JSON"),
		TEST_INVALID("{\"a\":[1,2]", "Invalid JSON"),
		TEST_INVALID("[\"abc", "Invalid JSON"),
		TEST_INVALID("\"abc", "Invalid JSON"),
		TEST_INVALID("1.", "Invalid JSON"),
		TEST_INVALID("-", "Invalid JSON"),
		TEST_INVALID("1e", "Invalid JSON"),
		TEST_INVALID("nul", "Invalid JSON"),
		/* numbers and atoms */
		TEST_INVALID("[01]", "Invalid JSON"),
		TEST_INVALID("[.5]", "Invalid JSON"),
		TEST_INVALID("[+1]", "Invalid JSON"),
		TEST_INVALID("[1.e5]", "Invalid JSON"),
		TEST_INVALID("[1e]", "Invalid JSON"),
		TEST_INVALID("[NaN]", "Invalid JSON"),
		TEST_INVALID("[Infinity]", "Invalid JSON"),
		TEST_INVALID("[True]", "Invalid JSON"),
		/* strings */
		TEST_INVALID("[\"\\x\"]", "Invalid JSON"),
		TEST_INVALID("[\"\\u00zz\"]", "Invalid JSON"),
		TEST_INVALID("[\"\\u0000\"]", "Invalid JSON"),
		TEST_INVALID("[\"\\ud800\"]", "Invalid JSON"),
		TEST_INVALID("[\"\\ude00\"]", "Invalid JSON"),
		TEST_INVALID("[\"a\nb\"]", "unescaped control character 0x0a"),
		TEST_INVALID("[\n\"a\tb\"]",
			     "unescaped control character 0x09 at line 2"),
		TEST_INVALID("[\"a\x01\"]", "unescaped control character 0x01"),
		TEST_INVALID("[\"\\\"\x1f\"]",
			     "unescaped control character 0x1f"),
		TEST_INVALID("[\"\xc3\x28\"]", "not valid UTF-8"),
		TEST_INVALID("[\"\xff\"]", "not valid UTF-8"),
		/* NUL bytes anywhere */
		TEST_INVALID("[\"a\0b\"]", "NUL byte at line 1"),
		TEST_INVALID("[1]\n\0", "NUL byte at line 2"),
		TEST_INVALID("\0", "NUL byte"),
		TEST_INVALID("[1\x01]", "Invalid JSON"),
	};
	string_t *dest = t_str_new(256);
	const char *error;
	unsigned int i;

	test_begin("deltapush_appversions_compact() invalid");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		str_truncate(dest, 0);
		str_append(dest, TEST_PREFIX);
		error = NULL;
		test_assert_idx(deltapush_appversions_compact(
			(const unsigned char *)tests[i].input,
			tests[i].size, dest, &error) == -1, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].error) != NULL, i);
		if (error != NULL && strstr(error, tests[i].error) == NULL)
			i_error("test %u: unexpected error: %s", i, error);
		/* nothing of a rejected document is left behind */
		test_assert_strcmp_idx(str_c(dest), TEST_PREFIX, i);
	}
	test_end();
}

static void test_appversions_read(void)
{
	static const char pretty[] =
		"{\n"
		"  \"versions\": [\n"
		"    { \"platform\": \"android\", \"version\": \"1.50.0\" },\n"
		"    { \"platform\": \"ios\", \"version\": \"1.50.1\" }\n"
		"  ],\n"
		"  \"note\": \"caf\xc3\xa9\\nbar\"\n"
		"}\n";
	pool_t pool = pool_alloconly_create("test appversions", 1024);
	const char *json, *error;
	int ret;

	test_begin("deltapush_appversions_read()");
	test_file_write(TEST_JSON_PATH, pretty, sizeof(pretty) - 1);
	json = NULL;
	ret = deltapush_appversions_read(TEST_JSON_PATH, pool, &json, &error);
	test_assert(ret == 0);
	if (ret == 0) {
		test_assert_strcmp(json,
			"{\"versions\":[{\"platform\":\"android\","
			"\"version\":\"1.50.0\"},{\"platform\":\"ios\","
			"\"version\":\"1.50.1\"}],"
			"\"note\":\"caf\xc3\xa9\\nbar\"}");
	}

	/* errors name the file */
	test_file_write(TEST_JSON_PATH, "", 0);
	error = NULL;
	test_assert(deltapush_appversions_read(TEST_JSON_PATH, pool,
					       &json, &error) == -1);
	test_assert(error != NULL &&
		    strstr(error, TEST_JSON_PATH) != NULL &&
		    strstr(error, "JSON is empty") != NULL);

	test_file_write(TEST_JSON_PATH, "{\"a\":1}\n{\"b\":2}\n", 16);
	error = NULL;
	test_assert(deltapush_appversions_read(TEST_JSON_PATH, pool,
					       &json, &error) == -1);
	test_assert(error != NULL &&
		    strstr(error, TEST_JSON_PATH) != NULL &&
		    strstr(error, "Invalid JSON") != NULL);
	i_unlink(TEST_JSON_PATH);

	i_unlink_if_exists(TEST_MISSING_PATH);
	error = NULL;
	test_assert(deltapush_appversions_read(TEST_MISSING_PATH, pool,
					       &json, &error) == -1);
	test_assert(error != NULL &&
		    strstr(error, "open(" TEST_MISSING_PATH ")") != NULL &&
		    strstr(error, "No such file") != NULL);

	/* a directory opens fine but can't be read */
	error = NULL;
	test_assert(deltapush_appversions_read(".", pool, &json, &error) == -1);
	test_assert(error != NULL && str_begins_with(error, "read(.) failed"));

	pool_unref(&pool);
	test_end();
}

static void test_appversions_read_size_limit(void)
{
	pool_t pool = pool_alloconly_create("test appversions", 1024);
	const char *json, *error;
	char *data;
	int ret;

	test_begin("deltapush_appversions_read() size limit");
	/* valid JSON padded with whitespace to exactly the limit */
	data = t_malloc_no0(TEST_JSON_MAX_SIZE + 1);
	memset(data, ' ', TEST_JSON_MAX_SIZE + 1);
	memcpy(data, "[1,", 3);
	memcpy(data + TEST_JSON_MAX_SIZE - 3, "2]\n", 3);
	test_file_write(TEST_JSON_PATH, data, TEST_JSON_MAX_SIZE);
	json = NULL;
	ret = deltapush_appversions_read(TEST_JSON_PATH, pool, &json, &error);
	test_assert(ret == 0);
	if (ret == 0)
		test_assert_strcmp(json, "[1,2]");

	/* one byte more is refused, although it's valid JSON */
	memcpy(data + TEST_JSON_MAX_SIZE - 3, " 2]\n", 4);
	test_file_write(TEST_JSON_PATH, data, TEST_JSON_MAX_SIZE + 1);
	error = NULL;
	test_assert(deltapush_appversions_read(TEST_JSON_PATH, pool,
					       &json, &error) == -1);
	test_assert(error != NULL &&
		    strstr(error, TEST_JSON_PATH) != NULL &&
		    strstr(error, "too large") != NULL);
	i_unlink(TEST_JSON_PATH);

	pool_unref(&pool);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_appversions_compact_valid,
		test_appversions_compact_invalid,
		test_appversions_read,
		test_appversions_read_size_limit,
		NULL
	};
	return test_run(test_functions);
}
