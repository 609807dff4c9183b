/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "llist.h"
#include "ioloop.h"
#include "deltapush-common.h"
#include "deltapush-http.h"

#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <curl/curl.h>

/* All pushes go to one proxy: keep-alive connections (or one HTTP/2
   connection carrying many streams) serve any burst; requests beyond the
   limit wait in libcurl's queue instead of opening a connection each.
   The service sets the limit to its own in-flight limit. */
#define DELTAPUSH_HTTP_MAX_HOST_CONNECTIONS 8
/* While transfers run, libcurl is told this often that its sockets are
   readable, whatever epoll said: see deltapush_http_kick() */
#define DELTAPUSH_HTTP_KICK_MSECS 10
/* Once the proxy is known to speak HTTP/2, a burst multiplexes over this
   many connections at most */
#define DELTAPUSH_HTTP_H2_MAX_CONNECTIONS 2

enum deltapush_http_tls_state {
	/* No https request has completed yet: one goes ahead, the others
	   are held until it tells whether the proxy speaks HTTP/2 */
	DELTAPUSH_HTTP_TLS_UNKNOWN = 0,
	DELTAPUSH_HTTP_TLS_PROBING,
	DELTAPUSH_HTTP_TLS_HTTP1,
	DELTAPUSH_HTTP_TLS_HTTP2,
};

/* One socket libcurl asked us to watch (curl_multi_assign'ed to it), or
   a connection socket we opened for it */
struct deltapush_http_socket {
	struct deltapush_http_socket *prev, *next;
	struct deltapush_http *http;
	curl_socket_t fd;
	struct io *io_read, *io_write;
	/* The address family it was opened with, when owned */
	int family;

	/* Opened by deltapush_http_opensocket_cb(): libcurl closes it with
	   deltapush_http_closesocket_cb(), so it may outlive libcurl's
	   interest in it */
	bool owned:1;
	/* owned was checked when libcurl first asked to watch it */
	bool verified:1;
	/* Owned, and libcurl does not watch it now (an idle keep-alive
	   connection): io_read stays so that the next request on it costs
	   no epoll_ctl() pair, and is dropped if the socket gets readable
	   meanwhile */
	bool idle:1;
};

/* One POST, from deltapush_http_post() until its callback returns or it
   is aborted */
struct deltapush_http_request {
	struct deltapush_http_request *prev, *next;
	struct deltapush_http *http;
	struct event *event;
	CURL *easy;

	struct timespec start;
	/* Set when the request could not even be handed to libcurl; it is
	   failed from the ioloop, never from deltapush_http_post() */
	char *submit_error;

	deltapush_http_callback_t *callback;
	void *context;

	char error_buf[CURL_ERROR_SIZE];

	/* The POST body; libcurl sends it from here (CURLOPT_POSTFIELDS) */
	size_t body_size;
	const unsigned char *body;

	/* Its callback is running: abort must not free it */
	bool completed:1;
	/* Added to the multi handle (else held, or failed to submit) */
	bool in_multi:1;
	/* The https request that finds out the proxy's protocol */
	bool probe:1;
	/* Waiting in held_requests for the probe to finish */
	bool held:1;
};

/* One multi handle, shared by all requests so connections are reused */
struct deltapush_http {
	struct event *event;
	struct ioloop *ioloop;
	CURLM *multi;

	char *user_agent;
	char *ca_file;
	unsigned int timeout_msecs;
	/* The same headers for every request */
	struct curl_slist *headers;
	/* Easy handles of finished requests with the options every request
	   shares already set, for the next requests: a push then costs a few
	   setopts instead of a new handle and its whole configuration */
	ARRAY(CURL *) free_easies;

	struct deltapush_http_request *requests;
	unsigned int requests_count;
	/* https requests held back while the probe runs, in order */
	ARRAY(struct deltapush_http_request *) held_requests;
	enum deltapush_http_tls_state tls_state;
	unsigned int max_connections;
	/* TLS sessions (and DNS) shared by every easy handle, so that a
	   new connection resumes instead of doing a full handshake */
	CURLSH *share;
	struct deltapush_http_socket *sockets;

