/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "llist.h"
#include "net.h"
#include "strnum.h"
#include "ioloop.h"
#include "test-common.h"
#include "deltapush-http.h"

#include <unistd.h>
#include <sys/socket.h>

#define TEST_USER_AGENT "deltapush-test/1.0 (unit)"
#define TEST_SAFETY_MSECS 10000
/* How long test_run_loop() waits for the callbacks: only reached when a
   test fails, so generous for valgrind on a busy machine */
#define TEST_LOOP_MSECS 60000
#define TEST_LARGE_BODY_SIZE (1100 * 1024)

/*
 * A minimal HTTP/1.1 server on the same ioloop
 */

struct test_server_request {
	char *method;
	char *path;
	char *user_agent;
	char *content_type;
	bool have_expect;
	bool have_content_length;
	buffer_t *body;
};

struct test_connection {
	struct test_connection *prev, *next;
	struct test_server *server;
	int fd;
	struct io *io;
	buffer_t *input;
};

struct test_server {
	int fd;
	in_port_t port;
	struct io *io;

	/* Status to answer with; 0 = read requests but never answer */
	unsigned int status;
	/* Stop the ioloop once this many requests have arrived */
	unsigned int stop_at_requests;

	unsigned int accepts;
	unsigned int connections_count;
	struct test_connection *connections;
	ARRAY(struct test_server_request) requests;
};

struct test_result {
	bool called;
	unsigned int status;
	char *error;
	uint64_t duration_usecs;
};

static bool test_in_post = FALSE;
static bool test_safety_hit = FALSE;
/* Callbacks still expected; the ioloop stops when it reaches 0 */
static unsigned int test_waiting = 0;

static void test_connection_destroy(struct test_connection *conn)
{
	struct test_server *server = conn->server;

	DLLIST_REMOVE(&server->connections, conn);
	server->connections_count--;
	io_remove(&conn->io);
	i_close_fd(&conn->fd);
	buffer_free(&conn->input);
	i_free(conn);
}

