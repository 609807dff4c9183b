/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "test-common.h"
#include "deltapush-schedule.h"

/* The fake clock starts at a realistic wall-clock time: 0 means "never"
   in the push state. */
#define T0 1767225600000ULL
#define SECS(n) ((uint64_t)(n) * 1000)

/* The defaults: debounce 10 s, retry base 8 s, deadline 5 h */
static const struct deltapush_schedule_settings default_set = {
	.debounce_msecs = SECS(10),
	.retry_base_msecs = SECS(8),
	.retry_deadline_msecs = SECS(5 * 3600),
};

/* A token's schedule driven by a fake clock: the service's part (send
   when due, report the result) done by hand. */
struct sim {
	struct deltapush_schedule_settings set;
	struct deltapush_push_state state;
	/* Each push sent, in order */
	ARRAY(uint64_t) pushes;
	/* How long a request stays in flight */
	uint64_t latency;
	uint64_t finish_at;
	bool fail;
};

static void sim_init(struct sim *sim,
		     const struct deltapush_schedule_settings *set)
{
	i_zero(sim);
	sim->set = *set;
	i_array_init(&sim->pushes, 16);
}

static void sim_deinit(struct sim *sim)
{
	array_free(&sim->pushes);
}

static unsigned int sim_push_count(const struct sim *sim)
{
	return array_count(&sim->pushes);
}

static uint64_t sim_push_time(const struct sim *sim, unsigned int idx)
{
	return *array_idx(&sim->pushes, idx);
}

static void sim_send(struct sim *sim, uint64_t now)
{
	deltapush_schedule_sent(&sim->state, now);
	array_push_back(&sim->pushes, &now);
	sim->finish_at = now + sim->latency;
}

/* Advance the clock to now: finish what is in flight, send what is due. */
static void sim_step(struct sim *sim, uint64_t now)
{
	for (;;) {
		if (sim->state.in_flight && sim->finish_at <= now) {
			(void)deltapush_schedule_finished(&sim->set,
				&sim->state, sim->finish_at, !sim->fail);
		} else if (!sim->state.in_flight && sim->state.due_msecs != 0 &&
			   sim->state.due_msecs <= now) {
			sim_send(sim, now);
		} else {
			break;
		}
	}
}

/* Run until nothing is pending any more, one millisecond at a time. */
static void sim_drain(struct sim *sim, uint64_t now, uint64_t limit)
{
	for (; now <= limit; now++) {
		sim_step(sim, now);
		if (sim->state.due_msecs == 0 && !sim->state.in_flight)
			break;
	}
}

static void test_deltapush_schedule_leading_edge(void)
{
	struct deltapush_push_state state;
	const struct deltapush_schedule_settings *set = &default_set;

	test_begin("deltapush schedule leading edge");
	/* The first trigger ever is due at once */
	i_zero(&state);
	test_assert(!deltapush_schedule_trigger(set, &state, T0));
	test_assert(state.due_msecs == T0);
	test_assert(state.deadline_msecs == T0 + set->retry_deadline_msecs);
	test_assert(state.attempts == 0);
	test_assert(state.waiting == 0);
	test_assert(!state.in_flight);

	/* A trigger before it is sent is folded into it */
	test_assert(deltapush_schedule_trigger(set, &state, T0 + 1));
	test_assert(state.due_msecs == T0);
	/* ... and gets its own full deadline */
	test_assert(state.deadline_msecs == T0 + 1 + set->retry_deadline_msecs);
	test_assert(state.waiting == 0);

	deltapush_schedule_sent(&state, T0 + 2);
	test_assert(state.in_flight);
	test_assert(state.last_sent_msecs == T0 + 2);
	test_assert(deltapush_schedule_finished(set, &state, T0 + 50, TRUE) ==
		    DELTAPUSH_SCHEDULE_DONE);
	test_assert(state.due_msecs == 0);
	test_assert(!state.in_flight);
	test_assert(state.waiting == 0);
	test_assert(state.attempts == 0);

	/* Once the window has closed, a trigger is due at once again */
	test_assert(!deltapush_schedule_trigger(set, &state,
						T0 + 2 + SECS(10)));
	test_assert(state.due_msecs == T0 + 2 + SECS(10));
	i_zero(&state);
	state.last_sent_msecs = T0;
	test_assert(!deltapush_schedule_trigger(set, &state, T0 + SECS(3600)));
	test_assert(state.due_msecs == T0 + SECS(3600));
	test_end();
}

