/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-schedule.h"

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

/* The earliest a push may go out: one request per window. */
static uint64_t
deltapush_schedule_window_end(const struct deltapush_schedule_settings *set,
			      const struct deltapush_push_state *state,
			      uint64_t now)
{
	if (state->last_sent_msecs == 0)
		return now;
	return I_MAX(now, state->last_sent_msecs + set->debounce_msecs);
}

uint64_t deltapush_schedule_retry_delay(const struct deltapush_schedule_settings *set)
{
	/* No growing backoff: an outage of N minutes then delays a push by
	   N minutes plus this, not by a multiple of N. One request per
	   window still keeps a failing proxy safe. */
	return I_MAX(set->retry_base_msecs, set->debounce_msecs);
}

bool deltapush_schedule_clamp(const struct deltapush_schedule_settings *set,
			      struct deltapush_push_state *state, uint64_t now)
{
	uint64_t max_due;
	bool changed = FALSE;

	/* Times beyond what the schedule can produce come from a wall-clock
	   step back: without this a step of an hour delays pushes by an
	   hour. A step forward only makes pushes due sooner. */
	if (state->last_sent_msecs > now) {
		state->last_sent_msecs = now;
		changed = TRUE;
	}
	if (state->due_msecs == 0)
		return changed;
	max_due = now + (state->attempts > 0 ?
			 deltapush_schedule_retry_delay(set) :
			 set->debounce_msecs);
	if (state->due_msecs > max_due) {
		state->due_msecs = max_due;
		changed = TRUE;
	}
	if (state->deadline_msecs > now + set->retry_deadline_msecs) {
		state->deadline_msecs = now + set->retry_deadline_msecs;
		changed = TRUE;
	}
	return changed;
}

bool deltapush_schedule_trigger(const struct deltapush_schedule_settings *set,
				struct deltapush_push_state *state,
				uint64_t now)
{
	(void)deltapush_schedule_clamp(set, state, now);
	if (state->in_flight) {
		/* The push on the wire left before this message arrived,
		   so the message needs a push after it. */
		if (set->debounce_msecs > 0)
			state->waiting = 1;
		else
			state->waiting++;
		/* Every message has its own full deadline */
		state->deadline_msecs = I_MAX(state->deadline_msecs,
					      now + set->retry_deadline_msecs);
		return TRUE;
	}
	if (state->due_msecs != 0) {
		/* A push that has not been sent yet covers this message;
		   without coalescing each message still gets its own. */
		if (set->debounce_msecs == 0)
			state->waiting++;
		state->deadline_msecs = I_MAX(state->deadline_msecs,
					      now + set->retry_deadline_msecs);
		if (state->attempts > 0) {
			/* A retry is waiting: the new message gets a fresh
			   attempt within the window, the backoff of the old
			   failure does not apply to it. */
			state->due_msecs = I_MIN(state->due_msecs,
				deltapush_schedule_window_end(set, state, now));
			state->attempts = 0;
		}
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

enum deltapush_schedule_outcome
deltapush_schedule_finished(const struct deltapush_schedule_settings *set,
			    struct deltapush_push_state *state, uint64_t now,
			    bool success)
{
	uint64_t due;

	i_assert(state->in_flight);
	state->in_flight = FALSE;
	(void)deltapush_schedule_clamp(set, state, now);

	if (!success) {
		if (state->waiting > 0) {
			/* Messages that arrived while the push was on the
			   wire have not been attempted yet: the next request
			   is their first attempt, within the window. It
			   still covers the failed push's messages. */
			state->waiting = set->debounce_msecs > 0 ? 0 :
				state->waiting - 1;
			state->attempts = 0;
			state->due_msecs =
				deltapush_schedule_window_end(set, state, now);
			return DELTAPUSH_SCHEDULE_AGAIN;
		}
		state->attempts++;
		due = I_MAX(now + set->retry_base_msecs,
			    deltapush_schedule_window_end(set, state, now));
		if (due <= state->deadline_msecs) {
			state->due_msecs = due;
			return DELTAPUSH_SCHEDULE_AGAIN;
		}
		state->due_msecs = 0;
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
