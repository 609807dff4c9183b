/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "base64.h"
#include "sha1.h"
#include "fuzz-deltapush.h"
#include "deltapush-turn.h"

#include <stdlib.h>
#include <unistd.h>

/* The TURN secret file and the value built from it. The input is

     <8 bytes now> <4 bytes ttl> <1 byte n> <n bytes server> <file content>

   Oracles: the file is accepted exactly when the rule (at most 4096
   bytes, no NUL, something left after removing trailing CR/LF) says so,
   the secret is the content without trailing CR/LF, errors are the fixed
   messages that never quote the content, and the value is
   "<server>:<now+ttl>:<base64 HMAC-SHA1>" with the HMAC computed here
   independently from the SHA-1 primitive. */

#define FUZZ_TURN_SECRET_MAX 4096
#define FUZZ_SHA1_BLOCK 64

static int fuzz_turn_fd = -1;
static const char *fuzz_turn_path;

static void fuzz_turn_hmac_sha1(const unsigned char *key, size_t key_size,
				const char *msg,
				unsigned char digest_r[SHA1_RESULTLEN])
{
	unsigned char block[FUZZ_SHA1_BLOCK], inner[SHA1_RESULTLEN];
	struct sha1_ctxt ctx;
	unsigned int i;

	memset(block, 0, sizeof(block));
	if (key_size > FUZZ_SHA1_BLOCK)
		sha1_get_digest(key, key_size, block);
	else
		memcpy(block, key, key_size);

	for (i = 0; i < FUZZ_SHA1_BLOCK; i++)
		block[i] ^= 0x36;
	sha1_init(&ctx);
	sha1_loop(&ctx, block, sizeof(block));
	sha1_loop(&ctx, msg, strlen(msg));
	sha1_result(&ctx, inner);

	for (i = 0; i < FUZZ_SHA1_BLOCK; i++)
		block[i] ^= 0x36 ^ 0x5c;
	sha1_init(&ctx);
	sha1_loop(&ctx, block, sizeof(block));
	sha1_loop(&ctx, inner, sizeof(inner));
	sha1_result(&ctx, digest_r);
}

static void fuzz_turn_write_file(const unsigned char *data, size_t size)
{
	const char *tmpdir;
	char *template;

	if (fuzz_turn_fd == -1) {
		/* unlinked at once: the file is reached through /proc, and
		   nothing is left behind however the fuzzer exits */
		tmpdir = getenv("TMPDIR");
		template = i_strdup_printf("%s/fuzz-turn-XXXXXX",
			tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
		fuzz_turn_fd = mkstemp(template);
		if (fuzz_turn_fd == -1)
			i_fatal("mkstemp(%s) failed: %m", template);
		i_unlink(template);
		i_free(template);
		fuzz_turn_path = i_strdup_printf("/proc/self/fd/%d",
						 fuzz_turn_fd);
	}
	if (ftruncate(fuzz_turn_fd, 0) < 0)
		i_fatal("ftruncate() failed: %m");
	if (size > 0 && pwrite(fuzz_turn_fd, data, size, 0) != (ssize_t)size)
		i_fatal("pwrite() failed: %m");
}

/* The expected error, or NULL if the file should be accepted; sets
   secret_size_r to the secret's length. */
static const char *
fuzz_turn_expected(const unsigned char *data, size_t size,
		   size_t *secret_size_r)
{
	if (size > FUZZ_TURN_SECRET_MAX) {
		return t_strdup_printf(
			"TURN secret file %s is too large (max %u bytes)",
			fuzz_turn_path, FUZZ_TURN_SECRET_MAX);
	}
	if (memchr(data, '\0', size) != NULL) {
		return t_strdup_printf(
			"TURN secret file %s contains a NUL byte",
			fuzz_turn_path);
	}
	while (size > 0 && (data[size-1] == '\r' || data[size-1] == '\n'))
		size--;
	if (size == 0) {
		return t_strdup_printf("TURN secret file %s is empty",
				       fuzz_turn_path);
	}
	*secret_size_r = size;
	return NULL;
}

static void fuzz_turn_check_value(const char *server, const char *secret,
				  time_t now, unsigned int ttl)
{
	unsigned char digest[SHA1_RESULTLEN];
	const char *value, *username, *expected;
	string_t *password = t_str_new(64);

	value = deltapush_turn_value(server, (const unsigned char *)secret,
				     strlen(secret), now, ttl);
	username = t_strdup_printf("%lld", (long long)now + ttl);
	fuzz_turn_hmac_sha1((const unsigned char *)secret, strlen(secret),
			    username, digest);
	base64_encode(digest, sizeof(digest), password);
	expected = t_strdup_printf("%s:%s:%s", server, username,
				   str_c(password));
	if (strcmp(value, expected) != 0)
		i_panic("TURN value %s, expected %s", value, expected);
}

static void fuzz_turn(const unsigned char *data, size_t size)
{
	uint64_t now = 0;
	uint32_t ttl = 0;
	size_t server_len, secret_size = 0;
	const char *server = "", *secret = NULL, *error = NULL, *expected;
	pool_t pool;
	int ret;

	if (size >= 13) {
		memcpy(&now, data, sizeof(now));
		memcpy(&ttl, data + 8, sizeof(ttl));
		server_len = I_MIN(data[12], size - 13);
		server = t_strndup(data + 13, server_len);
		data += 13 + server_len;
		size -= 13 + server_len;
	}
	/* a unix time the service can see: ioloop_time, not year 10^12 */
	now %= (1ULL << 40);

	fuzz_turn_write_file(data, size);
	expected = fuzz_turn_expected(data, size, &secret_size);

	pool = pool_alloconly_create("fuzz turn", 8192);
	ret = deltapush_turn_read_secret(fuzz_turn_path, pool, &secret,
					 &error);
	if (expected != NULL) {
		if (ret >= 0)
			i_panic("secret file accepted, expected: %s", expected);
		if (strcmp(error, expected) != 0)
			i_panic("error '%s', expected '%s'", error, expected);
	} else {
		if (ret < 0)
			i_panic("secret file rejected: %s", error);
		if (strlen(secret) != secret_size ||
		    memcmp(secret, data, secret_size) != 0)
			i_panic("secret differs from the file content");
		fuzz_turn_check_value(server, secret, (time_t)now, ttl);
	}
	pool_unref(&pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	deltapush_fuzz_init();
	T_BEGIN {
		fuzz_turn(data, size);
	} T_END;
	return 0;
}
