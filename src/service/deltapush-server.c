/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "ostream.h"
#include "connection.h"
#include "master-service.h"
#include "deltapush-common.h"
#include "deltapush-settings.h"
#include "deltapush-protocol.h"
#include "deltapush-token.h"
#include "deltapush-store.h"
#include "deltapush-sender.h"
#include "deltapush-server.h"

/* A plugin sends one line and waits; a client that stays silent this
   long is dropped. */
#define DELTAPUSH_SERVER_IDLE_TIMEOUT_SECS 60

struct deltapush_server {
	const struct deltapush_settings *set;
	struct deltapush_store *store;
	struct deltapush_sender *sender;
	struct event *event;
	struct connection_list *clients;
};

struct deltapush_server_client {
	struct connection conn;
	struct deltapush_server *server;
};

static void deltapush_server_reply(struct deltapush_server_client *client,
				   const char *status,
				   const char *const *fields)
{
	string_t *str = t_str_new(128);

	deltapush_protocol_append_reply(str, status, fields);
	o_stream_nsend(client->conn.output, str_data(str), str_len(str));
}

static void deltapush_server_reply1(struct deltapush_server_client *client,
				    const char *status, const char *field)
{
	const char *fields[] = { field, NULL };

	deltapush_server_reply(client, status, fields);
}

static void deltapush_server_fail(struct deltapush_server_client *client,
				  const char *what, const char *user,
				  const char *error)
{
	e_error(client->conn.event, "%s for user %s failed: %s",
		what, user, error);
	deltapush_server_reply1(client, DELTAPUSH_PROTOCOL_REPLY_FAIL, error);
}

static void
deltapush_server_register(struct deltapush_server_client *client,
			  const struct deltapush_request *request)
{
	struct deltapush_server *server = client->server;
	ARRAY_TYPE(const_string) evicted;
	const char *const *tokenp, *error;
	int ret;

	if (!deltapush_token_is_valid((const unsigned char *)request->token,
				      strlen(request->token), &error)) {
		/* The plugin checks too; this guards the database. */
		deltapush_server_fail(client, "Registration", request->user,
				      error);
		return;
	}
	t_array_init(&evicted, 2);
	ret = deltapush_store_register(server->store, request->user,
				       request->token, ioloop_time,
				       DELTAPUSH_TOKENS_MAX_PER_USER,
				       pool_datastack_create(), &evicted,
				       &error);
	if (ret < 0) {
		deltapush_server_fail(client, "Registration", request->user,
				      error);
		return;
	}
	array_foreach(&evicted, tokenp) {
		e_info(client->conn.event, "Evicted token %s of user %s: "
		       "more than %u tokens",
		       deltapush_token_log_prefix(*tokenp), request->user,
		       DELTAPUSH_TOKENS_MAX_PER_USER);
	}
	if (ret > 0) {
		e_info(client->conn.event, "Registered token %s for user %s",
		       deltapush_token_log_prefix(request->token),
		       request->user);
	} else {
		e_debug(client->conn.event, "Refreshed token %s of user %s",
			deltapush_token_log_prefix(request->token),
			request->user);
	}
	deltapush_server_reply1(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				ret > 0 ? "1" : "0");
}

static void deltapush_server_list(struct deltapush_server_client *client,
				  const struct deltapush_request *request)
{
	struct deltapush_server *server = client->server;
	ARRAY_TYPE(deltapush_store_token) tokens;
	ARRAY_TYPE(const_string) fields;
	const struct deltapush_store_token *token;
	const char *error;

	t_array_init(&tokens, 8);
	if (deltapush_store_list(server->store, request->user,
				 ioloop_time - server->set->token_ttl_secs,
				 pool_datastack_create(), &tokens,
				 &error) < 0) {
		deltapush_server_fail(client, "Token lookup", request->user,
				      error);
		return;
	}
	t_array_init(&fields, array_count(&tokens) + 1);
	array_foreach(&tokens, token)
		array_push_back(&fields, &token->token);
	array_append_zero(&fields);
	deltapush_server_reply(client, DELTAPUSH_PROTOCOL_REPLY_OK,
			       array_front(&fields));
}

