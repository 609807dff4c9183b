#ifndef DELTAPUSH_SETTINGS_H
#define DELTAPUSH_SETTINGS_H

/* The deltapush_* settings of dovecot.conf's plugin {} block. The mail
   plugin and the service read the same values through this parser, so a
   setting means the same everywhere and is checked the same way. */

#define DELTAPUSH_DEFAULT_NOTIFY_URL "https://notifications.delta.chat/notify"
#define DELTAPUSH_DEFAULT_DB_NAME "deltapush.sqlite"
/* The default database's directory under state_dir: the service runs as
   an unprivileged user, which must own the directory (SQLite creates its
   -wal file there). 0.1 kept the database in state_dir itself. */
#define DELTAPUSH_DEFAULT_DB_DIR "deltapush"
#define DELTAPUSH_DEFAULT_SOCKET "deltapush"

/* deltapush_fsync, named and meant as Dovecot's mail_fsync */
enum deltapush_fsync {
	/* fsync before acknowledging a registration or a new mail; the
	   outcome of a sent push is not synced (losing it re-sends a push) */
	DELTAPUSH_FSYNC_OPTIMIZED = 0,
	/* fsync every commit */
	DELTAPUSH_FSYNC_ALWAYS,
	/* fsync only at WAL checkpoints: a power loss may lose the last
	   acknowledged requests (a crash of the process loses nothing) */
	DELTAPUSH_FSYNC_NEVER,
};

struct deltapush_settings {
	/* Service side */
	const char *notify_url;			/* deltapush_notify_url */
	const char *db_path;			/* deltapush_db; NULL = default */
	unsigned int token_ttl_secs;		/* deltapush_token_ttl [90d] */
	const char *ca_file;			/* deltapush_ca_file */
	unsigned int max_parallel;		/* deltapush_max_parallel [64] */
	unsigned int http_timeout_msecs;	/* deltapush_http_timeout [30s] */
	unsigned int debounce_msecs;		/* deltapush_debounce [10s] */
	unsigned int retry_base_msecs;		/* deltapush_retry_base [8s] */
	unsigned int retry_deadline_secs;	/* deltapush_retry_deadline [5h] */
	enum deltapush_fsync fsync;		/* deltapush_fsync [optimized] */
	/* Tokens removed for a 410 per hour at most; beyond that they are
	   kept and the push retried, in case the proxy itself broke */
	unsigned int gone_limit;		/* deltapush_gone_limit [100] */

	/* Plugin side */
	const char *socket_path;		/* deltapush_socket [deltapush] */
	unsigned int service_timeout_msecs;	/* deltapush_service_timeout [2s] */
	const char *const *mailboxes;		/* deltapush_mailboxes [INBOX] */
	bool skip_self;				/* deltapush_skip_self [yes] */
	bool skip_auto_submitted;		/* deltapush_skip_auto_submitted [no] */

	/* Server entries Delta Chat reads */
	unsigned int max_smtp_recipients;	/* deltapush_max_smtp_recipients; 0 = unset */
	const char *iroh_relay;			/* deltapush_iroh_relay */
	const char *turn_server;		/* deltapush_turn_server (host:port) */
	const char *turn_secret_file;		/* deltapush_turn_secret_file */
	unsigned int turn_ttl_secs;		/* deltapush_turn_ttl [5d] */
	const char *appversions_file;		/* deltapush_appversions_file */
};

/* Returns the value of a plugin setting, or NULL when it is not set. */
typedef const char *deltapush_settings_getenv_t(const char *name,
						 void *context);

/* Read every deltapush_* setting through getenv, applying defaults.
   Returns 0 on success, -1 with error_r naming the first invalid setting.
   Strings are allocated from pool. */
int deltapush_settings_parse(pool_t pool, deltapush_settings_getenv_t *getenv,
			     void *context,
			     const struct deltapush_settings **set_r,
			     const char **error_r);

/* Returns TRUE if mailbox vname is one of set->mailboxes. */
bool deltapush_settings_mailbox_wanted(const struct deltapush_settings *set,
				       const char *vname);

#endif