	/* libcurl's timer */
	struct timeout *to;
	/* Fails the requests with submit_error */
	struct timeout *to_failed;
	/* Runs while transfers are in libcurl */
	struct timeout *to_kick;
	/* Transfers completed so far; the kick is not needed while this
	   moves */
	unsigned int completed_count, kick_completed_count;

	/* How many callbacks are running; deinit inside one of them leaves
	   freeing the struct to the outermost */
	int dispatching;
	bool destroyed:1;
};

static void deltapush_http_socket_action(struct deltapush_http *http,
					 curl_socket_t fd, int ev_bitmask);
static void deltapush_http_fail_submitted(struct deltapush_http *http);
static void deltapush_http_timer_rearm(struct deltapush_http *http);

void deltapush_http_global_init(void)
{
	CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (code != CURLE_OK) {
		i_fatal("curl_global_init() failed: %s",
			curl_easy_strerror(code));
	}
}

void deltapush_http_global_deinit(void)
{
	curl_global_cleanup();
}

static uint64_t deltapush_http_usecs_since(const struct timespec *start)
{
	struct timespec now;
	int64_t diff;

	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		i_fatal("clock_gettime(CLOCK_MONOTONIC) failed: %m");
	diff = (int64_t)(now.tv_sec - start->tv_sec) * 1000000 +
		(now.tv_nsec - start->tv_nsec) / 1000;
	return diff < 0 ? 0 : (uint64_t)diff;
}

static void deltapush_http_socket_in(struct deltapush_http_socket *sock)
{
	if (sock->idle) {
		/* The proxy closed the idle connection (or sent something
		   unasked): stop watching it; libcurl finds it dead when it
		   next wants it */
		io_remove(&sock->io_read);
		return;
	}
	/* socket_action may free sock (CURL_POLL_REMOVE) */
	deltapush_http_socket_action(sock->http, sock->fd, CURL_CSELECT_IN);
}

static void deltapush_http_socket_out(struct deltapush_http_socket *sock)
{
	deltapush_http_socket_action(sock->http, sock->fd, CURL_CSELECT_OUT);
}

static void deltapush_http_socket_free(struct deltapush_http_socket *sock)
{
	struct deltapush_http *http = sock->http;

	io_remove(&sock->io_read);
	io_remove(&sock->io_write);
	DLLIST_REMOVE(&http->sockets, sock);
	i_free(sock);
}

static struct deltapush_http_socket *
deltapush_http_socket_find(struct deltapush_http *http, curl_socket_t fd)
{
	struct deltapush_http_socket *sock;

	for (sock = http->sockets; sock != NULL; sock = sock->next) {
		if (sock->fd == fd)
			return sock;
	}
	return NULL;
}

static struct deltapush_http_socket *
deltapush_http_socket_new(struct deltapush_http *http, curl_socket_t fd)
{
	struct deltapush_http_socket *sock;

	sock = i_new(struct deltapush_http_socket, 1);
	sock->http = http;
	sock->fd = fd;
	DLLIST_PREPEND(&http->sockets, sock);
	return sock;
}

static bool
deltapush_http_socket_same_family(struct deltapush_http_socket *sock)
{
	union {
		struct sockaddr sa;
		struct sockaddr_storage ss;
	} addr;
	socklen_t addrlen = sizeof(addr);

	if (getsockname(sock->fd, &addr.sa, &addrlen) < 0)
		return FALSE;
	return addr.sa.sa_family == sock->family;
}

/* CURLOPT_OPENSOCKETFUNCTION: libcurl's own socket(), remembered so that
   its io can stay while the connection idles in libcurl's cache */
static curl_socket_t
deltapush_http_opensocket_cb(void *clientp, curlsocktype purpose ATTR_UNUSED,
			     struct curl_sockaddr *address)
{
	struct deltapush_http *http = clientp;
	struct deltapush_http_socket *sock;
	curl_socket_t fd;

