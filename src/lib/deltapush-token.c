/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-token.h"

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

const char *deltapush_token_log_prefix(const char *token)
{
	if (strlen(token) <= DELTAPUSH_TOKEN_LOG_PREFIX_LEN)
		return t_strdup_printf("%.*s…", DELTAPUSH_TOKEN_LOG_PREFIX_LEN / 2,
				       token);
	return t_strdup_printf("%.*s…", DELTAPUSH_TOKEN_LOG_PREFIX_LEN, token);
}