static void test_deltapush_schedule_trailing_edge(void)
{
	const struct deltapush_schedule_settings *set = &default_set;
	/* Triggers after a push at T0 (sent and finished): when the next
	   push is due */
	static const struct {
		uint64_t trigger;
		uint64_t due;
	} cases[] = {
		{ T0 + 1, T0 + SECS(10) },
		{ T0 + 100, T0 + SECS(10) },
		{ T0 + SECS(10) - 1, T0 + SECS(10) },
		{ T0 + SECS(10), T0 + SECS(10) },
		{ T0 + SECS(10) + 1, T0 + SECS(10) + 1 },
		{ T0 + SECS(60), T0 + SECS(60) },
	};
	struct deltapush_push_state state;
	unsigned int i;

	test_begin("deltapush schedule trailing edge");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		i_zero(&state);
		test_assert_idx(!deltapush_schedule_trigger(set, &state, T0),
				i);
		deltapush_schedule_sent(&state, T0);
		test_assert_idx(deltapush_schedule_finished(set, &state, T0,
			TRUE) == DELTAPUSH_SCHEDULE_DONE, i);

		test_assert_idx(!deltapush_schedule_trigger(set, &state,
			cases[i].trigger), i);
		test_assert_idx(state.due_msecs == cases[i].due, i);
		/* The deadline counts from the trigger, not from when the
		   push is due */
		test_assert_idx(state.deadline_msecs == cases[i].trigger +
				set->retry_deadline_msecs, i);

		/* More triggers inside the window are folded */
		test_assert_idx(deltapush_schedule_trigger(set, &state,
			cases[i].trigger + 1), i);
		test_assert_idx(deltapush_schedule_trigger(set, &state,
			cases[i].due), i);
		test_assert_idx(state.due_msecs == cases[i].due, i);
		test_assert_idx(state.waiting == 0, i);

		/* One push at the end of the window, then quiet */
		deltapush_schedule_sent(&state, cases[i].due);
		test_assert_idx(deltapush_schedule_finished(set, &state,
			cases[i].due + 20, TRUE) == DELTAPUSH_SCHEDULE_DONE, i);
		test_assert_idx(state.due_msecs == 0, i);
	}
	test_end();
}

static void test_deltapush_schedule_in_flight(void)
{
	const struct deltapush_schedule_settings *set = &default_set;
	/* Triggers arrive while the first push is on the wire; it finishes
	   at finish. The next push is due when the window closes, or at
	   once if the request took longer than the window. */
	static const struct {
		unsigned int triggers;
		uint64_t finish;
		uint64_t due;
	} cases[] = {
		{ 1, T0 + 100, T0 + SECS(10) },
		{ 5, T0 + 100, T0 + SECS(10) },
		{ 50, T0 + SECS(10) - 1, T0 + SECS(10) },
		{ 1, T0 + SECS(10), T0 + SECS(10) },
		{ 3, T0 + SECS(30), T0 + SECS(30) },
	};
	struct deltapush_push_state state;
	unsigned int i, j;

	test_begin("deltapush schedule trigger while in flight");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		i_zero(&state);
		(void)deltapush_schedule_trigger(set, &state, T0);
		deltapush_schedule_sent(&state, T0);
		for (j = 0; j < cases[i].triggers; j++) {
			test_assert_idx(deltapush_schedule_trigger(set, &state,
				T0 + 1 + j), i);
		}
		/* Coalesced: however many came, one more push */
		test_assert_idx(state.waiting == 1, i);
		test_assert_idx(state.in_flight, i);

		test_assert_idx(deltapush_schedule_finished(set, &state,
			cases[i].finish, TRUE) == DELTAPUSH_SCHEDULE_AGAIN, i);
		test_assert_idx(state.due_msecs == cases[i].due, i);
		test_assert_idx(state.waiting == 0, i);
		test_assert_idx(state.attempts == 0, i);
		test_assert_idx(!state.in_flight, i);
		test_assert_idx(state.deadline_msecs >= state.due_msecs, i);

		/* That push goes out, nothing else arrives: done */
		deltapush_schedule_sent(&state, state.due_msecs);
		test_assert_idx(deltapush_schedule_finished(set, &state,
			state.last_sent_msecs + 10, TRUE) ==
			DELTAPUSH_SCHEDULE_DONE, i);
		test_assert_idx(state.due_msecs == 0, i);
		test_assert_idx(state.waiting == 0, i);
	}
	test_end();
}