	fd = socket(address->family, address->socktype, address->protocol);
	if (fd == CURL_SOCKET_BAD || http->destroyed)
		return fd;
	/* An entry for this fd number is stale: libcurl closed a socket that
	   had not become a connection without telling us */
	sock = deltapush_http_socket_find(http, fd);
	if (sock != NULL) {
		io_remove_closed(&sock->io_read);
		io_remove_closed(&sock->io_write);
		deltapush_http_socket_free(sock);
	}
	sock = deltapush_http_socket_new(http, fd);
	sock->family = address->family;
	sock->owned = TRUE;
	return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: drop the io while the fd is still open */
static int deltapush_http_closesocket_cb(void *clientp, curl_socket_t fd)
{
	struct deltapush_http *http = clientp;
	struct deltapush_http_socket *sock;

	sock = deltapush_http_socket_find(http, fd);
	if (sock != NULL)
		deltapush_http_socket_free(sock);
	return close(fd);
}

/* CURLMOPT_SOCKETFUNCTION: mirror what libcurl wants to wait for on one
   socket with an IO_READ and an IO_WRITE io, since Dovecot does not tell
   an io callback which condition fired. */
static int
deltapush_http_socket_cb(CURL *easy ATTR_UNUSED, curl_socket_t fd, int what,
			 void *userp, void *socketp)
{
	struct deltapush_http *http = userp;
	struct deltapush_http_socket *sock = socketp;

	if (what == CURL_POLL_REMOVE) {
		/* sock is NULL when deinit already dropped it */
		if (sock == NULL)
			return 0;
		if (!http->destroyed)
			(void)curl_multi_assign(http->multi, fd, NULL);
		if (sock->owned && sock->io_read != NULL && !http->destroyed) {
			/* A connection that was read from, most likely a
			   keep-alive connection going idle, which the next
			   request takes again; libcurl closes such a socket
			   only through deltapush_http_closesocket_cb() */
			io_remove(&sock->io_write);
			sock->idle = TRUE;
		} else {
			/* A connect attempt that failed may be closed
			   without the callback: forget it now */
			deltapush_http_socket_free(sock);
		}
		return 0;
	}
	if (http->destroyed)
		return 0;

	if (sock == NULL) {
		sock = deltapush_http_socket_find(http, fd);
		if (sock != NULL && !sock->verified) {
			/* libcurl may have closed a socket it opened without
			   the callback (a failed connect) and reused its fd
			   number for one of its own (a resolver's socketpair):
			   owned only if it still is what was opened */
			if (!deltapush_http_socket_same_family(sock))
				sock->owned = FALSE;
			sock->verified = TRUE;
		}
		if (sock == NULL)
			sock = deltapush_http_socket_new(http, fd);
		sock->idle = FALSE;
		(void)curl_multi_assign(http->multi, fd, sock);
	}

	if ((what & CURL_POLL_IN) == 0)
		io_remove(&sock->io_read);
	else if (sock->io_read == NULL) {
		sock->io_read = io_add_to(http->ioloop, fd, IO_READ,
					  deltapush_http_socket_in, sock);
	}
	if ((what & CURL_POLL_OUT) == 0)
		io_remove(&sock->io_write);
	else if (sock->io_write == NULL) {
		sock->io_write = io_add_to(http->ioloop, fd, IO_WRITE,
					   deltapush_http_socket_out, sock);
	}
	return 0;
}

static void deltapush_http_timeout(struct deltapush_http *http)
{
	timeout_remove(&http->to);
	deltapush_http_socket_action(http, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arm a timeout. Calling libcurl from
   here would recurse into it. */
static int
deltapush_http_timer_cb(CURLM *multi ATTR_UNUSED, long timeout_ms,
			void *userp)
{
	struct deltapush_http *http = userp;

	timeout_remove(&http->to);
	if (timeout_ms >= 0 && !http->destroyed) {
		unsigned int msecs = timeout_ms > INT_MAX ?
			INT_MAX : (unsigned int)timeout_ms;

		http->to = timeout_add_short_to(http->ioloop, msecs,
						deltapush_http_timeout, http);
	}
	return 0;
}

static size_t
deltapush_http_write_cb(char *ptr ATTR_UNUSED, size_t size, size_t nmemb,
			void *userdata ATTR_UNUSED)
{
	/* Only the status matters; the body must not reach stdout */
	return size * nmemb;
}

/* Keep the handle of a finished transfer for the next request: after
   curl_multi_remove_handle() it holds no connection, and libcurl resets
   a transfer's state when the handle starts its next one, while the
   options stay. */
static void deltapush_http_easy_put(struct deltapush_http *http, CURL **_easy)
{
	CURL *easy = *_easy;

	*_easy = NULL;
	if (!http->destroyed &&
	    array_count(&http->free_easies) < http->max_connections)
		array_push_back(&http->free_easies, &easy);
	else
		curl_easy_cleanup(easy);
}

static void
deltapush_http_unhold(struct deltapush_http *http,
		      struct deltapush_http_request *req)
{
	struct deltapush_http_request *const *reqs;
	unsigned int i, count;

	reqs = array_get(&http->held_requests, &count);
	for (i = 0; i < count; i++) {
		if (reqs[i] == req) {
			array_delete(&http->held_requests, i, 1);
			break;
		}
	}
	req->held = FALSE;
}

static void
deltapush_http_add_to_multi(struct deltapush_http_request *req)
{
	struct deltapush_http *http = req->http;
	CURLMcode mcode;

	mcode = curl_multi_add_handle(http->multi, req->easy);
	if (mcode == CURLM_OK) {
		req->in_multi = TRUE;
		return;
	}
	req->submit_error = i_strdup_printf(
		"curl_multi_add_handle() failed: %s",
		curl_multi_strerror(mcode));
	curl_easy_cleanup(req->easy);
	req->easy = NULL;
	e_error(req->event, "%s", req->submit_error);
	/* The callback must not run inside the caller */
	if (http->to_failed == NULL) {
		http->to_failed = timeout_add_short_to(
			http->ioloop, 0, deltapush_http_fail_submitted, http);
	}
}

/* The probe finished (easy = its handle) or went away (easy = NULL):
   learn the protocol from it and let the held requests go. */
static void
deltapush_http_probe_done(struct deltapush_http *http, CURL *easy)
{
	struct deltapush_http_request *req;
	long version = 0, conns;

	if (easy != NULL &&
	    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION,
			      &version) == CURLE_OK &&
	    version != 0) {
		if (version >= CURL_HTTP_VERSION_2_0) {
			http->tls_state = DELTAPUSH_HTTP_TLS_HTTP2;
			conns = I_MIN(DELTAPUSH_HTTP_H2_MAX_CONNECTIONS,
				      http->max_connections);
			(void)curl_multi_setopt(http->multi,
				CURLMOPT_MAX_HOST_CONNECTIONS, conns);
		} else {
			http->tls_state = DELTAPUSH_HTTP_TLS_HTTP1;
		}
		e_debug(http->event, "Proxy speaks HTTP/%s",
			version >= CURL_HTTP_VERSION_2_0 ? "2" : "1.1");
	} else {
		/* No answer: the next https request probes again */
		http->tls_state = DELTAPUSH_HTTP_TLS_UNKNOWN;
	}
	/* Release them all: over HTTP/2 they multiplex (PIPEWAIT keeps a
	   request that finds no free stream from opening a connection);
	   after a failure each is as likely to fail as to succeed. */
	while (array_count(&http->held_requests) > 0) {
		req = array_idx_elem(&http->held_requests, 0);
		array_delete(&http->held_requests, 0, 1);
		req->held = FALSE;
		deltapush_http_add_to_multi(req);
	}
}

static void deltapush_http_request_free(struct deltapush_http_request *req)
{
	struct deltapush_http *http = req->http;

	i_assert(!req->completed);

	if (req->held)
		deltapush_http_unhold(http, req);
	if (req->probe)
		deltapush_http_probe_done(http, NULL);
	if (req->easy != NULL) {
		if (req->in_multi)
			(void)curl_multi_remove_handle(http->multi, req->easy);
		curl_easy_cleanup(req->easy);
	}
	DLLIST_REMOVE(&http->requests, req);
	i_assert(http->requests_count > 0);
	http->requests_count--;
	event_unref(&req->event);
	i_free(req->submit_error);
	i_free(req);
}

/* Unlink req, run its callback and free it. Returns FALSE when the
   callback destroyed http. */
static bool
deltapush_http_request_complete(struct deltapush_http_request *req,
				const struct deltapush_http_result *result)
{
	struct deltapush_http *http = req->http;
	bool destroyed;

	if (req->held)
		deltapush_http_unhold(http, req);
	if (req->probe) {
		req->probe = FALSE;
		deltapush_http_probe_done(http, req->easy);
	}
	if (req->easy != NULL) {
		/* Frees the connection's slot for queued requests, and keeps
		   a later abort of req from touching the multi handle */
		if (req->in_multi)
			(void)curl_multi_remove_handle(http->multi, req->easy);
		deltapush_http_easy_put(http, &req->easy);
	}
	DLLIST_REMOVE(&http->requests, req);
	i_assert(http->requests_count > 0);
	http->requests_count--;
	http->completed_count++;
	req->completed = TRUE;

	if (result->status != 0) {
		e_debug(req->event, "Finished with status %u in %"PRIu64" us",
			result->status, result->duration_usecs);
	} else {
		e_debug(req->event, "Failed in %"PRIu64" us: %s",
			result->duration_usecs, result->error);
	}

	http->dispatching++;
	req->callback(result, req->context);
	http->dispatching--;
	destroyed = http->destroyed;

	event_unref(&req->event);
	i_free(req->submit_error);
	i_free(req);

	if (destroyed && http->dispatching == 0)
		i_free(http);
	return !destroyed;
}

static bool
deltapush_http_request_finished(struct deltapush_http_request *req,
				CURLcode code)
{
	struct deltapush_http_result result;
	long status = 0;

	i_zero(&result);
	result.duration_usecs = deltapush_http_usecs_since(&req->start);
	if (curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE,
			      &status) != CURLE_OK)
		status = 0;
	if (status > 0 && status < 1000) {
		/* The server answered; a transfer error after the status
		   line (e.g. a cut body) does not change what it said. */
		result.status = (unsigned int)status;
		if (code != CURLE_OK) {
			e_debug(req->event, "Error after status %ld: %s",
				status, curl_easy_strerror(code));
		}
	} else if (req->error_buf[0] != '\0')
		result.error = req->error_buf;
	else if (code != CURLE_OK)
		result.error = curl_easy_strerror(code);
	else
		result.error = "No HTTP response received";
	return deltapush_http_request_complete(req, &result);
}

/* Complete every transfer libcurl has finished. A callback may post,
   abort or deinit; libcurl drops the messages of removed handles, and
   each message is fully handled before the next one is read. */
static void deltapush_http_drain(struct deltapush_http *http)
{
	struct deltapush_http_request *req;
	CURLMsg *msg;
	CURLcode code;
	char *priv;
	int queued;

	while (http->multi != NULL &&
	       (msg = curl_multi_info_read(http->multi, &queued)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		code = msg->data.result;
		priv = NULL;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				      &priv) != CURLE_OK || priv == NULL) {
			e_error(http->event,
				"Finished transfer has no request");
			(void)curl_multi_remove_handle(http->multi,
						       msg->easy_handle);
			continue;
		}
		req = (struct deltapush_http_request *)priv;
		if (!deltapush_http_request_finished(req, code))
			return;
	}
}

