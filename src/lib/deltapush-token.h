#ifndef DELTAPUSH_TOKEN_H
#define DELTAPUSH_TOKEN_H

/* Delta Chat clients refuse to send longer tokens; so do we. */
#define DELTAPUSH_TOKEN_MAX_SIZE 4096
/* Registering one more token than this evicts the least recently seen. */
#define DELTAPUSH_TOKENS_MAX_PER_USER 32
/* How many leading bytes of a token may appear in logs and output. */
#define DELTAPUSH_TOKEN_LOG_PREFIX_LEN 12

/* Returns TRUE if data is a token we accept: 1..DELTAPUSH_TOKEN_MAX_SIZE
   bytes of printable ASCII (0x21..0x7e) other than '"' and '\' (which
   Delta Chat refuses to send). Otherwise returns FALSE with a
   human-readable reason in error_r. */
bool deltapush_token_is_valid(const unsigned char *data, size_t size,
			      const char **error_r);

/* Returns a short, log-safe prefix of the token ("openpgp:wcBM…"). */
const char *deltapush_token_log_prefix(const char *token);

#endif
