/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "strnum.h"
#include "strescape.h"
#include "sha2.h"
#include "imap-arg.h"
#include "imap-utf7.h"
#include "deltapush-compat.h"
#include "deltapush-common.h"
#include "deltapush-protocol.h"
#include "deltapush-client.h"
#include "deltapush-bridge-state.h"
#include "deltapush-bridge-imapc.h"
#include "deltapush-bridge.h"

#include <sys/stat.h>
#include <unistd.h>

/* Reconnect delays: after a connection failure from 1 s, after a refused
   login from 1 min (providers lock accounts that keep trying), doubled
   each time up to the maximum, with +-25% jitter so that many accounts
   don't come back at once. */
#define DELTAPUSH_BRIDGE_RETRY_MIN_MSECS 1000
#define DELTAPUSH_BRIDGE_RETRY_AUTH_MIN_MSECS (60 * 1000)
#define DELTAPUSH_BRIDGE_RETRY_MAX_MSECS (10 * 60 * 1000)
#define DELTAPUSH_BRIDGE_RETRY_AUTH_MAX_MSECS (60 * 60 * 1000)
/* A NOTIFY the service did not take is tried again after this */
#define DELTAPUSH_BRIDGE_NOTIFY_RETRY_MSECS 5000
/* Literal tokens are registered again this often, so the service's
   token TTL never expires them while the bridge runs. */
#define DELTAPUSH_BRIDGE_REGISTER_INTERVAL_SECS (24 * 3600)
#define DELTAPUSH_BRIDGE_PASSWORD_MAX_SIZE 1024

struct deltapush_bridge_account {
	pool_t pool;
	struct deltapush_bridge *bridge;
	/* a copy: it outlives the accounts file it was read from */
	const struct deltapush_bridge_account_settings *set;
	struct event *event;
	char *state_path;
	char *last_error;

	struct deltapush_bridge_imapc *imapc;
	struct imapc_client_mailbox *box;
	struct timeout *to_reconnect;
	struct timeout *to_poll;

	/* on disk, backoff included */
	struct deltapush_bridge_state state;
	/* from the EXAMINE now running */
	uint32_t examine_uidvalidity, examine_uidnext;
	time_t registered_at;
	/* SHA-256 of the password last read (valid if password_hashed), so
	   that a reload sees a changed password file */
	unsigned char password_hash[SHA256_RESULTLEN];
	/* for deltapush bridge status: when new mail last woke the devices,
	   and how often that happened since the start */
	time_t last_trigger;
	unsigned int triggers;

	/* the FETCH now running: the highest UID seen, and whether a
	   message in it wakes the devices */
	uint32_t fetch_max_uid;

	bool password_hashed:1;
	bool selected:1;
	bool idle:1;
	bool fetching:1;
	bool fetch_again:1;
	bool fetch_wake:1;
	/* the connection failed: callbacks of the old client are ignored
	   until it is replaced */
	bool failed:1;
};

static void deltapush_bridge_account_connect(struct deltapush_bridge_account *account);
static void deltapush_bridge_account_save(struct deltapush_bridge_account *account);
static void deltapush_bridge_account_fetch(struct deltapush_bridge_account *account);

static bool
deltapush_bridge_account_skip_auto(struct deltapush_bridge_account *account)
{
	if (account->set->skip_auto_submitted >= 0)
		return account->set->skip_auto_submitted != 0;
	return account->bridge->skip_auto_submitted;
}

static void
deltapush_bridge_account_close(struct deltapush_bridge_account *account)
{
	account->selected = FALSE;
	account->fetching = FALSE;
	account->fetch_again = FALSE;
	timeout_remove(&account->to_poll);
	if (account->box != NULL)
		imapc_client_mailbox_close(&account->box);
	if (account->imapc != NULL)
		deltapush_bridge_imapc_deinit(&account->imapc);
}

static void
deltapush_bridge_account_reconnect(struct deltapush_bridge_account *account)
{
	timeout_remove(&account->to_reconnect);
	deltapush_bridge_account_close(account);
	deltapush_bridge_account_connect(account);
}

/* The connection failed: log why, drop it and connect again after a
   delay. Called from imapc callbacks: the client is freed later, in the
   timeout. */
