/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-common.h"
#include "array.h"
#include "str.h"
#include "deltapush-json.h"
#include "deltapush-token.h"
#include "deltapush-chatmail.h"

#include <sys/stat.h>

#define DELTAPUSH_CHATMAIL_DEVICETOKEN_KEY "devicetoken"
/* Larger times are clamped to this: far beyond any real time, and small
   enough that now + a TTL never overflows. */
#define DELTAPUSH_CHATMAIL_TIME_MAX "999999999999999999"
/* An exponent beyond this makes any non-zero time huge or zero: it is
   far more than the digits a file of at most
   DELTAPUSH_CHATMAIL_MAX_FILE_SIZE bytes can hold. */
#define DELTAPUSH_CHATMAIL_TIME_MAX_EXPONENT 100000000

struct deltapush_chatmail_parser {
	struct deltapush_json_reader *json;
	pool_t pool;
	time_t list_last_seen;
	ARRAY_TYPE(deltapush_chatmail_token) *tokens;
	/* where this file's entries start in tokens */
	unsigned int first_idx;
	/* position of the next devicetoken entry, from 1 */
	unsigned int next_index;
	/* a structure error; syntax errors come from the JSON reader */
	const char *error;
};

static inline bool deltapush_chatmail_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Whole seconds of a JSON number as the parser validated it:

     -? int-digits [. frac-digits] [(e|E) [+|-] exp-digits]

   rounded down and clamped to 0..DELTAPUSH_CHATMAIL_TIME_MAX. Done on
   the decimal digits rather than with strtod(): exact for any form the
   relay's Python may write (1700000000.123456, 1.7e9), and independent
   of the locale's decimal point. */
static time_t deltapush_chatmail_time_parse(const char *number)
{
	const char *p = number;
	string_t *digits = t_str_new(32);
	const unsigned char *d;
	size_t len, i;
	/* position of the decimal point in digits */
	int64_t point, exponent = 0;
	bool negative = FALSE, exp_negative = FALSE;
	time_t value = 0;

	if (*p == '-') {
		negative = TRUE;
		p++;
	}
	for (; deltapush_chatmail_is_digit(*p); p++)
		str_append_c(digits, *p);
	point = str_len(digits);
	if (*p == '.') {
		for (p++; deltapush_chatmail_is_digit(*p); p++)
			str_append_c(digits, *p);
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			exp_negative = *p++ == '-';
		for (; deltapush_chatmail_is_digit(*p); p++) {
			if (exponent <= DELTAPUSH_CHATMAIL_TIME_MAX_EXPONENT)
				exponent = exponent * 10 + (*p - '0');
		}
	}

	/* drop leading zeros, so only significant digits count */
	d = str_data(digits);
	len = str_len(digits);
	while (len > 0 && d[0] == '0') {
		d++;
		len--;
		point--;
	}
	if (len == 0 || negative)
		return 0;
	/* exponent is below 10 * the maximum: no overflow */
	point += exp_negative ? -exponent : exponent;
	if (point <= 0)
		return 0;
	if (point > (int64_t)strlen(DELTAPUSH_CHATMAIL_TIME_MAX)) {
		d = (const unsigned char *)DELTAPUSH_CHATMAIL_TIME_MAX;
		len = point = strlen(DELTAPUSH_CHATMAIL_TIME_MAX);
	}
	/* the integer part; zeros where the digits end before the point */
	for (i = 0; i < (size_t)point; i++)
		value = value * 10 + (i < len ? d[i] - '0' : 0);
	return value;
}

static void
deltapush_chatmail_add(struct deltapush_chatmail_parser *parser,
		       const char *token, time_t last_seen, const char *error)
{
	struct deltapush_chatmail_token *entry;
	unsigned int i, count;

	entry = array_get_modifiable(parser->tokens, &count);
	if (token != NULL && error == NULL) {
		/* The same key twice in an object, or a list with a
		   duplicate: one token, seen last at its latest time. */
		for (i = parser->first_idx; i < count; i++) {
			if (entry[i].error == NULL && entry[i].token != NULL &&
			    strcmp(entry[i].token, token) == 0) {
				entry[i].last_seen = I_MAX(entry[i].last_seen,
							   last_seen);
				parser->next_index++;
				return;
			}
		}
	}
	entry = array_append_space(parser->tokens);
	entry->index = parser->next_index++;
	entry->token = p_strdup(parser->pool, token);
	entry->last_seen = last_seen;
	entry->error = p_strdup(parser->pool, error);
}

