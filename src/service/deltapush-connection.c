/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-compat.h"
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
#include "deltapush-db.h"
#include "deltapush-connection.h"

#include <unistd.h>

/* A plugin sends one line and waits; a client that stays silent this
   long is dropped (an lmtp process's kept connection then reconnects),
   so idle connections can't use up the service's client_limit. */
#define DELTAPUSH_CONNECTION_IDLE_TIMEOUT_SECS 10
/* A client that doesn't read its replies stops being read from once this
   much output waits for it. */
#define DELTAPUSH_CONNECTION_OUTPUT_LIMIT DELTAPUSH_PROTOCOL_MAX_LINE_SIZE

struct deltapush_connections {
	const struct deltapush_settings *set;
	struct deltapush_db *db;
	struct event *event;
	struct connection_list *clients;
	/* Clients whose reply waits for the group commit */
	ARRAY(struct deltapush_connection *) held;
};

struct deltapush_connection {
	struct connection conn;
	struct deltapush_connections *conns;
	/* The reply to a write, sent once it is on disk; input is halted
	   meanwhile, so there is at most one */
	string_t *held_reply;
	bool holding:1;
	bool held_ok:1;
	/* Set while reading is halted for a client that doesn't read its
	   replies: halting removed the idle timeout */
	struct timeout *to_output;
};

static void deltapush_connection_reply(struct deltapush_connection *client,
				       const char *status,
				       const char *const *fields)
{
	string_t *str = t_str_new(128);

	deltapush_protocol_append_reply(str, status, fields);
	if (client->holding) {
		if (client->held_reply == NULL)
			client->held_reply = str_new(default_pool, 128);
		str_append_str(client->held_reply, str);
		client->held_ok = strcmp(status,
					 DELTAPUSH_PROTOCOL_REPLY_OK) == 0;
		return;
	}
	o_stream_nsend(client->conn.output, str_data(str), str_len(str));
}

static void
deltapush_connection_held_committed(int ret, const char *error,
				    struct deltapush_connections *conns)
{
	struct deltapush_connection *const *clientp, *client;
	string_t *str;

	array_foreach(&conns->held, clientp) {
		client = *clientp;
		if (ret < 0 && client->held_ok) {
			/* Not on disk after all */
			str = t_str_new(128);
			deltapush_protocol_append_reply(str,
				DELTAPUSH_PROTOCOL_REPLY_FAIL,
				(const char *[]){ t_strdup_printf(
					"Commit failed: %s", error), NULL });
		} else {
			str = client->held_reply;
		}
		o_stream_nsend(client->conn.output, str_data(str),
			       str_len(str));
		str_truncate(client->held_reply, 0);
		connection_input_resume(&client->conn);
	}
	array_clear(&conns->held);
}

/* Hold the reply of a write until the group commit, so that OK means
   on disk. */
static bool deltapush_connection_hold(struct deltapush_connection *client)
{
	struct deltapush_connections *conns = client->conns;

	client->holding = FALSE;
	if (client->held_reply == NULL || str_len(client->held_reply) == 0)
		return FALSE;
	if (!deltapush_db_group_is_open(conns->db)) {
		/* Nothing was written (e.g. an invalid token) */
		o_stream_nsend(client->conn.output,
			       str_data(client->held_reply),
			       str_len(client->held_reply));
		str_truncate(client->held_reply, 0);
		return FALSE;
	}
	if (array_count(&conns->held) == 0) {
		deltapush_db_group_add_callback(conns->db,
			deltapush_connection_held_committed, conns);
	}
	array_push_back(&conns->held, &client);
	connection_input_halt(&client->conn);
	return TRUE;
}

static void deltapush_connection_reply1(struct deltapush_connection *client,
					const char *status, const char *field)
{
	const char *fields[] = { field, NULL };

	deltapush_connection_reply(client, status, fields);
}

static struct event_passthrough *
deltapush_connection_event(struct deltapush_connection *client,
			   const char *name, const char *user,
			   const char *token)
{
	struct event_passthrough *e =
		event_create_passthrough(client->conn.event)->set_name(name)->
		add_str("user", user);

	if (token != NULL)
		e->add_str("token", deltapush_token_id(token));
	return e;
}

static void deltapush_connection_fail(struct deltapush_connection *client,
				      const char *what, const char *user,
				      const char *error)
{
	e_error(client->conn.event, "%s for user %s failed: %s",
		what, user, error);
	deltapush_connection_reply1(client, DELTAPUSH_PROTOCOL_REPLY_FAIL,
				    error);
}

