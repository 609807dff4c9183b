/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "unichar.h"
#include "fuzz-deltapush.h"
#include "deltapush-appversions.h"

/* The appversions file is operator input, but its output goes verbatim to
   every Delta Chat client as a METADATA value, so it must be one line of
   compact JSON whatever the file holds. Oracles: accepted output has no
   LF, CR, NUL or whitespace outside strings, is valid UTF-8, and compacts
   to itself; a rejection leaves dest as it was and gives a reason. */

#define FUZZ_DEST_PREFIX "prefix:"

static void fuzz_appversions_check_compact(const string_t *json)
{
	const unsigned char *data = str_data(json);
	size_t i, size = str_len(json);
	bool in_string = FALSE, escaped = FALSE;

	if (size == 0)
		i_panic("accepted JSON compacted to nothing");
	for (i = 0; i < size; i++) {
		unsigned char c = data[i];

		if (c == '\0' || c == '\n' || c == '\r')
			i_panic("compact JSON has byte 0x%02x at %zu", c, i);
		if (in_string) {
			if (c < 0x20)
				i_panic("control byte 0x%02x in a string", c);
			if (escaped)
				escaped = FALSE;
			else if (c == '\\')
				escaped = TRUE;
			else if (c == '"')
				in_string = FALSE;
		} else if (c == '"') {
			in_string = TRUE;
		} else if (c == ' ' || c == '\t') {
			i_panic("whitespace outside a string at %zu", i);
		}
	}
	if (in_string)
		i_panic("compact JSON ends inside a string");
	if (!uni_utf8_data_is_valid(data, size))
		i_panic("compact JSON is not valid UTF-8");
}

static void fuzz_appversions(const unsigned char *data, size_t size)
{
	string_t *dest = t_str_new(size * 2 + 32);
	string_t *again = t_str_new(size * 2 + 32);
	const char *error = NULL, *error2 = NULL;
	size_t prefix_len = strlen(FUZZ_DEST_PREFIX);
	string_t *json;

	/* dest may already hold something: it must be kept */
	str_append(dest, FUZZ_DEST_PREFIX);
	if (deltapush_appversions_compact(data, size, dest, &error) < 0) {
		if (error == NULL || error[0] == '\0')
			i_panic("JSON rejected without a reason");
		if (str_len(dest) != prefix_len ||
		    memcmp(str_data(dest), FUZZ_DEST_PREFIX, prefix_len) != 0)
			i_panic("rejected JSON changed dest");
	} else {
		if (memcmp(str_data(dest), FUZZ_DEST_PREFIX, prefix_len) != 0)
			i_panic("accepted JSON overwrote dest");
		json = t_str_new(str_len(dest));
		str_append_data(json, str_data(dest) + prefix_len,
				str_len(dest) - prefix_len);
		fuzz_appversions_check_compact(json);

		/* compacting is idempotent */
		if (deltapush_appversions_compact(str_data(json),
						  str_len(json), again,
						  &error2) < 0) {
			i_panic("compact JSON %s is rejected: %s",
				str_c(json), error2);
		}
		if (!str_equals(json, again)) {
			i_panic("compact JSON %s compacts to %s",
				str_c(json), str_c(again));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	deltapush_fuzz_init();
	T_BEGIN {
		fuzz_appversions(data, size);
	} T_END;
	return 0;
}
