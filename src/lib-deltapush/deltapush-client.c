/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "ostream.h"
#include "connection.h"
#include "deltapush-common.h"
#include "deltapush-protocol.h"
#include "deltapush-client.h"

#include <time.h>
#include <unistd.h>

/* After a request timed out, NOTIFY requests are not sent for this many
   times the service timeout: a stuck service must not cost every
   recipient of a delivery the whole timeout. Then one request probes. */
#define DELTAPUSH_CLIENT_SUSPEND_TIMEOUTS 10

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
	/* Connecting failed (not: the service closed the connection) */
	bool connect_failed:1;
	/* No reply within the time left */
	bool timed_out:1;
};

static struct connection_list *deltapush_client_list;
/* The connection kept for the delivery path (see the header) */
static struct deltapush_client *deltapush_client_kept;
/* The kept connection's event: it outlives the user it was made for */
static struct event *deltapush_client_kept_event;
/* While now < this (monotonic msecs), NOTIFY is not sent */
static uint64_t deltapush_client_suspended_until;
/* Suspended since the last request that got a reply */
static bool deltapush_client_suspended;

static uint64_t deltapush_client_now_msecs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		i_fatal("clock_gettime(CLOCK_MONOTONIC) failed: %m");
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
	client->timed_out = TRUE;
	deltapush_client_finish(client, t_strdup_printf(
		"Timed out after %u ms waiting for the service",
		client->timeout_msecs));
}

static const struct connection_settings deltapush_client_set = {
	DELTAPUSH_PROTOCOL_CONNECTION_SETTINGS,
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

/* Create a client and connect it in the current (private) ioloop. While
   the master replaces the service (doveadm reload) the socket may be
   missing or refuse for a moment: retry until deadline_msecs. Sets
   client->disconnected and client->error when connecting failed. */
static struct deltapush_client *
deltapush_client_connect(const char *socket_path, struct event *event,
			 uint64_t deadline_msecs, unsigned int timeout_msecs)
{
	struct deltapush_client *client;
	uint64_t now;
	unsigned int sleep_msecs;
	int ret;

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
	while ((ret = connection_client_connect(&client->conn)) < 0 &&
	       (errno == ENOENT || errno == ECONNREFUSED ||
		errno == EAGAIN)) {
		now = deltapush_client_now_msecs();
		if (now >= deadline_msecs)
			break;
		sleep_msecs = I_MIN(i_rand_minmax(1, 10) * 10,
				    deadline_msecs - now);
		usleep(sleep_msecs * 1000);
	}
	if (ret < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED ||
		    errno == EAGAIN) {
			/* waited the whole time: like no reply */
			client->timed_out = TRUE;
			client->error = p_strdup_printf(client->pool,
				"net_connect_unix(%s) failed for %u ms: %m",
				socket_path, timeout_msecs);
		} else {
			client->error = p_strdup_printf(client->pool,
				"net_connect_unix(%s) failed: %m",
				socket_path);
		}
		client->connect_failed = TRUE;
		client->disconnected = TRUE;
	}
	return client;
}

/* Send the request and wait for its reply in client->ioloop, at most
   until deadline_msecs. */
static void deltapush_client_run(struct deltapush_client *client,
				 const struct deltapush_request *request,
				 uint64_t deadline_msecs,
				 unsigned int timeout_msecs)
{
	uint64_t now = deltapush_client_now_msecs();
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
	client->timed_out = FALSE;
	connection_input_resume(&client->conn);
	line = t_str_new(256);
	deltapush_protocol_append_request(line, request);
	o_stream_nsend(client->conn.output, str_data(line), str_len(line));
	client->to = timeout_add(deadline_msecs > now ?
				 deadline_msecs - now : 0,
				 deltapush_client_timeout, client);
	io_loop_run(client->ioloop);
	timeout_remove(&client->to);
	if (!client->disconnected)
		connection_input_halt(&client->conn);
}

/* NOTIFY is skipped while the service recently timed out. Returns TRUE
   if this request is to be skipped. */
static bool
deltapush_client_is_suspended(const struct deltapush_request *request,
			      uint64_t now)
{
	return request->type == DELTAPUSH_REQUEST_NOTIFY &&
		now < deltapush_client_suspended_until;
}

static void deltapush_client_suspend(struct event *event, uint64_t now,
				     unsigned int timeout_msecs)
{
	unsigned int msecs = timeout_msecs * DELTAPUSH_CLIENT_SUSPEND_TIMEOUTS;

	deltapush_client_suspended_until = now + I_MAX(msecs, 1000U);
	if (deltapush_client_suspended)
		return;
	/* once, until the service answers again */
	deltapush_client_suspended = TRUE;
	if (event == NULL) {
		/* doveadm: it never sends NOTIFY */
		return;
	}
	e_warning(event, "The push service did not answer in time: not "
		  "notifying it of new mail for %u ms, then trying again",
		  I_MAX(msecs, 1000U));
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
	struct event *conn_event = event;
	const char *const *fields;
	uint64_t now, deadline;
	int ret;

	now = deltapush_client_now_msecs();
	if (deltapush_client_is_suspended(request, now)) {
		*error_r = "Skipped: the push service did not answer in time "
			"recently";
		return DELTAPUSH_CLIENT_SUSPENDED;
	}
	deadline = now + timeout_msecs;

	if (keep_connection) {
		/* The kept connection serves later users too: it must not
		   log under the first one's prefix. */
		if (deltapush_client_kept_event == NULL) {
			deltapush_client_kept_event = event_create(NULL);
			event_add_category(deltapush_client_kept_event,
					   &event_category_deltapush);
		}
		conn_event = deltapush_client_kept_event;
	}

	ioloop = io_loop_create();
	if (deltapush_client_kept != NULL && keep_connection &&
	    strcmp(deltapush_client_kept->socket_path, socket_path) == 0) {
		client = deltapush_client_kept;
		deltapush_client_kept = NULL;
		connection_switch_ioloop_to(&client->conn, ioloop);
	} else if (deltapush_client_kept != NULL && keep_connection) {
		deltapush_client_free(&deltapush_client_kept);
	}
	if (client == NULL) {
		client = deltapush_client_connect(socket_path, conn_event,
						  deadline, timeout_msecs);
	}
	client->ioloop = ioloop;
	deltapush_client_run(client, request, deadline, timeout_msecs);

	if (client->disconnected && client->reply == NULL &&
	    !client->connect_failed && !client->timed_out &&
	    deltapush_client_now_msecs() < deadline) {
		/* The service closed the connection without answering: a
		   kept connection it closed while idle, or a service process
		   going away (restart, doveadm reload). Once more on a new
		   one, within the same time: every request is safe to
		   repeat. */
		deltapush_client_free(&client);
		client = deltapush_client_connect(socket_path, conn_event,
						  deadline, timeout_msecs);
		client->ioloop = ioloop;
		deltapush_client_run(client, request, deadline, timeout_msecs);
	}

	if (client->reply != NULL) {
		deltapush_client_suspended = FALSE;
		deltapush_client_suspended_until = 0;
		ret = deltapush_client_reply_parse(client->reply, &fields,
						   error_r);
		if (ret == 0)
			*fields_r = (const char *const *)
				p_strarray_dup(pool_datastack_create(), fields);
	} else {
		*error_r = t_strdup(client->error);
		if (client->timed_out) {
			deltapush_client_suspend(event,
				deltapush_client_now_msecs(), timeout_msecs);
		}
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
	event_unref(&deltapush_client_kept_event);
}