/* Skip the rest of a value whose start was read. */
static void
deltapush_chatmail_skip_value(struct deltapush_chatmail_parser *parser,
			      const struct deltapush_json_node *node)
{
	if (node->type == DELTAPUSH_JSON_OBJECT ||
	    node->type == DELTAPUSH_JSON_ARRAY)
		deltapush_json_skip(parser->json);
}

/* {"<token>": <time>, ...} after its '{'. Returns 0 at its '}', -1 on a
   syntax error. */
static int
deltapush_chatmail_parse_object(struct deltapush_chatmail_parser *parser)
{
	struct deltapush_json_node node;
	const char *token;

	for (;;) {
		if (deltapush_json_read(parser->json, &node) <= 0)
			return -1;
		if (node.type == DELTAPUSH_JSON_OBJECT_END)
			return 0;
		i_assert(node.name != NULL);
		if (node.type == DELTAPUSH_JSON_NUMBER) {
			deltapush_chatmail_add(parser, node.name,
				deltapush_chatmail_time_parse(node.value),
				NULL);
			continue;
		}
		/* skipping may reuse the name's memory */
		token = t_strdup(node.name);
		deltapush_chatmail_skip_value(parser, &node);
		deltapush_chatmail_add(parser, token, 0, t_strdup_printf(
			"Last seen time is %s, not a number",
			deltapush_json_type_name(node.type)));
	}
}

/* ["<token>", ...] after its '['. Returns 0 at its ']', -1 on a syntax
   error. */
static int
deltapush_chatmail_parse_list(struct deltapush_chatmail_parser *parser)
{
	struct deltapush_json_node node;

	for (;;) {
		if (deltapush_json_read(parser->json, &node) <= 0)
			return -1;
		if (node.type == DELTAPUSH_JSON_ARRAY_END)
			return 0;
		if (node.type == DELTAPUSH_JSON_STRING) {
			deltapush_chatmail_add(parser, node.value,
					       parser->list_last_seen, NULL);
			continue;
		}
		deltapush_chatmail_skip_value(parser, &node);
		deltapush_chatmail_add(parser, NULL, 0, t_strdup_printf(
			"List entry is %s, not a token string",
			deltapush_json_type_name(node.type)));
	}
}

/* The devicetoken value, whose start is node. Returns 0 when it was
   read, -1 on a syntax or structure error. */
static int
deltapush_chatmail_parse_devicetoken(struct deltapush_chatmail_parser *parser,
				     const struct deltapush_json_node *node)
{
	parser->next_index = 1;
	switch (node->type) {
	case DELTAPUSH_JSON_OBJECT:
		return deltapush_chatmail_parse_object(parser);
	case DELTAPUSH_JSON_ARRAY:
		return deltapush_chatmail_parse_list(parser);
	case DELTAPUSH_JSON_NULL:
		return 0;
	default:
		parser->error = t_strdup_printf(
			"\"%s\" is %s, not an object or a list",
			DELTAPUSH_CHATMAIL_DEVICETOKEN_KEY,
			deltapush_json_type_name(node->type));
		return -1;
	}
}

/* The members of the root object. Returns 0 at the end of the input, -1
   on a syntax or structure error. */
static int
deltapush_chatmail_parse_root(struct deltapush_chatmail_parser *parser)
{
	struct deltapush_json_node node;
	int ret;

	if ((ret = deltapush_json_read(parser->json, &node)) <= 0)
		return -1;
	if (node.type != DELTAPUSH_JSON_OBJECT) {
		parser->error = t_strdup_printf(
			"Invalid JSON: The document is %s, not an object",
			deltapush_json_type_name(node.type));
		return -1;
	}
	while ((ret = deltapush_json_read(parser->json, &node)) > 0) {
		if (node.type == DELTAPUSH_JSON_OBJECT_END)
			continue;
		i_assert(node.name != NULL);
		if (strcmp(node.name, DELTAPUSH_CHATMAIL_DEVICETOKEN_KEY) == 0) {
			if (deltapush_chatmail_parse_devicetoken(parser,
								 &node) < 0)
				return -1;
		} else {
			deltapush_chatmail_skip_value(parser, &node);
		}
	}
	return ret;
}