/* libcurl 7.88 can leave HTTP/2 streams whose frames it has already read
   from the socket unprocessed, with no timer set and nothing more coming
   on the socket: their transfers would wait for the request timeout.
   When no transfer completed for a while, tell libcurl its sockets are
   readable so it looks at them again. */
static bool
deltapush_http_socket_known(struct deltapush_http *http, curl_socket_t fd)
{
	struct deltapush_http_socket *sock =
		deltapush_http_socket_find(http, fd);

	return sock != NULL && sock->io_read != NULL && !sock->idle;
}

static void deltapush_http_kick(struct deltapush_http *http)
{
	struct deltapush_http_socket *sock;
	ARRAY(curl_socket_t) fds;
	const curl_socket_t *fdp;

	if (http->completed_count != http->kick_completed_count) {
		http->kick_completed_count = http->completed_count;
		return;
	}
	T_BEGIN {
		t_array_init(&fds, 4);
		for (sock = http->sockets; sock != NULL; sock = sock->next) {
			if (sock->io_read != NULL && !sock->idle)
				array_push_back(&fds, &sock->fd);
		}
		/* A callback may deinit http: keep the struct until the
		   end, as deltapush_http_request_complete() does */
		http->dispatching++;
		array_foreach(&fds, fdp) {
			if (http->destroyed ||
			    !deltapush_http_socket_known(http, *fdp))
				continue;
			deltapush_http_socket_action(http, *fdp,
						     CURL_CSELECT_IN);
		}
		http->dispatching--;
	} T_END;
	if (http->destroyed && http->dispatching == 0)
		i_free(http);
}