static void
deltapush_connection_register(struct deltapush_connection *client,
			      const struct deltapush_request *request)
{
	struct deltapush_connections *conns = client->conns;
	ARRAY_TYPE(const_string) evicted;
	struct event_passthrough *e;
	struct event *event;
	const char *const *tokenp, *token_id, *error;
	time_t now;
	int ret;

	if (!deltapush_token_is_valid((const unsigned char *)request->token,
				      strlen(request->token), &error)) {
		/* The plugin checks too; this guards the database. */
		deltapush_connection_fail(client, "Registration", request->user,
					  error);
		return;
	}
	/* An import keeps the time the token was last seen elsewhere. */
	now = request->type == DELTAPUSH_REQUEST_IMPORT ?
		I_MIN(request->last_seen, ioloop_time) : ioloop_time;
	if (now < ioloop_time - (time_t)conns->set->token_ttl_secs) {
		deltapush_connection_reply1(client, DELTAPUSH_PROTOCOL_REPLY_OK,
					    "0");
		return;
	}
	t_array_init(&evicted, 2);
	ret = deltapush_db_register(conns->db, request->user, request->token,
				    now, pool_datastack_create(), &evicted,
				    &error);
	if (ret < 0) {
		deltapush_connection_fail(client, "Registration", request->user,
					  error);
		return;
	}
	array_foreach(&evicted, tokenp) {
		e = deltapush_connection_event(client,
				"deltapush_token_removed",
				request->user, *tokenp)->
			add_str("reason", "evicted")->add_int("count", 1);
		e_info(e->event(), "Evicted token %s of user %s: "
		       "more than %u tokens",
		       deltapush_token_id(*tokenp), request->user,
		       DELTAPUSH_TOKENS_MAX_PER_USER);
	}
	/* A refresh comes with every login of a Delta Chat client: its
	   debug event hashes the token only when it is wanted */
	event = deltapush_connection_event(client,
			"deltapush_token_registered", request->user, NULL)->
		add_int("refresh", ret > 0 ? 0 : 1)->event();
	token_id = deltapush_token_event_id(event,
		ret > 0 ? LOG_TYPE_INFO : LOG_TYPE_DEBUG, request->token);
	if (token_id != NULL && ret > 0) {
		e_info(event, "Registered token %s for user %s",
		       token_id, request->user);
	} else if (token_id != NULL) {
		e_debug(event, "Refreshed token %s of user %s",
			token_id, request->user);
	}
	deltapush_connection_reply1(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				    ret > 0 ? "1" : "0");
}

static void deltapush_connection_get(struct deltapush_connection *client,
				     const struct deltapush_request *request)
{
	struct deltapush_connections *conns = client->conns;
	ARRAY_TYPE(deltapush_store_token) tokens;
	ARRAY_TYPE(const_string) fields;
	const struct deltapush_store_token *token;
	const char *error;

	t_array_init(&tokens, 8);
	if (deltapush_db_get_tokens(conns->db, request->user,
				    pool_datastack_create(), &tokens,
				    &error) < 0) {
		deltapush_connection_fail(client, "Token lookup", request->user,
					  error);
		return;
	}
	t_array_init(&fields, array_count(&tokens) + 1);
	array_foreach(&tokens, token)
		array_push_back(&fields, &token->token);
	array_append_zero(&fields);
	deltapush_connection_reply(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				   array_front(&fields));
}

static void
deltapush_connection_forget_ambiguous(struct deltapush_connection *client,
				      const char *user, unsigned int count)
{
	/* An operator's typo, not a failure of the service */
	e_info(client->conn.event, "Not forgetting tokens of user %s: "
	       "the id matches %u tokens", user, count);
	deltapush_connection_reply1(client, DELTAPUSH_PROTOCOL_REPLY_FAIL,
		t_strdup_printf("Token id matches %u tokens; give "
				"the whole token", count));
}

/* Remove the user's tokens, or the one given by its id (or whole). Each
   removed token is its own event, so metrics count tokens, not
   requests. */
