#ifndef DELTAPUSH_CLIENT_H
#define DELTAPUSH_CLIENT_H

struct deltapush_request;

/* Send one request to the deltapush service at socket_path and wait at
   most timeout_msecs for its reply, in a private ioloop so the caller's
   ioloop is left alone. Returns 0 with the reply's fields after "OK" in
   fields_r (allocated from the data stack), or -1 with error_r when the
   service cannot be reached, does not answer in time or answers FAIL. */
int deltapush_client_request(const char *socket_path,
			     unsigned int timeout_msecs,
			     struct event *event,
			     const struct deltapush_request *request,
			     const char *const **fields_r,
			     const char **error_r);

#endif
