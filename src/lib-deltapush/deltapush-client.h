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

/* Close a kept connection; call at module deinit. */
void deltapush_client_deinit(void);

#endif