/* Deterministic pseudo-random numbers for the burst shapes */
static uint32_t test_rand_next(uint32_t *seed)
{
	*seed = *seed * 1103515245U + 12345U;
	return (*seed >> 16) & 0x7fff;
}

static void
test_burst(const struct deltapush_schedule_settings *set, uint64_t latency,
	   const uint64_t *triggers, unsigned int count,
	   unsigned int min_pushes, unsigned int max_pushes, unsigned int idx)
{
	struct sim sim;
	uint64_t now, end = triggers[count - 1] + SECS(60);
	unsigned int i, t = 0, pushes;

	sim_init(&sim, set);
	sim.latency = latency;
	for (now = triggers[0]; now <= end; now++) {
		sim_step(&sim, now);
		for (; t < count && triggers[t] == now; t++)
			(void)deltapush_schedule_trigger(&sim.set, &sim.state,
							 now);
		sim_step(&sim, now);
		if (t == count && sim.state.due_msecs == 0 &&
		    !sim.state.in_flight)
			break;
	}
	test_assert_idx(t == count, idx);
	test_assert_idx(sim.state.due_msecs == 0, idx);
	test_assert_idx(!sim.state.in_flight, idx);
	test_assert_idx(sim.state.waiting == 0, idx);

	pushes = sim_push_count(&sim);
	test_assert_idx(pushes >= min_pushes && pushes <= max_pushes, idx);
	if (pushes > 0) {
		/* The first message is not delayed */
		test_assert_idx(sim_push_time(&sim, 0) == triggers[0], idx);
		/* The last message has a push sent at or after it */
		test_assert_idx(sim_push_time(&sim, pushes - 1) >=
				triggers[count - 1], idx);
	}
	/* At most one push per window */
	for (i = 1; i < pushes; i++) {
		test_assert_idx(sim_push_time(&sim, i) -
				sim_push_time(&sim, i - 1) >=
				set->debounce_msecs, idx);
	}
	sim_deinit(&sim);
}

