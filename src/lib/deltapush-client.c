/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "ostream.h"
#include "connection.h"
#include "deltapush-protocol.h"
#include "deltapush-client.h"

/* A connection to the service. Each request runs in a private ioloop, so
   the caller's ioloop is left alone; between requests a kept connection
   has no io at all. */
struct deltapush_client {
	struct connection conn;
	char *socket_path;

	struct ioloop *ioloop;
	struct timeout *to;
	unsigned int timeout_msecs;
	pool_t pool;

	/* The reply's fields, status first; NULL until it arrives */
	const char *const *reply;
	const char *error;
	/* The service closed the connection */
	bool disconnected:1;
};

static struct connection_list *deltapush_client_list;
/* The connection kept for the delivery path (see the header) */
static struct deltapush_client *deltapush_client_kept;

static void deltapush_client_finish(struct deltapush_client *client,
				    const char *error)
{
	if (client->reply == NULL && client->error == NULL)
		client->error = p_strdup(client->pool, error);
	if (client->ioloop != NULL)
		io_loop_stop(client->ioloop);
}

static void deltapush_client_destroy(struct connection *conn)
{
	struct deltapush_client *client =
		container_of(conn, struct deltapush_client, conn);

	client->disconnected = TRUE;
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

	if (client->ioloop == NULL || client->reply != NULL) {
		/* Nothing was asked: the service is confused. */
		client->disconnected = TRUE;
		return -1;
	}
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

static void deltapush_client_free(struct deltapush_client **_client)
{
	struct deltapush_client *client = *_client;

	*_client = NULL;
	connection_deinit(&client->conn);
	pool_unref(&client->pool);
	i_free(client->socket_path);
	i_free(client);
}

/* Create a client and connect it in the current (private) ioloop.
   Returns -1 with client->error set when connecting failed. */
static struct deltapush_client *
deltapush_client_connect(const char *socket_path, struct event *event)
{
	struct deltapush_client *client;

	if (deltapush_client_list == NULL) {
		deltapush_client_list =
			connection_list_init(&deltapush_client_set,
					     &deltapush_client_vfuncs);
	}
	client = i_new(struct deltapush_client, 1);
	client->pool = pool_alloconly_create("deltapush client", 1024);
	client->socket_path = i_strdup(socket_path);
	client->conn.event_parent = event;
	connection_init_client_unix(deltapush_client_list, &client->conn,
				    socket_path);
	if (connection_client_connect(&client->conn) < 0) {
		client->error = p_strdup_printf(client->pool,
			"net_connect_unix(%s) failed: %m", socket_path);
		client->disconnected = TRUE;
	}
	return client;
}

/* Send the request and wait for its reply in client->ioloop. */
static void deltapush_client_run(struct deltapush_client *client,
				 const struct deltapush_request *request,
				 unsigned int timeout_msecs)
{
	string_t *line;

	client->timeout_msecs = timeout_msecs;
	if (client->disconnected) {
		/* connecting failed: client->error says why */
		i_assert(client->error != NULL);
		return;
	}
	p_clear(client->pool);
	client->reply = NULL;
	client->error = NULL;
	connection_input_resume(&client->conn);
	line = t_str_new(256);
	deltapush_protocol_append_request(line, request);
	o_stream_nsend(client->conn.output, str_data(line), str_len(line));
	client->to = timeout_add(timeout_msecs, deltapush_client_timeout,
				 client);
	io_loop_run(client->ioloop);
	timeout_remove(&client->to);
	if (!client->disconnected)
		connection_input_halt(&client->conn);
}

int deltapush_client_request(const char *socket_path,
			     unsigned int timeout_msecs,
			     struct event *event,
			     const struct deltapush_request *request,
			     bool keep_connection,
			     const char *const **fields_r,
			     const char **error_r)
{
	struct ioloop *prev_ioloop = current_ioloop, *ioloop;
	struct deltapush_client *client = NULL;
	const char *const *fields;
	bool reused = FALSE;
	int ret;

	ioloop = io_loop_create();
	if (deltapush_client_kept != NULL && keep_connection &&
	    strcmp(deltapush_client_kept->socket_path, socket_path) == 0) {
		client = deltapush_client_kept;
		deltapush_client_kept = NULL;
		connection_switch_ioloop_to(&client->conn, ioloop);
		reused = TRUE;
	} else if (deltapush_client_kept != NULL && keep_connection) {
		deltapush_client_free(&deltapush_client_kept);
	}
	if (client == NULL)
		client = deltapush_client_connect(socket_path, event);
	client->ioloop = ioloop;
	deltapush_client_run(client, request, timeout_msecs);

	if (reused && client->disconnected && client->reply == NULL) {
		/* The service closed the kept connection while it was idle
		   (restart, idle timeout): once more on a new one. */
		deltapush_client_free(&client);
		client = deltapush_client_connect(socket_path, event);
		client->ioloop = ioloop;
		deltapush_client_run(client, request, timeout_msecs);
	}

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

	client->ioloop = NULL;
	if (keep_connection && !client->disconnected && ret == 0) {
		connection_switch_ioloop_to(&client->conn, prev_ioloop);
		deltapush_client_kept = client;
	} else {
		deltapush_client_free(&client);
	}
	io_loop_set_current(ioloop);
	io_loop_destroy(&ioloop);
	i_assert(current_ioloop == prev_ioloop);
	return ret;
}

void deltapush_client_deinit(void)
{
	if (deltapush_client_kept != NULL)
		deltapush_client_free(&deltapush_client_kept);
	if (deltapush_client_list != NULL)
		connection_list_deinit(&deltapush_client_list);
}
