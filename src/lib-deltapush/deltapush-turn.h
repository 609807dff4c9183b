#ifndef DELTAPUSH_TURN_H
#define DELTAPUSH_TURN_H

/* Time-limited TURN credentials of the TURN REST scheme that coturn
   implements with use-auth-secret / static-auth-secret:
   username = expiry unix time, password = base64(HMAC-SHA1(secret, username)). */

/* Returns base64(HMAC-SHA1(secret, username)), allocated from the data
   stack. */
const char *deltapush_turn_password(const unsigned char *secret,
				    size_t secret_size, const char *username);

/* Returns "<server>:<expiry>:<password>" with expiry = now + ttl_secs,
   the value of /shared/vendor/deltachat/turn (server is host:port).
   Allocated from the data stack. */
const char *deltapush_turn_value(const char *server,
				 const unsigned char *secret, size_t secret_size,
				 time_t now, unsigned int ttl_secs);

/* Read the shared secret from path: the file's content without trailing
   CR/LF. Returns 0 on success, -1 with error_r if the file cannot be read
   or holds no secret. The error never contains the secret. */
int deltapush_turn_read_secret(const char *path, pool_t pool,
			       const char **secret_r, const char **error_r);

#endif