static void test_deltapush_schedule_burst(void)
{
	static const uint64_t latencies[] = { 0, 1, 50, 400, 999, 1500 };
	struct deltapush_schedule_settings set = {
		.debounce_msecs = SECS(1),
		.retry_base_msecs = SECS(1),
		.retry_deadline_msecs = SECS(20),
	};
	uint64_t triggers[100];
	uint32_t seed = 4;
	unsigned int i, l, idx = 0;

	test_begin("deltapush schedule burst");
	/* 100 messages evenly over 3 s */
	for (i = 0; i < N_ELEMENTS(triggers); i++)
		triggers[i] = T0 + i * 30;
	for (l = 0; l < N_ELEMENTS(latencies); l++) {
		test_burst(&set, latencies[l], triggers, N_ELEMENTS(triggers),
			   2, 5, idx++);
	}
	/* With instant replies: exactly one per second, plus the last */
	{
		struct sim sim;
		uint64_t now;
		unsigned int t = 0;

		sim_init(&sim, &set);
		for (now = T0; now <= T0 + SECS(10); now++) {
			for (; t < N_ELEMENTS(triggers) && triggers[t] == now;
			     t++) {
				(void)deltapush_schedule_trigger(&sim.set,
					&sim.state, now);
			}
			sim_step(&sim, now);
		}
		test_assert(sim_push_count(&sim) == 4);
		if (sim_push_count(&sim) == 4) {
			test_assert(sim_push_time(&sim, 0) == T0);
			test_assert(sim_push_time(&sim, 1) == T0 + SECS(1));
			test_assert(sim_push_time(&sim, 2) == T0 + SECS(2));
			test_assert(sim_push_time(&sim, 3) == T0 + SECS(3));
		}
		sim_deinit(&sim);
	}
	/* Irregular bursts of 100 within 3 s */
	for (l = 0; l < 20; l++) {
		triggers[0] = T0;
		for (i = 1; i < N_ELEMENTS(triggers); i++) {
			triggers[i] = triggers[i - 1] +
				test_rand_next(&seed) % 31;
		}
		i_assert(triggers[N_ELEMENTS(triggers) - 1] < T0 + SECS(3));
		test_burst(&set, latencies[l % N_ELEMENTS(latencies)],
			   triggers, N_ELEMENTS(triggers), 2, 5, idx++);
	}
	/* A single message: a single push */
	test_burst(&set, 20, triggers, 1, 1, 1, idx++);
	test_end();
}

static void test_deltapush_schedule_window_zero(void)
{
	static const uint64_t latencies[] = { 0, 10, 500 };
	struct deltapush_schedule_settings set = default_set;
	struct sim sim;
	uint64_t triggers[10];
	unsigned int i, l;

	test_begin("deltapush schedule window 0");
	set.debounce_msecs = 0;

	/* Ten messages at the same moment, before anything is sent */
	sim_init(&sim, &set);
	for (i = 0; i < 10; i++)
		(void)deltapush_schedule_trigger(&sim.set, &sim.state, T0);
	test_assert(sim.state.due_msecs == T0);
	sim_drain(&sim, T0, T0 + SECS(60));
	test_assert(sim_push_count(&sim) == 10);
	test_assert(sim.state.due_msecs == 0 && sim.state.waiting == 0);
	sim_deinit(&sim);

	/* Messages while a push is in flight each get their own, and each
	   push is due as soon as the previous one finished */
	sim_init(&sim, &set);
	(void)deltapush_schedule_trigger(&sim.set, &sim.state, T0);
	deltapush_schedule_sent(&sim.state, T0);
	for (i = 0; i < 3; i++)
		(void)deltapush_schedule_trigger(&sim.set, &sim.state, T0 + 1);
	test_assert(sim.state.waiting == 3);
	test_assert(deltapush_schedule_finished(&sim.set, &sim.state, T0 + 5,
		TRUE) == DELTAPUSH_SCHEDULE_AGAIN);
	test_assert(sim.state.due_msecs == T0 + 5);
	test_assert(sim.state.waiting == 2);
	sim_deinit(&sim);

	/* Messages spread out, whatever the request latency: one push per
	   message */
	for (i = 0; i < N_ELEMENTS(triggers); i++)
		triggers[i] = T0 + i * 7;
	for (l = 0; l < N_ELEMENTS(latencies); l++) {
		test_burst(&set, latencies[l], triggers, N_ELEMENTS(triggers),
			   N_ELEMENTS(triggers), N_ELEMENTS(triggers), l);
	}
	test_end();
}

static void test_deltapush_schedule_retry_delay(void)
{
	static const struct {
		uint64_t debounce, base, delay;
	} cases[] = {
		{ SECS(10), SECS(8), SECS(10) },
		{ SECS(10), SECS(60), SECS(60) },
		{ 0, SECS(8), SECS(8) },
		{ SECS(1), SECS(1), SECS(1) },
	};
	struct deltapush_schedule_settings set = default_set;
	unsigned int i;

	test_begin("deltapush schedule retry delay");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		set.debounce_msecs = cases[i].debounce;
		set.retry_base_msecs = cases[i].base;
		test_assert_idx(deltapush_schedule_retry_delay(&set) ==
				cases[i].delay, i);
	}
	test_end();
}

