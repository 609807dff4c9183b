#ifndef DELTAPUSH_BRIDGE_STATE_H
#define DELTAPUSH_BRIDGE_STATE_H

/* What the bridge remembers of an account between runs: one file per
   account in the bridge's state directory,

     <uidvalidity> <last uid> <failures> <retry msecs> <retry until>\n

   so that only mail that arrived since is new, and so that an account
   backing off (a refused login) is not tried again sooner because the
   bridge restarted (as it does at every doveadm reload). Files of 0.2
   have only the first two fields. */

struct deltapush_bridge_state {
	/* 0: the mailbox was never looked at */
	uint32_t uidvalidity;
	/* the highest UID looked at */
	uint32_t last_uid;
	/* connections that failed in a row, the backoff after the last
	   and when it ends (unix time; 0 = not backing off) */
	unsigned int failures;
	unsigned int retry_msecs;
	time_t retry_until;
};

#define DELTAPUSH_BRIDGE_STATE_SUFFIX ".state"

/* The state file of account name in state_dir (from the data stack) */
const char *deltapush_bridge_state_path(const char *state_dir,
					const char *name);

/* Read the state at path. Returns 1 with state_r, 0 if there is none
   (the account is new), -1 with error_r. */
int deltapush_bridge_state_read(const char *path,
				struct deltapush_bridge_state *state_r,
				const char **error_r);
/* Write the state to path (a temporary file renamed over it). Not
   fsynced: a state lost in a power loss only makes the bridge look at
   mail it already looked at (a push again) or, if the file is damaged,
   start over without pushes; an fsync per account would make starting
   1000 accounts take a minute. Returns 0, or -1 with error_r. */
int deltapush_bridge_state_write(const char *path,
				 const struct deltapush_bridge_state *state,
				 const char **error_r);

#endif
