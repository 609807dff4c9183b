/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "istream.h"
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

/* A connection to the service. A request is written at once and its
   reply read later, in a private ioloop, so the caller's ioloop is left
   alone; between requests a connection has no io at all. */
struct deltapush_client {
	struct connection conn;
	char *socket_path;

	/* Sent requests in the order the service answers them; NULL for
	   one whose sender no longer wants the reply */
	ARRAY(struct deltapush_client_reply *) replies;
	/* While waiting: the request whose reply ends the wait */
	struct ioloop *ioloop;
	struct deltapush_client_reply *waiting;
	/* The service closed the connection */
	bool disconnected:1;
};

struct deltapush_client_reply {
	pool_t pool;
	/* What was sent (copied, for sending it once more) */
	struct deltapush_request request;
	const char *socket_path;
	struct event *event;
	unsigned int timeout_msecs;
	uint64_t deadline_msecs;
	bool keep_connection;

	/* The connection it waits on; NULL once answered or lost */
	struct deltapush_client *client;
	/* Without keep_connection: its own connection */
	struct deltapush_client *own_client;

	/* The reply's fields, status first; NULL until it arrives */
	const char *const *fields;
	const char *error;
	/* Not sent: NOTIFY is suspended */
	bool suspended:1;
	/* No reply within the time (connecting included) */
	bool timed_out:1;
	/* The connection closed before the reply arrived */
	bool lost:1;
	/* Sent a second time after it was lost */
	bool resent:1;
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

/* The connection is gone: every request still on it is lost. */
static void deltapush_client_lose_replies(struct deltapush_client *client,
					  const char *error)
{
	struct deltapush_client_reply *reply;

	array_foreach_elem(&client->replies, reply) {
		if (reply == NULL)
			continue;
		reply->client = NULL;
		reply->lost = TRUE;
		reply->error = p_strdup(reply->pool, error);
	}
	array_clear(&client->replies);
	if (client->ioloop != NULL)
		io_loop_stop(client->ioloop);
}

static void deltapush_client_destroy(struct connection *conn)
{
	struct deltapush_client *client =
		container_of(conn, struct deltapush_client, conn);

	client->disconnected = TRUE;
	deltapush_client_lose_replies(client, t_strdup_printf(
		"Service disconnected: %s",
		connection_disconnect_reason(conn)));
	connection_disconnect(conn);
}

static int deltapush_client_input_args(struct connection *conn,
				       const char *const *args)
{
	struct deltapush_client *client =
		container_of(conn, struct deltapush_client, conn);
	struct deltapush_client_reply *reply;

	if (array_count(&client->replies) == 0) {
		/* Nothing was asked: the service is confused. */
		return -1;
	}
	reply = array_idx_elem(&client->replies, 0);
	array_pop_front(&client->replies);
	if (reply == NULL) {
		/* abandoned */
		return 1;
	}
	/* The strings live only during this callback. */
	reply->fields = (const char *const *)p_strarray_dup(reply->pool, args);
	reply->client = NULL;
	if (reply == client->waiting)
		io_loop_stop(client->ioloop);
	return 1;
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
	deltapush_client_lose_replies(client, "Connection closed");
	connection_deinit(&client->conn);
	array_free(&client->replies);
	i_free(client->socket_path);
	i_free(client);
}

/* Create a client and connect it. While the master replaces the service
   (doveadm reload) the socket may be missing or refuse for a moment:
   retry until deadline_msecs. Returns NULL with error_r (and timed_out_r
   set when that time ran out) when connecting failed. */
static struct deltapush_client *
deltapush_client_connect(const char *socket_path, struct event *event,
			 uint64_t deadline_msecs, unsigned int timeout_msecs,
			 bool *timed_out_r, const char **error_r)
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
	client->socket_path = i_strdup(socket_path);
	i_array_init(&client->replies, 4);
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
	if (ret == 0)
		return client;

	if (errno == ENOENT || errno == ECONNREFUSED || errno == EAGAIN) {
		/* waited the whole time: like no reply */
		*timed_out_r = TRUE;
		*error_r = t_strdup_printf(
			"net_connect_unix(%s) failed for %u ms: %m",
			socket_path, timeout_msecs);
	} else {
		*timed_out_r = FALSE;
		*error_r = t_strdup_printf("net_connect_unix(%s) failed: %m",
					   socket_path);
	}
	deltapush_client_free(&client);
	return NULL;
}