static void test_deltapush_schedule_retries(void)
{
	static const struct {
		struct deltapush_schedule_settings set;
		/* How long each request takes to fail */
		uint64_t latency;
		/* The delay between failure and retry; retries until
		   dropped */
		uint64_t delay;
		unsigned int retries;
	} cases[] = {
		/* The defaults: one request per 10 s window for 5 h */
		{ { SECS(10), SECS(8), SECS(5 * 3600) }, 0, SECS(10), 1800 },
		{ { 0, SECS(8), SECS(5 * 3600) }, 0, SECS(8), 2250 },
		/* Requests that time out after 30 s: retried 8 s later */
		{ { SECS(10), SECS(8), SECS(5 * 3600) }, SECS(30), SECS(8),
		  473 },
		/* Short test settings */
		{ { SECS(1), SECS(1), SECS(20) }, 0, SECS(1), 20 },
		/* Slow failures use up the deadline sooner */
		{ { SECS(1), SECS(1), SECS(20) }, SECS(6), SECS(1), 2 },
		/* The last retry fits exactly, or misses by a millisecond */
		{ { SECS(1), SECS(1), SECS(9) }, 0, SECS(1), 9 },
		{ { SECS(1), SECS(1), SECS(9) - 1 }, 0, SECS(1), 8 },
		/* No retries at all */
		{ { SECS(1), SECS(1), 0 }, 0, SECS(1), 0 },
		{ { SECS(1), SECS(8), SECS(8) - 1 }, 0, SECS(8), 0 },
	};
	struct deltapush_push_state state;
	enum deltapush_schedule_outcome outcome;
	uint64_t now, failed_at = 0;
	unsigned int i, sends;

	test_begin("deltapush schedule retries and deadline");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		const struct deltapush_schedule_settings *set = &cases[i].set;

		i_zero(&state);
		test_assert_idx(!deltapush_schedule_trigger(set, &state, T0),
				i);
		for (sends = 0;; sends++) {
			if (sends > 0) {
				/* Sent exactly when due, after the expected
				   delay */
				test_assert_idx(state.due_msecs == failed_at +
						cases[i].delay, i);
			}
			now = state.due_msecs;
			deltapush_schedule_sent(&state, now);
			failed_at = now + cases[i].latency;
			outcome = deltapush_schedule_finished(set, &state,
							      failed_at, FALSE);
			test_assert_idx(state.attempts == sends + 1, i);
			test_assert_idx(!state.in_flight, i);
			if (outcome != DELTAPUSH_SCHEDULE_AGAIN)
				break;
			/* Never retried after the deadline */
			test_assert_idx(state.due_msecs <=
					T0 + set->retry_deadline_msecs, i);
			test_assert_idx(state.deadline_msecs ==
					T0 + set->retry_deadline_msecs, i);
			if (sends > 10000)
				break;
		}
		test_assert_idx(outcome == DELTAPUSH_SCHEDULE_DROPPED, i);
		test_assert_idx(state.due_msecs == 0, i);
		test_assert_idx(sends == cases[i].retries, i);

		/* A message after the drop starts over at once: the window
		   has long closed */
		now = failed_at + set->debounce_msecs;
		test_assert_idx(!deltapush_schedule_trigger(set, &state, now),
				i);
		test_assert_idx(state.due_msecs == now, i);
		test_assert_idx(state.attempts == 0, i);
		test_assert_idx(state.deadline_msecs ==
				now + set->retry_deadline_msecs, i);
	}
	test_end();
}