static void deltapush_server_forget(struct deltapush_server_client *client,
				    const struct deltapush_request *request)
{
	struct deltapush_server *server = client->server;
	unsigned int count;
	const char *error;

	if (deltapush_store_forget(server->store, request->user, &count,
				   &error) < 0) {
		deltapush_server_fail(client, "Forgetting tokens",
				      request->user, error);
		return;
	}
	e_info(client->conn.event, "Forgot %u token(s) of user %s",
	       count, request->user);
	deltapush_server_reply1(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				dec2str(count));
}

static void deltapush_server_notify(struct deltapush_server_client *client,
				    const struct deltapush_request *request)
{
	const char *error;
	int count;

	count = deltapush_sender_notify(client->server->sender, request->user,
					&error);
	if (count < 0) {
		deltapush_server_fail(client, "Recording new mail",
				      request->user, error);
		return;
	}
	e_debug(client->conn.event, "New mail for user %s: %d token(s) due",
		request->user, count);
	deltapush_server_reply1(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				dec2str(count));
}

static int deltapush_server_input_args(struct connection *conn,
				       const char *const *args)
{
	struct deltapush_server_client *client =
		container_of(conn, struct deltapush_server_client, conn);
	struct deltapush_request request;
	const char *error;

	if (deltapush_protocol_parse_request(args, &request, &error) < 0) {
		e_error(conn->event, "Invalid request, disconnecting: %s",
			error);
		return -1;
	}
	switch (request.type) {
	case DELTAPUSH_REQUEST_REGISTER:
		deltapush_server_register(client, &request);
		break;
	case DELTAPUSH_REQUEST_LIST:
		deltapush_server_list(client, &request);
		break;
	case DELTAPUSH_REQUEST_FORGET:
		deltapush_server_forget(client, &request);
		break;
	case DELTAPUSH_REQUEST_NOTIFY:
		deltapush_server_notify(client, &request);
		break;
	}
	return 1;
}

static void deltapush_server_client_destroy(struct connection *conn)
{
	struct deltapush_server_client *client =
		container_of(conn, struct deltapush_server_client, conn);

	connection_deinit(conn);
	i_free(client);
	master_service_client_connection_destroyed(master_service);
}

static const struct connection_settings deltapush_server_set = {
	.service_name_in = DELTAPUSH_PROTOCOL_SERVICE_NAME,
	.service_name_out = DELTAPUSH_PROTOCOL_SERVICE_NAME,
	.major_version = DELTAPUSH_PROTOCOL_MAJOR_VERSION,
	.minor_version = DELTAPUSH_PROTOCOL_MINOR_VERSION,
	.input_max_size = DELTAPUSH_PROTOCOL_MAX_LINE_SIZE,
	.output_max_size = SIZE_MAX,
	.input_idle_timeout_secs = DELTAPUSH_SERVER_IDLE_TIMEOUT_SECS,
	.client = FALSE,
};

static const struct connection_vfuncs deltapush_server_vfuncs = {
	.destroy = deltapush_server_client_destroy,
	.input_args = deltapush_server_input_args,
};

void deltapush_server_accept(struct deltapush_server *server,
			     struct master_service_connection *mconn)
{
	struct deltapush_server_client *client;

	client = i_new(struct deltapush_server_client, 1);
	client->server = server;
	client->conn.event_parent = server->event;
	connection_init_server(server->clients, &client->conn, mconn->name,
			       mconn->fd, mconn->fd);
	master_service_client_connection_accept(mconn);
}

struct deltapush_server *
deltapush_server_init(const struct deltapush_settings *set,
		      struct deltapush_store *store,
		      struct deltapush_sender *sender,
		      struct event *event_parent)
{
	struct deltapush_server *server;

	server = i_new(struct deltapush_server, 1);
	server->set = set;
	server->store = store;
	server->sender = sender;
	server->event = event_create(event_parent);
	event_add_category(server->event, &event_category_deltapush);
	server->clients = connection_list_init(&deltapush_server_set,
					       &deltapush_server_vfuncs);
	return server;
}

void deltapush_server_deinit(struct deltapush_server **_server)
{
	struct deltapush_server *server = *_server;

	*_server = NULL;
	connection_list_deinit(&server->clients);
	event_unref(&server->event);
	i_free(server);
}