static void deltapush_http_kick_update(struct deltapush_http *http,
				       int running)
{
	if (running > 0 && !http->destroyed) {
		if (http->to_kick == NULL) {
			http->kick_completed_count = http->completed_count;
			http->to_kick = timeout_add_short_to(http->ioloop,
				DELTAPUSH_HTTP_KICK_MSECS,
				deltapush_http_kick, http);
		}
	} else {
		timeout_remove(&http->to_kick);
	}
}

static void deltapush_http_socket_action(struct deltapush_http *http,
					 curl_socket_t fd, int ev_bitmask)
{
	CURLMcode mcode;
	int running;

	mcode = curl_multi_socket_action(http->multi, fd, ev_bitmask,
					 &running);
	if (mcode != CURLM_OK) {
		e_error(http->event, "curl_multi_socket_action() failed: %s",
			curl_multi_strerror(mcode));
	}
	if (http->to == NULL && running > 0)
		deltapush_http_timer_rearm(http);
	deltapush_http_kick_update(http, running);
	deltapush_http_drain(http);
}

/* libcurl calls the timer function only when its next expiry changes.
   When the one just fired is still the earliest (HTTP/2 data of other
   streams already read and buffered, to be handled "now"), no call comes
   and the transfers would wait for an unrelated event, up to the request
   timeout: ask libcurl instead. */
