/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "ostream.h"
#include "connection.h"
#include "deltapush-protocol.h"
#include "deltapush-client.h"

/* One request on its own connection: requests are rare (a registration
   per IMAP session, a notify per delivery transaction), and a connection
   per request keeps no state in the mail process between them. */
struct deltapush_client {
	struct connection conn;

	struct ioloop *ioloop;
	struct timeout *to;
	unsigned int timeout_msecs;
	pool_t pool;

	/* The reply's fields, status first; NULL until it arrives */
	const char *const *reply;
	const char *error;
};

static void deltapush_client_finish(struct deltapush_client *client,
				    const char *error)
{
	if (client->reply == NULL && client->error == NULL)
		client->error = p_strdup(client->pool, error);
	io_loop_stop(client->ioloop);
}

static void deltapush_client_destroy(struct connection *conn)
{
	struct deltapush_client *client =
		container_of(conn, struct deltapush_client, conn);

	deltapush_client_finish(client, t_strdup_printf(
		"Service disconnected: %s",
		connection_disconnect_reason(conn)));
	connection_disconnect(conn);
}

static int deltapush_client_input_args(struct connection *conn,
				       const char *const *args)
{
	struct deltapush_client *client =
		container_of(conn, struct deltapush_client, conn);

	/* The strings live only during this callback. */
	client->reply = (const char *const *)
		p_strarray_dup(client->pool, args);
	deltapush_client_finish(client, NULL);
	return 0;
}

static void deltapush_client_timeout(struct deltapush_client *client)
{
	deltapush_client_finish(client, t_strdup_printf(
		"Timed out after %u ms waiting for the service",
		client->timeout_msecs));
}

static const struct connection_settings deltapush_client_set = {
	.service_name_in = DELTAPUSH_PROTOCOL_SERVICE_NAME,
	.service_name_out = DELTAPUSH_PROTOCOL_SERVICE_NAME,
	.major_version = DELTAPUSH_PROTOCOL_MAJOR_VERSION,
	.minor_version = DELTAPUSH_PROTOCOL_MINOR_VERSION,
	.input_max_size = DELTAPUSH_PROTOCOL_MAX_LINE_SIZE,
	.output_max_size = SIZE_MAX,
	.client = TRUE,
};

static const struct connection_vfuncs deltapush_client_vfuncs = {
	.destroy = deltapush_client_destroy,
	.input_args = deltapush_client_input_args,
};

static int
deltapush_client_reply_parse(const char *const *reply,
			     const char *const **fields_r,
			     const char **error_r)
{
	if (reply[0] != NULL &&
	    strcmp(reply[0], DELTAPUSH_PROTOCOL_REPLY_OK) == 0) {
		*fields_r = reply + 1;
		return 0;
	}
	if (reply[0] != NULL &&
	    strcmp(reply[0], DELTAPUSH_PROTOCOL_REPLY_FAIL) == 0) {
		*error_r = t_strdup_printf("Service failed the request: %s",
			reply[1] != NULL ? reply[1] : "(no reason)");
		return -1;
	}
	*error_r = "Service sent an invalid reply";
	return -1;
}

int deltapush_client_request(const char *socket_path,
			     unsigned int timeout_msecs,
			     struct event *event,
			     const struct deltapush_request *request,
			     const char *const **fields_r,
			     const char **error_r)
{
	struct ioloop *prev_ioloop = current_ioloop;
	struct connection_list *clist;
	struct deltapush_client *client;
	const char *const *fields;
	string_t *line;
	int ret;

	client = i_new(struct deltapush_client, 1);
	client->pool = pool_alloconly_create("deltapush client", 1024);
	client->timeout_msecs = timeout_msecs;
	client->ioloop = io_loop_create();

	clist = connection_list_init(&deltapush_client_set,
				     &deltapush_client_vfuncs);
	client->conn.event_parent = event;
	connection_init_client_unix(clist, &client->conn, socket_path);
	if (connection_client_connect(&client->conn) < 0) {
		client->error = p_strdup_printf(client->pool,
			"net_connect_unix(%s) failed: %m", socket_path);
	} else {
		line = t_str_new(256);
		deltapush_protocol_append_request(line, request);
		o_stream_nsend(client->conn.output, str_data(line),
			       str_len(line));
		client->to = timeout_add(timeout_msecs,
					 deltapush_client_timeout, client);
		io_loop_run(client->ioloop);
		timeout_remove(&client->to);
	}
	connection_deinit(&client->conn);
	connection_list_deinit(&clist);
	io_loop_set_current(client->ioloop);
	io_loop_destroy(&client->ioloop);
	i_assert(current_ioloop == prev_ioloop);

	if (client->reply != NULL) {
		ret = deltapush_client_reply_parse(client->reply, &fields,
						   error_r);
		if (ret == 0)
			*fields_r = (const char *const *)
				p_strarray_dup(pool_datastack_create(), fields);
	} else {
		*error_r = t_strdup(client->error);
		ret = -1;
	}
	pool_unref(&client->pool);
	i_free(client);
	return ret;
}
