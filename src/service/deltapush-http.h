#ifndef DELTAPUSH_HTTP_H
#define DELTAPUSH_HTTP_H

/* Asynchronous HTTP POSTs with libcurl's multi_socket interface, driven by
   Dovecot's ioloop: no threads, no blocking waits. Connections are reused
   (keep-alive, HTTP/2 multiplexing when the server offers it). */

struct deltapush_http;
struct deltapush_http_request;

struct deltapush_http_settings {
	/* CA bundle for TLS peer verification; NULL = the system default */
	const char *ca_file;
	/* Upper bound for one request, connect included */
	unsigned int timeout_msecs;
	/* Connections per host at most (HTTP/1.1 needs one per request in
	   flight; HTTP/2 multiplexes); 0 = a small default */
	unsigned int max_connections;
	const char *user_agent;
};

struct deltapush_http_result {
	/* HTTP status code, 0 when no response was received */
	unsigned int status;
	/* Why no response was received (connect failure, timeout, ...);
	   NULL when status != 0 */
	const char *error;
	/* Time from submitting to completion */
	uint64_t duration_usecs;
};

typedef void deltapush_http_callback_t(const struct deltapush_http_result *result,
				       void *context);

/* Must be called once per process before deltapush_http_init(). */
void deltapush_http_global_init(void);
void deltapush_http_global_deinit(void);

struct deltapush_http *
deltapush_http_init(const struct deltapush_http_settings *set,
		    struct event *event_parent);
/* Abort every request still in flight, without calling its callback. */
void deltapush_http_deinit(struct deltapush_http **http);

/* POST body (copied) to url with Content-Type application/octet-stream
   and no other body bytes. The callback is called once, later, from the
   ioloop; never from within this function. */
struct deltapush_http_request *
deltapush_http_post(struct deltapush_http *http, const char *url,
		    const void *body, size_t body_size,
		    deltapush_http_callback_t *callback, void *context);
/* Abort a request; its callback is not called. */
void deltapush_http_request_abort(struct deltapush_http_request **request);

unsigned int deltapush_http_get_in_flight(struct deltapush_http *http);

#endif