static void deltapush_http_timer_rearm(struct deltapush_http *http)
{
	long timeout_ms;

	if (curl_multi_timeout(http->multi, &timeout_ms) == CURLM_OK &&
	    timeout_ms >= 0)
		(void)deltapush_http_timer_cb(http->multi, timeout_ms, http);
}

static void deltapush_http_fail_submitted(struct deltapush_http *http)
{
	struct deltapush_http_request *req, *next;
	struct deltapush_http_result result;

	timeout_remove(&http->to_failed);
	for (req = http->requests; req != NULL; req = next) {
		next = req->next;
		if (req->submit_error == NULL)
			continue;
		/* A callback may abort next, so restart from the head */
		i_zero(&result);
		result.error = req->submit_error;
		result.duration_usecs =
			deltapush_http_usecs_since(&req->start);
		if (!deltapush_http_request_complete(req, &result))
			return;
		next = http->requests;
	}
}

struct deltapush_http *
deltapush_http_init(const struct deltapush_http_settings *set,
		    struct event *event_parent)
{
	struct deltapush_http *http;
	struct curl_slist *headers = NULL;

	i_assert(current_ioloop != NULL);

	http = i_new(struct deltapush_http, 1);
	http->ioloop = current_ioloop;
	http->user_agent = i_strdup(set->user_agent);
	http->ca_file = i_strdup_empty(set->ca_file);
	http->timeout_msecs = set->timeout_msecs;
	http->max_connections = set->max_connections > 0 ?
		set->max_connections : DELTAPUSH_HTTP_MAX_HOST_CONNECTIONS;
	i_array_init(&http->held_requests, 16);
	i_array_init(&http->free_easies, http->max_connections);

	http->event = event_create(event_parent);
	event_add_category(http->event, &event_category_deltapush);
	event_set_append_log_prefix(http->event, "deltapush-http: ");

	/* The body is opaque bytes; an empty Expect: stops libcurl from
	   waiting for a 100-continue that a proxy may never send */
	headers = curl_slist_append(headers,
				    "Content-Type: application/octet-stream");
	if (headers != NULL)
		headers = curl_slist_append(headers, "Expect:");
	if (headers == NULL)
		i_fatal_status(FATAL_OUTOFMEM, "curl_slist_append() failed");
	http->headers = headers;

