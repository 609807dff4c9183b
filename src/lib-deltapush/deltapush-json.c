/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "istream.h"
#include "deltapush-json.h"

#if DOVECOT_PREREQ(2, 4, 0)
#  include "json-istream.h"
#  include "json-generator.h"
#else
#  include "json-parser.h"
#endif

struct deltapush_json_reader {
	struct istream *input;
#if DOVECOT_PREREQ(2, 4, 0)
	struct json_istream *json;
#else
	struct json_parser *json;
	/* the member name json_parse_next() returned before the value */
	string_t *name;
	bool have_name:1;
#endif
	/* nesting of the objects and lists read so far */
	unsigned int depth;
	char *error;

	/* a whole value was read */
	bool complete:1;
	bool started:1;
};

struct deltapush_json_reader *
deltapush_json_reader_init(const unsigned char *data, size_t size)
{
	struct deltapush_json_reader *reader;

	reader = i_new(struct deltapush_json_reader, 1);
	reader->input = i_stream_create_from_data(data, size);
#if DOVECOT_PREREQ(2, 4, 0)
	/* numbers as written: callers parse them themselves */
	reader->json = json_istream_create(reader->input,
		JSON_ISTREAM_TYPE_NORMAL, NULL,
		JSON_PARSER_FLAG_NUMBERS_AS_STRING);
#else
	/* any JSON value may be the document, not only an object */
	reader->json = json_parser_init_flags(reader->input,
					      JSON_PARSER_NO_ROOT_OBJECT);
	reader->name = str_new(default_pool, 64);
#endif
	return reader;
}

int deltapush_json_reader_deinit(struct deltapush_json_reader **_reader,
				 const char **error_r)
{
	struct deltapush_json_reader *reader = *_reader;
	int ret = 0;

	*_reader = NULL;
	if (reader->error != NULL) {
		*error_r = t_strdup(reader->error);
		ret = -1;
	}
#if DOVECOT_PREREQ(2, 4, 0)
	json_istream_destroy(&reader->json);
#else
	const char *error;

	/* stopped before the end: what follows doesn't matter */
	if (reader->json != NULL)
		(void)json_parser_deinit(&reader->json, &error);
	str_free(&reader->name);
#endif
	i_stream_unref(&reader->input);
	i_free(reader->error);
	i_free(reader);
	return ret;
}

static int
deltapush_json_fail(struct deltapush_json_reader *reader, const char *error)
{
	if (reader->error == NULL)
		reader->error = i_strdup(error);
	return -1;
}

/* Track where in the document the node is. */
static int
deltapush_json_node_read(struct deltapush_json_reader *reader,
			 const struct deltapush_json_node *node)
{
	if (reader->complete) {
		/* the parsers refuse this too; don't rely on it */
		return deltapush_json_fail(reader, "Data after the JSON value");
	}
	reader->started = TRUE;
	switch (node->type) {
	case DELTAPUSH_JSON_OBJECT:
	case DELTAPUSH_JSON_ARRAY:
		reader->depth++;
		break;
	case DELTAPUSH_JSON_OBJECT_END:
	case DELTAPUSH_JSON_ARRAY_END:
		i_assert(reader->depth > 0);
		reader->depth--;
		break;
	default:
		break;
	}
	if (reader->depth == 0)
		reader->complete = TRUE;
	return 1;
}

/* The parser has nothing more: the end, or an error it reported or, as
   the 2.3 parser does at an input ending in the middle of a value, not. */
static int
deltapush_json_end(struct deltapush_json_reader *reader,
		   const char *parser_error)
{
	if (parser_error != NULL)
		return deltapush_json_fail(reader, parser_error);
	if (!reader->started)
		return deltapush_json_fail(reader, "No JSON value");
	if (!reader->complete)
		return deltapush_json_fail(reader, "JSON value is incomplete");
	return 0;
}

/* The scalar types have the same names in both parsers' enum json_type.
   Returns FALSE for a type that isn't a scalar. */
static bool
deltapush_json_set_scalar(struct deltapush_json_node *node,
			  enum json_type type, const char *value)
{
	switch (type) {
	case JSON_TYPE_STRING:
		node->type = DELTAPUSH_JSON_STRING;
		node->value = value;
		return TRUE;
	case JSON_TYPE_NUMBER:
		node->type = DELTAPUSH_JSON_NUMBER;
		node->value = value;
		return TRUE;
	case JSON_TYPE_TRUE:
		node->type = DELTAPUSH_JSON_TRUE;
		return TRUE;
	case JSON_TYPE_FALSE:
		node->type = DELTAPUSH_JSON_FALSE;
		return TRUE;
	case JSON_TYPE_NULL:
		node->type = DELTAPUSH_JSON_NULL;
		return TRUE;
	default:
		return FALSE;
	}
}