static size_t test_find_header_end(const buffer_t *buf)
{
	const unsigned char *data = buf->data;
	size_t i;

	for (i = 0; i + 4 <= buf->used; i++) {
		if (memcmp(data + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	}
	return 0;
}

static void
test_connection_respond(struct test_connection *conn, unsigned int status)
{
	const char *response = t_strdup_printf(
		"HTTP/1.1 %u Test\r\n"
		"%s"
		"Content-Length: 2\r\n"
		"\r\n"
		"ok", status,
		status == 302 ? "Location: /elsewhere\r\n" : "");
	size_t len = strlen(response);

	if (write(conn->fd, response, len) != (ssize_t)len)
		i_fatal("write(test connection) failed: %m");
}

/* Parse one complete request from the input buffer. Returns TRUE when
   one was consumed. */
static bool test_connection_parse(struct test_connection *conn)
{
	struct test_server *server = conn->server;
	struct test_server_request *req;
	const char *const *lines, *line;
	size_t header_size, body_size = 0;
	unsigned int i, value;

	header_size = test_find_header_end(conn->input);
	if (header_size == 0)
		return FALSE;
	lines = t_strsplit(t_strndup(conn->input->data, header_size - 4),
			   "\n");
	for (i = 1; lines[i] != NULL; i++) {
		line = t_strcut(lines[i], '\r');
		if (strncasecmp(line, "Content-Length: ", 16) == 0) {
			if (str_to_uint(line + 16, &value) < 0)
				i_fatal("Bad Content-Length: %s", line);
			body_size = value;
		}
	}
	if (conn->input->used < header_size + body_size)
		return FALSE;

	req = array_append_space(&server->requests);
	line = t_strcut(lines[0], '\r');
	req->method = i_strdup(t_strcut(line, ' '));
	req->path = i_strdup(t_strcut(strchr(line, ' ') + 1, ' '));
	for (i = 1; lines[i] != NULL; i++) {
		line = t_strcut(lines[i], '\r');
		if (strncasecmp(line, "User-Agent: ", 12) == 0)
			req->user_agent = i_strdup(line + 12);
		else if (strncasecmp(line, "Content-Type: ", 14) == 0)
			req->content_type = i_strdup(line + 14);
		else if (strncasecmp(line, "Expect:", 7) == 0)
			req->have_expect = TRUE;
		else if (strncasecmp(line, "Content-Length:", 15) == 0)
			req->have_content_length = TRUE;
	}
	req->body = buffer_create_dynamic(default_pool, body_size + 1);
	buffer_append(req->body, CONST_PTR_OFFSET(conn->input->data,
						  header_size), body_size);
	buffer_delete(conn->input, 0, header_size + body_size);

	if (server->status != 0)
		test_connection_respond(conn, server->status);
	if (server->stop_at_requests != 0 &&
	    array_count(&server->requests) == server->stop_at_requests)
		io_loop_stop(current_ioloop);
	return TRUE;
}

static void test_connection_input(struct test_connection *conn)
{
	unsigned char buf[4096];
	ssize_t ret;
	bool parsed;

	for (;;) {
		ret = read(conn->fd, buf, sizeof(buf));
		if (ret == 0 || (ret < 0 && errno != EAGAIN)) {
			test_connection_destroy(conn);
			return;
		}
		if (ret < 0)
			break;
		buffer_append(conn->input, buf, ret);
	}
	do {
		T_BEGIN {
			parsed = test_connection_parse(conn);
		} T_END;
	} while (parsed);
}

static void test_server_accept(struct test_server *server)
{
	struct test_connection *conn;
	int fd;

	fd = net_accept(server->fd, NULL, NULL);
	if (fd < 0)
		return;
	net_set_nonblock(fd, TRUE);
	server->accepts++;

	conn = i_new(struct test_connection, 1);
	conn->server = server;
	conn->fd = fd;
	conn->input = buffer_create_dynamic(default_pool, 1024);
	conn->io = io_add(fd, IO_READ, test_connection_input, conn);
	DLLIST_PREPEND(&server->connections, conn);
	server->connections_count++;
}

static struct test_server *test_server_init(unsigned int status)
{
	struct test_server *server;
	struct ip_addr ip;

	/* not net_ip4_loopback: 2.3 stores it in host byte order */
	if (net_addr2ip("127.0.0.1", &ip) < 0)
		i_unreached();
	server = i_new(struct test_server, 1);
	server->status = status;
	server->fd = net_listen(&ip, &server->port, 128);
	if (server->fd < 0)
		i_fatal("net_listen(127.0.0.1) failed: %m");
	net_set_nonblock(server->fd, TRUE);
	server->io = io_add(server->fd, IO_READ, test_server_accept, server);
	i_array_init(&server->requests, 16);
	return server;
}

static void test_server_deinit(struct test_server **_server)
{
	struct test_server *server = *_server;
	struct test_server_request *req;

	*_server = NULL;
	while (server->connections != NULL)
		test_connection_destroy(server->connections);
	io_remove(&server->io);
	i_close_fd(&server->fd);
	array_foreach_modifiable(&server->requests, req) {
		i_free(req->method);
		i_free(req->path);
		i_free(req->user_agent);
		i_free(req->content_type);
		buffer_free(&req->body);
	}
	array_free(&server->requests);
	i_free(server);
}

static const char *test_server_url(struct test_server *server,
				   const char *path)
{
	return t_strdup_printf("http://127.0.0.1:%u%s", server->port, path);
}

static const struct test_server_request *
test_server_find(struct test_server *server, const char *path)
{
	const struct test_server_request *req;

	array_foreach(&server->requests, req) {
		if (strcmp(req->path, path) == 0)
			return req;
	}
	return NULL;
}

/*
 * Client side helpers
 */

static void
test_callback(const struct deltapush_http_result *result, void *context)
{
	struct test_result *res = context;

	/* Called once, and never from inside deltapush_http_post() */
	test_assert(!res->called);
	test_assert(!test_in_post);
	res->called = TRUE;
	res->status = result->status;
	res->error = i_strdup(result->error);
	res->duration_usecs = result->duration_usecs;
	/* The contract: an error exactly when there is no status */
	test_assert((result->status == 0) == (result->error != NULL));

	i_assert(test_waiting > 0);
	if (--test_waiting == 0)
		io_loop_stop(current_ioloop);
}

static struct deltapush_http_request *
test_post(struct deltapush_http *http, const char *url, const void *body,
	  size_t body_size, struct test_result *res)
{
	struct deltapush_http_request *req;

	test_waiting++;
	test_in_post = TRUE;
	req = deltapush_http_post(http, url, body, body_size,
				  test_callback, res);
	test_in_post = FALSE;
	test_assert(!res->called);
	return req;
}

static void test_safety_timeout(void *context ATTR_UNUSED)
{
	test_safety_hit = TRUE;
	io_loop_stop(current_ioloop);
}

/* Run until every expected callback came, or the safety timeout */
static void test_run_loop(struct ioloop *ioloop)
{
	struct timeout *to;

	if (test_waiting == 0)
		return;
	test_safety_hit = FALSE;
	to = timeout_add(TEST_LOOP_MSECS, test_safety_timeout, NULL);
	io_loop_run(ioloop);
	timeout_remove(&to);
	test_assert(!test_safety_hit);
}

static void test_stop_timeout(void *context ATTR_UNUSED)
{
	io_loop_stop(current_ioloop);
}

/* Let the ioloop run for a while, to see that nothing more happens */
static void test_run_loop_for(struct ioloop *ioloop, unsigned int msecs)
{
	struct timeout *to;

	to = timeout_add_short(msecs, test_stop_timeout, NULL);
	io_loop_run(ioloop);
	timeout_remove(&to);
}

/* Run until the server has no connections left (the client closed them) */
static void
test_run_until_disconnected(struct ioloop *ioloop, struct test_server *server)
{
	unsigned int i;

	for (i = 0; i < 100 && server->connections_count > 0; i++)
		test_run_loop_for(ioloop, 20);
}

static void test_result_free(struct test_result *res)
{
	i_free(res->error);
}

static struct deltapush_http *test_http_init(unsigned int timeout_msecs)
{
	struct deltapush_http_settings set = {
		.ca_file = NULL,
		.timeout_msecs = timeout_msecs,
		.user_agent = TEST_USER_AGENT,
	};

	test_waiting = 0;
	return deltapush_http_init(&set, NULL);
}

/*
 * Tests
 */

static void test_http_post_body(void)
{
	static const unsigned char binary[] = {
		'\t', '\r', '\n', '\0', 0xff, 0x80, ' ', '\r', '\n', '\r',
		'\n', 'x', '\0', '%', '&', '=', '+'
	};
	struct test_body {
		const char *path;
		const void *data;
		size_t size;
	} bodies[5];
	struct test_result results[N_ELEMENTS(bodies)];
	const struct test_server_request *sreq;
	struct test_server *server;
	struct deltapush_http *http;
	struct ioloop *ioloop;
	string_t *token;
	unsigned char *large;
	unsigned int i;

	test_begin("http post body, headers and method");
	ioloop = io_loop_create();
	server = test_server_init(200);
	http = test_http_init(5000);

	/* A token-like body of ~900 bytes with tabs, CR and LF inside */
	token = t_str_new(1024);
	for (i = 0; str_len(token) < 900; i++) {
		str_printfa(token, "v2:%u\tAbCdEf0123+/=", i);
		if (i % 7 == 0)
			str_append(token, "\r\n");
	}
	bodies[0] = (struct test_body){ "/token", str_data(token),
					str_len(token) };
	bodies[1] = (struct test_body){ "/binary", binary, sizeof(binary) };
	bodies[2] = (struct test_body){ "/short", "x", 1 };
	bodies[3] = (struct test_body){ "/empty", "", 0 };
	/* Big enough that libcurl would add Expect: 100-continue */
	large = i_malloc(TEST_LARGE_BODY_SIZE);
	for (i = 0; i < TEST_LARGE_BODY_SIZE; i++)
		large[i] = (i * 7 + i / 251) & 0xff;
	bodies[4] = (struct test_body){ "/large", large,
					TEST_LARGE_BODY_SIZE };

	i_zero(&results);
	for (i = 0; i < N_ELEMENTS(bodies); i++) {
		(void)test_post(http, test_server_url(server, bodies[i].path),
				bodies[i].data, bodies[i].size, &results[i]);
	}
	test_assert(deltapush_http_get_in_flight(http) ==
		    N_ELEMENTS(bodies));
	test_run_loop(ioloop);
	test_assert(deltapush_http_get_in_flight(http) == 0);

	test_assert(array_count(&server->requests) == N_ELEMENTS(bodies));
	for (i = 0; i < N_ELEMENTS(bodies); i++) {
		test_assert_idx(results[i].called, i);
		test_assert_idx(results[i].status == 200, i);
		test_assert_idx(results[i].error == NULL, i);

		sreq = test_server_find(server, bodies[i].path);
		test_assert_idx(sreq != NULL, i);
		if (sreq == NULL)
			continue;
		test_assert_strcmp_idx(sreq->method, "POST", i);
		test_assert_strcmp_idx(sreq->user_agent, TEST_USER_AGENT, i);
		test_assert_strcmp_idx(sreq->content_type,
				       "application/octet-stream", i);
		test_assert_idx(!sreq->have_expect, i);
		test_assert_idx(sreq->have_content_length, i);
		test_assert_memcmp_idx(sreq->body->data, sreq->body->used,
				       bodies[i].data, bodies[i].size, i);
	}
	for (i = 0; i < N_ELEMENTS(bodies); i++)
		test_result_free(&results[i]);
	i_free(large);

	deltapush_http_deinit(&http);
	test_assert(http == NULL);
	test_server_deinit(&server);
	io_loop_destroy(&ioloop);
	test_end();
}

static string_t *test_debug_log;

static void ATTR_FORMAT(2, 0)
test_debug_handler(const struct failure_context *ctx,
		   const char *format, va_list args)
{
	str_append(test_debug_log, ctx->log_prefix == NULL ? "" :
		   ctx->log_prefix);
	str_vprintfa(test_debug_log, format, args);
	str_append_c(test_debug_log, '\n');
}

static void test_http_status(void)
{
	static const unsigned int statuses[] = { 200, 410, 500, 302, 200 };
	failure_callback_t *fatal_cb, *error_cb, *info_cb, *debug_cb;
	struct deltapush_http_settings set = {
		.timeout_msecs = 5000,
		.user_agent = TEST_USER_AGENT,
	};
	struct test_result res;
	struct test_server *server;
	struct deltapush_http *http;
	struct event *event;
	struct ioloop *ioloop;
	unsigned int i;

	test_begin("http status codes and keep-alive");
	ioloop = io_loop_create();
	server = test_server_init(200);
	event = event_create(NULL);
	event_set_forced_debug(event, TRUE);
	test_debug_log = str_new(default_pool, 256);
	i_get_failure_handlers(&fatal_cb, &error_cb, &info_cb, &debug_cb);
	i_set_debug_handler(test_debug_handler);

	test_waiting = 0;
	http = deltapush_http_init(&set, event);

	/* One after the other, so that every request after the first can
	   reuse the first connection */
	for (i = 0; i < N_ELEMENTS(statuses); i++) {
		server->status = statuses[i];
		i_zero(&res);
		(void)test_post(http, test_server_url(server, "/notify"),
				"token", 5, &res);
		test_run_loop(ioloop);
		test_assert_idx(res.called, i);
		test_assert_idx(res.status == statuses[i], i);
		test_assert_idx(res.error == NULL, i);
		/* A redirect is reported, not followed */
		test_assert_idx(array_count(&server->requests) == i + 1, i);
		test_result_free(&res);
	}
	test_assert(server->accepts == 1);

	/* Completions are debug-logged through the given event */
	test_assert(strstr(str_c(test_debug_log),
			   "deltapush-http: Finished with status 410") != NULL);

	deltapush_http_deinit(&http);
	i_set_debug_handler(debug_cb);
	str_free(&test_debug_log);
	event_unref(&event);
	test_server_deinit(&server);
	io_loop_destroy(&ioloop);
	test_end();
}

static void test_http_connect_refused(void)
{
	struct sockaddr_in sin;
	struct test_result res;
	struct deltapush_http *http;
	struct ioloop *ioloop;
	struct ip_addr ip;
	in_port_t port;
	int fd;

	test_begin("http connection refused");
	ioloop = io_loop_create();
	http = test_http_init(5000);

	/* A bound socket that never listens: its port refuses connections
	   and nobody else can take it meanwhile */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		i_fatal("socket() failed: %m");
	i_zero(&sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		i_fatal("bind() failed: %m");
	if (net_getsockname(fd, &ip, &port) < 0)
		i_fatal("getsockname() failed: %m");

	i_zero(&res);
	(void)test_post(http, t_strdup_printf("http://127.0.0.1:%u/", port),
			"x", 1, &res);
	test_run_loop(ioloop);
	test_assert(res.called);
	test_assert(res.status == 0);
	test_assert(res.error != NULL && res.error[0] != '\0');
	test_result_free(&res);

	i_close_fd(&fd);
	deltapush_http_deinit(&http);
	io_loop_destroy(&ioloop);
	test_end();
}

static void test_http_bad_url(void)
{
	struct test_result results[4];
	struct test_server *server;
	struct deltapush_http *http;
	struct ioloop *ioloop;
	char *long_url;
	unsigned int i;

	test_begin("http bad urls");
	ioloop = io_loop_create();
	/* Never answers: a request that got through would time out */
	server = test_server_init(0);
	http = test_http_init(5000);

	i_zero(&results);
	/* Only http and https are allowed, so nothing connects */
	(void)test_post(http, t_strdup_printf("ftp://127.0.0.1:%u/x",
					      server->port),
			"x", 1, &results[0]);
	(void)test_post(http, "file:///etc/passwd", "x", 1, &results[1]);
	(void)test_post(http, "not a url", "x", 1, &results[2]);
	/* libcurl refuses this one at submit time; still the callback comes
	   from the ioloop */
	long_url = i_malloc(9 * 1024 * 1024);
	memset(long_url, 'a', 9 * 1024 * 1024 - 1);
	memcpy(long_url, "http://", 7);
	test_expect_error_string("curl_easy_setopt() failed");
	(void)test_post(http, long_url, "x", 1, &results[3]);
	test_expect_no_more_errors();
	i_free(long_url);

	test_run_loop(ioloop);
	for (i = 0; i < N_ELEMENTS(results); i++) {
		test_assert_idx(results[i].called, i);
		test_assert_idx(results[i].status == 0, i);
		test_assert_idx(results[i].error != NULL, i);
		test_result_free(&results[i]);
	}
	test_assert(deltapush_http_get_in_flight(http) == 0);
	test_assert(server->accepts == 0);

	deltapush_http_deinit(&http);
	test_server_deinit(&server);
	io_loop_destroy(&ioloop);
	test_end();
}

static void test_http_timeout(void)
{
	struct test_result res;
	struct test_server *server;
	struct deltapush_http *http;
	struct ioloop *ioloop;

	test_begin("http timeout");
	ioloop = io_loop_create();
	/* Accepts and reads, but never answers */
	server = test_server_init(0);
	http = test_http_init(300);

	i_zero(&res);
	(void)test_post(http, test_server_url(server, "/slow"), "x", 1, &res);
	test_run_loop(ioloop);
	test_assert(res.called);
	test_assert(res.status == 0);
	test_assert(res.error != NULL && res.error[0] != '\0');
	/* It was the timeout, not something that failed early */
	test_assert(array_count(&server->requests) == 1);
	test_assert(res.duration_usecs >= 250 * 1000);
	test_result_free(&res);

	deltapush_http_deinit(&http);
	test_server_deinit(&server);
	io_loop_destroy(&ioloop);
	test_end();
}

#define TEST_MANY_COUNT 100
static void test_http_many(void)
{
	struct test_result results[TEST_MANY_COUNT];
	const struct test_server_request *sreq;
	struct test_server *server;
	struct deltapush_http *http;
	struct ioloop *ioloop;
	const char *body;
	unsigned int i;

	test_begin("http 100 requests at once");
	ioloop = io_loop_create();
	server = test_server_init(200);
	/* curl counts the time a request waits for a connection too: under
	   valgrind on a busy machine the last ones wait seconds */
	http = test_http_init(TEST_LOOP_MSECS);

	i_zero(&results);
	for (i = 0; i < TEST_MANY_COUNT; i++) {
		body = t_strdup_printf("body-%u", i);
		(void)test_post(http, test_server_url(server,
			t_strdup_printf("/n%u", i)), body, strlen(body),
			&results[i]);
	}
	test_assert(deltapush_http_get_in_flight(http) == TEST_MANY_COUNT);
	test_run_loop(ioloop);
	test_assert(deltapush_http_get_in_flight(http) == 0);

	test_assert(array_count(&server->requests) == TEST_MANY_COUNT);
	for (i = 0; i < TEST_MANY_COUNT; i++) {
		test_assert_idx(results[i].called, i);
		test_assert_idx(results[i].status == 200, i);
		sreq = test_server_find(server, t_strdup_printf("/n%u", i));
		test_assert_idx(sreq != NULL, i);
		if (sreq != NULL) {
			body = t_strdup_printf("body-%u", i);
			test_assert_memcmp_idx(sreq->body->data,
					       sreq->body->used,
					       body, strlen(body), i);
		}
		test_result_free(&results[i]);
	}
	/* A handful of kept-alive connections, not one per request */
	test_assert(server->accepts >= 1);
	test_assert(server->accepts <= 10);

	deltapush_http_deinit(&http);
	test_server_deinit(&server);
	io_loop_destroy(&ioloop);
	test_end();
}

#define TEST_KEEPALIVE_MAX_CONNECTIONS 8
#define TEST_KEEPALIVE_BURST 24
static void
test_http_keepalive_burst(struct deltapush_http *http,
			  struct test_server *server, struct ioloop *ioloop,
			  unsigned int count)
{
	struct test_result results[TEST_KEEPALIVE_BURST];
	unsigned int i;

	i_assert(count <= N_ELEMENTS(results));
	i_zero(&results);
	for (i = 0; i < count; i++) {
		(void)test_post(http, test_server_url(server, "/k"), "x", 1,
				&results[i]);
	}
	test_run_loop(ioloop);
	for (i = 0; i < count; i++) {
		test_assert_idx(results[i].status == 200, i);
		test_result_free(&results[i]);
	}
}

static void test_http_keepalive_trickle(void)
{
	struct deltapush_http_settings set = {
		.timeout_msecs = TEST_LOOP_MSECS,
		.max_connections = TEST_KEEPALIVE_MAX_CONNECTIONS,
		.user_agent = TEST_USER_AGENT,
	};
	struct test_server *server;
	struct deltapush_http *http;
	struct ioloop *ioloop;
	unsigned int i;

	test_begin("http keep-alive connections survive a trickle");
	ioloop = io_loop_create();
	server = test_server_init(200);
	test_waiting = 0;
	http = deltapush_http_init(&set, NULL);

	/* A burst opens the connections, pushes one at a time follow
	   (libcurl's default cache would then keep only 4 of them), and
	   the next burst finds them all still open */
	test_http_keepalive_burst(http, server, ioloop, TEST_KEEPALIVE_BURST);
	test_assert(server->accepts == TEST_KEEPALIVE_MAX_CONNECTIONS);
	for (i = 0; i < 10; i++)
		test_http_keepalive_burst(http, server, ioloop, 1);
	test_http_keepalive_burst(http, server, ioloop, TEST_KEEPALIVE_BURST);
	test_assert(server->accepts == TEST_KEEPALIVE_MAX_CONNECTIONS);
	test_assert(server->connections_count ==
		    TEST_KEEPALIVE_MAX_CONNECTIONS);

	deltapush_http_deinit(&http);
	test_server_deinit(&server);
	io_loop_destroy(&ioloop);
	test_end();
}

static void test_http_keepalive_closed(void)
{
	struct deltapush_http_settings set = {
		.timeout_msecs = TEST_LOOP_MSECS,
		.max_connections = TEST_KEEPALIVE_MAX_CONNECTIONS,
		.user_agent = TEST_USER_AGENT,
	};
	struct test_server *server;
	struct deltapush_http *http;
	struct ioloop *ioloop;

	test_begin("http proxy closes idle keep-alive connections");
	ioloop = io_loop_create();
	server = test_server_init(200);
	test_waiting = 0;
	http = deltapush_http_init(&set, NULL);

	/* The proxy closes the idle connections, and the sender sees it
	   while it waits (its ios for idle connections stay) ... */
	test_http_keepalive_burst(http, server, ioloop, TEST_KEEPALIVE_BURST);
	test_assert(server->accepts == TEST_KEEPALIVE_MAX_CONNECTIONS);
	while (server->connections != NULL)
		test_connection_destroy(server->connections);
	test_run_loop_for(ioloop, 50);
	test_http_keepalive_burst(http, server, ioloop, TEST_KEEPALIVE_BURST);
	test_assert(server->accepts == 2 * TEST_KEEPALIVE_MAX_CONNECTIONS);

	/* ... or only when the next burst wants them */
	while (server->connections != NULL)
		test_connection_destroy(server->connections);
	test_http_keepalive_burst(http, server, ioloop, TEST_KEEPALIVE_BURST);
	test_assert(server->accepts == 3 * TEST_KEEPALIVE_MAX_CONNECTIONS);
	test_assert(server->connections_count ==
		    TEST_KEEPALIVE_MAX_CONNECTIONS);

	deltapush_http_deinit(&http);
	test_server_deinit(&server);
	io_loop_destroy(&ioloop);
	test_end();
}

static void test_http_abort(void)
{
	struct test_result res_unsent, res_sent, res_other;
	struct deltapush_http_request *req;
	struct test_server *server, *silent;
	struct deltapush_http *http;
	struct ioloop *ioloop;

	test_begin("http abort");
	ioloop = io_loop_create();
	server = test_server_init(200);
	silent = test_server_init(0);
	http = test_http_init(5000);
	i_zero(&res_unsent);
	i_zero(&res_sent);
	i_zero(&res_other);

	/* Aborted before the ioloop ever ran */
	req = test_post(http, test_server_url(server, "/unsent"), "x", 1,
			&res_unsent);
	test_waiting--;
	test_assert(deltapush_http_get_in_flight(http) == 1);
	deltapush_http_request_abort(&req);
	test_assert(req == NULL);
	test_assert(deltapush_http_get_in_flight(http) == 0);

	/* Aborted while the server holds it */
	req = test_post(http, test_server_url(silent, "/sent"), "x", 1,
			&res_sent);
	test_waiting--;
	silent->stop_at_requests = 1;
	test_run_loop_for(ioloop, TEST_SAFETY_MSECS);
	test_assert(array_count(&silent->requests) == 1);
	test_assert(silent->connections_count == 1);
	deltapush_http_request_abort(&req);
	test_assert(deltapush_http_get_in_flight(http) == 0);
	/* The half-done transfer's connection is closed, not leaked */
	test_run_until_disconnected(ioloop, silent);
	test_assert(silent->connections_count == 0);

	/* Other requests still work, and the aborted ones stay silent */
	(void)test_post(http, test_server_url(server, "/other"), "x", 1,
			&res_other);
	test_run_loop(ioloop);
	test_run_loop_for(ioloop, 100);
	test_assert(res_other.called && res_other.status == 200);
	test_assert(!res_unsent.called);
	test_assert(!res_sent.called);
	test_assert(test_server_find(server, "/unsent") == NULL);
	test_result_free(&res_other);

	deltapush_http_deinit(&http);
	test_server_deinit(&server);
	test_server_deinit(&silent);
	io_loop_destroy(&ioloop);
	test_end();
}

struct test_reentrancy_ctx {
	struct deltapush_http *http;
	struct test_server *server, *silent;
	struct deltapush_http_request *req_a, *req_b, *req_d;
	struct test_result res_a, res_b, res_c, res_d;
};

static void
test_reentrancy_c_callback(const struct deltapush_http_result *result,
			   void *context)
{
	struct test_reentrancy_ctx *ctx = context;

	test_callback(result, &ctx->res_c);
	/* A request submitted, then everything torn down from inside a
	   callback */
	ctx->req_d = test_post(ctx->http,
			       test_server_url(ctx->silent, "/d"), "d", 1,
			       &ctx->res_d);
	test_waiting--;
	test_assert(deltapush_http_get_in_flight(ctx->http) == 1);
	deltapush_http_deinit(&ctx->http);
	test_assert(ctx->http == NULL);
}

static void
test_reentrancy_a_callback(const struct deltapush_http_result *result,
			   void *context)
{
	struct test_reentrancy_ctx *ctx = context;

	test_callback(result, &ctx->res_a);
	/* Aborting itself from its own callback is harmless */
	deltapush_http_request_abort(&ctx->req_a);
	test_assert(ctx->req_a == NULL);
	/* Abort another request that is in flight */
	deltapush_http_request_abort(&ctx->req_b);
	test_waiting--;
	/* Chain a new request */
	test_waiting++;
	test_in_post = TRUE;
	(void)deltapush_http_post(ctx->http,
				  test_server_url(ctx->server, "/c"), "c", 1,
				  test_reentrancy_c_callback, ctx);
	test_in_post = FALSE;
}

static void test_http_callback_reentrancy(void)
{
	struct test_reentrancy_ctx ctx;
	struct ioloop *ioloop;

	test_begin("http callbacks that post, abort and deinit");
	ioloop = io_loop_create();
	i_zero(&ctx);
	ctx.server = test_server_init(200);
	ctx.silent = test_server_init(0);
	ctx.http = test_http_init(5000);

	ctx.req_b = test_post(ctx.http, test_server_url(ctx.silent, "/b"),
			      "b", 1, &ctx.res_b);
	test_waiting++;
	test_in_post = TRUE;
	ctx.req_a = deltapush_http_post(ctx.http,
					test_server_url(ctx.server, "/a"),
					"a", 1, test_reentrancy_a_callback,
					&ctx);
	test_in_post = FALSE;
	test_run_loop(ioloop);

	test_assert(ctx.http == NULL);
	test_assert(ctx.res_a.called && ctx.res_a.status == 200);
	test_assert(!ctx.res_b.called);
	test_assert(ctx.res_c.called && ctx.res_c.status == 200);
	test_assert(test_server_find(ctx.server, "/c") != NULL);
	/* Nothing fires after the deinit */
	test_run_loop_for(ioloop, 100);
	test_assert(!ctx.res_d.called);
	test_run_until_disconnected(ioloop, ctx.silent);
	test_assert(ctx.silent->connections_count == 0);
	test_result_free(&ctx.res_a);
	test_result_free(&ctx.res_c);

	test_server_deinit(&ctx.server);
	test_server_deinit(&ctx.silent);
	io_loop_destroy(&ioloop);
	test_end();
}

static void test_http_deinit_in_flight(void)
{
	struct test_result results[20];
	struct test_server *server, *silent;
	struct deltapush_http *http;
	struct ioloop *ioloop;
	unsigned int i;

	test_begin("http deinit with requests in flight");
	ioloop = io_loop_create();
	server = test_server_init(200);
	silent = test_server_init(0);
	http = test_http_init(5000);

	i_zero(&results);
	for (i = 0; i < 10; i++) {
		(void)test_post(http, test_server_url(silent, "/s"),
				"x", 1, &results[i]);
	}
	silent->stop_at_requests = 1;
	test_run_loop_for(ioloop, TEST_SAFETY_MSECS);
	test_assert(array_count(&silent->requests) >= 1);
	/* Some never even started */
	for (; i < N_ELEMENTS(results); i++) {
		(void)test_post(http, test_server_url(server, "/r"),
				"x", 1, &results[i]);
	}
	test_assert(deltapush_http_get_in_flight(http) ==
		    N_ELEMENTS(results));
	deltapush_http_deinit(&http);
	test_assert(http == NULL);
	test_waiting = 0;

	test_run_loop_for(ioloop, 100);
	for (i = 0; i < N_ELEMENTS(results); i++)
		test_assert_idx(!results[i].called, i);
	test_run_until_disconnected(ioloop, silent);
	test_assert(silent->connections_count == 0);

	test_server_deinit(&server);
	test_server_deinit(&silent);
	io_loop_destroy(&ioloop);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_http_post_body,
		test_http_status,
		test_http_connect_refused,
		test_http_bad_url,
		test_http_timeout,
		test_http_many,
		test_http_keepalive_trickle,
		test_http_keepalive_closed,
		test_http_abort,
		test_http_callback_reentrancy,
		test_http_deinit_in_flight,
		NULL
	};
	int ret;

	deltapush_http_global_init();
	ret = test_run(test_functions);
	deltapush_http_global_deinit();
	return ret;
}
