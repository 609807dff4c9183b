#ifndef DELTAPUSH_SENDER_H
#define DELTAPUSH_SENDER_H

struct deltapush_db;
struct deltapush_store;
struct deltapush_settings;

/* Decides when each token is pushed (coalescing, retries) and sends the
   pushes. A trigger is in the store before it is acted on, and the
   outcome of each push is handed to the database's write-behind
   (deltapush_db_save_state()), so a restart continues where the last
   process stopped. */
struct deltapush_sender;

/* db owns store and writes the push states the sender hands it. */
struct deltapush_sender *
deltapush_sender_init(const struct deltapush_settings *set,
		      struct deltapush_db *db, struct deltapush_store *store,
		      struct event *event_parent);
/* Aborts requests in flight: their pushes stay due in the store. */
void deltapush_sender_deinit(struct deltapush_sender **sender);

/* Load the pending pushes from the store and start sending them. */
int deltapush_sender_load(struct deltapush_sender *sender,
			  const char **error_r);

/* New mail for user: make each of the user's live tokens due for a push.
   The store must hold the outcomes of finished pushes already. Returns
   the number of tokens triggered, or -1 with error_r when the trigger
   could not be recorded (then nothing changed). */
int deltapush_sender_notify(struct deltapush_sender *sender, const char *user,
			    const char **error_r);

/* New mail for user whose every live token has a push pending, not in
   flight, and durably so: its pending state was committed with a disk
   sync and nothing written since changed it. The trigger is then folded
   into those pushes in memory, with no write: a crash still finds each
   push pending in the database, to be sent after the mail was saved.
   Returns the number of tokens folded into, 0 when the trigger must be
   written with deltapush_sender_notify() instead, or -1 with error_r. */
int deltapush_sender_notify_fold(struct deltapush_sender *sender,
				 const char *user, const char **error_r);
/* A push state of token id was written to the store other than by
   deltapush_sender_notify() (the write-behind): it is no longer known
   to be durably pending. */
void deltapush_sender_state_written(struct deltapush_sender *sender,
				    int64_t id);

/* Make the pending pushes of user (NULL = everyone) due now, retries
   included. Returns how many, or -1 with error_r. */
int deltapush_sender_flush(struct deltapush_sender *sender, const char *user,
			   const char **error_r);

/* The push state of a token as the sender sees it: the store's plus
   whether it is in flight. Returns FALSE if nothing is pending for it. */
bool deltapush_sender_get_state(struct deltapush_sender *sender, int64_t id,
				struct deltapush_push_state *state_r);

struct deltapush_sender_status {
	unsigned int pending, in_flight;
	/* When the mail that made the oldest pending push due arrived
	   (msecs); 0 = none */
	uint64_t oldest_trigger_msecs;
	/* The last failure, and when; NULL = none */
	const char *last_error;
	time_t last_error_time;
};
void deltapush_sender_get_status(struct deltapush_sender *sender,
				 struct deltapush_sender_status *status_r);

/* Stop using the store, which the caller may then close: requests in
   flight may finish, but start nothing new and write nothing (their
   outcomes still go to deltapush_db_save_state()). Their pushes stay due
   in the database, so the next process sends them again (a push may
   arrive twice, none is lost). Only deltapush_sender_deinit() may
   follow. */
void deltapush_sender_detach(struct deltapush_sender *sender);

unsigned int deltapush_sender_get_in_flight(struct deltapush_sender *sender);
unsigned int deltapush_sender_get_pending(struct deltapush_sender *sender);

#endif