static void
deltapush_bridge_account_fail(struct deltapush_bridge_account *account,
			      const char *error, bool auth_failed)
{
	unsigned int min_msecs, max_msecs, delay;

	if (account->failed)
		return;
	account->failed = TRUE;
	account->selected = FALSE;
	timeout_remove(&account->to_poll);

	min_msecs = auth_failed ? DELTAPUSH_BRIDGE_RETRY_AUTH_MIN_MSECS :
		DELTAPUSH_BRIDGE_RETRY_MIN_MSECS;
	max_msecs = auth_failed ? DELTAPUSH_BRIDGE_RETRY_AUTH_MAX_MSECS :
		DELTAPUSH_BRIDGE_RETRY_MAX_MSECS;
	if (account->state.retry_msecs < min_msecs)
		account->state.retry_msecs = min_msecs;
	else {
		account->state.retry_msecs =
			I_MIN(account->state.retry_msecs * 2, max_msecs);
	}
	delay = account->state.retry_msecs / 4 * 3 +
		i_rand_limit(account->state.retry_msecs / 2 + 1);
	/* kept on disk: a restarted bridge (doveadm reload) waits too */
	account->state.failures++;
	account->state.retry_until = ioloop_time + (delay + 999) / 1000;
	deltapush_bridge_account_save(account);

	i_free(account->last_error);
	account->last_error = i_strdup(error);
	struct event_passthrough *e =
		event_create_passthrough(account->event)->
		set_name("deltapush_bridge_failed")->
		add_str("error", error)->
		add_int("retry_msecs", delay)->
		add_str("auth_failed", auth_failed ? "yes" : "no");
	e_error(e->event(), "%s - retrying in %u ms", error, delay);

	timeout_remove(&account->to_reconnect);
	account->to_reconnect = timeout_add(delay,
		deltapush_bridge_account_reconnect, account);
}

static int
deltapush_bridge_account_request(struct deltapush_bridge_account *account,
				 enum deltapush_request_type type,
				 const char *user, const char *token,
				 const char **error_r)
{
	struct deltapush_request request;
	const char *const *fields;

	i_zero(&request);
	request.type = type;
	request.user = user;
	request.token = token;
	return deltapush_client_request(account->bridge->socket_path,
					account->bridge->service_timeout_msecs,
					account->event, &request, TRUE,
					&fields, error_r) < 0 ? -1 : 0;
}

/* Register the literal tokens under the account's service user (again,
   after a day, so that the token TTL keeps them). The first time, the
   tokens registered by an earlier run go first: a token taken out of
   the accounts file must not be woken any more. */
static int
deltapush_bridge_account_register(struct deltapush_bridge_account *account,
				  const char **error_r)
{
	const char *user, *token;

	if (account->registered_at != 0 && ioloop_time <
	    account->registered_at + DELTAPUSH_BRIDGE_REGISTER_INTERVAL_SECS)
		return 0;
	user = deltapush_bridge_account_token_user(account->set);
	if (account->registered_at == 0 &&
	    deltapush_bridge_account_request(account,
			DELTAPUSH_REQUEST_FORGET, user, NULL, error_r) < 0)
		return -1;
	array_foreach_elem(&account->set->tokens, token) {
		if (deltapush_bridge_account_request(account,
				DELTAPUSH_REQUEST_REGISTER, user, token,
				error_r) < 0)
			return -1;
	}
	account->registered_at = ioloop_time;
	return 0;
}

/* New mail: the same NOTIFY a delivery sends, for the local user and for
   the account's literal tokens. */
static int
deltapush_bridge_account_notify(struct deltapush_bridge_account *account,
				const char **error_r)
{
	if (deltapush_bridge_account_register(account, error_r) < 0)
		return -1;
	if (account->set->local_user != NULL &&
	    deltapush_bridge_account_request(account,
			DELTAPUSH_REQUEST_NOTIFY, account->set->local_user,
			NULL, error_r) < 0)
		return -1;
	if (array_count(&account->set->tokens) > 0 &&
	    deltapush_bridge_account_request(account,
			DELTAPUSH_REQUEST_NOTIFY,
			deltapush_bridge_account_token_user(account->set),
			NULL, error_r) < 0)
		return -1;
	return 0;
}

