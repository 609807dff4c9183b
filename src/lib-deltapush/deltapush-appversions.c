/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-common.h"
#include "str.h"
#include "unichar.h"
#include "deltapush-json.h"
#include "deltapush-appversions.h"


/* The document is a short list of versions; a bigger file is a mistake,
   and the value is sent to every client that asks for it. */
#define DELTAPUSH_APPVERSIONS_MAX_SIZE (64 * 1024)

/* Check what the 2.3 JSON parser lets through: it stops strings at NUL,
   copies raw control characters inside strings and doesn't look at the
   encoding. RFC 8259 allows none of these, and the file is refused the
   same way with every Dovecot version. */
static int
deltapush_appversions_check_bytes(const unsigned char *data, size_t size,
				  const char **error_r)
{
	bool in_string = FALSE, escaped = FALSE, empty = TRUE;
	unsigned int line = 1;
	size_t i;

	for (i = 0; i < size; i++) {
		unsigned char c = data[i];

		if (c == '\0') {
			*error_r = t_strdup_printf(
				"JSON contains a NUL byte at line %u", line);
			return -1;
		}
		if (in_string) {
			/* only '"' and '\\' matter for finding the end;
			   the parser validates the escape sequences */
			if (escaped)
				escaped = FALSE;
			else if (c == '\\')
				escaped = TRUE;
			else if (c == '"')
				in_string = FALSE;
			else if (c < 0x20) {
				*error_r = t_strdup_printf(
					"JSON string contains an unescaped "
					"control character 0x%02x at line %u",
					c, line);
				return -1;
			}
		} else if (c == '"') {
			in_string = TRUE;
			empty = FALSE;
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			empty = FALSE;
		}
		if (c == '\n')
			line++;
	}
	if (empty) {
		*error_r = "JSON is empty";
		return -1;
	}
	if (!uni_utf8_data_is_valid(data, size)) {
		*error_r = "JSON is not valid UTF-8";
		return -1;
	}
	return 0;
}

/* Re-emit the parser's nodes without whitespace. */
static int
deltapush_appversions_emit(struct deltapush_json_reader *reader,
			   string_t *dest)
{
	struct deltapush_json_node node;
	/* a member or element follows an earlier one */
	bool need_comma = FALSE;
	int ret;

	while ((ret = deltapush_json_read(reader, &node)) > 0) {
		if (need_comma && node.type != DELTAPUSH_JSON_OBJECT_END &&
		    node.type != DELTAPUSH_JSON_ARRAY_END)
			str_append_c(dest, ',');
		need_comma = TRUE;
		if (node.name != NULL) {
			deltapush_json_append_string(dest, node.name);
			str_append_c(dest, ':');
		}

		switch (node.type) {
		case DELTAPUSH_JSON_OBJECT:
			str_append_c(dest, '{');
			need_comma = FALSE;
			break;
		case DELTAPUSH_JSON_ARRAY:
			str_append_c(dest, '[');
			need_comma = FALSE;
			break;
		case DELTAPUSH_JSON_OBJECT_END:
			str_append_c(dest, '}');
			break;
		case DELTAPUSH_JSON_ARRAY_END:
			str_append_c(dest, ']');
			break;
		case DELTAPUSH_JSON_STRING:
			deltapush_json_append_string(dest, node.value);
			break;
		case DELTAPUSH_JSON_NUMBER:
			/* kept as written: no float round trip */
			str_append(dest, node.value);
			break;
		case DELTAPUSH_JSON_TRUE:
			str_append(dest, "true");
			break;
		case DELTAPUSH_JSON_FALSE:
			str_append(dest, "false");
			break;
		case DELTAPUSH_JSON_NULL:
			str_append(dest, "null");
			break;
		}
	}
	return ret;
}

int deltapush_appversions_compact(const unsigned char *data, size_t size,
				  string_t *dest, const char **error_r)
{
	struct deltapush_json_reader *reader;
	const char *error;
	size_t orig_len = str_len(dest);
	int ret;

	if (deltapush_appversions_check_bytes(data, size, error_r) < 0)
		return -1;

	reader = deltapush_json_reader_init(data, size);
	ret = deltapush_appversions_emit(reader, dest);
	if (deltapush_json_reader_deinit(&reader, &error) < 0) {
		*error_r = t_strdup_printf("Invalid JSON: %s", error);
		ret = -1;
	}
	if (ret < 0)
		str_truncate(dest, orig_len);
	return ret;
}

int deltapush_appversions_read(const char *path, pool_t pool,
			       const char **json_r, const char **error_r)
{
	/* one byte more than allowed, to notice an oversized file */
	size_t buf_size = DELTAPUSH_APPVERSIONS_MAX_SIZE + 1;
	unsigned char *buf;
	string_t *json;
	const char *error;
	size_t size;

	buf = t_malloc_no0(buf_size);
	if (deltapush_read_file(path, buf, buf_size, &size, NULL,
				error_r) <= 0)
		return -1;

	if (size > DELTAPUSH_APPVERSIONS_MAX_SIZE) {
		*error_r = t_strdup_printf(
			"appversions file %s is too large (max %u bytes)",
			path, DELTAPUSH_APPVERSIONS_MAX_SIZE);
		return -1;
	}
	json = t_str_new(size + 1);
	if (deltapush_appversions_compact(buf, size, json, &error) < 0) {
		*error_r = t_strdup_printf("appversions file %s: %s",
					   path, error);
		return -1;
	}
	*json_r = p_strdup(pool, str_c(json));
	return 0;
}
