/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-common.h"
#include "str.h"
#include "base64.h"
#include "hmac.h"
#include "sha1.h"
#include "safe-memset.h"
#include "deltapush-turn.h"


/* A shared secret is one short line; anything bigger is the wrong file. */
#define DELTAPUSH_TURN_SECRET_MAX_SIZE 4096

const char *deltapush_turn_password(const unsigned char *secret,
				    size_t secret_size, const char *username)
{
	struct hmac_context ctx;
	unsigned char digest[SHA1_RESULTLEN];
	string_t *str;

	i_assert(hash_method_sha1.digest_size == sizeof(digest));

	hmac_init(&ctx, secret, secret_size, &hash_method_sha1);
	hmac_update(&ctx, username, strlen(username));
	hmac_final(&ctx, digest);
	/* the context holds key-derived state */
	safe_memset(&ctx, 0, sizeof(ctx));

	str = t_str_new(MAX_BASE64_ENCODED_SIZE(sizeof(digest)) + 1);
	base64_encode(digest, sizeof(digest), str);
	return str_c(str);
}

const char *deltapush_turn_value(const char *server,
				 const unsigned char *secret,
				 size_t secret_size, time_t now,
				 unsigned int ttl_secs)
{
	time_t expiry = now + ttl_secs;
	const char *username;

	/* The client uses the expiry as its TURN username, and the TURN
	   server recomputes the password from that username. */
	username = t_strdup_printf("%lld", (long long)expiry);
	return t_strdup_printf("%s:%s:%s", server, username,
			       deltapush_turn_password(secret, secret_size,
						       username));
}

static int
deltapush_turn_parse_secret(const char *path, const unsigned char *data,
			    size_t size, pool_t pool, const char **secret_r,
			    const char **error_r)
{
	/* None of the errors below may quote the content: it is the
	   secret, or part of it. */
	if (size > DELTAPUSH_TURN_SECRET_MAX_SIZE) {
		*error_r = t_strdup_printf(
			"TURN secret file %s is too large (max %u bytes)",
			path, DELTAPUSH_TURN_SECRET_MAX_SIZE);
		return -1;
	}
	if (memchr(data, '\0', size) != NULL) {
		/* the secret is passed around as a C string */
		*error_r = t_strdup_printf(
			"TURN secret file %s contains a NUL byte", path);
		return -1;
	}
	/* Editors add a final newline; it is not part of the secret that
	   the TURN server has in its static-auth-secret. */
	while (size > 0 && (data[size-1] == '\n' || data[size-1] == '\r'))
		size--;
	if (size == 0) {
		*error_r = t_strdup_printf("TURN secret file %s is empty",
					   path);
		return -1;
	}
	*secret_r = p_strndup(pool, data, size);
	return 0;
}

int deltapush_turn_read_secret(const char *path, pool_t pool,
			       const char **secret_r, const char **error_r)
{
	/* one byte more than allowed, to notice an oversized file */
	unsigned char buf[DELTAPUSH_TURN_SECRET_MAX_SIZE + 1];
	size_t size;
	int ret;

	ret = deltapush_read_file(path, buf, sizeof(buf), &size, NULL,
				  error_r);
	if (ret <= 0)
		ret = -1;
	else {
		ret = deltapush_turn_parse_secret(path, buf, size, pool,
						  secret_r, error_r);
	}
	safe_memset(buf, 0, sizeof(buf));
	return ret;
}