static void deltapush_connection_forget(struct deltapush_connection *client,
					const struct deltapush_request *request)
{
	ARRAY_TYPE(deltapush_store_token) removed;
	const struct deltapush_store_token *token;
	struct event_passthrough *e;
	const char *error;
	int ret;

	t_array_init(&removed, 8);
	ret = deltapush_db_forget(client->conns->db, request->user,
				  request->token, pool_datastack_create(),
				  &removed, &error);
	if (ret == -2) {
		deltapush_connection_forget_ambiguous(client, request->user,
						      array_count(&removed));
		return;
	}
	if (ret < 0) {
		deltapush_connection_fail(client, "Forgetting tokens",
					  request->user, error);
		return;
	}
	array_foreach(&removed, token) {
		e = deltapush_connection_event(client,
				"deltapush_token_removed",
				request->user, token->token)->
			add_str("reason", "unset")->add_int("count", 1);
		e_debug(e->event(), "Forgot token %s of user %s",
			deltapush_token_id(token->token), request->user);
	}
	e_info(client->conn.event, "Forgot %u token(s) of user %s",
	       array_count(&removed), request->user);
	deltapush_connection_reply1(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				    dec2str(array_count(&removed)));
}

static void deltapush_connection_notify(struct deltapush_connection *client,
					const struct deltapush_request *request)
{
	const char *error;
	bool written;
	int count;

	count = deltapush_db_notify(client->conns->db, request->user,
				    &written, &error);
	/* Folded into pushes on disk already: nothing to wait for */
	if (!written)
		client->holding = FALSE;
	if (count < 0) {
		deltapush_connection_fail(client, "Recording new mail",
					  request->user, error);
		return;
	}
	e_debug(client->conn.event, "New mail for user %s: %d token(s) due",
		request->user, count);
	deltapush_connection_reply1(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				    dec2str(count));
}

static const char *
deltapush_connection_state_name(const struct deltapush_push_state *state)
{
	if (state->in_flight)
		return "sending";
	if (state->due_msecs == 0)
		return "idle";
	return state->attempts > 0 ? "retrying" : "pending";
}

static void deltapush_connection_list(struct deltapush_connection *client,
				      const struct deltapush_request *request)
{
	struct deltapush_connections *conns = client->conns;
	ARRAY_TYPE(deltapush_store_token) tokens;
	ARRAY_TYPE(const_string) fields;
	const struct deltapush_store_token *token;
	struct deltapush_push_state state;
	const char *error, *value;

	t_array_init(&tokens, 8);
	if (deltapush_db_get_tokens(conns->db, request->user,
				    pool_datastack_create(), &tokens,
				    &error) < 0) {
		deltapush_connection_fail(client, "Token listing",
					  request->user, error);
		return;
	}
	t_array_init(&fields, array_count(&tokens) *
		     DELTAPUSH_PROTOCOL_LIST_FIELDS + 1);
	array_foreach(&tokens, token) {
		deltapush_db_get_push_state(conns->db, token, &state);
		value = deltapush_token_id(token->token);
		array_push_back(&fields, &value);
		value = dec2str(token->created);
		array_push_back(&fields, &value);
		value = dec2str(token->last_seen);
		array_push_back(&fields, &value);
		value = deltapush_connection_state_name(&state);
		array_push_back(&fields, &value);
		value = dec2str(state.due_msecs);
		array_push_back(&fields, &value);
		value = dec2str(state.attempts);
		array_push_back(&fields, &value);
	}
	array_append_zero(&fields);
	deltapush_connection_reply(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				   array_front(&fields));
}

static void deltapush_connection_flush(struct deltapush_connection *client,
				       const struct deltapush_request *request)
{
	const char *error;
	int count;

	count = deltapush_db_flush(client->conns->db, request->user, &error);
	if (count < 0) {
		deltapush_connection_fail(client, "Flushing pushes",
					  request->user == NULL ? "(all)" :
					  request->user, error);
		return;
	}
	e_info(client->conn.event, "Flushed %d pending push(es)%s%s", count,
	       request->user == NULL ? "" : " of user ",
	       request->user == NULL ? "" : request->user);
	deltapush_connection_reply1(client, DELTAPUSH_PROTOCOL_REPLY_OK,
				    dec2str(count));
}

static void
deltapush_connection_status_reply(struct deltapush_connection *client,
				  const struct deltapush_store_stats *stats,
				  const struct deltapush_sender_status *status,
				  uint64_t now);

static void deltapush_connection_status(struct deltapush_connection *client)
{
	struct deltapush_connections *conns = client->conns;
	struct deltapush_store_stats stats;
	struct deltapush_sender_status status;
	uint64_t now = (uint64_t)ioloop_timeval.tv_sec * 1000 +
		ioloop_timeval.tv_usec / 1000;
	const char *error;

	if (deltapush_db_get_status(conns->db, &stats, &status,
				    &error) < 0) {
		deltapush_connection_fail(client, "Status", "(all)", error);
		return;
	}
	deltapush_connection_status_reply(client, &stats, &status, now);
}