static void test_deltapush_schedule_retry_success(void)
{
	const struct deltapush_schedule_settings *set = &default_set;
	struct deltapush_push_state state;
	uint64_t now;
	unsigned int i, j;

	test_begin("deltapush schedule retry succeeds");
	for (i = 1; i <= 4; i++) {
		i_zero(&state);
		(void)deltapush_schedule_trigger(set, &state, T0);
		for (j = 0; j < i; j++) {
			deltapush_schedule_sent(&state, state.due_msecs);
			test_assert_idx(deltapush_schedule_finished(set, &state,
				state.last_sent_msecs, FALSE) ==
				DELTAPUSH_SCHEDULE_AGAIN, i);
		}
		deltapush_schedule_sent(&state, state.due_msecs);
		test_assert_idx(deltapush_schedule_finished(set, &state,
			state.last_sent_msecs + 10, TRUE) ==
			DELTAPUSH_SCHEDULE_DONE, i);
		test_assert_idx(state.due_msecs == 0, i);
		test_assert_idx(state.attempts == 0, i);

		now = state.last_sent_msecs + SECS(3600);
		(void)deltapush_schedule_trigger(set, &state, now);
		deltapush_schedule_sent(&state, now);
		test_assert_idx(deltapush_schedule_finished(set, &state, now,
			FALSE) == DELTAPUSH_SCHEDULE_AGAIN, i);
		test_assert_idx(state.due_msecs == now + SECS(10), i);
		test_assert_idx(state.attempts == 1, i);
	}
	test_end();
}

static void test_deltapush_schedule_trigger_during_retry(void)
{
	const struct deltapush_schedule_settings *set = &default_set;
	struct deltapush_push_state state;
	unsigned int sends;

	test_begin("deltapush schedule trigger during retry wait");
	i_zero(&state);
	(void)deltapush_schedule_trigger(set, &state, T0);
	deltapush_schedule_sent(&state, T0);
	test_assert(deltapush_schedule_finished(set, &state, T0, FALSE) ==
		    DELTAPUSH_SCHEDULE_AGAIN);
	test_assert(state.due_msecs == T0 + SECS(10));

	/* Messages while the retry waits: folded into it, each extends the
	   deadline, and the next request is their first attempt */
	test_assert(deltapush_schedule_trigger(set, &state, T0 + SECS(1)));
	test_assert(deltapush_schedule_trigger(set, &state, T0 + SECS(7)));
	test_assert(state.due_msecs == T0 + SECS(10));
	test_assert(state.deadline_msecs == T0 + SECS(7) +
		    set->retry_deadline_msecs);
	test_assert(state.attempts == 0);
	test_assert(state.waiting == 0);

	/* The retry succeeds and covers them: no second request */
	deltapush_schedule_sent(&state, state.due_msecs);
	test_assert(deltapush_schedule_finished(set, &state,
		state.last_sent_msecs + 10, TRUE) == DELTAPUSH_SCHEDULE_DONE);
	test_assert(state.due_msecs == 0);

	/* A message while a push that then fails is in flight: the next
	   request is sent after it arrived and so covers it */
	i_zero(&state);
	sends = 0;
	(void)deltapush_schedule_trigger(set, &state, T0);
	deltapush_schedule_sent(&state, T0); sends++;
	test_assert(deltapush_schedule_trigger(set, &state, T0 + 5));
	test_assert(state.waiting == 1);
	test_assert(state.deadline_msecs == T0 + 5 + set->retry_deadline_msecs);
	test_assert(deltapush_schedule_finished(set, &state, T0 + 10, FALSE) ==
		    DELTAPUSH_SCHEDULE_AGAIN);
	test_assert(state.waiting == 0);
	test_assert(state.attempts == 0);
	test_assert(state.due_msecs == T0 + SECS(10));
	deltapush_schedule_sent(&state, state.due_msecs); sends++;
	test_assert(deltapush_schedule_finished(set, &state,
		state.last_sent_msecs, TRUE) == DELTAPUSH_SCHEDULE_DONE);
	test_assert(sends == 2);
	test_end();
}

/* A proxy outage from T0 to T0 + outage_end; messages at the given times.
   Returns when the last message's push succeeded (0 = never) and checks
   that every message was attempted within one window and that the proxy
   got at most one request per window. */