/* Whether the kept connection can take a request. An idle one must have
   nothing to read: an EOF means the service closed it (its idle timeout,
   a restart), and finding that out now keeps the request from waiting
   on a dead connection until it is finished. */
static bool deltapush_client_is_usable(struct deltapush_client *client)
{
	if (client->disconnected)
		return FALSE;
	if (array_count(&client->replies) > 0)
		return TRUE;
	return i_stream_read(client->conn.input) == 0 &&
		i_stream_get_data_size(client->conn.input) == 0;
}

static struct event *deltapush_client_kept_event_get(void)
{
	/* The kept connection serves later users too: it must not log
	   under the first one's prefix. */
	if (deltapush_client_kept_event == NULL) {
		deltapush_client_kept_event = event_create(NULL);
		event_add_category(deltapush_client_kept_event,
				   &event_category_deltapush);
	}
	return deltapush_client_kept_event;
}

/* Write the request on the kept connection (or its own one), connecting
   first if needed. Leaves reply->client set when it was sent, else
   reply->error. */
static void deltapush_client_reply_send(struct deltapush_client_reply *reply)
{
	struct deltapush_client *client = NULL, **clientp;
	struct event *conn_event = reply->event;
	const char *error;
	bool timed_out = FALSE;
	string_t *line;

	if (reply->keep_connection) {
		conn_event = deltapush_client_kept_event_get();
		clientp = &deltapush_client_kept;
		if (*clientp != NULL &&
		    (strcmp((*clientp)->socket_path, reply->socket_path) != 0 ||
		     !deltapush_client_is_usable(*clientp)))
			deltapush_client_free(clientp);
	} else {
		clientp = &reply->own_client;
		if (*clientp != NULL)
			deltapush_client_free(clientp);
	}
	if (*clientp == NULL) {
		*clientp = deltapush_client_connect(reply->socket_path,
						    conn_event,
						    reply->deadline_msecs,
						    reply->timeout_msecs,
						    &timed_out, &error);
		if (*clientp == NULL) {
			reply->timed_out = timed_out;
			reply->error = p_strdup(reply->pool, error);
			return;
		}
	}
	client = *clientp;
	/* Parked in the caller's ioloop until the reply is waited for;
	   with input halted it has no io there. */
	connection_switch_ioloop_to(&client->conn, current_ioloop);
	array_push_back(&client->replies, &reply);
	reply->client = client;

	line = t_str_new(256);
	deltapush_protocol_append_request(line, &reply->request);
	o_stream_nsend(client->conn.output, str_data(line), str_len(line));
	connection_input_halt(&client->conn);
	if (client->conn.output->stream_errno != 0) {
		/* e.g. EPIPE: the service closed it. The request is lost
		   and sent again when it is finished. */
		deltapush_client_free(clientp);
	}
}

/* Wait for the reply in a private ioloop, at most until the deadline. */
static void deltapush_client_wait(struct deltapush_client_reply *reply)
{
	struct deltapush_client *client = reply->client;
	struct ioloop *prev_ioloop = current_ioloop, *ioloop;
	struct timeout *to;
	uint64_t now = deltapush_client_now_msecs();

	ioloop = io_loop_create();
	connection_switch_ioloop_to(&client->conn, ioloop);
	client->ioloop = ioloop;
	client->waiting = reply;
	connection_input_resume(&client->conn);
	to = timeout_add(reply->deadline_msecs > now ?
			 reply->deadline_msecs - now : 0, io_loop_stop, ioloop);
	io_loop_run(ioloop);
	timeout_remove(&to);
	client->ioloop = NULL;
	client->waiting = NULL;

	if (reply->client != NULL) {
		/* No reply in time. The connection's later replies would
		   be out of step with its requests: close it. */
		if (client == deltapush_client_kept)
			deltapush_client_free(&deltapush_client_kept);
		else {
			i_assert(client == reply->own_client);
			deltapush_client_free(&reply->own_client);
		}
		reply->lost = FALSE;
		reply->timed_out = TRUE;
		reply->error = p_strdup_printf(reply->pool,
			"Timed out after %u ms waiting for the service",
			reply->timeout_msecs);
	} else {
		if (!client->disconnected)
			connection_input_halt(&client->conn);
		connection_switch_ioloop_to(&client->conn, prev_ioloop);
	}
	io_loop_set_current(ioloop);
	io_loop_destroy(&ioloop);
	i_assert(current_ioloop == prev_ioloop);
}

