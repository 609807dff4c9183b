/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-compat.h"
#include "str.h"
#include "buffer.h"
#include "base64.h"
#include "hex-binary.h"
#include "test-common.h"
#include "test-deltapush-common.h"
#include "deltapush-turn.h"

#include <unistd.h>

#define TEST_SECRET_PATH ".test-deltapush-turn-secret"
#define TEST_MISSING_PATH ".test-deltapush-turn-missing"
/* DELTAPUSH_TURN_SECRET_MAX_SIZE in deltapush-turn.c */
#define TEST_SECRET_MAX_SIZE 4096
/* put into every rejected file: it must never show up in an error */
#define TEST_SECRET_MARK "SeCrEtMaRk"

/* A key or message of the RFC: either text, or a byte repeated. */
struct test_hmac_input {
	const char *text;
	unsigned char byte;
	size_t repeat;
};

static const unsigned char *
test_hmac_input_get(const struct test_hmac_input *input, size_t *size_r)
{
	unsigned char *data;

	if (input->text != NULL) {
		*size_r = strlen(input->text);
		return (const unsigned char *)input->text;
	}
	/* NUL-terminated, as the username is a C string */
	data = t_malloc0(input->repeat + 1);
	memset(data, input->byte, input->repeat);
	*size_r = input->repeat;
	return data;
}

