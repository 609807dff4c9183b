/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "fuzz-deltapush.h"
#include "deltapush-token.h"
#include "deltapush-chatmail.h"

#include <math.h>
#include <stdlib.h>

/* A chatmail relay's metadata.json files, read by doveadm deltapush
   import-chatmail: the tokens in them came from IMAP clients. Two modes:

     N<number>   the number is put in {"devicetoken":{"t":<number>}} and
                 the last seen time read from it is checked against
                 strtold(), where long double is exact enough
     <anything>  parsed as a file: a failure leaves the caller's array as
                 it was and gives a reason; on success every entry is
                 consistent (a token or an error, each token once, times
                 in range) and deltapush_chatmail_token_check() agrees
                 with the rules written out here

   Either way the input, as a C string, also goes through
   deltapush_chatmail_user_is_valid(), checked against its rule. */

#define FUZZ_TIME_MAX 999999999999999999LL
#define FUZZ_NOW ((time_t)1700000000)
#define FUZZ_TTL (90 * 24 * 3600U)
#define FUZZ_LIST_LAST_SEEN ((time_t)1690000000)

static void fuzz_chatmail_user(const char *name)
{
	const char *at = strrchr(name, '@'), *p;
	bool expected = at != NULL && at != name && at[1] != '\0';

	for (p = name; *p != '\0'; p++) {
		unsigned char c = *p;

		if (c <= 0x20 || c == 0x7f || c == '/')
			expected = FALSE;
	}
	if (deltapush_chatmail_user_is_valid(name) != expected)
		i_panic("user name validity differs from the rule");
}

static void fuzz_chatmail_check_entry(const struct deltapush_chatmail_token *t)
{
	enum deltapush_chatmail_token_status status, expected;
	const char *error = NULL, *token_error;

	if (t->index == 0)
		i_panic("entry without a position");
	if (t->token == NULL && t->error == NULL)
		i_panic("entry with neither token nor error");
	if (t->last_seen < 0 || t->last_seen > FUZZ_TIME_MAX)
		i_panic("last seen %lld out of range", (long long)t->last_seen);

	if (t->error != NULL)
		expected = DELTAPUSH_CHATMAIL_TOKEN_INVALID;
	else if (!deltapush_token_is_valid((const unsigned char *)t->token,
					   strlen(t->token), &token_error))
		expected = DELTAPUSH_CHATMAIL_TOKEN_INVALID;
	else if (t->last_seen >= FUZZ_NOW + 60)
		expected = DELTAPUSH_CHATMAIL_TOKEN_FUTURE;
	else if (t->last_seen < FUZZ_NOW - (time_t)FUZZ_TTL)
		expected = DELTAPUSH_CHATMAIL_TOKEN_EXPIRED;
	else
		expected = DELTAPUSH_CHATMAIL_TOKEN_OK;
	status = deltapush_chatmail_token_check(t, FUZZ_NOW, FUZZ_TTL, &error);
	if (status != expected)
		i_panic("token check says %d, expected %d", status, expected);
	if ((status == DELTAPUSH_CHATMAIL_TOKEN_INVALID ||
	     status == DELTAPUSH_CHATMAIL_TOKEN_FUTURE) &&
	    (error == NULL || error[0] == '\0'))
		i_panic("token refused without a reason");
}

/* Parses data after a sentinel entry. Returns FALSE when it failed, else
   TRUE with the entries it added. */
static bool
fuzz_chatmail_parse(const unsigned char *data, size_t size,
		    const struct deltapush_chatmail_token **entries_r,
		    unsigned int *count_r)
{
	ARRAY_TYPE(deltapush_chatmail_token) tokens;
	struct deltapush_chatmail_token *sentinel;
	const char *error = NULL;
	unsigned int count;
	int ret;

	t_array_init(&tokens, 8);
	sentinel = array_append_space(&tokens);
	sentinel->index = 12345;
	sentinel->token = "sentinel";
	ret = deltapush_chatmail_parse(data, size, FUZZ_LIST_LAST_SEEN,
				       pool_datastack_create(), &tokens,
				       &error);
	sentinel = array_idx_modifiable(&tokens, 0);
	if (sentinel->index != 12345 || strcmp(sentinel->token, "sentinel") != 0)
		i_panic("the caller's entries were changed");
	count = array_count(&tokens);
	if (ret < 0) {
		if (error == NULL || error[0] == '\0')
			i_panic("file refused without a reason");
		if (count != 1)
			i_panic("a failed parse left %u entries", count - 1);
		return FALSE;
	}
	*count_r = count - 1;
	*entries_r = array_front(&tokens) + 1;
	return TRUE;
}

static void fuzz_chatmail_file(const unsigned char *data, size_t size)
{
	const struct deltapush_chatmail_token *entries;
	unsigned int i, j, count;

	if (!fuzz_chatmail_parse(data, size, &entries, &count))
		return;
	for (i = 0; i < count; i++) {
		fuzz_chatmail_check_entry(&entries[i]);
		if (entries[i].error != NULL || entries[i].token == NULL)
			continue;
		for (j = 0; j < i; j++) {
			if (entries[j].error == NULL &&
			    entries[j].token != NULL &&
			    strcmp(entries[j].token, entries[i].token) == 0)
				i_panic("token appended twice");
		}
	}
}

static void fuzz_chatmail_number(const char *number)
{
	const struct deltapush_chatmail_token *entries;
	const char *json;
	long double value, floor_value, frac;
	long long expected;
	unsigned int count;
	char *end;

	/* only number characters, or the JSON around it could change */
	if (number[0] == '\0' ||
	    number[strspn(number, "-+0123456789.eE")] != '\0')
		return;
	json = t_strdup_printf("{\"devicetoken\":{\"t\":%s}}", number);
	if (!fuzz_chatmail_parse((const unsigned char *)json, strlen(json),
				 &entries, &count) ||
	    count != 1 || entries[0].error != NULL)
		return;
	/* the JSON parser took it as a number: strtold() must too */
	value = strtold(number, &end);
	if (end == number)
		i_panic("%s is no number to strtold()", number);
	if (!(value > 0)) {
		expected = 0;
	} else if (value >= (long double)FUZZ_TIME_MAX) {
		/* at the clamp, or rounded onto it */
		if (entries[0].last_seen < FUZZ_TIME_MAX - 1)
			i_panic("%s read as %lld, expected the maximum", number,
				(long long)entries[0].last_seen);
		return;
	} else {
		floor_value = floorl(value);
		frac = value - floor_value;
		/* where long double cannot tell, allow its rounding */
		if (value > 1e15L || frac < 1e-6L || frac > 1 - 1e-6L) {
			if (llabs((long long)floor_value -
				  (long long)entries[0].last_seen) > 1)
				i_panic("%s read as %lld, expected about %lld",
					number, (long long)entries[0].last_seen,
					(long long)floor_value);
			return;
		}
		expected = (long long)floor_value;
	}
	if (entries[0].last_seen != expected) {
		i_panic("%s read as %lld, expected %lld", number,
			(long long)entries[0].last_seen, expected);
	}
}

static void fuzz_chatmail(const unsigned char *data, size_t size)
{
	const char *str = t_strndup(data, size);

	fuzz_chatmail_user(str);
	if (size > 0 && data[0] == 'N')
		fuzz_chatmail_number(str + 1);
	else
		fuzz_chatmail_file(data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	deltapush_fuzz_init();
	T_BEGIN {
		fuzz_chatmail(data, size);
	} T_END;
	return 0;
}