static void
deltapush_bridge_account_save(struct deltapush_bridge_account *account)
{
	const char *error;

	if (deltapush_bridge_state_write(account->state_path,
					 &account->state, &error) < 0)
		e_error(account->event, "%s", error);
}

/* Connected, or changed by the operator: no backoff (on disk either) */
static void
deltapush_bridge_account_backoff_reset(struct deltapush_bridge_account *account)
{
	if (account->state.failures == 0 && account->state.retry_msecs == 0)
		return;
	account->state.failures = 0;
	account->state.retry_msecs = 0;
	account->state.retry_until = 0;
	deltapush_bridge_account_save(account);
}

static void
deltapush_bridge_account_noop_callback(const struct imapc_command_reply *reply ATTR_UNUSED,
				       void *context ATTR_UNUSED)
{
	/* a failure shows in the FETCH sent after it */
}

static void deltapush_bridge_account_poll(struct deltapush_bridge_account *account)
{
	struct imapc_command *cmd;

	timeout_remove(&account->to_poll);
	/* NOOP lets the server announce new mail before the FETCH */
	cmd = imapc_client_mailbox_cmd(account->box,
		deltapush_bridge_account_noop_callback, NULL);
	imapc_command_send(cmd, "NOOP");
	deltapush_bridge_account_fetch(account);
}

/* Nothing to do until the server reports new mail */
static void deltapush_bridge_account_wait(struct deltapush_bridge_account *account)
{
	if (account->idle)
		imapc_client_mailbox_idle(account->box);
	else if (account->to_poll == NULL) {
		account->to_poll = timeout_add(
			account->set->poll_interval_msecs,
			deltapush_bridge_account_poll, account);
	}
}

static void
deltapush_bridge_account_fetch_callback(const struct imapc_command_reply *reply,
					void *context)
{
	struct deltapush_bridge_account *account = context;
	const char *error;

	if (account->failed || !account->fetching)
		return;
	account->fetching = FALSE;
	if (reply->state != IMAPC_COMMAND_STATE_OK) {
		deltapush_bridge_account_fail(account, t_strdup_printf(
			"UID FETCH failed: %s", reply->text_full), FALSE);
		return;
	}
	if (account->fetch_max_uid > account->state.last_uid) {
		if (account->fetch_wake &&
		    deltapush_bridge_account_notify(account, &error) < 0) {
			/* the messages stay new: looked at again later */
			e_error(account->event, "Notifying the push service "
				"failed: %s - retrying in %u ms", error,
				DELTAPUSH_BRIDGE_NOTIFY_RETRY_MSECS);
			timeout_remove(&account->to_poll);
			account->to_poll = timeout_add(
				DELTAPUSH_BRIDGE_NOTIFY_RETRY_MSECS,
				deltapush_bridge_account_poll, account);
			return;
		}
		if (account->fetch_wake) {
			account->last_trigger = ioloop_time;
			account->triggers++;
			e_debug(event_create_passthrough(account->event)->
				set_name("deltapush_bridge_trigger")->
				add_int("uid", account->fetch_max_uid)->event(),
				"New mail up to UID %u: notified",
				account->fetch_max_uid);
		}
		account->state.last_uid = account->fetch_max_uid;
		deltapush_bridge_account_save(account);
	}
	if (account->fetch_again)
		deltapush_bridge_account_fetch(account);
	else
		deltapush_bridge_account_wait(account);
}

/* Look at the messages with UIDs above the last one seen. */
static void deltapush_bridge_account_fetch(struct deltapush_bridge_account *account)
{
	struct imapc_command *cmd;

	if (!account->selected)
		return;
	if (account->fetching) {
		account->fetch_again = TRUE;
		return;
	}
	account->fetching = TRUE;
	account->fetch_again = FALSE;
	account->fetch_wake = FALSE;
	account->fetch_max_uid = account->state.last_uid;
	/* PEEK: the bridge never sets \Seen */
	cmd = imapc_client_mailbox_cmd(account->box,
		deltapush_bridge_account_fetch_callback, account);
	imapc_command_sendf(cmd, "UID FETCH %u:* (UID FLAGS "
			    "BODY.PEEK[HEADER.FIELDS (AUTO-SUBMITTED)])",
			    account->state.last_uid + 1);
}

