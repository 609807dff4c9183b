#ifndef DELTAPUSH_CLIENT_H
#define DELTAPUSH_CLIENT_H

struct deltapush_request;

/* deltapush_client_request() did not send a NOTIFY: the service did not
   answer in time recently (logged once when that happened). */
#define DELTAPUSH_CLIENT_SUSPENDED (-2)

/* Send one request to the deltapush service at socket_path and wait at
   most timeout_msecs in all for its reply, in a private ioloop so the
   caller's ioloop is left alone. A socket that is missing or refuses
   (the master replacing the service) is retried, and so is a request
   whose connection the service closed without answering, within the
   same time. Returns 0 with the reply's fields after "OK" in fields_r
   (allocated from the data stack), or -1 with error_r when the service
   cannot be reached, does not answer in time or answers FAIL.

   After a request got no answer in time, NOTIFY requests return
   DELTAPUSH_CLIENT_SUSPENDED (with error_r) at once for a while (ten
   times timeout_msecs), so that a stuck service delays a delivery to
   many recipients by one timeout, not one per recipient; then the next
   one tries again.

   With keep_connection the connection stays open for the next such
   request (one per process): for the delivery path, where an lmtp
   process serves many deliveries. A kept connection the service closed
   meanwhile is replaced once, transparently. */
int deltapush_client_request(const char *socket_path,
			     unsigned int timeout_msecs,
			     struct event *event,
			     const struct deltapush_request *request,
			     bool keep_connection,
			     const char *const **fields_r,
			     const char **error_r);

/* A request sent with deltapush_client_send() whose reply is not read
   yet. */
struct deltapush_client_reply;

/* The first half of deltapush_client_request(): send the request and
   return without waiting for its reply, so that the service works on it
   while the caller does something else (the delivery path sends NOTIFY
   when a message is saved and reads the reply once the mail is
   committed). Never fails: what went wrong is returned by
   deltapush_client_finish(), which must be called (or
   deltapush_client_abandon()) for every request sent. The time limit
   counts from this call. Requests sent on the kept connection before
   earlier ones were finished are pipelined; the service answers in
   order. */
struct deltapush_client_reply *
deltapush_client_send(const char *socket_path, unsigned int timeout_msecs,
		      struct event *event,
		      const struct deltapush_request *request,
		      bool keep_connection);
/* The second half: wait for the reply (within the time left), retrying
   as deltapush_client_request() does. Returns the same. */
int deltapush_client_finish(struct deltapush_client_reply **reply,
			    const char *const **fields_r,
			    const char **error_r);
/* The caller no longer wants the reply (the mail transaction failed):
   it is read and dropped when it arrives, and nothing waits for it. */
void deltapush_client_abandon(struct deltapush_client_reply **reply);

/* Close a kept connection; call at module deinit. */
void deltapush_client_deinit(void);

#endif