static uint64_t
test_outage(const struct deltapush_schedule_settings *set,
	    uint64_t outage_end, const uint64_t *mails, unsigned int count,
	    uint64_t *first_attempt_r)
{
	struct sim sim;
	uint64_t now, success = 0, end = T0 + SECS(6 * 3600);
	unsigned int i, m = 0, prev_pushes;

	sim_init(&sim, set);
	for (now = T0; now <= end; now++) {
		sim.fail = now < T0 + outage_end;
		prev_pushes = sim_push_count(&sim);
		for (; m < count && T0 + mails[m] == now; m++) {
			(void)deltapush_schedule_trigger(&sim.set, &sim.state,
							 now);
		}
		sim_step(&sim, now);
		if (m == count && sim_push_count(&sim) > prev_pushes &&
		    first_attempt_r != NULL && *first_attempt_r == 0)
			*first_attempt_r = now - T0;
		if (m == count && !sim.fail &&
		    sim_push_count(&sim) > prev_pushes) {
			success = now - T0;
			break;
		}
		if (m == count && sim.state.due_msecs == 0 &&
		    !sim.state.in_flight)
			break;
	}
	for (i = 1; i < sim_push_count(&sim); i++) {
		test_assert_idx(sim_push_time(&sim, i) -
				sim_push_time(&sim, i - 1) >=
				set->debounce_msecs, i);
	}
	sim_deinit(&sim);
	return success;
}

static void test_deltapush_schedule_outage(void)
{
	const struct deltapush_schedule_settings *set = &default_set;
	uint64_t mails[2], first = 0, success;

	test_begin("deltapush schedule new mail during a proxy outage");
	/* Proxy down from 0 to 700 s, mail at 0 and 600 s: the new mail is
	   attempted at once and pushed one window after the outage */
	mails[0] = 0; mails[1] = SECS(600);
	success = test_outage(set, SECS(700), mails, 2, &first);
	test_assert(first >= SECS(600) && first <= SECS(610));
	test_assert(success >= SECS(700) && success <= SECS(710));
	i_info("proxy down 0-700 s, mail at 600 s: attempted at %"PRIu64
	       " ms, pushed at %"PRIu64" ms", first, success);

	/* Proxy down until 5000 s, mail at 0 and 4000 s: the second message
	   is not dropped under the first one's deadline */
	first = 0;
	mails[0] = 0; mails[1] = SECS(4000);
	success = test_outage(set, SECS(5000), mails, 2, &first);
	test_assert(first >= SECS(4000) && first <= SECS(4010));
	test_assert(success >= SECS(5000) && success <= SECS(5010));
	i_info("proxy down 0-5000 s, mail at 4000 s: attempted at %"PRIu64
	       " ms, pushed at %"PRIu64" ms", first, success);

	/* One message, outage of an hour: pushed one window after it */
	mails[0] = 0;
	success = test_outage(set, SECS(3600), mails, 1, NULL);
	test_assert(success >= SECS(3600) && success <= SECS(3610));

	/* An outage longer than the deadline drops the push */
	success = test_outage(set, SECS(6 * 3600), mails, 1, NULL);
	test_assert(success == 0);
	test_end();
}

/* The wall clock steps by step (ms, may be negative) at T0 + 5 s, with
   the token in the given state; a message arrives right after the step.
   Returns how long after the message the next push went out. */
enum clock_case {
	CLOCK_CASE_SENT,
	CLOCK_CASE_RETRYING,
	CLOCK_CASE_IN_FLIGHT,
};

static uint64_t
test_clock_step(const struct deltapush_schedule_settings *set,
		enum clock_case kind, int64_t step, bool mail)
{
	struct deltapush_push_state state;
	uint64_t now, mail_at;

