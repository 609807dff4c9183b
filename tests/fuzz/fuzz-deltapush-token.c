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

static void fuzz_token_id(const char *token)
{
	const char *id = deltapush_token_id(token);

	/* what reaches the log: a fixed-length hex id, never the token */
	if (!deltapush_token_id_is_valid(id))
		i_panic("token id is not %d hex digits: %s",
			DELTAPUSH_TOKEN_ID_LEN, id);
	if (strcmp(deltapush_token_id(token), id) != 0)
		i_panic("token id is not stable");
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
		fuzz_token_id(t_strndup(data, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	deltapush_fuzz_init();
	T_BEGIN {
		fuzz_token(data, size);
	} T_END;
	return 0;
}