	http->multi = curl_multi_init();
	if (http->multi == NULL)
		i_fatal_status(FATAL_OUTOFMEM, "curl_multi_init() failed");
	(void)curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION,
				deltapush_http_socket_cb);
	(void)curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
	(void)curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION,
				deltapush_http_timer_cb);
	(void)curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
	(void)curl_multi_setopt(http->multi, CURLMOPT_PIPELINING,
				CURLPIPE_MULTIPLEX);
	(void)curl_multi_setopt(http->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
				(long)http->max_connections);
	/* libcurl's default cache is 4 connections per transfer in the
	   multi handle: when pushes trickle in, it would close the idle
	   keep-alive connections that the next burst needs again */
	(void)curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS,
				(long)http->max_connections);
	/* All in flight may share one HTTP/2 connection */
	(void)curl_multi_setopt(http->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
				(long)I_MAX(http->max_connections, 100));

	http->share = curl_share_init();
	if (http->share == NULL)
		i_fatal_status(FATAL_OUTOFMEM, "curl_share_init() failed");
	(void)curl_share_setopt(http->share, CURLSHOPT_SHARE,
				CURL_LOCK_DATA_SSL_SESSION);
	(void)curl_share_setopt(http->share, CURLSHOPT_SHARE,
				CURL_LOCK_DATA_DNS);
	return http;
}

void deltapush_http_deinit(struct deltapush_http **_http)
{
	struct deltapush_http *http = *_http;
	CURL *easy;

	if (http == NULL)
		return;
	*_http = NULL;
	i_assert(!http->destroyed);

	while (http->requests != NULL)
		deltapush_http_request_free(http->requests);

	/* Drop the ios while libcurl's sockets are still open; libcurl
	   closes them in curl_multi_cleanup() */
	while (http->sockets != NULL) {
		struct deltapush_http_socket *sock = http->sockets;

		(void)curl_multi_assign(http->multi, sock->fd, NULL);
		deltapush_http_socket_free(sock);
	}
	http->destroyed = TRUE;
	(void)curl_multi_cleanup(http->multi);
	http->multi = NULL;
	/* The handles use the share: before it */
	array_foreach_elem(&http->free_easies, easy)
		curl_easy_cleanup(easy);
	array_free(&http->free_easies);
	(void)curl_share_cleanup(http->share);
	http->share = NULL;
	array_free(&http->held_requests);
	timeout_remove(&http->to);
	timeout_remove(&http->to_failed);
	timeout_remove(&http->to_kick);

	curl_slist_free_all(http->headers);
	event_unref(&http->event);
	i_free(http->user_agent);
	i_free(http->ca_file);
	/* Inside a callback: deltapush_http_request_complete() frees it */
	if (http->dispatching == 0)
		i_free(http);
}

#define SETOPT(option, value) STMT_START { \
	if (code == CURLE_OK) \
		code = curl_easy_setopt(easy, option, value); \
	} STMT_END

/* A new handle with the options that are the same for every request */
static CURL *
deltapush_http_easy_new(struct deltapush_http *http, const char **error_r)
{
	CURL *easy;
	CURLcode code = CURLE_OK;

	easy = curl_easy_init();
	if (easy == NULL)
		i_fatal_status(FATAL_OUTOFMEM, "curl_easy_init() failed");
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_TIMEOUT_MS, (long)http->timeout_msecs);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (http->ca_file != NULL)
		SETOPT(CURLOPT_CAINFO, http->ca_file);
	if (http->user_agent != NULL)
		SETOPT(CURLOPT_USERAGENT, http->user_agent);
	SETOPT(CURLOPT_SHARE, http->share);
	SETOPT(CURLOPT_HTTPHEADER, http->headers);
	SETOPT(CURLOPT_WRITEFUNCTION, deltapush_http_write_cb);
	SETOPT(CURLOPT_OPENSOCKETFUNCTION, deltapush_http_opensocket_cb);
	SETOPT(CURLOPT_OPENSOCKETDATA, http);
	SETOPT(CURLOPT_CLOSESOCKETFUNCTION, deltapush_http_closesocket_cb);
	SETOPT(CURLOPT_CLOSESOCKETDATA, http);
	if (code != CURLE_OK) {
		*error_r = t_strdup_printf("curl_easy_setopt() failed: %s",
					   curl_easy_strerror(code));
		curl_easy_cleanup(easy);
		return NULL;
	}

	/* Only a libcurl without HTTP/2 refuses this: HTTP/1.1 then */
	code = curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
				(long)CURL_HTTP_VERSION_2TLS);
	if (code != CURLE_OK) {
		e_debug(http->event, "HTTP/2 not available: %s",
			curl_easy_strerror(code));
	}
	return easy;
}

