#ifndef DELTAPUSH_CHATMAIL_H
#define DELTAPUSH_CHATMAIL_H

/* Reading a chatmail relay's push tokens, for moving them into deltapush
   (doveadm deltapush import-chatmail). The relay keeps one file per user,
   <vmail dir>/<address>/metadata.json, in one of two forms:

     {"devicetoken": {"<token>": <last seen unix time>, ...}, ...}
     {"devicetoken": ["<token>", ...], ...}     (older relays, no times)

   Other keys may be present and are ignored. */

#define DELTAPUSH_CHATMAIL_METADATA_FILE "metadata.json"
/* A file holds at most a few dozen tokens of up to 4 kB each; anything
   much bigger is not a relay's metadata file. */
#define DELTAPUSH_CHATMAIL_MAX_FILE_SIZE (4 * 1024 * 1024)
/* The relay drops tokens whose last seen time is this far ahead of its
   clock or more; so do we. */
#define DELTAPUSH_CHATMAIL_MAX_FUTURE_SECS 60

/* One entry of a devicetoken object or list */
struct deltapush_chatmail_token {
	/* Position in the devicetoken object or list, from 1 */
	unsigned int index;
	/* The token as written; NULL when a list entry is not a string */
	const char *token;
	/* Unix time it was last seen (the file's mtime for the list form) */
	time_t last_seen;
	/* Why the entry cannot be imported (a time that is not a number, a
	   list entry that is not a string), or NULL */
	const char *error;
};
ARRAY_DEFINE_TYPE(deltapush_chatmail_token, struct deltapush_chatmail_token);

enum deltapush_chatmail_token_status {
	DELTAPUSH_CHATMAIL_TOKEN_OK,
	/* last seen longer than the token TTL ago */
	DELTAPUSH_CHATMAIL_TOKEN_EXPIRED,
	/* last seen DELTAPUSH_CHATMAIL_MAX_FUTURE_SECS or more in the future */
	DELTAPUSH_CHATMAIL_TOKEN_FUTURE,
	/* a malformed entry or a token deltapush does not accept */
	DELTAPUSH_CHATMAIL_TOKEN_INVALID,
};

/* Parse the contents of a metadata.json file and append its entries to
   tokens (initialized by the caller; strings are allocated from pool).
   list_last_seen is the last seen time given to the tokens of the list
   form. A token that appears more than once is appended once, with its
   latest time. Returns 0 on success (also when there is no devicetoken
   key), -1 with error_r when the data is not JSON or devicetoken is
   neither an object, a list nor null; then tokens is left as it was. */
int deltapush_chatmail_parse(const unsigned char *data, size_t size,
			     time_t list_last_seen, pool_t pool,
			     ARRAY_TYPE(deltapush_chatmail_token) *tokens,
			     const char **error_r);

/* Read and parse the metadata.json file at path (the list form's tokens
   get the file's mtime). Returns 1 on success, 0 if the file does not
   exist, -1 with error_r (naming the path) when it cannot be read or
   parsed. */
int deltapush_chatmail_read(const char *path, pool_t pool,
			    ARRAY_TYPE(deltapush_chatmail_token) *tokens,
			    const char **error_r);

/* Decide whether a parsed entry can be imported at unix time now, with
   tokens expiring ttl_secs after they were last seen. Returns
   DELTAPUSH_CHATMAIL_TOKEN_OK or why not, with a human-readable reason in
   error_r for DELTAPUSH_CHATMAIL_TOKEN_INVALID and _FUTURE. */
enum deltapush_chatmail_token_status
deltapush_chatmail_token_check(const struct deltapush_chatmail_token *token,
			       time_t now, unsigned int ttl_secs,
			       const char **error_r);

/* Returns TRUE if a user directory's name looks like the address the
   relay's users log in with: <local>@<domain>, both parts non-empty, with
   no whitespace, control characters or slashes. */
bool deltapush_chatmail_user_is_valid(const char *name);

#endif