static void
deltapush_connection_status_reply(struct deltapush_connection *client,
				  const struct deltapush_store_stats *stats,
				  const struct deltapush_sender_status *status,
				  uint64_t now)
{
	const char *fields[] = {
		"tokens", dec2str(stats->tokens),
		"users", dec2str(stats->users),
		"pending", dec2str(status->pending),
		"in_flight", dec2str(status->in_flight),
		"oldest_pending_secs", dec2str(
			status->oldest_trigger_msecs == 0 ||
			status->oldest_trigger_msecs > now ? 0 :
			(now - status->oldest_trigger_msecs) / 1000),
		"last_error", status->last_error == NULL ? "" :
			status->last_error,
		"last_error_time", dec2str(status->last_error_time),
		NULL
	};
	deltapush_connection_reply(client, DELTAPUSH_PROTOCOL_REPLY_OK, fields);
}

static int deltapush_connection_output(struct deltapush_connection *client)
{
	struct ostream *output = client->conn.output;
	int ret;

	if ((ret = o_stream_flush(output)) < 0)
		return 1;
	if (o_stream_get_buffer_used_size(output) <
	    DELTAPUSH_CONNECTION_OUTPUT_LIMIT) {
		o_stream_unset_flush_callback(output);
		timeout_remove(&client->to_output);
		connection_input_resume(&client->conn);
	}
	return ret;
}

static void
deltapush_connection_output_timeout(struct deltapush_connection *client)
{
	e_error(client->conn.event, "Client read no replies for %u s "
		"(%zu bytes waiting), disconnecting",
		DELTAPUSH_CONNECTION_IDLE_TIMEOUT_SECS,
		o_stream_get_buffer_used_size(client->conn.output));
	client->conn.disconnect_reason = CONNECTION_DISCONNECT_DEINIT;
	client->conn.v.destroy(&client->conn);
}

/* Mail processes (any uid that can reach the socket) register, look up
   and forget their user's tokens and report new mail; the rest (doveadm)
   only root or the service's own user may ask. */
static bool
deltapush_connection_request_allowed(struct deltapush_connection *client,
				     const struct deltapush_request *request)
{
	uid_t uid = client->conn.remote_uid;

	switch (request->type) {
	case DELTAPUSH_REQUEST_REGISTER:
	case DELTAPUSH_REQUEST_GET:
	case DELTAPUSH_REQUEST_NOTIFY:
		return TRUE;
	case DELTAPUSH_REQUEST_FORGET:
		if (request->token == NULL)
			return TRUE;
		break;
	case DELTAPUSH_REQUEST_IMPORT:
	case DELTAPUSH_REQUEST_LIST:
	case DELTAPUSH_REQUEST_FLUSH:
	case DELTAPUSH_REQUEST_STATUS:
		break;
	}
	return uid != (uid_t)-1 && (uid == 0 || uid == geteuid());
}

static int deltapush_connection_input_args(struct connection *conn,
					   const char *const *args)
{
	struct deltapush_connection *client =
		container_of(conn, struct deltapush_connection, conn);
	struct deltapush_request request;
	const char *error;

	if (deltapush_protocol_parse_request(args, &request, &error) < 0) {
		e_error(conn->event, "Invalid request, disconnecting: %s",
			error);
		return -1;
	}
	if (!deltapush_connection_request_allowed(client, &request)) {
		e_error(conn->event, "Refused %s from uid %ld: only root or "
			"the service's user may ask for it", args[0],
			(long)conn->remote_uid);
		deltapush_connection_reply1(client,
					    DELTAPUSH_PROTOCOL_REPLY_FAIL,
					    "Permission denied");
		return 1;
	}
	/* NOTIFY writes the finished pushes' outcomes inside its own
	   transaction; the rest read push state after they are written. */
	if (!deltapush_db_request_begin(client->conns->db,
					request.type != DELTAPUSH_REQUEST_NOTIFY,
					&error)) {
		/* Logged where the database failed, not per request. */
		deltapush_connection_reply1(client,
			DELTAPUSH_PROTOCOL_REPLY_FAIL,
			t_strdup_printf("Database unavailable: %s", error));
		return 1;
	}
	client->holding = request.type == DELTAPUSH_REQUEST_REGISTER ||
		request.type == DELTAPUSH_REQUEST_IMPORT ||
		request.type == DELTAPUSH_REQUEST_FORGET ||
		request.type == DELTAPUSH_REQUEST_NOTIFY;
	switch (request.type) {
	case DELTAPUSH_REQUEST_REGISTER:
	case DELTAPUSH_REQUEST_IMPORT:
		deltapush_connection_register(client, &request);
		break;
	case DELTAPUSH_REQUEST_LIST:
		deltapush_connection_list(client, &request);
		break;
	case DELTAPUSH_REQUEST_FLUSH:
		deltapush_connection_flush(client, &request);
		break;
	case DELTAPUSH_REQUEST_STATUS:
		deltapush_connection_status(client);
		break;
	case DELTAPUSH_REQUEST_GET:
		deltapush_connection_get(client, &request);
		break;
	case DELTAPUSH_REQUEST_FORGET:
		deltapush_connection_forget(client, &request);
		break;
	case DELTAPUSH_REQUEST_NOTIFY:
		deltapush_connection_notify(client, &request);
		break;
	}
	if (deltapush_connection_hold(client))
		return 0;
	if (o_stream_get_buffer_used_size(conn->output) >=
	    DELTAPUSH_CONNECTION_OUTPUT_LIMIT) {
		/* Read no more until the client has read its replies, and
		   not for ever: its slot and buffer are ours. */
		connection_input_halt(conn);
		o_stream_set_flush_callback(conn->output,
					    deltapush_connection_output,
					    client);
		if (client->to_output == NULL) {
			client->to_output = timeout_add(
				DELTAPUSH_CONNECTION_IDLE_TIMEOUT_SECS * 1000,
				deltapush_connection_output_timeout, client);
		}
		return 0;
	}
	return 1;
}

