/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-common.h"
#include "str.h"
#include "istream.h"
#include "unichar.h"
#include "json-parser.h"
#include "eacces-error.h"
#include "deltapush-appversions.h"

#include <fcntl.h>
#include <unistd.h>

/* The document is a short list of versions; a bigger file is a mistake,
   and the value is sent to every client that asks for it. */
#define DELTAPUSH_APPVERSIONS_MAX_SIZE (64 * 1024)

/* Check what the JSON parser lets through: it stops strings at NUL,
   copies raw control characters inside strings and doesn't look at the
   encoding. RFC 8259 allows none of these. */
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

static void deltapush_appversions_append_string(string_t *dest,
						const char *value)
{
	str_append_c(dest, '"');
	json_append_escaped(dest, value);
	str_append_c(dest, '"');
}

/* Re-emit the parser's tokens without whitespace. Sets complete_r once a
   whole top-level value was seen: the 2.3 parser reports no error for
   input that stops inside a number, an atom or a string. */
static int
deltapush_appversions_emit(struct json_parser *parser, string_t *dest,
			   bool *complete_r, const char **error_r)
{
	enum json_type type;
	const char *value;
	unsigned int depth = 0;
	/* a key or value follows an earlier member or element */
	bool need_comma = FALSE;

	*complete_r = FALSE;
	while (json_parse_next(parser, &type, &value) > 0) {
		if (*complete_r) {
			/* the parser rejects this itself; don't rely on it
			   for emitting exactly one value */
			*error_r = "JSON has data after the value";
			return -1;
		}
		if (need_comma && type != JSON_TYPE_OBJECT_END &&
		    type != JSON_TYPE_ARRAY_END)
			str_append_c(dest, ',');
		need_comma = TRUE;

		switch (type) {
		case JSON_TYPE_OBJECT_KEY:
			deltapush_appversions_append_string(dest, value);
			str_append_c(dest, ':');
			need_comma = FALSE;
			break;
		case JSON_TYPE_OBJECT:
			depth++;
			str_append_c(dest, '{');
			need_comma = FALSE;
			break;
		case JSON_TYPE_ARRAY:
			depth++;
			str_append_c(dest, '[');
			need_comma = FALSE;
			break;
		case JSON_TYPE_OBJECT_END:
			i_assert(depth > 0);
			depth--;
			str_append_c(dest, '}');
			break;
		case JSON_TYPE_ARRAY_END:
			i_assert(depth > 0);
			depth--;
			str_append_c(dest, ']');
			break;
		case JSON_TYPE_STRING:
			deltapush_appversions_append_string(dest, value);
			break;
		case JSON_TYPE_NUMBER:
			/* kept as written: no float round trip */
			str_append(dest, value);
			break;
		case JSON_TYPE_TRUE:
			str_append(dest, "true");
			break;
		case JSON_TYPE_FALSE:
			str_append(dest, "false");
			break;
		case JSON_TYPE_NULL:
			str_append(dest, "null");
			break;
		}
		if (depth == 0)
			*complete_r = TRUE;
	}
	return 0;
}

int deltapush_appversions_compact(const unsigned char *data, size_t size,
				  string_t *dest, const char **error_r)
{
	struct istream *input;
	struct json_parser *parser;
	const char *error;
	size_t orig_len = str_len(dest);
	bool complete;
	int ret;

	if (deltapush_appversions_check_bytes(data, size, error_r) < 0)
		return -1;

	input = i_stream_create_from_data(data, size);
	/* any JSON value may be the document, not only an object */
	parser = json_parser_init_flags(input, JSON_PARSER_NO_ROOT_OBJECT);
	ret = deltapush_appversions_emit(parser, dest, &complete, error_r);
	if (json_parser_deinit(&parser, &error) < 0) {
		*error_r = t_strdup_printf("JSON syntax error: %s", error);
		ret = -1;
	} else if (ret == 0 && !complete) {
		*error_r = "JSON value is incomplete";
		ret = -1;
	}
	i_stream_unref(&input);

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
	int fd, ret;

	fd = open(path, O_RDONLY);
	if (fd == -1) {
		if (errno == EACCES)
			*error_r = eacces_error_get("open", path);
		else {
			*error_r = t_strdup_printf("open(%s) failed: %m",
						   path);
		}
		return -1;
	}
	buf = t_malloc_no0(buf_size);
	ret = deltapush_read_fd(fd, path, buf, buf_size, &size,
					    error_r);
	i_close_fd(&fd);
	if (ret < 0)
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
