/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-schedule.h"

#define DELTAPUSH_RETRY_FACTOR 8

static void
deltapush_schedule_due(const struct deltapush_schedule_settings *set,
		       struct deltapush_push_state *state, uint64_t now)
{
	uint64_t window_end = state->last_sent_msecs + set->debounce_msecs;

	/* Leading edge: push at once when the window is closed; otherwise
	   one push when it closes. */
	state->due_msecs = state->last_sent_msecs == 0 || window_end <= now ?
		now : window_end;
	state->deadline_msecs = now + set->retry_deadline_msecs;
	state->attempts = 0;
}

bool deltapush_schedule_trigger(const struct deltapush_schedule_settings *set,
				struct deltapush_push_state *state,
				uint64_t now)
{
	if (state->in_flight) {
		/* The push on the wire left before this message arrived,
		   so the message needs a push after it. */
		if (set->debounce_msecs > 0)
			state->waiting = 1;
		else
			state->waiting++;
		return TRUE;
	}
	if (state->due_msecs != 0) {
		/* A push that has not been sent yet covers this message;
		   without coalescing each message still gets its own. */
		if (set->debounce_msecs == 0)
			state->waiting++;
		return TRUE;
	}
	deltapush_schedule_due(set, state, now);
	return FALSE;
}

void deltapush_schedule_sent(struct deltapush_push_state *state, uint64_t now)
{
	i_assert(state->due_msecs != 0);
	i_assert(!state->in_flight);

	state->in_flight = TRUE;
	state->last_sent_msecs = now;
}

uint64_t deltapush_schedule_retry_delay(const struct deltapush_schedule_settings *set,
					unsigned int attempt)
{
	uint64_t delay = set->retry_base_msecs;

	i_assert(attempt > 0);
	for (; attempt > 1; attempt--) {
		if (delay > UINT64_MAX / DELTAPUSH_RETRY_FACTOR)
			return UINT64_MAX;
		delay *= DELTAPUSH_RETRY_FACTOR;
	}
	return delay;
}

enum deltapush_schedule_outcome
deltapush_schedule_finished(const struct deltapush_schedule_settings *set,
			    struct deltapush_push_state *state, uint64_t now,
			    bool success)
{
	uint64_t delay;

	i_assert(state->in_flight);
	state->in_flight = FALSE;

	if (!success) {
		state->attempts++;
		delay = deltapush_schedule_retry_delay(set, state->attempts);
		if (delay <= state->deadline_msecs &&
		    now <= state->deadline_msecs - delay) {
			/* The retry is sent after every waiting message
			   arrived, so it covers them when coalescing. */
			if (set->debounce_msecs > 0)
				state->waiting = 0;
			state->due_msecs = now + delay;
			return DELTAPUSH_SCHEDULE_AGAIN;
		}
		state->due_msecs = 0;
		if (state->waiting == 0)
			return DELTAPUSH_SCHEDULE_DROPPED;
		/* Messages that came after the given-up push start afresh
		   with their own deadline. */
		state->waiting--;
		deltapush_schedule_due(set, state, now);
		return DELTAPUSH_SCHEDULE_DROPPED;
	}

	if (state->waiting == 0) {
		state->due_msecs = 0;
		state->attempts = 0;
		return DELTAPUSH_SCHEDULE_DONE;
	}
	state->waiting = set->debounce_msecs > 0 ? 0 : state->waiting - 1;
	deltapush_schedule_due(set, state, now);
	return DELTAPUSH_SCHEDULE_AGAIN;
}