	i_zero(&state);
	(void)deltapush_schedule_trigger(set, &state, T0);
	deltapush_schedule_sent(&state, T0);
	if (kind == CLOCK_CASE_SENT) {
		(void)deltapush_schedule_finished(set, &state, T0 + 100, TRUE);
	} else if (kind == CLOCK_CASE_RETRYING) {
		(void)deltapush_schedule_finished(set, &state, T0 + 100,
						  FALSE);
	}
	now = T0 + SECS(5) + step;
	mail_at = now;
	if (mail)
		(void)deltapush_schedule_trigger(set, &state, now);
	if (kind == CLOCK_CASE_IN_FLIGHT) {
		/* The request fails right after the step */
		(void)deltapush_schedule_finished(set, &state, now, FALSE);
	}
	/* What the sender does when the clock moved */
	(void)deltapush_schedule_clamp(set, &state, now);
	if (state.due_msecs == 0) {
		/* nothing pending */
		test_assert(kind == CLOCK_CASE_SENT && !mail);
		return 0;
	}
	return state.due_msecs <= mail_at ? 0 : state.due_msecs - mail_at;
}

static void test_deltapush_schedule_clock_steps(void)
{
	static const int64_t steps[] = {
		-(int64_t)SECS(3600), (int64_t)SECS(3600), -(int64_t)SECS(1),
		-(int64_t)SECS(5 * 3600 + 1),
	};
	const struct deltapush_schedule_settings *set = &default_set;
	uint64_t delay, max_delay;
	unsigned int i, kind, mail;

	test_begin("deltapush schedule wall-clock steps");
	max_delay = set->debounce_msecs + deltapush_schedule_retry_delay(set);
	for (i = 0; i < N_ELEMENTS(steps); i++) {
		for (kind = 0; kind <= CLOCK_CASE_IN_FLIGHT; kind++) {
			for (mail = 0; mail < 2; mail++) {
				delay = test_clock_step(set, kind, steps[i],
							mail == 1);
				test_assert_idx(delay <= max_delay,
						i * 10 + kind * 2 + mail);
				/* A new message is attempted within a
				   window */
				if (mail == 1) {
					test_assert_idx(delay <=
						set->debounce_msecs,
						i * 10 + kind * 2 + mail);
				}
			}
		}
	}
	i_info("1 h step back, mail after a push: next push %"PRIu64" ms "
	       "after the mail", test_clock_step(set, CLOCK_CASE_SENT,
						  -(int64_t)SECS(3600), TRUE));
	test_end();
}

static void test_deltapush_schedule_restart(void)
{
	const struct deltapush_schedule_settings *set = &default_set;
	struct deltapush_push_state state, stored;

	test_begin("deltapush schedule across a restart");
	i_zero(&state);
	(void)deltapush_schedule_trigger(set, &state, T0);
	deltapush_schedule_sent(&state, T0);
	(void)deltapush_schedule_finished(set, &state, T0, FALSE);
	deltapush_schedule_sent(&state, state.due_msecs);
	(void)deltapush_schedule_finished(set, &state, state.last_sent_msecs,
					  FALSE);
	test_assert(state.attempts == 2);
	test_assert(state.due_msecs == T0 + SECS(20));

	/* The service dies with the third attempt on the wire: what is on
	   disk has no in-flight flag, so the push is still due */
	deltapush_schedule_sent(&state, state.due_msecs);
	stored = state;
	stored.in_flight = FALSE;
	test_assert(stored.due_msecs != 0);

	/* After the restart the attempt count continues */
	deltapush_schedule_sent(&stored, T0 + SECS(100));
	test_assert(deltapush_schedule_finished(set, &stored, T0 + SECS(100),
		    FALSE) == DELTAPUSH_SCHEDULE_AGAIN);
	test_assert(stored.attempts == 3);
	test_assert(stored.due_msecs == T0 + SECS(110));
	test_assert(stored.deadline_msecs == T0 + SECS(5 * 3600));
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_deltapush_schedule_leading_edge,
		test_deltapush_schedule_trailing_edge,
		test_deltapush_schedule_in_flight,
		test_deltapush_schedule_burst,
		test_deltapush_schedule_window_zero,
		test_deltapush_schedule_retry_delay,
		test_deltapush_schedule_retries,
		test_deltapush_schedule_retry_success,
		test_deltapush_schedule_trigger_during_retry,
		test_deltapush_schedule_outage,
		test_deltapush_schedule_clock_steps,
		test_deltapush_schedule_restart,
		NULL
	};
	return test_run(test_functions);
}