static bool deltapush_bridge_flags_seen(const struct imap_arg *arg)
{
	const struct imap_arg *list;
	const char *flag;

	if (!imap_arg_get_list(arg, &list))
		return FALSE;
	for (; imap_arg_get_atom(list, &flag); list++) {
		if (strcasecmp(flag, "\\Seen") == 0)
			return TRUE;
	}
	return FALSE;
}

/* RFC 3834: the two automatic kinds the delivery path skips too */
static bool deltapush_bridge_header_auto_submitted(const char *header)
{
	const char *const *lines;
	const char *value;

	lines = t_strsplit(header, "\r\n");
	for (; *lines != NULL; lines++) {
		if (strncasecmp(*lines, "Auto-Submitted:", 15) != 0)
			continue;
		value = t_str_lcase(t_str_trim(*lines + 15, " \t"));
		return str_begins_with(value, "auto-replied") ||
			str_begins_with(value, "auto-generated");
	}
	return FALSE;
}

static void
deltapush_bridge_account_untagged_fetch(struct deltapush_bridge_account *account,
					const struct imap_arg *args)
{
	const struct imap_arg *list;
	const char *key, *value;
	uint32_t uid = 0;
	bool seen = FALSE, auto_submitted = FALSE;
	unsigned int i;

	if (!imap_arg_get_list(args, &list))
		return;
	for (i = 0; imap_arg_get_atom(&list[i], &key) &&
		    list[i + 1].type != IMAP_ARG_EOL; i += 2) {
		if (strcasecmp(key, "UID") == 0) {
			if (!imap_arg_get_atom(&list[i + 1], &value) ||
			    str_to_uint32(value, &uid) < 0)
				return;
		} else if (strcasecmp(key, "FLAGS") == 0) {
			seen = deltapush_bridge_flags_seen(&list[i + 1]);
		} else if (strcasecmp(key, "BODY[HEADER.FIELDS") == 0) {
			/* BODY[HEADER.FIELDS (AUTO-SUBMITTED)] value: the
			   list and "]" are arguments of their own. A header
			   too large to be inline (32 kB) counts as not
			   automatic. */
			if (!imap_arg_atom_equals(&list[i + 2], "]"))
				return;
			i += 2;
			if (imap_arg_get_nstring(&list[i + 1], &value) &&
			    value != NULL)
				auto_submitted = deltapush_bridge_header_auto_submitted(value);
		}
	}
	if (uid <= account->state.last_uid)
		return;
	if (uid > account->fetch_max_uid)
		account->fetch_max_uid = uid;
	if (seen) {
		e_debug(account->event, "UID %u is already \\Seen: no push",
			uid);
	} else if (auto_submitted && deltapush_bridge_account_skip_auto(account)) {
		e_debug(account->event, "UID %u is Auto-Submitted: no push",
			uid);
	} else {
		account->fetch_wake = TRUE;
	}
}

static void
deltapush_bridge_account_untagged(const struct imapc_untagged_reply *reply,
				  void *context)
{
	struct deltapush_bridge_account *account = context;
	uint32_t num;

	if (account->failed)
		return;
	if (reply->resp_text_key != NULL && reply->resp_text_value != NULL &&
	    strcasecmp(reply->name, "OK") == 0) {
		if (strcasecmp(reply->resp_text_key, "UIDVALIDITY") == 0 &&
		    str_to_uint32(reply->resp_text_value, &num) == 0)
			account->examine_uidvalidity = num;
		else if (strcasecmp(reply->resp_text_key, "UIDNEXT") == 0 &&
			 str_to_uint32(reply->resp_text_value, &num) == 0)
			account->examine_uidnext = num;
	} else if (strcasecmp(reply->name, "EXISTS") == 0) {
		/* new mail (or the EXAMINE's count, before selected) */
		if (account->selected)
			deltapush_bridge_account_fetch(account);
	} else if (strcasecmp(reply->name, "FETCH") == 0) {
		if (account->fetching) T_BEGIN {
			deltapush_bridge_account_untagged_fetch(account,
								reply->args);
		} T_END;
	}
}