#if DOVECOT_PREREQ(2, 4, 0)
int deltapush_json_read(struct deltapush_json_reader *reader,
			struct deltapush_json_node *node_r)
{
	struct json_node node;
	int ret;

	if (reader->error != NULL)
		return -1;
	ret = json_istream_walk(reader->json, &node);
	if (ret == 0) {
		/* all data is in the stream already */
		return deltapush_json_end(reader, "JSON value is incomplete");
	}
	if (ret < 0) {
		return deltapush_json_end(reader,
			!json_istream_failed(reader->json) ? NULL :
			json_istream_get_error(reader->json));
	}

	i_zero(node_r);
	node_r->name = node.name;
	switch (node.type) {
	case JSON_TYPE_OBJECT:
		node_r->type = json_node_is_end(&node) ?
			DELTAPUSH_JSON_OBJECT_END : DELTAPUSH_JSON_OBJECT;
		break;
	case JSON_TYPE_ARRAY:
		node_r->type = json_node_is_end(&node) ?
			DELTAPUSH_JSON_ARRAY_END : DELTAPUSH_JSON_ARRAY;
		break;
	default:
		if (deltapush_json_set_scalar(node_r, node.type,
				json_node_is_string(&node) ||
				json_node_is_number(&node) ?
				json_node_get_str(&node) : NULL))
			break;
		return deltapush_json_fail(reader, t_strdup_printf(
			"Unexpected JSON node type %s",
			json_type_get_name(node.type)));
	}
	if (node_r->type == DELTAPUSH_JSON_OBJECT_END ||
	    node_r->type == DELTAPUSH_JSON_ARRAY_END)
		node_r->name = NULL;
	return deltapush_json_node_read(reader, node_r);
}

void deltapush_json_skip(struct deltapush_json_reader *reader)
{
	i_assert(reader->depth > 0);
	json_istream_ascend(reader->json);
	if (--reader->depth == 0)
		reader->complete = TRUE;
}
#else
int deltapush_json_read(struct deltapush_json_reader *reader,
			struct deltapush_json_node *node_r)
{
	enum json_type type;
	const char *value, *error;
	int ret;

	if (reader->error != NULL)
		return -1;
	if (reader->json == NULL) {
		/* read to the end already */
		return 0;
	}
	i_zero(node_r);
	for (;;) {
		ret = json_parse_next(reader->json, &type, &value);
		if (ret <= 0) {
			/* all data is in the stream already: this is the end,
			   and deinit returns the parser's error, if any */
			ret = json_parser_deinit(&reader->json, &error);
			return deltapush_json_end(reader,
						  ret < 0 ? error : NULL);
		}
		if (type != JSON_TYPE_OBJECT_KEY)
			break;
		str_truncate(reader->name, 0);
		str_append(reader->name, value);
		reader->have_name = TRUE;
	}
	if (reader->have_name) {
		node_r->name = str_c(reader->name);
		reader->have_name = FALSE;
	}

	switch (type) {
	case JSON_TYPE_OBJECT_KEY:
		i_unreached();
	case JSON_TYPE_OBJECT:
		node_r->type = DELTAPUSH_JSON_OBJECT;
		break;
	case JSON_TYPE_OBJECT_END:
		node_r->type = DELTAPUSH_JSON_OBJECT_END;
		break;
	case JSON_TYPE_ARRAY:
		node_r->type = DELTAPUSH_JSON_ARRAY;
		break;
	case JSON_TYPE_ARRAY_END:
		node_r->type = DELTAPUSH_JSON_ARRAY_END;
		break;
	default:
		if (!deltapush_json_set_scalar(node_r, type, value))
			i_unreached();
		break;
	}
	return deltapush_json_node_read(reader, node_r);
}

void deltapush_json_skip(struct deltapush_json_reader *reader)
{
	i_assert(reader->depth > 0 && reader->json != NULL);
	json_parse_skip(reader->json);
	if (--reader->depth == 0)
		reader->complete = TRUE;
}
#endif

void deltapush_json_append_string(string_t *dest, const char *value)
{
	str_append_c(dest, '"');
	json_append_escaped(dest, value);
	str_append_c(dest, '"');
}

const char *deltapush_json_type_name(enum deltapush_json_type type)
{
	switch (type) {
	case DELTAPUSH_JSON_OBJECT:
		return "an object";
	case DELTAPUSH_JSON_OBJECT_END:
		return "the end of an object";
	case DELTAPUSH_JSON_ARRAY:
		return "a list";
	case DELTAPUSH_JSON_ARRAY_END:
		return "the end of a list";
	case DELTAPUSH_JSON_STRING:
		return "a string";
	case DELTAPUSH_JSON_NUMBER:
		return "a number";
	case DELTAPUSH_JSON_TRUE:
	case DELTAPUSH_JSON_FALSE:
		return "a boolean";
	case DELTAPUSH_JSON_NULL:
		return "null";
	}
	i_unreached();
}
