#ifndef DELTAPUSH_BRIDGE_ACCOUNTS_H
#define DELTAPUSH_BRIDGE_ACCOUNTS_H

#include "net.h"

/* The bridge's accounts file: one remote mailbox a line,

     NAME key=value [key=value ...]

   '#' starts a comment line; empty lines are ignored. A token or a
   local user says whom a new message wakes:

     user=LOCAL         the tokens the local user LOCAL registered
     token=TOKEN        a literal token (repeatable), registered for
                        the service's user "bridge:NAME"

   Keys: host (required), port [993 / 143], tls = imaps | starttls
   [imaps], ca_file, login (required), password_file (required),
   mailbox [INBOX], skip_auto_submitted = yes | no [the global
   deltapush_skip_auto_submitted], poll_interval [60s, used only when the
   server has no IDLE]. */

#define DELTAPUSH_BRIDGE_USER_PREFIX "bridge:"
#define DELTAPUSH_BRIDGE_DEFAULT_POLL_INTERVAL_MSECS (60 * 1000)

enum deltapush_bridge_tls {
	DELTAPUSH_BRIDGE_TLS_IMAPS,
	DELTAPUSH_BRIDGE_TLS_STARTTLS,
};

struct deltapush_bridge_account_settings {
	const char *name;
	const char *host;
	in_port_t port;
	enum deltapush_bridge_tls tls;
	/* NULL: the system's CA store */
	const char *ca_file;
	const char *login;
	const char *password_file;
	const char *mailbox;
	/* NULL when only literal tokens are woken */
	const char *local_user;
	/* literal tokens; empty when only local_user is woken */
	ARRAY_TYPE(const_string) tokens;
	/* -1 = the global setting, else 0/1 */
	int skip_auto_submitted;
	unsigned int poll_interval_msecs;
};
ARRAY_DEFINE_TYPE(deltapush_bridge_account_settings,
		  struct deltapush_bridge_account_settings *);

/* Parse the accounts file's text. Returns 0 with the accounts (allocated
   from pool), -1 with error_r naming the line. */
int deltapush_bridge_accounts_parse(
	pool_t pool, const char *text,
	ARRAY_TYPE(deltapush_bridge_account_settings) *accounts_r,
	const char **error_r);

/* Read and parse the accounts file at path. */
int deltapush_bridge_accounts_read(
	pool_t pool, const char *path,
	ARRAY_TYPE(deltapush_bridge_account_settings) *accounts_r,
	const char **error_r);

/* A copy of set allocated from pool */
struct deltapush_bridge_account_settings *
deltapush_bridge_account_settings_dup(
	pool_t pool, const struct deltapush_bridge_account_settings *set);

/* Whether two lines of the accounts file say the same (the password
   file's name only: its content is the caller's to compare) */
bool deltapush_bridge_account_settings_equal(
	const struct deltapush_bridge_account_settings *set1,
	const struct deltapush_bridge_account_settings *set2);

/* Whether set2 watches the same remote mailbox as set1 (same host,
   login and mailbox), so that its saved state still applies */
bool deltapush_bridge_account_settings_same_mailbox(
	const struct deltapush_bridge_account_settings *set1,
	const struct deltapush_bridge_account_settings *set2);

/* Whether name is a valid account name */
bool deltapush_bridge_account_name_valid(const char *name);

/* The service user whose tokens are an account's literal tokens */
const char *
deltapush_bridge_account_token_user(
	const struct deltapush_bridge_account_settings *set);

#endif