static void
deltapush_bridge_account_examine_callback(const struct imapc_command_reply *reply,
					  void *context)
{
	struct deltapush_bridge_account *account = context;
	uint32_t uidvalidity = account->examine_uidvalidity;
	uint32_t uidnext = account->examine_uidnext;

	if (account->failed)
		return;
	if (reply->state != IMAPC_COMMAND_STATE_OK) {
		deltapush_bridge_account_fail(account, t_strdup_printf(
			"EXAMINE %s failed: %s", account->set->mailbox,
			reply->text_full), FALSE);
		return;
	}
	if (uidvalidity == 0 || uidnext == 0) {
		deltapush_bridge_account_fail(account, t_strdup_printf(
			"EXAMINE %s: the server sent no UIDVALIDITY or UIDNEXT",
			account->set->mailbox), FALSE);
		return;
	}
	if (account->state.uidvalidity == 0) {
		/* a new account: what is there now is not new mail */
		e_info(account->event, "First look at %s: %u existing "
		       "messages are not new", account->set->mailbox,
		       uidnext - 1);
		account->state.uidvalidity = uidvalidity;
		account->state.last_uid = uidnext - 1;
		deltapush_bridge_account_save(account);
	} else if (account->state.uidvalidity != uidvalidity) {
		/* the UIDs mean something else now: start over without
		   taking the whole mailbox for new mail */
		e_warning(account->event, "UIDVALIDITY of %s changed "
			  "(%u -> %u): starting over from UID %u",
			  account->set->mailbox, account->state.uidvalidity,
			  uidvalidity, uidnext - 1);
		account->state.uidvalidity = uidvalidity;
		account->state.last_uid = uidnext - 1;
		deltapush_bridge_account_save(account);
	}

	account->selected = TRUE;
	deltapush_bridge_account_backoff_reset(account);
	i_free_and_null(account->last_error);
	e_info(event_create_passthrough(account->event)->
		set_name("deltapush_bridge_connected")->
		add_str("idle", account->idle ? "yes" : "no")->event(),
		"Watching %s (%s)", account->set->mailbox,
		account->idle ? "IDLE" : t_strdup_printf(
			"polling every %u ms",
			account->set->poll_interval_msecs));
	if (uidnext - 1 > account->state.last_uid)
		deltapush_bridge_account_fetch(account);
	else
		deltapush_bridge_account_wait(account);
}

/* The connection went away after the login (the login callback is
   armed again for this). */
static void
deltapush_bridge_account_disconnected(const struct imapc_command_reply *reply,
				      void *context)
{
	struct deltapush_bridge_account *account = context;

	deltapush_bridge_account_fail(account, reply->text_full, FALSE);
}

static void
deltapush_bridge_account_login_callback(const struct imapc_command_reply *reply,
					void *context)
{
	struct deltapush_bridge_account *account = context;
	struct imapc_client *client;
	enum imapc_capability capabilities;
	struct imapc_command *cmd;
	string_t *mailbox;

	if (account->failed)
		return;
	if (reply->state != IMAPC_COMMAND_STATE_OK) {
		deltapush_bridge_account_fail(account, t_strdup_printf(
			"Login to %s:%u as %s failed: %s", account->set->host,
			account->set->port, account->set->login,
			reply->text_full),
			reply->state == IMAPC_COMMAND_STATE_AUTH_FAILED);
		return;
	}
	client = deltapush_bridge_imapc_client(account->imapc);
	imapc_client_set_login_callback(client,
		deltapush_bridge_account_disconnected, account);
	if (imapc_client_get_capabilities(client, &capabilities) < 0)
		capabilities = 0;
	account->idle = (capabilities & IMAPC_CAPABILITY_IDLE) != 0;

	account->examine_uidvalidity = 0;
	account->examine_uidnext = 0;
	account->box = imapc_client_mailbox_open(client, account);
	mailbox = t_str_new(64);
	if (imap_utf8_to_utf7(account->set->mailbox, mailbox) < 0) {
		str_truncate(mailbox, 0);
		str_append(mailbox, account->set->mailbox);
	}
	/* EXAMINE: read-only, the server never changes flags for us */
	cmd = imapc_client_mailbox_cmd(account->box,
		deltapush_bridge_account_examine_callback, account);
	imapc_command_set_flags(cmd, IMAPC_COMMAND_FLAG_SELECT);
	imapc_command_sendf(cmd, "EXAMINE %s", str_c(mailbox));
}

