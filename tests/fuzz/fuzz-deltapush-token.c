/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "fuzz-deltapush.h"
#include "deltapush-token.h"

/* Token validation decides what reaches the database and the proxy: check
   it against the rule written out independently (1..4096 bytes of
   0x21..0x7e other than '"' and backslash), and that a rejection always comes
   with a reason. */

static bool fuzz_token_expected(const unsigned char *data, size_t size)
{
	size_t i;

	if (size == 0 || size > DELTAPUSH_TOKEN_MAX_SIZE)
		return FALSE;
	for (i = 0; i < size; i++) {
		if (data[i] < 0x21 || data[i] > 0x7e ||
		    data[i] == '"' || data[i] == '\\')
			return FALSE;
	}
	return TRUE;
}

static void fuzz_token_log_prefix(const char *token)
{
	const char *prefix = deltapush_token_log_prefix(token);
	size_t prefix_len = strlen(prefix), ellipsis_len = strlen("…");

	/* what reaches the log: at most DELTAPUSH_TOKEN_LOG_PREFIX_LEN
	   leading bytes of the token and an ellipsis */
	if (prefix_len < ellipsis_len ||
	    strcmp(prefix + prefix_len - ellipsis_len, "…") != 0)
		i_panic("log prefix lacks the ellipsis: %s", prefix);
	prefix_len -= ellipsis_len;
	if (prefix_len > DELTAPUSH_TOKEN_LOG_PREFIX_LEN)
		i_panic("log prefix is %zu bytes long", prefix_len);
	if (strncmp(prefix, token, prefix_len) != 0)
		i_panic("log prefix is not a prefix of the token");
}

static void fuzz_token(const unsigned char *data, size_t size)
{
	const char *error = NULL;
	bool valid, expected;

	expected = fuzz_token_expected(data, size);
	valid = deltapush_token_is_valid(data, size, &error);
	if (valid != expected) {
		i_panic("deltapush_token_is_valid() returned %d for %zu bytes, "
			"expected %d", valid, size, expected);
	}
	if (!valid && (error == NULL || error[0] == '\0'))
		i_panic("token rejected without a reason");
	if (valid)
		fuzz_token_log_prefix(t_strndup(data, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	deltapush_fuzz_init();
	T_BEGIN {
		fuzz_token(data, size);
	} T_END;
	return 0;
}