static void test_turn_password_rfc2202(void)
{
	/* RFC 2202 section 3, test cases 1-7 for HMAC-SHA1 */
	static const struct {
		struct test_hmac_input key, data;
		const char *digest_hex;
	} tests[] = {
		{ { NULL, 0x0b, 20 }, { "Hi There", 0, 0 },
		  "b617318655057264e28bc0b6fb378c8ef146be00" },
		{ { "Jefe", 0, 0 }, { "what do ya want for nothing?", 0, 0 },
		  "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
		{ { NULL, 0xaa, 20 }, { NULL, 0xdd, 50 },
		  "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
		{ { "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d"
		    "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19", 0, 0 },
		  { NULL, 0xcd, 50 },
		  "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
		{ { NULL, 0x0c, 20 }, { "Test With Truncation", 0, 0 },
		  "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04" },
		{ { NULL, 0xaa, 80 },
		  { "Test Using Larger Than Block-Size Key - Hash Key First",
		    0, 0 },
		  "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
		{ { NULL, 0xaa, 80 },
		  { "Test Using Larger Than Block-Size Key and Larger "
		    "Than One Block-Size Data", 0, 0 },
		  "e8e99d0f45237d786d6bbaa7965c7808bbff1a91" },
	};
	const unsigned char *key, *data;
	size_t key_size, data_size;
	buffer_t *digest;
	string_t *expected;
	unsigned int i;

	test_begin("deltapush_turn_password() RFC 2202 vectors");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		key = test_hmac_input_get(&tests[i].key, &key_size);
		data = test_hmac_input_get(&tests[i].data, &data_size);
		test_assert_idx(strlen((const char *)data) == data_size, i);

		digest = t_buffer_create(20);
		test_assert_idx(hex_to_binary(tests[i].digest_hex,
					      digest) == 0, i);
		test_assert_idx(digest->used == 20, i);
		expected = t_str_new(32);
		base64_encode(digest->data, digest->used, expected);

		test_assert_strcmp_idx(
			deltapush_turn_password(key, key_size,
						(const char *)data),
			str_c(expected), i);
	} T_END;
	test_end();
}

static void test_turn_password(void)
{
	const unsigned char *secret = (const unsigned char *)"north";

	test_begin("deltapush_turn_password()");
	/* base64 written out rather than computed with base64_encode():
	   RFC 2202 cases 1 and 2 */
	test_assert_strcmp(deltapush_turn_password(
		(const unsigned char *)"\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"
		"\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b", 20,
		"Hi There"), "thcxhlUFcmTii8C2+zeMjvFGvgA=");
	test_assert_strcmp(deltapush_turn_password(
		(const unsigned char *)"Jefe", 4,
		"what do ya want for nothing?"),
		"7/zfauXrL6LSdBbV8YTfnCWafHk=");
	/* what coturn checks for username 1700086400 and
	   static-auth-secret=north */
	test_assert_strcmp(deltapush_turn_password(secret, 5, "1700086400"),
			   "K+RlgFj3QLvB7WAVHfjfgMgyBeA=");
	/* secret_size is honoured: the secret is not a C string */
	test_assert_strcmp(deltapush_turn_password(secret, 4, "1700086400"),
			   deltapush_turn_password((const unsigned char *)
						   "nort", 4, "1700086400"));
	test_assert(strcmp(deltapush_turn_password(secret, 4, "1700086400"),
			   deltapush_turn_password(secret, 5,
						   "1700086400")) != 0);
	test_end();
}

static void test_turn_value(void)
{
	const unsigned char *secret = (const unsigned char *)"north";
	const char *value;

	test_begin("deltapush_turn_value()");
	/* expiry = now + ttl, and the password belongs to that expiry */
	value = deltapush_turn_value("turn.example.org:3478", secret, 5,
				     1700000000, 86400);
	test_assert_strcmp(value, "turn.example.org:3478:1700086400:"
			   "K+RlgFj3QLvB7WAVHfjfgMgyBeA=");

	value = deltapush_turn_value("192.0.2.1:3478", secret, 5,
				     1700000000, 0);
	test_assert_strcmp(value, t_strconcat(
		"192.0.2.1:3478:1700000000:",
		deltapush_turn_password(secret, 5, "1700000000"), NULL));

	/* a different secret gives a different password */
	value = deltapush_turn_value("turn.example.org:3478",
				     (const unsigned char *)"south", 5,
				     1700000000, 86400);
	test_assert(str_begins_with(value, "turn.example.org:3478:1700086400:"));
	test_assert(strcmp(value, "turn.example.org:3478:1700086400:"
			   "K+RlgFj3QLvB7WAVHfjfgMgyBeA=") != 0);
	test_end();
}

static void test_turn_read_secret_ok(void)
{
	static const struct {
		const char *content;
		const char *secret;
	} tests[] = {
		{ "s3cret", "s3cret" },
		{ "s3cret\n", "s3cret" },
		{ "s3cret\r\n", "s3cret" },
		{ "s3cret\n\r\n\n", "s3cret" },
		/* only CR/LF is stripped, at the end only */
		{ " s3 cr\tet \n", " s3 cr\tet " },
		{ "s3\ncret\n", "s3\ncret" },
	};
	pool_t pool = pool_alloconly_create("test turn secret", 1024);
	const char *secret, *error;
	unsigned int i;
	char *big;
	int ret;

	test_begin("deltapush_turn_read_secret() valid");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_file_write(TEST_SECRET_PATH, tests[i].content,
				strlen(tests[i].content));
		secret = NULL;
		ret = deltapush_turn_read_secret(TEST_SECRET_PATH, pool,
						 &secret, &error);
		test_assert_idx(ret == 0, i);
		if (ret == 0)
			test_assert_strcmp_idx(secret, tests[i].secret, i);
	}

	/* exactly at the size limit */
	big = t_malloc_no0(TEST_SECRET_MAX_SIZE);
	memset(big, 'k', TEST_SECRET_MAX_SIZE);
	test_file_write(TEST_SECRET_PATH, big, TEST_SECRET_MAX_SIZE);
	secret = NULL;
	ret = deltapush_turn_read_secret(TEST_SECRET_PATH, pool,
					 &secret, &error);
	test_assert(ret == 0);
	if (ret == 0) {
		test_assert(strlen(secret) == TEST_SECRET_MAX_SIZE);
		test_assert(strspn(secret, "k") == TEST_SECRET_MAX_SIZE);
	}

	i_unlink(TEST_SECRET_PATH);
	pool_unref(&pool);
	test_end();
}

static void test_turn_read_secret_invalid(void)
{
	static const struct {
		const char *content;
		size_t size;
		const char *error;
	} tests[] = {
		{ "", 0, "is empty" },
		{ "\n", 1, "is empty" },
		{ "\r\n\r\n", 4, "is empty" },
		{ TEST_SECRET_MARK "\0x\n", sizeof(TEST_SECRET_MARK) + 2,
		  "NUL byte" },
	};
	pool_t pool = pool_alloconly_create("test turn secret", 1024);
	const char *secret, *error;
	string_t *big;
	unsigned int i;

	test_begin("deltapush_turn_read_secret() invalid");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_file_write(TEST_SECRET_PATH, tests[i].content,
				tests[i].size);
		error = NULL;
		test_assert_idx(deltapush_turn_read_secret(
			TEST_SECRET_PATH, pool, &secret, &error) == -1, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].error) != NULL &&
				strstr(error, TEST_SECRET_PATH) != NULL &&
				strstr(error, TEST_SECRET_MARK) == NULL, i);
	}

	/* one byte over the limit, even if it's only the newline */
	big = t_str_new(TEST_SECRET_MAX_SIZE + 16);
	while (str_len(big) < TEST_SECRET_MAX_SIZE)
		str_append(big, TEST_SECRET_MARK);
	str_truncate(big, TEST_SECRET_MAX_SIZE);
	str_append_c(big, '\n');
	test_file_write(TEST_SECRET_PATH, str_data(big), str_len(big));
	error = NULL;
	test_assert(deltapush_turn_read_secret(TEST_SECRET_PATH, pool,
					       &secret, &error) == -1);
	test_assert(error != NULL && strstr(error, "too large") != NULL &&
		    strstr(error, TEST_SECRET_PATH) != NULL &&
		    strstr(error, TEST_SECRET_MARK) == NULL);
	i_unlink(TEST_SECRET_PATH);

	/* missing file */
	i_unlink_if_exists(TEST_MISSING_PATH);
	error = NULL;
	test_assert(deltapush_turn_read_secret(TEST_MISSING_PATH, pool,
					       &secret, &error) == -1);
	test_assert(error != NULL &&
		    strstr(error, "open(" TEST_MISSING_PATH ")") != NULL &&
		    strstr(error, "No such file") != NULL);

	/* a directory opens fine but can't be read */
	error = NULL;
	test_assert(deltapush_turn_read_secret(".", pool,
					       &secret, &error) == -1);
	test_assert(error != NULL && str_begins_with(error, "read(.) failed"));

	pool_unref(&pool);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_turn_password_rfc2202,
		test_turn_password,
		test_turn_value,
		test_turn_read_secret_ok,
		test_turn_read_secret_invalid,
		NULL
	};
	return test_run(test_functions);
}
