#ifndef DELTAPUSH_TOKEN_H
#define DELTAPUSH_TOKEN_H

/* Delta Chat clients refuse to send longer tokens; so do we. */
#define DELTAPUSH_TOKEN_MAX_SIZE 4096
/* Registering one more token than this evicts the least recently seen. */
#define DELTAPUSH_TOKENS_MAX_PER_USER 32
/* Hex digits of a token id */
#define DELTAPUSH_TOKEN_ID_LEN 8

/* Returns TRUE if data is a token we accept: 1..DELTAPUSH_TOKEN_MAX_SIZE
   bytes of printable ASCII (0x21..0x7e) other than '"' and '\' (which
   Delta Chat refuses to send). Otherwise returns FALSE with a
   human-readable reason in error_r. */
bool deltapush_token_is_valid(const unsigned char *data, size_t size,
			      const char **error_r);

/* Returns the token's id for logs, events and doveadm: the first
   DELTAPUSH_TOKEN_ID_LEN hex digits of its SHA-256 ("3f2a9c01"). The token
   itself is never shown. */
const char *deltapush_token_id(const char *token);
/* Returns the token's id and adds it to event as the "token" field when
   the event is logged or exported at level; otherwise returns NULL and
   leaves the event as it is. For events on hot paths that are mostly not
   wanted, such as debug events: the id hashes the whole token. */
const char *deltapush_token_event_id(struct event *event,
				     enum log_type level, const char *token);
/* Returns TRUE if str looks like a token id (case-insensitive hex). */
bool deltapush_token_id_is_valid(const char *str);

#endif