static void deltapush_client_reply_free(struct deltapush_client_reply **_reply)
{
	struct deltapush_client_reply *reply = *_reply;

	*_reply = NULL;
	if (reply->own_client != NULL)
		deltapush_client_free(&reply->own_client);
	event_unref(&reply->event);
	pool_unref(&reply->pool);
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

struct deltapush_client_reply *
deltapush_client_send(const char *socket_path, unsigned int timeout_msecs,
		      struct event *event,
		      const struct deltapush_request *request,
		      bool keep_connection)
{
	struct deltapush_client_reply *reply;
	pool_t pool;
	uint64_t now = deltapush_client_now_msecs();

	pool = pool_alloconly_create("deltapush client reply", 512);
	reply = p_new(pool, struct deltapush_client_reply, 1);
	reply->pool = pool;
	reply->request.type = request->type;
	reply->request.user = p_strdup(pool, request->user);
	reply->request.token = p_strdup(pool, request->token);
	reply->request.last_seen = request->last_seen;
	reply->socket_path = p_strdup(pool, socket_path);
	reply->event = event;
	if (event != NULL)
		event_ref(event);
	reply->timeout_msecs = timeout_msecs;
	reply->deadline_msecs = now + timeout_msecs;
	reply->keep_connection = keep_connection;

	if (deltapush_client_is_suspended(request, now))
		reply->suspended = TRUE;
	else
		deltapush_client_reply_send(reply);
	return reply;
}

int deltapush_client_finish(struct deltapush_client_reply **_reply,
			    const char *const **fields_r,
			    const char **error_r)
{
	struct deltapush_client_reply *reply = *_reply;
	const char *const *fields;
	int ret;

	*_reply = NULL;
	if (reply->suspended) {
		*error_r = "Skipped: the push service did not answer in time "
			"recently";
		deltapush_client_reply_free(&reply);
		return DELTAPUSH_CLIENT_SUSPENDED;
	}
	if (reply->client != NULL)
		deltapush_client_wait(reply);
	if (reply->lost && !reply->resent &&
	    deltapush_client_now_msecs() < reply->deadline_msecs) {
		/* The service closed the connection without answering: a
		   kept connection it closed while idle, or a service process
		   going away (restart, doveadm reload). Once more on a new
		   one, within the same time: every request is safe to
		   repeat. */
		reply->lost = FALSE;
		reply->resent = TRUE;
		deltapush_client_reply_send(reply);
		if (reply->client != NULL)
			deltapush_client_wait(reply);
	}

	if (reply->fields != NULL) {
		deltapush_client_suspended = FALSE;
		deltapush_client_suspended_until = 0;
		ret = deltapush_client_reply_parse(reply->fields, &fields,
						   error_r);
		if (ret == 0)
			*fields_r = (const char *const *)
				p_strarray_dup(pool_datastack_create(), fields);
	} else {
		i_assert(reply->error != NULL);
		*error_r = t_strdup(reply->error);
		if (reply->timed_out) {
			deltapush_client_suspend(reply->event,
				deltapush_client_now_msecs(),
				reply->timeout_msecs);
		}
		ret = -1;
	}
	deltapush_client_reply_free(&reply);
	return ret;
}

void deltapush_client_abandon(struct deltapush_client_reply **_reply)
{
	struct deltapush_client_reply *reply = *_reply, **slot;

	*_reply = NULL;
	if (reply->client != NULL) {
		/* Keep its place: the reply still comes, in order. */
		array_foreach_modifiable(&reply->client->replies, slot) {
			if (*slot == reply)
				*slot = NULL;
		}
	}
	deltapush_client_reply_free(&reply);
}

int deltapush_client_request(const char *socket_path,
			     unsigned int timeout_msecs,
			     struct event *event,
			     const struct deltapush_request *request,
			     bool keep_connection,
			     const char *const **fields_r,
			     const char **error_r)
{
	struct deltapush_client_reply *reply;

	reply = deltapush_client_send(socket_path, timeout_msecs, event,
				      request, keep_connection);
	return deltapush_client_finish(&reply, fields_r, error_r);
}

void deltapush_client_deinit(void)
{
	if (deltapush_client_kept != NULL)
		deltapush_client_free(&deltapush_client_kept);
	if (deltapush_client_list != NULL)
		connection_list_deinit(&deltapush_client_list);
	event_unref(&deltapush_client_kept_event);
}