int deltapush_chatmail_parse(const unsigned char *data, size_t size,
			     time_t list_last_seen, pool_t pool,
			     ARRAY_TYPE(deltapush_chatmail_token) *tokens,
			     const char **error_r)
{
	struct deltapush_chatmail_parser parser;
	const char *error;
	unsigned int count;
	int ret;

	i_zero(&parser);
	parser.pool = pool;
	parser.list_last_seen = list_last_seen;
	parser.tokens = tokens;
	parser.first_idx = array_count(tokens);

	parser.json = deltapush_json_reader_init(data, size);
	ret = deltapush_chatmail_parse_root(&parser);
	if (deltapush_json_reader_deinit(&parser.json, &error) < 0 &&
	    parser.error == NULL) {
		*error_r = t_strdup_printf("Invalid JSON: %s", error);
		ret = -1;
	} else if (parser.error != NULL) {
		/* the structure is wrong; whatever follows doesn't matter */
		*error_r = parser.error;
		ret = -1;
	} else if (ret < 0) {
		/* the reader stopped without saying why */
		*error_r = "Invalid JSON";
	}

	if (ret < 0) {
		count = array_count(tokens);
		array_delete(tokens, parser.first_idx,
			     count - parser.first_idx);
	}
	return ret;
}

int deltapush_chatmail_read(const char *path, pool_t pool,
			    ARRAY_TYPE(deltapush_chatmail_token) *tokens,
			    const char **error_r)
{
	/* one byte more than allowed, to notice an oversized file */
	size_t buf_size = DELTAPUSH_CHATMAIL_MAX_FILE_SIZE + 1;
	unsigned char *buf;
	const char *error;
	struct stat st;
	size_t size;
	int ret;

	buf = t_malloc_no0(buf_size);
	ret = deltapush_read_file(path, buf, buf_size, &size, &st, error_r);
	if (ret <= 0)
		return ret;
	if (size > DELTAPUSH_CHATMAIL_MAX_FILE_SIZE) {
		*error_r = t_strdup_printf("%s is too large (max %u bytes)",
					   path,
					   DELTAPUSH_CHATMAIL_MAX_FILE_SIZE);
		return -1;
	}
	/* The list form has no times: the file was last written when a
	   token was last added, the best guess of when it was seen. */
	if (deltapush_chatmail_parse(buf, size, st.st_mtime, pool, tokens,
				     &error) < 0) {
		*error_r = t_strdup_printf("%s: %s", path, error);
		return -1;
	}
	return 1;
}

enum deltapush_chatmail_token_status
deltapush_chatmail_token_check(const struct deltapush_chatmail_token *token,
			       time_t now, unsigned int ttl_secs,
			       const char **error_r)
{
	if (token->error != NULL) {
		*error_r = token->error;
		return DELTAPUSH_CHATMAIL_TOKEN_INVALID;
	}
	i_assert(token->token != NULL);
	if (!deltapush_token_is_valid((const unsigned char *)token->token,
				      strlen(token->token), error_r))
		return DELTAPUSH_CHATMAIL_TOKEN_INVALID;
	/* the relay's rule: valid only while strictly less than
	   now + 60 s */
	if (token->last_seen >= now + DELTAPUSH_CHATMAIL_MAX_FUTURE_SECS) {
		*error_r = t_strdup_printf(
			"Last seen time is %lld seconds in the future",
			(long long)(token->last_seen - now));
		return DELTAPUSH_CHATMAIL_TOKEN_FUTURE;
	}
	/* the service's rule: kept while last seen within the TTL */
	if (token->last_seen < now - (time_t)ttl_secs)
		return DELTAPUSH_CHATMAIL_TOKEN_EXPIRED;
	return DELTAPUSH_CHATMAIL_TOKEN_OK;
}

bool deltapush_chatmail_user_is_valid(const char *name)
{
	const unsigned char *p;
	const char *at = strrchr(name, '@');

	if (at == NULL || at == name || at[1] == '\0')
		return FALSE;
	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '/')
			return FALSE;
	}
	return TRUE;
}
