/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "istream.h"
#include "mail-storage-private.h"
#include "mailbox-attribute.h"
#include "deltapush-protocol.h"
#include "deltapush-settings.h"
#include "deltapush-token.h"
#include "deltapush-client.h"
#include "deltapush-plugin.h"
#include "deltapush-attributes.h"

static int
deltapush_attribute_request(struct mailbox *box,
			    const struct deltapush_request *request,
			    const char *const **fields_r)
{
	struct mail_user *user = box->storage->user;
	struct deltapush_user *duser;
	const char *error;

	duser = deltapush_user_get(user, &error);
	if (duser == NULL) {
		mail_storage_set_error(box->storage, MAIL_ERROR_NOTPOSSIBLE,
				       error);
		return -1;
	}
	if (deltapush_client_request(duser->socket_path,
				     duser->set->service_timeout_msecs,
				     duser->event, request, FALSE, fields_r,
				     &error) < 0) {
		e_error(duser->event, "%s request failed: %s",
			request->type == DELTAPUSH_REQUEST_REGISTER ?
			"Token registration" : "Token lookup", error);
		mail_storage_set_error(box->storage, MAIL_ERROR_UNAVAILABLE,
			"Push service is temporarily unavailable, "
			"try again later");
		return -1;
	}
	return 0;
}

/* Read at most one byte more than a token may have, however large the
   value is: the rest is never looked at. */
static int
deltapush_attribute_value_read(struct mailbox *box,
			       const struct mail_attribute_value *value,
			       buffer_t *buf)
{
	struct istream *input = value->value_stream;
	const unsigned char *data;
	size_t size;
	int ret;

	if (value->value != NULL) {
		buffer_append(buf, value->value,
			      I_MIN(strlen(value->value),
				    DELTAPUSH_TOKEN_MAX_SIZE + 1));
		return 0;
	}
	while (buf->used <= DELTAPUSH_TOKEN_MAX_SIZE &&
	       (ret = i_stream_read_more(input, &data, &size)) > 0) {
		size = I_MIN(size, DELTAPUSH_TOKEN_MAX_SIZE + 1 - buf->used);
		buffer_append(buf, data, size);
		i_stream_skip(input, size);
	}
	if (input->stream_errno != 0) {
		mail_storage_set_critical(box->storage,
			"read(%s) failed: %s", i_stream_get_name(input),
			i_stream_get_error(input));
		return -1;
	}
	return 0;
}

static int
deltapush_attribute_token_set(struct mailbox_transaction_context *t,
			      const char *key ATTR_UNUSED,
			      const struct mail_attribute_value *value)
{
	struct mailbox *box = t->box;
	struct deltapush_request request = {
		.user = box->storage->user->username,
	};
	const char *const *fields, *error;
	buffer_t *buf;

	if (value->value == NULL && value->value_stream == NULL) {
		/* NIL: the client (or doveadm unset) wants the tokens gone */
		request.type = DELTAPUSH_REQUEST_FORGET;
		return deltapush_attribute_request(box, &request, &fields);
	}

	buf = t_buffer_create(DELTAPUSH_TOKEN_MAX_SIZE + 1);
	if (deltapush_attribute_value_read(box, value, buf) < 0)
		return -1;
	if (!deltapush_token_is_valid(buf->data, buf->used, &error)) {
		mail_storage_set_error(box->storage, MAIL_ERROR_PARAMS, error);
		return -1;
	}
	request.type = DELTAPUSH_REQUEST_REGISTER;
	request.token = t_strndup(buf->data, buf->used);
	return deltapush_attribute_request(box, &request, &fields);
}

static int
deltapush_attribute_token_get(struct mailbox *box,
			      const char *key ATTR_UNUSED,
			      struct mail_attribute_value *value_r)
{
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_GET,
		.user = box->storage->user->username,
	};
	const char *const *fields;

	if (deltapush_attribute_request(box, &request, &fields) < 0)
		return -1;
	if (fields[0] == NULL)
		return 0;
	value_r->value = t_strarray_join(fields, " ");
	return 1;
}

/* Both names are the same token list: Delta Chat writes
   /private/devicetoken, the chatmail name is the vendor one. */
#define DELTAPUSH_TOKEN_ATTRIBUTE(_key) { \
	.type = MAIL_ATTRIBUTE_TYPE_PRIVATE, \
	.key = (_key), \
	.rank = MAIL_ATTRIBUTE_INTERNAL_RANK_AUTHORITY, \
	.flags = MAIL_ATTRIBUTE_INTERNAL_FLAG_VALIDATED, \
	.get = deltapush_attribute_token_get, \
	.set = deltapush_attribute_token_set, \
}
static const struct mailbox_attribute_internal deltapush_token_attributes[] = {
	DELTAPUSH_TOKEN_ATTRIBUTE(DELTAPUSH_ATTRIBUTE_DEVICETOKEN),
	DELTAPUSH_TOKEN_ATTRIBUTE(DELTAPUSH_ATTRIBUTE_PUSH_TOKEN),
};

void deltapush_attributes_init(void)
{
	mailbox_attribute_register_internals(deltapush_token_attributes,
		N_ELEMENTS(deltapush_token_attributes));
}

void deltapush_attributes_deinit(void)
{
	mailbox_attribute_unregister_internals(deltapush_token_attributes,
		N_ELEMENTS(deltapush_token_attributes));
}
