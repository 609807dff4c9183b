#ifndef DELTAPUSH_SCHEDULE_H
#define DELTAPUSH_SCHEDULE_H

/* When to push a token: coalescing of triggers and the retry schedule.
   Pure functions of the state and a clock (milliseconds since the epoch),
   so they are tested with a fake clock. All times are in milliseconds. */

struct deltapush_schedule_settings {
	/* Triggers within this long after a sent push produce exactly one
	   more push at the end of the window. 0 = one push per trigger. */
	uint64_t debounce_msecs;
	/* Retry a failed push after this long, but no sooner than one
	   window after the last request. */
	uint64_t retry_base_msecs;
	/* Give up this long after the trigger that made the push due. */
	uint64_t retry_deadline_msecs;
};

/* The persistent push state of one token. */
struct deltapush_push_state {
	/* When the last push was sent; 0 = never */
	uint64_t last_sent_msecs;
	/* When the next push is due; 0 = none pending */
	uint64_t due_msecs;
	/* When the pending push is given up (valid while due_msecs != 0) */
	uint64_t deadline_msecs;
	/* Failed attempts of the pending push */
	unsigned int attempts;
	/* Triggers that arrived after the pending push was sent and so still
	   need a push of their own (at most 1 when coalescing) */
	unsigned int waiting;
	/* A request is on the wire (not persisted: after a restart the push
	   is still due and is sent again) */
	bool in_flight;
};

enum deltapush_schedule_outcome {
	/* Nothing more is due */
	DELTAPUSH_SCHEDULE_DONE,
	/* Another push is due at state->due_msecs */
	DELTAPUSH_SCHEDULE_AGAIN,
	/* The failed push was given up at its deadline (messages that
	   arrived meanwhile extended it, so none are waiting) */
	DELTAPUSH_SCHEDULE_DROPPED,
};

/* A message arrived for the token at now. Returns TRUE if this trigger
   was folded into an already pending or in-flight push. Either way the
   message is attempted within one window of now and has its own
   deadline: a retry waiting for an older failure is brought forward. */
bool deltapush_schedule_trigger(const struct deltapush_schedule_settings *set,
				struct deltapush_push_state *state,
				uint64_t now);
/* The pending push is sent at now. */
void deltapush_schedule_sent(struct deltapush_push_state *state, uint64_t now);
/* The push sent last finished at now: success means the proxy took it
   (or said the token is gone). */
enum deltapush_schedule_outcome
deltapush_schedule_finished(const struct deltapush_schedule_settings *set,
			    struct deltapush_push_state *state, uint64_t now,
			    bool success);
/* How long after a failure the push is retried: max(retry_base,
   debounce), so that pushes follow an outage's end within about one
   window, and a failing proxy gets one request per token per window. */
uint64_t deltapush_schedule_retry_delay(const struct deltapush_schedule_settings *set);
/* Bring times that lie further in the future than the schedule can put
   them (a wall-clock step back) to now plus at most one window or the
   retry delay. Returns TRUE if the state changed. */
bool deltapush_schedule_clamp(const struct deltapush_schedule_settings *set,
			      struct deltapush_push_state *state, uint64_t now);

#endif
