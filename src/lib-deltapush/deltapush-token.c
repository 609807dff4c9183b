/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "hash-method.h"
#include "event-log.h"
#include "hex-binary.h"
#include "deltapush-token.h"

#include <ctype.h>

bool deltapush_token_is_valid(const unsigned char *data, size_t size,
			      const char **error_r)
{
	size_t i;

	if (size == 0) {
		*error_r = "Push token is empty";
		return FALSE;
	}
	if (size > DELTAPUSH_TOKEN_MAX_SIZE) {
		*error_r = t_strdup_printf(
			"Push token is too long (max %u bytes)",
			DELTAPUSH_TOKEN_MAX_SIZE);
		return FALSE;
	}
	for (i = 0; i < size; i++) {
		/* Tokens are opaque base64 or hex strings: anything outside
		   visible ASCII is a client bug or an attack, and spaces
		   would break the space-joined GETMETADATA value. */
		if (data[i] < 0x21 || data[i] > 0x7e) {
			*error_r = t_strdup_printf(
				"Push token contains an invalid byte 0x%02x "
				"at offset %zu (only printable ASCII without "
				"spaces is allowed)", data[i], i);
			return FALSE;
		}
		/* Delta Chat never sends these (it refuses such tokens
		   itself), so they only come from broken or hostile
		   clients. */
		if (data[i] == '"' || data[i] == '\\') {
			*error_r = t_strdup_printf(
				"Push token contains '%c' at offset %zu "
				"(not allowed in tokens)", data[i], i);
			return FALSE;
		}
	}
	return TRUE;
}

const char *deltapush_token_id(const char *token)
{
	const struct hash_method *sha256 = hash_method_lookup("sha256");
	unsigned char digest[32];

	/* Every Delta Chat token starts with the same OpenPGP header, so
	   only a hash tells devices apart. */
	i_assert(sha256 != NULL && sha256->digest_size == sizeof(digest));
	hash_method_get_digest(sha256, token, strlen(token), digest);
	return binary_to_hex(digest, DELTAPUSH_TOKEN_ID_LEN / 2);
}

bool deltapush_token_id_is_valid(const char *str)
{
	size_t i;

	if (strlen(str) != DELTAPUSH_TOKEN_ID_LEN)
		return FALSE;
	for (i = 0; i < DELTAPUSH_TOKEN_ID_LEN; i++) {
		if (!i_isxdigit(str[i]))
			return FALSE;
	}
	return TRUE;
}

const char *deltapush_token_event_id(struct event *event,
				     enum log_type level, const char *token)
{
	const char *id;

	if (!event_want_level(event, level))
		return NULL;
	id = deltapush_token_id(token);
	event_add_str(event, "token", id);
	return id;
}
