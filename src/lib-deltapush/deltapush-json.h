#ifndef DELTAPUSH_JSON_H
#define DELTAPUSH_JSON_H

/* Reading JSON with Dovecot's own parser, which differs between versions
   (2.3: json-parser.h, 2.4: lib-json's json-istream.h): one pull
   interface over either. The whole input is one JSON value of any type;
   its nodes come depth first, with the end of each object and list
   reported once. */

enum deltapush_json_type {
	DELTAPUSH_JSON_OBJECT,
	DELTAPUSH_JSON_OBJECT_END,
	DELTAPUSH_JSON_ARRAY,
	DELTAPUSH_JSON_ARRAY_END,
	DELTAPUSH_JSON_STRING,
	DELTAPUSH_JSON_NUMBER,
	DELTAPUSH_JSON_TRUE,
	DELTAPUSH_JSON_FALSE,
	DELTAPUSH_JSON_NULL,
};

struct deltapush_json_node {
	enum deltapush_json_type type;
	/* The member name inside an object, else NULL (also for ends) */
	const char *name;
	/* A string's contents or a number as written, else NULL */
	const char *value;
};

/* Read from data, which must stay valid until deinit. */
struct deltapush_json_reader *
deltapush_json_reader_init(const unsigned char *data, size_t size);
/* Returns 0 if every read succeeded, -1 with error_r (valid until the
   data stack frame ends) if one failed. Stopping before the end is not
   an error: read until 0 to validate the whole input. */
int deltapush_json_reader_deinit(struct deltapush_json_reader **_reader,
				 const char **error_r);

/* Returns 1 with the next node (valid until the next call), 0 after the
   end of a complete value, -1 on invalid JSON (including an incomplete
   value or data after it). */
int deltapush_json_read(struct deltapush_json_reader *reader,
			struct deltapush_json_node *node_r);
/* Skip the rest of the object or list whose start read just returned,
   its end included. */
void deltapush_json_skip(struct deltapush_json_reader *reader);

/* Append value as a JSON string, quoted and escaped. */
void deltapush_json_append_string(string_t *dest, const char *value);

/* "an object", "a list", "a string", ... for messages */
const char *deltapush_json_type_name(enum deltapush_json_type type);

#endif