static int
deltapush_bridge_account_password(struct deltapush_bridge_account *account,
				  const char **password_r,
				  const char **error_r)
{
	unsigned char buf[DELTAPUSH_BRIDGE_PASSWORD_MAX_SIZE + 1];
	const char *path = account->set->password_file;
	struct stat st;
	size_t size;
	int ret;

	ret = deltapush_read_file(path, buf, sizeof(buf), &size, &st,
				  error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = t_strdup_printf("%s does not exist", path);
		return -1;
	}
	if ((st.st_mode & 0077) != 0) {
		*error_r = t_strdup_printf("%s must be readable only by its "
			"owner, the bridge's user (mode is %04o)", path,
			(unsigned int)(st.st_mode & 07777));
		return -1;
	}
	if (size > DELTAPUSH_BRIDGE_PASSWORD_MAX_SIZE) {
		*error_r = t_strdup_printf("%s is too large", path);
		return -1;
	}
	/* one line; the trailing newline is not part of it */
	while (size > 0 && (buf[size - 1] == '\n' || buf[size - 1] == '\r'))
		size--;
	if (size == 0 || memchr(buf, '\n', size) != NULL ||
	    memchr(buf, '\0', size) != NULL) {
		*error_r = t_strdup_printf("%s must hold the password on one "
					   "line", path);
		return -1;
	}
	*password_r = t_strndup(buf, size);
	return 0;
}

/* Read the password file and remember its hash. Returns the password,
   or NULL with error_r. */
static const char *
deltapush_bridge_account_password_hash(struct deltapush_bridge_account *account,
				       const char **error_r)
{
	const char *password;

	if (deltapush_bridge_account_password(account, &password,
					      error_r) < 0) {
		account->password_hashed = FALSE;
		return NULL;
	}
	sha256_get_digest(password, strlen(password), account->password_hash);
	account->password_hashed = TRUE;
	return password;
}

static void
deltapush_bridge_account_connect(struct deltapush_bridge_account *account)
{
	struct imapc_client *client;
	const char *password, *error;

	account->failed = FALSE;
	password = deltapush_bridge_account_password_hash(account, &error);
	if (password == NULL) {
		deltapush_bridge_account_fail(account, t_strdup_printf(
			"Password file: %s", error), TRUE);
		return;
	}
	if (deltapush_bridge_imapc_init(account->bridge, account->set,
					password, account->event,
					&account->imapc, &error) < 0) {
		deltapush_bridge_account_fail(account, error, FALSE);
		return;
	}
	client = deltapush_bridge_imapc_client(account->imapc);
	imapc_client_register_untagged(client,
		deltapush_bridge_account_untagged, account);
	imapc_client_set_login_callback(client,
		deltapush_bridge_account_login_callback, account);
	imapc_client_login(client);
}

static void
deltapush_bridge_account_start(struct deltapush_bridge_account *account,
			       unsigned int delay_msecs, bool resume_backoff)
{
	const char *error;
	unsigned int backoff_msecs;

	if (!resume_backoff) {
		/* the operator changed the account: try it now */
		deltapush_bridge_account_backoff_reset(account);
	}
	if (account->state.retry_until > ioloop_time) {
		/* backing off when the bridge stopped: no sooner now (no
		   later than the longest backoff either: a clock jump) */
		time_t secs = account->state.retry_until - ioloop_time;

		if (secs > DELTAPUSH_BRIDGE_RETRY_AUTH_MAX_MSECS / 1000 * 5 / 4)
			secs = DELTAPUSH_BRIDGE_RETRY_AUTH_MAX_MSECS / 1000 * 5 / 4;
		backoff_msecs = (unsigned int)secs * 1000;
		if (backoff_msecs > delay_msecs) {
			delay_msecs = backoff_msecs;
			account->last_error = i_strdup_printf(
				"Backing off after %u failed connections "
				"(before the bridge restarted)",
				account->state.failures);
			e_info(account->event, "%s - retrying in %u ms",
			       account->last_error, delay_msecs);
		}
	}
	if (delay_msecs > 0) {
		/* the password's hash, for a reload before the connect */
		(void)deltapush_bridge_account_password_hash(account, &error);
		account->to_reconnect = timeout_add(delay_msecs,
			deltapush_bridge_account_reconnect, account);
	} else {
		deltapush_bridge_account_connect(account);
	}
}