static void deltapush_connection_destroy(struct connection *conn)
{
	struct deltapush_connection *client =
		container_of(conn, struct deltapush_connection, conn);

	switch (conn->disconnect_reason) {
	case CONNECTION_DISCONNECT_BUFFER_FULL:
		e_error(conn->event, "Request longer than %u bytes, "
			"disconnecting", DELTAPUSH_PROTOCOL_MAX_LINE_SIZE);
		break;
	case CONNECTION_DISCONNECT_HANDSHAKE_FAILED:
		e_error(conn->event, "Handshake failed, disconnecting");
		break;
	case CONNECTION_DISCONNECT_IDLE_TIMEOUT:
		/* kept connections of lmtp processes end like this */
		e_debug(conn->event, "Idle for %u s, disconnecting",
			DELTAPUSH_CONNECTION_IDLE_TIMEOUT_SECS);
		break;
	default:
		break;
	}
	for (unsigned int i = 0; i < array_count(&client->conns->held); i++) {
		if (array_idx_elem(&client->conns->held, i) == client) {
			array_delete(&client->conns->held, i, 1);
			break;
		}
	}
	str_free(&client->held_reply);
	timeout_remove(&client->to_output);
	connection_deinit(conn);
	i_free(client);
	master_service_client_connection_destroyed(master_service);
}

static const struct connection_settings deltapush_connection_set = {
	DELTAPUSH_PROTOCOL_CONNECTION_SETTINGS,
	.input_idle_timeout_secs = DELTAPUSH_CONNECTION_IDLE_TIMEOUT_SECS,
	.client = FALSE,
};

static const struct connection_vfuncs deltapush_connection_vfuncs = {
	.destroy = deltapush_connection_destroy,
	.input_args = deltapush_connection_input_args,
};

void deltapush_connection_create(struct deltapush_connections *conns,
				 struct master_service_connection *mconn)
{
	struct deltapush_connection *client;

	client = i_new(struct deltapush_connection, 1);
	client->conns = conns;
	client->conn.event_parent = conns->event;
	connection_init_server(conns->clients, &client->conn, mconn->name,
			       mconn->fd, mconn->fd);
	master_service_client_connection_accept(mconn);
}

struct deltapush_connections *
deltapush_connections_init(const struct deltapush_settings *set,
			   struct deltapush_db *db, struct event *event_parent)
{
	struct deltapush_connections *conns;

	conns = i_new(struct deltapush_connections, 1);
	conns->set = set;
	conns->db = db;
	conns->event = event_create(event_parent);
	event_add_category(conns->event, &event_category_deltapush);
	i_array_init(&conns->held, 16);
	conns->clients = connection_list_init(&deltapush_connection_set,
					      &deltapush_connection_vfuncs);
	return conns;
}

void deltapush_connections_deinit(struct deltapush_connections **_conns)
{
	struct deltapush_connections *conns = *_conns;

	*_conns = NULL;
	connection_list_deinit(&conns->clients);
	array_free(&conns->held);
	event_unref(&conns->event);
	i_free(conns);
}