static void
deltapush_http_request_setopt(struct deltapush_http_request *req,
			      const char *url)
{
	struct deltapush_http *http = req->http;
	const char *error;
	CURL *easy;
	CURLcode code = CURLE_OK;

	if (array_count(&http->free_easies) > 0) {
		easy = array_idx_elem(&http->free_easies,
				      array_count(&http->free_easies) - 1);
		array_pop_back(&http->free_easies);
	} else {
		easy = deltapush_http_easy_new(http, &error);
		if (easy == NULL) {
			req->submit_error = i_strdup(error);
			return;
		}
	}
	req->easy = easy;

	SETOPT(CURLOPT_PRIVATE, (void *)req);
	SETOPT(CURLOPT_ERRORBUFFER, req->error_buf);
	SETOPT(CURLOPT_URL, url);
	/* The size first, so the body is binary-safe; req keeps it until
	   the handle is out of the multi handle */
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_size);
	SETOPT(CURLOPT_POSTFIELDS, req->body);
	/* Over TLS, while the first connection is being set up, wait for
	   it instead of opening more: if it speaks HTTP/2 it then carries
	   every request. (Cleartext HTTP is HTTP/1.1 here, where waiting
	   would only queue requests behind a slow one.) Set either way:
	   the handle may come from a request to another URL. */
	SETOPT(CURLOPT_PIPEWAIT,
	       strncasecmp(url, "https://", 8) == 0 ? 1L : 0L);
	if (code != CURLE_OK) {
		req->submit_error = i_strdup_printf(
			"curl_easy_setopt() failed: %s",
			curl_easy_strerror(code));
		curl_easy_cleanup(req->easy);
		req->easy = NULL;
	}
}
#undef SETOPT

struct deltapush_http_request *
deltapush_http_post(struct deltapush_http *http, const char *url,
		    const void *body, size_t body_size,
		    deltapush_http_callback_t *callback, void *context)
{
	struct deltapush_http_request *req;

	i_assert(!http->destroyed);
	i_assert(callback != NULL);

	/* The body lives after the struct: one allocation per push */
	req = i_malloc(MALLOC_ADD(sizeof(*req), body_size));
	req->http = http;
	req->body = (const unsigned char *)(req + 1);
	req->body_size = body_size;
	if (body_size > 0)
		memcpy(req + 1, body, body_size);
	req->callback = callback;
	req->context = context;
	if (clock_gettime(CLOCK_MONOTONIC, &req->start) < 0)
		i_fatal("clock_gettime(CLOCK_MONOTONIC) failed: %m");
	req->event = event_create(http->event);
	event_add_str(req->event, "url", url);
	DLLIST_PREPEND(&http->requests, req);
	http->requests_count++;

	T_BEGIN {
		deltapush_http_request_setopt(req, url);
	} T_END;
	if (req->submit_error != NULL) {
		i_assert(req->easy == NULL);
		e_error(req->event, "%s", req->submit_error);
		/* The callback must not run inside this function */
		if (http->to_failed == NULL) {
			http->to_failed = timeout_add_short_to(
				http->ioloop, 0,
				deltapush_http_fail_submitted, http);
		}
		return req;
	}

	if (strncasecmp(url, "https://", 8) == 0) {
		/* A burst arriving before the first TLS connection has
		   negotiated would open a connection per request; hold it
		   until the first request shows whether HTTP/2 can carry
		   them all. */
		if (http->tls_state == DELTAPUSH_HTTP_TLS_PROBING) {
			req->held = TRUE;
			array_push_back(&http->held_requests, &req);
			return req;
		}
		if (http->tls_state == DELTAPUSH_HTTP_TLS_UNKNOWN) {
			http->tls_state = DELTAPUSH_HTTP_TLS_PROBING;
			req->probe = TRUE;
		}
	}
	deltapush_http_add_to_multi(req);
	return req;
}

void deltapush_http_request_abort(struct deltapush_http_request **_req)
{
	struct deltapush_http_request *req = *_req;

	if (req == NULL)
		return;
	*_req = NULL;
	/* Aborting from its own callback: freed when the callback returns */
	if (req->completed)
		return;
	deltapush_http_request_free(req);
}

unsigned int deltapush_http_get_in_flight(struct deltapush_http *http)
{
	return http->requests_count;
}