struct deltapush_bridge_account *
deltapush_bridge_account_init(struct deltapush_bridge *bridge,
			      const struct deltapush_bridge_account_settings *set,
			      unsigned int delay_msecs, bool resume_backoff)
{
	struct deltapush_bridge_account *account;
	const char *error;
	pool_t pool;
	int ret;

	pool = pool_alloconly_create("deltapush bridge account", 512);
	account = p_new(pool, struct deltapush_bridge_account, 1);
	account->pool = pool;
	account->bridge = bridge;
	account->set = deltapush_bridge_account_settings_dup(pool, set);
	account->event = event_create(bridge->event);
	event_add_str(account->event, "bridge_account", set->name);
	event_set_append_log_prefix(account->event, t_strdup_printf(
		"bridge(%s): ", set->name));
	account->state_path = i_strdup(
		deltapush_bridge_state_path(bridge->state_dir, set->name));

	ret = deltapush_bridge_state_read(account->state_path,
					  &account->state, &error);
	if (ret < 0) {
		/* without it every message would look new, or none: start
		   over as a new account */
		e_error(account->event, "%s: starting over", error);
	}
	T_BEGIN {
		deltapush_bridge_account_start(account, delay_msecs,
					       resume_backoff);
	} T_END;
	return account;
}

const struct deltapush_bridge_account_settings *
deltapush_bridge_account_get_settings(struct deltapush_bridge_account *account)
{
	return account->set;
}

bool deltapush_bridge_account_password_changed(
	struct deltapush_bridge_account *account)
{
	unsigned char old_hash[SHA256_RESULTLEN];
	bool old_hashed = account->password_hashed;
	const char *error;

	memcpy(old_hash, account->password_hash, sizeof(old_hash));
	T_BEGIN {
		(void)deltapush_bridge_account_password_hash(account, &error);
	} T_END;
	if (!old_hashed || !account->password_hashed)
		return old_hashed != account->password_hashed;
	return memcmp(old_hash, account->password_hash,
		      sizeof(old_hash)) != 0;
}

int deltapush_bridge_account_forget(struct deltapush_bridge *bridge,
				    const char *name, const char **error_r)
{
	struct deltapush_request request;
	const char *const *fields, *path;

	i_zero(&request);
	request.type = DELTAPUSH_REQUEST_FORGET;
	request.user = t_strconcat(DELTAPUSH_BRIDGE_USER_PREFIX, name, NULL);
	if (deltapush_client_request(bridge->socket_path,
				     bridge->service_timeout_msecs,
				     bridge->event, &request, TRUE,
				     &fields, error_r) < 0)
		return -1;
	path = deltapush_bridge_state_path(bridge->state_dir, name);
	if (unlink(path) < 0 && errno != ENOENT) {
		*error_r = t_strdup_printf("unlink(%s) failed: %m", path);
		return -1;
	}
	return 0;
}

void deltapush_bridge_account_status(struct deltapush_bridge_account *account,
				     string_t *dest)
{
	const char *state;

	if (account->to_reconnect != NULL && account->state.failures > 0)
		state = "backing_off";
	else if (!account->selected)
		state = "connecting";
	else if (account->idle)
		state = "idling";
	else
		state = "polling";
	str_append_tabescaped(dest, account->set->name);
	str_append_c(dest, '\t');
	str_append(dest, state);
	str_append_c(dest, '\t');
	if (account->last_error != NULL)
		str_append_tabescaped(dest, account->last_error);
	str_printfa(dest, "\t%ld\t%u\n", (long)account->last_trigger,
		    account->triggers);
}

void deltapush_bridge_account_deinit(struct deltapush_bridge_account **_account)
{
	struct deltapush_bridge_account *account = *_account;

	*_account = NULL;
	account->failed = TRUE;
	timeout_remove(&account->to_reconnect);
	deltapush_bridge_account_close(account);
	event_unref(&account->event);
	i_free(account->last_error);
	i_free(account->state_path);
	pool_unref(&account->pool);
}
