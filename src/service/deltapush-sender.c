/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "priorityq.h"
#include "deltapush-common.h"
#include "deltapush-settings.h"
#include "deltapush-token.h"
#include "deltapush-store.h"
#include "deltapush-http.h"
#include "deltapush-schedule.h"
#include "deltapush-sender.h"
#include "deltapush-db.h"

/* deltapush_gone_limit counts token removals per this long */
#define DELTAPUSH_SENDER_GONE_INTERVAL_SECS 3600

/* How many pending pushes to read from the store at a time at startup. */
#define DELTAPUSH_SENDER_LOAD_BATCH 1000
/* Retry reading a due token after a failure */
#define DELTAPUSH_SENDER_RETRY_MSECS 1000
/* The longest the send timer is armed for; it is armed again then */
#define DELTAPUSH_SENDER_MAX_TIMER_MSECS (3600 * 1000)

/* A token with a push due or on the wire. */
struct deltapush_pending {
	/* Ordered by state.due_msecs while not in flight */
	struct priorityq_item item;
	struct deltapush_sender *sender;

	int64_t id;
	struct deltapush_push_state state;
	bool queued:1;
	/* A trigger wrote the pending state into the open, synced group
	   commit, and nothing else wrote the row since */
	bool committing:1;
	/* That commit is on disk: the database holds this push pending
	   across a power loss, so a new trigger needs no write (see
	   deltapush_sender_notify_fold()) */
	bool durable:1;

	/* Set when sent, for logging: the token is kept until the outcome
	   is logged, and its id (a SHA-256 of it) is computed only for a
	   line or an event that is wanted */
	char *user, *token, *token_id;
	struct deltapush_http_request *request;
};

ARRAY_DEFINE_TYPE(deltapush_pending_p, struct deltapush_pending *);

struct deltapush_sender {
	const struct deltapush_settings *set;
	struct deltapush_schedule_settings sched_set;
	/* The owner of the database, which writes the push states */
	struct deltapush_db *db;
	/* Read from, NULL once detached */
	struct deltapush_store *store;
	struct deltapush_http *http;
	struct event *event;

	struct priorityq *queue;
	HASH_TABLE(void *, struct deltapush_pending *) pending;
	/* Tokens whose triggers are in the open group commit */
	ARRAY(int64_t) committing;
	struct timeout *to;
	unsigned int in_flight;

	char *last_error;
	time_t last_error_time;

	/* Tokens removed for a 410 since gone_since */
	time_t gone_since;
	unsigned int gone_count;
	bool gone_limit_logged;
};

static void deltapush_sender_run(struct deltapush_sender *sender);

static struct event_passthrough *
deltapush_sender_event(struct deltapush_sender *sender, const char *name,
		       const char *user, const char *token_id)
{
	struct event_passthrough *e =
		event_create_passthrough(sender->event)->set_name(name);

	if (user != NULL)
		e->add_str("user", user);
	if (token_id != NULL)
		e->add_str("token", token_id);
	return e;
}

static void deltapush_sender_set_error(struct deltapush_sender *sender,
				       const char *error)
{
	i_free(sender->last_error);
	sender->last_error = i_strdup(error);
	sender->last_error_time = ioloop_time;
}

static uint64_t deltapush_now_msecs(void)
{
	return (uint64_t)ioloop_timeval.tv_sec * 1000 +
		ioloop_timeval.tv_usec / 1000;
}

static int deltapush_pending_cmp(const void *p1, const void *p2)
{
	const struct deltapush_pending *pend1 = p1, *pend2 = p2;

	if (pend1->state.due_msecs < pend2->state.due_msecs)
		return -1;
	if (pend1->state.due_msecs > pend2->state.due_msecs)
		return 1;
	return pend1->id < pend2->id ? -1 : (pend1->id > pend2->id ? 1 : 0);
}

static struct deltapush_pending *
deltapush_pending_lookup(struct deltapush_sender *sender, int64_t id)
{
	return hash_table_lookup(sender->pending, POINTER_CAST(id));
}

static void deltapush_pending_free(struct deltapush_pending *pend)
{
	i_free(pend->user);
	i_free(pend->token);
	i_free(pend->token_id);
	i_free(pend);
}

static const char *deltapush_pending_token_id(struct deltapush_pending *pend)
{
	if (pend->token_id == NULL) {
		i_assert(pend->token != NULL);
		pend->token_id = i_strdup(deltapush_token_id(pend->token));
	}
	return pend->token_id;
}

static void deltapush_pending_unqueue(struct deltapush_pending *pend)
{
	if (pend->queued) {
		priorityq_remove(pend->sender->queue, &pend->item);
		pend->queued = FALSE;
	}
}

/* Put the push in the queue for its due time, or drop it when nothing is
   due any more. */
static void deltapush_pending_update(struct deltapush_sender *sender,
				     struct deltapush_pending *pend)
{
	deltapush_pending_unqueue(pend);
	if (pend->state.in_flight)
		return;
	if (pend->state.due_msecs == 0) {
		hash_table_remove(sender->pending, POINTER_CAST(pend->id));
		deltapush_pending_free(pend);
		return;
	}
	priorityq_add(sender->queue, &pend->item);
	pend->queued = TRUE;
}

static struct deltapush_pending *
deltapush_pending_add(struct deltapush_sender *sender, int64_t id,
		      const struct deltapush_push_state *state)
{
	struct deltapush_pending *pend;

	pend = i_new(struct deltapush_pending, 1);
	pend->sender = sender;
	pend->id = id;
	pend->state = *state;
	hash_table_insert(sender->pending, POINTER_CAST(id), pend);
	deltapush_pending_update(sender, pend);
	return pend;
}

/* The push's row is written, or about to be, other than by a trigger's
   synced commit: no longer known to be durably pending */
static void deltapush_pending_not_durable(struct deltapush_pending *pend)
{
	pend->committing = FALSE;
	pend->durable = FALSE;
}

/* Hand the push's state to the database's write-behind. A push that is
   sent again after a crash before the write is harmless; one lost is
   not, and nothing is lost: the state only ever moves on from what is
   stored. */
static void deltapush_sender_save(struct deltapush_sender *sender,
				  struct deltapush_pending *pend)
{
	deltapush_pending_not_durable(pend);
	deltapush_db_save_state(sender->db, pend->id, &pend->state);
}

void deltapush_sender_state_written(struct deltapush_sender *sender,
				    int64_t id)
{
	struct deltapush_pending *pend = deltapush_pending_lookup(sender, id);

	if (pend != NULL)
		deltapush_pending_not_durable(pend);
}

/* Returns TRUE if one more token may be removed because the proxy
   answered 410. A broken proxy (its keyring lost) answers 410 for every
   token: the limit keeps the tokens it would otherwise wipe. */
static bool deltapush_sender_gone_allowed(struct deltapush_sender *sender)
{
	if (ioloop_time - sender->gone_since >=
	    DELTAPUSH_SENDER_GONE_INTERVAL_SECS ||
	    ioloop_time < sender->gone_since) {
		sender->gone_since = ioloop_time;
		sender->gone_count = 0;
		sender->gone_limit_logged = FALSE;
	}
	if (sender->gone_count < sender->set->gone_limit) {
		sender->gone_count++;
		return TRUE;
	}
	if (!sender->gone_limit_logged) {
		e_error(sender->event, "The notification proxy reported more "
			"than %u tokens gone (410) within %d s: keeping the "
			"tokens and retrying their pushes (deltapush_gone_limit)",
			sender->set->gone_limit,
			DELTAPUSH_SENDER_GONE_INTERVAL_SECS);
		sender->gone_limit_logged = TRUE;
	}
	return FALSE;
}

/* Log the push's outcome. Returns the error to record for a failure
   that is retried or dropped, NULL otherwise. */
static const char *
deltapush_sender_finish_log(struct deltapush_sender *sender,
			    struct deltapush_pending *pend,
			    const struct deltapush_http_result *result,
			    bool gone)
{
	const char *error = NULL, *token_id;
	struct event *event;

	event = deltapush_sender_event(sender, "deltapush_push_finished",
				       pend->user, NULL)->
		add_int("status", result->status)->
		add_int("attempt", pend->state.attempts + 1)->
		add_int("duration_usecs", result->duration_usecs)->event();
	if (result->status != 200 && !gone) {
		error = result->error != NULL ? result->error :
			t_strdup_printf("HTTP status %u", result->status);
		event_add_str(event, "error", error);
		deltapush_sender_set_error(sender, t_strdup_printf(
			"Push to token %s of user %s: %s",
			deltapush_pending_token_id(pend), pend->user, error));
	}
	token_id = deltapush_token_event_id(event, LOG_TYPE_DEBUG, pend->token);
	if (token_id != NULL) {
		e_debug(event, "Push to token %s of user %s finished: "
			"status %u in %llu us", token_id, pend->user,
			result->status,
			(unsigned long long)result->duration_usecs);
	}
	return error;
}

/* Draining after the store was given up (shutdown, doveadm reload): the
   push stays due in the database, so the next process sends it again,
   and a failure or a 410 is seen again then. A success goes to the
   database's write-behind, which saves it when no new process has the
   database yet (a plain stop). */
static void
deltapush_sender_finish_detached(struct deltapush_sender *sender,
				 struct deltapush_pending *pend,
				 const struct deltapush_http_result *result,
				 uint64_t now)
{
	if (result->status == 200) {
		(void)deltapush_schedule_finished(&sender->sched_set,
						  &pend->state, now, TRUE);
		deltapush_sender_save(sender, pend);
	}
	pend->state.in_flight = FALSE;
}

/* The proxy says the token can never be delivered again. */
static void deltapush_sender_finish_gone(struct deltapush_sender *sender,
					 struct deltapush_pending *pend)
{
	struct event_passthrough *e;
	const char *error;
	int ret;

	ret = deltapush_store_group_join(sender->store, FALSE, &error);
	if (ret == 0)
		ret = deltapush_store_remove(sender->store, pend->id, &error);
	if (ret < 0) {
		e_error(sender->event, "Couldn't remove the expired "
			"token %s of user %s: %s", pend->token_id,
			pend->user, error);
	} else {
		e = deltapush_sender_event(sender, "deltapush_token_removed",
					   pend->user, pend->token_id)->
			add_str("reason", "gone")->add_int("count", 1);
		e_info(e->event(), "Removed token %s of user %s: "
		       "the notification proxy reports it gone (410)",
		       pend->token_id, pend->user);
	}
	pend->state.in_flight = FALSE;
	pend->state.due_msecs = 0;
	deltapush_pending_update(sender, pend);
}

/* Done, retried later or dropped, as the schedule says. */
static void
deltapush_sender_finish_scheduled(struct deltapush_sender *sender,
				  struct deltapush_pending *pend,
				  const struct deltapush_http_result *result,
				  const char *error, uint64_t now)
{
	enum deltapush_schedule_outcome outcome;
	struct event_passthrough *e;

	outcome = deltapush_schedule_finished(&sender->sched_set, &pend->state,
					      now, result->status == 200);
	if (result->status == 200) {
		/* success: logged at debug level already */
	} else if (outcome == DELTAPUSH_SCHEDULE_DROPPED) {
		e = deltapush_sender_event(sender, "deltapush_push_dropped",
					   pend->user, pend->token_id)->
			add_int("attempts", pend->state.attempts)->
			add_str("error", error);
		e_error(e->event(), "Giving up pushing token %s of user %s "
			"after %u attempts: %s", pend->token_id, pend->user,
			pend->state.attempts, error);
	} else {
		e_warning(sender->event, "Push to token %s of user %s failed "
			  "(attempt %u, retrying in %llu ms): %s",
			  pend->token_id, pend->user, pend->state.attempts,
			  (unsigned long long)(pend->state.due_msecs - now),
			  error);
	}
	deltapush_sender_save(sender, pend);
	deltapush_pending_update(sender, pend);
}

static void
deltapush_sender_finish(struct deltapush_sender *sender,
			struct deltapush_pending *pend,
			const struct deltapush_http_result *result)
{
	uint64_t now = deltapush_now_msecs();
	const char *error;
	bool gone;

	gone = result->status == 410 && deltapush_sender_gone_allowed(sender);
	error = deltapush_sender_finish_log(sender, pend, result, gone);
	/* A failure or a 410 is logged below at info level or above, by
	   the token's id: the token itself is not needed any more */
	if (result->status != 200)
		(void)deltapush_pending_token_id(pend);
	i_free(pend->token);
	if (sender->store == NULL)
		deltapush_sender_finish_detached(sender, pend, result, now);
	else if (gone)
		deltapush_sender_finish_gone(sender, pend);
	else {
		deltapush_sender_finish_scheduled(sender, pend, result, error,
						  now);
	}
}

static void deltapush_sender_http_callback(const struct deltapush_http_result *result,
					   void *context)
{
	struct deltapush_pending *pend = context;
	struct deltapush_sender *sender = pend->sender;

	i_assert(sender->in_flight > 0);
	sender->in_flight--;
	pend->request = NULL;
	deltapush_sender_finish(sender, pend, result);
	deltapush_sender_run(sender);
}

/* Returns FALSE when the token no longer exists. */
static bool deltapush_sender_send(struct deltapush_sender *sender,
				  struct deltapush_pending *pend)
{
	struct deltapush_store_token token;
	const char *error;
	int ret;

	ret = deltapush_store_get(sender->store, pend->id,
				  pool_datastack_create(), &token, &error);
	if (ret < 0) {
		/* Leave it due; the store may come back. */
		e_error(sender->event, "Couldn't read token %lld: %s",
			(long long)pend->id, error);
		return FALSE;
	}
	if (ret == 0) {
		/* Forgotten, evicted or expired since it became due */
		pend->state.due_msecs = 0;
		return FALSE;
	}
	i_free(pend->user);
	i_free(pend->token);
	i_free(pend->token_id);
	pend->user = i_strdup(token.user);
	pend->token = i_strdup(token.token);
	/* Its outcome goes through the write-behind */
	deltapush_pending_not_durable(pend);
	deltapush_schedule_sent(&pend->state, deltapush_now_msecs());
	sender->in_flight++;
	pend->request = deltapush_http_post(sender->http, sender->set->notify_url,
		token.token, strlen(token.token),
		deltapush_sender_http_callback, pend);
	return TRUE;
}

/* Every pending push, collected first: updating one may remove it from
   the table. */
static ARRAY_TYPE(deltapush_pending_p) *
deltapush_sender_get_all_pending(struct deltapush_sender *sender)
{
	ARRAY_TYPE(deltapush_pending_p) *all;
	struct hash_iterate_context *iter;
	struct deltapush_pending *pend;
	void *key;

	all = t_new(ARRAY_TYPE(deltapush_pending_p), 1);
	t_array_init(all, hash_table_count(sender->pending) + 1);
	iter = hash_table_iterate_init(sender->pending);
	while (hash_table_iterate(iter, sender->pending, &key, &pend))
		array_push_back(all, &pend);
	hash_table_iterate_deinit(&iter);
	return all;
}

/* The wall clock stepped back: bring the due times that now lie too far
   ahead to at most one window or retry delay from now. */
static void deltapush_sender_clamp(struct deltapush_sender *sender,
				   uint64_t now)
{
	struct deltapush_pending *pend, *const *pendp;

	e_warning(sender->event, "The clock moved back: bringing pending "
		  "pushes forward");
	array_foreach(deltapush_sender_get_all_pending(sender), pendp) {
		pend = *pendp;
		if (pend->state.in_flight ||
		    !deltapush_schedule_clamp(&sender->sched_set,
					      &pend->state, now))
			continue;
		deltapush_sender_save(sender, pend);
		deltapush_pending_update(sender, pend);
	}
}

static void deltapush_sender_timeout(struct deltapush_sender *sender)
{
	timeout_remove(&sender->to);
	deltapush_sender_run(sender);
}

/* Send every push that is due, as far as the parallel limit allows, and
   arm the timer for the next one. */
static void deltapush_sender_run(struct deltapush_sender *sender)
{
	struct deltapush_pending *pend;
	uint64_t now = deltapush_now_msecs();

	timeout_remove(&sender->to);
	if (sender->store == NULL)
		return;
	while (sender->in_flight < sender->set->max_parallel &&
	       priorityq_count(sender->queue) > 0) {
		pend = (struct deltapush_pending *)priorityq_peek(sender->queue);
		if (pend->state.due_msecs > now +
		    deltapush_schedule_retry_delay(&sender->sched_set)) {
			T_BEGIN {
				deltapush_sender_clamp(sender, now);
			} T_END;
			continue;
		}
		if (pend->state.due_msecs > now) {
			sender->to = timeout_add_short_to(io_loop_get_root(),
				I_MIN(pend->state.due_msecs - now,
				      DELTAPUSH_SENDER_MAX_TIMER_MSECS),
				deltapush_sender_timeout, sender);
			return;
		}
		deltapush_pending_unqueue(pend);
		T_BEGIN {
			if (!deltapush_sender_send(sender, pend)) {
				/* A read error leaves it due: retry soon
				   rather than spin on it. */
				if (pend->state.due_msecs != 0)
					pend->state.due_msecs = now +
						DELTAPUSH_SENDER_RETRY_MSECS;
				deltapush_pending_update(sender, pend);
			}
		} T_END;
	}
}

/* Inside the open savepoint: write the trigger into each of the user's
   live tokens. The new states go to states[], memory is not changed
   yet. */
static int
deltapush_sender_notify_write(struct deltapush_sender *sender,
			      const char *user, uint64_t now,
			      ARRAY_TYPE(deltapush_store_token) *tokens,
			      struct deltapush_push_state **states_r,
			      bool **folded_r, const char **error_r)
{
	const struct deltapush_store_token *token;
	struct deltapush_pending *pend;
	struct deltapush_push_state *states;
	unsigned int i, count;
	bool *folded;

	if (deltapush_store_list(sender->store, user,
				 ioloop_time - sender->set->token_ttl_secs,
				 pool_datastack_create(), tokens, error_r) < 0)
		return -1;
	count = array_count(tokens);
	*states_r = states = t_new(struct deltapush_push_state, count + 1);
	*folded_r = folded = t_new(bool, count + 1);
	for (i = 0; i < count; i++) {
		token = array_idx(tokens, i);
		pend = deltapush_pending_lookup(sender, token->id);
		states[i] = pend != NULL ? pend->state : token->state;
		folded[i] = deltapush_schedule_trigger(&sender->sched_set,
						       &states[i], now);
		if (deltapush_store_update_state(sender->store, token->id,
						 &states[i], error_r) < 0)
			return -1;
	}
	return 0;
}

/* One per folded trigger: the token's id is hashed only when the event is
   wanted */
static void
deltapush_sender_coalesced_event(struct deltapush_sender *sender,
				 const char *user,
				 const struct deltapush_store_token *token)
{
	struct event *event;
	const char *token_id;

	event = deltapush_sender_event(sender, "deltapush_push_coalesced",
				       user, NULL)->event();
	token_id = deltapush_token_event_id(event, LOG_TYPE_DEBUG,
					    token->token);
	if (token_id != NULL) {
		e_debug(event, "New mail for user %s folded into "
			"the pending push of token %s", user, token_id);
	}
}

static void
deltapush_sender_trigger_event(struct deltapush_sender *sender,
			       const char *user, unsigned int count,
			       unsigned int coalesced, bool written)
{
	struct event_passthrough *e;

	e = deltapush_sender_event(sender, "deltapush_trigger", user, NULL)->
		add_int("tokens", count)->add_int("coalesced", coalesced)->
		add_int("written", written ? 1 : 0);
	e_debug(e->event(), "New mail for user %s: %u token(s), %u folded "
		"into pending pushes%s", user, count, coalesced,
		written ? "" : " (durably pending, nothing written)");
}

static void deltapush_sender_committed(int ret, const char *error ATTR_UNUSED,
				       struct deltapush_sender *sender)
{
	struct deltapush_pending *pend;
	const int64_t *idp;

	/* A failed commit leaves them as they were: not durable */
	array_foreach(&sender->committing, idp) {
		pend = deltapush_pending_lookup(sender, *idp);
		if (pend == NULL || !pend->committing)
			continue;
		pend->committing = FALSE;
		pend->durable = ret == 0;
	}
	array_clear(&sender->committing);
}

/* The triggers' states are in the open group: they are durable once it
   commits, if it syncs (not with deltapush_fsync = never). */
static void
deltapush_sender_notify_committing(struct deltapush_sender *sender,
				   const ARRAY_TYPE(deltapush_store_token) *tokens)
{
	const struct deltapush_store_token *token;
	struct deltapush_pending *pend;
	bool synced = deltapush_store_group_is_synced(sender->store);

	array_foreach(tokens, token) {
		pend = deltapush_pending_lookup(sender, token->id);
		if (pend == NULL)
			continue;
		pend->durable = FALSE;
		pend->committing = synced && !pend->state.in_flight;
		if (!pend->committing)
			continue;
		if (array_count(&sender->committing) == 0) {
			deltapush_store_group_add_callback(sender->store,
				deltapush_sender_committed, sender);
		}
		array_push_back(&sender->committing, &token->id);
	}
}

/* After the savepoint holds them: move memory on to the new states.
   Returns how many triggers were folded into pending pushes. */
static unsigned int
deltapush_sender_notify_apply(struct deltapush_sender *sender,
			      const char *user,
			      const ARRAY_TYPE(deltapush_store_token) *tokens,
			      const struct deltapush_push_state *states,
			      const bool *folded)
{
	const struct deltapush_store_token *token;
	struct deltapush_pending *pend;
	unsigned int i, count = array_count(tokens), coalesced = 0;

	for (i = 0; i < count; i++) {
		token = array_idx(tokens, i);
		pend = deltapush_pending_lookup(sender, token->id);
		if (pend == NULL)
			(void)deltapush_pending_add(sender, token->id, &states[i]);
		else {
			pend->state = states[i];
			deltapush_pending_update(sender, pend);
		}
		if (!folded[i])
			continue;
		coalesced++;
		deltapush_sender_coalesced_event(sender, user, token);
	}
	return coalesced;
}

int deltapush_sender_notify(struct deltapush_sender *sender, const char *user,
			    const char **error_r)
{
	ARRAY_TYPE(deltapush_store_token) tokens;
	struct deltapush_push_state *states;
	uint64_t now = deltapush_now_msecs();
	unsigned int count, coalesced;
	bool *folded;

	t_array_init(&tokens, 8);
	/* The mail process is told the trigger is recorded once the group
	   commit of this pass is on disk */
	if (deltapush_store_group_join(sender->store, TRUE, error_r) < 0 ||
	    deltapush_store_savepoint(sender->store, error_r) < 0)
		return -1;
	if (deltapush_sender_notify_write(sender, user, now, &tokens,
					  &states, &folded, error_r) < 0) {
		deltapush_store_rollback_to(sender->store);
		return -1;
	}
	if (deltapush_store_release(sender->store, error_r) < 0)
		return -1;
	/* Memory moves on now: if the commit fails, the worst is a push
	   for a trigger that was answered FAIL. */
	count = array_count(&tokens);
	coalesced = deltapush_sender_notify_apply(sender, user, &tokens,
						  states, folded);
	deltapush_sender_notify_committing(sender, &tokens);
	deltapush_sender_trigger_event(sender, user, count, coalesced, TRUE);
	deltapush_sender_run(sender);
	return count;
}

int deltapush_sender_notify_fold(struct deltapush_sender *sender,
				 const char *user, const char **error_r)
{
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;
	struct deltapush_pending **pends, *pend;
	uint64_t now = deltapush_now_msecs();
	unsigned int i, count;
	bool folded;

	t_array_init(&tokens, 8);
	if (deltapush_store_list(sender->store, user,
				 ioloop_time - sender->set->token_ttl_secs,
				 pool_datastack_create(), &tokens, error_r) < 0)
		return -1;
	count = array_count(&tokens);
	if (count == 0)
		return 0;
	pends = t_new(struct deltapush_pending *, count);
	for (i = 0; i < count; i++) {
		token = array_idx(&tokens, i);
		pend = deltapush_pending_lookup(sender, token->id);
		if (pend == NULL || !pend->durable ||
		    pend->state.in_flight || pend->state.due_msecs == 0)
			return 0;
		pends[i] = pend;
	}
	/* The same as deltapush_sender_notify() would write, kept in memory
	   only: the row may keep an earlier deadline (and, without
	   debouncing, fewer waiting messages, or a later due time after a
	   clock step back), but it stays pending, which is what a crash
	   needs. Later writes of the row take the memory state. */
	for (i = 0; i < count; i++) {
		folded = deltapush_schedule_trigger(&sender->sched_set,
						    &pends[i]->state, now);
		i_assert(folded);
		deltapush_pending_update(sender, pends[i]);
		deltapush_sender_coalesced_event(sender, user,
						 array_idx(&tokens, i));
	}
	deltapush_sender_trigger_event(sender, user, count, count, FALSE);
	deltapush_sender_run(sender);
	return count;
}

int deltapush_sender_load(struct deltapush_sender *sender,
			  const char **error_r)
{
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;
	uint64_t after_due = 0;
	int64_t after_id = 0;
	unsigned int loaded = 0;
	int ret = 0;

	do T_BEGIN {
		t_array_init(&tokens, DELTAPUSH_SENDER_LOAD_BATCH);
		if (deltapush_store_get_pending(sender->store, after_due,
				after_id, DELTAPUSH_SENDER_LOAD_BATCH,
				pool_datastack_create(), &tokens,
				error_r) < 0) {
			*error_r = t_strdup(*error_r);
			ret = -1;
		} else {
			array_foreach(&tokens, token) {
				if (deltapush_pending_lookup(sender, token->id) == NULL)
					(void)deltapush_pending_add(sender,
						token->id, &token->state);
				after_due = token->state.due_msecs;
				after_id = token->id;
			}
			loaded += array_count(&tokens);
			if (array_count(&tokens) < DELTAPUSH_SENDER_LOAD_BATCH)
				ret = 1;
		}
	} T_END; while (ret == 0);
	if (ret < 0)
		return -1;
	if (loaded > 0)
		e_info(sender->event, "Loaded %u pending push(es)", loaded);
	deltapush_sender_run(sender);
	return 0;
}

static bool deltapush_sender_flush_one(struct deltapush_sender *sender,
				       struct deltapush_pending *pend,
				       uint64_t now)
{
	if (pend->state.in_flight || pend->state.due_msecs <= now)
		return FALSE;
	pend->state.due_msecs = now;
	deltapush_sender_save(sender, pend);
	deltapush_pending_update(sender, pend);
	return TRUE;
}

int deltapush_sender_flush(struct deltapush_sender *sender, const char *user,
			   const char **error_r)
{
	ARRAY_TYPE(deltapush_store_token) tokens;
	const struct deltapush_store_token *token;
	struct deltapush_pending *pend, *const *pendp;
	uint64_t now = deltapush_now_msecs();
	unsigned int count = 0;

	if (user != NULL) {
		t_array_init(&tokens, 8);
		if (deltapush_store_list(sender->store, user, 0,
					 pool_datastack_create(), &tokens,
					 error_r) < 0)
			return -1;
		array_foreach(&tokens, token) {
			pend = deltapush_pending_lookup(sender, token->id);
			if (pend != NULL &&
			    deltapush_sender_flush_one(sender, pend, now))
				count++;
		}
	} else {
		array_foreach(deltapush_sender_get_all_pending(sender),
			      pendp) {
			if (deltapush_sender_flush_one(sender, *pendp, now))
				count++;
		}
	}
	deltapush_sender_run(sender);
	return count;
}

bool deltapush_sender_get_state(struct deltapush_sender *sender, int64_t id,
				struct deltapush_push_state *state_r)
{
	struct deltapush_pending *pend = deltapush_pending_lookup(sender, id);

	if (pend == NULL)
		return FALSE;
	*state_r = pend->state;
	return TRUE;
}

void deltapush_sender_get_status(struct deltapush_sender *sender,
				 struct deltapush_sender_status *status_r)
{
	struct hash_iterate_context *iter;
	struct deltapush_pending *pend;
	uint64_t triggered;
	void *key;

	i_zero(status_r);
	status_r->pending = hash_table_count(sender->pending);
	status_r->in_flight = sender->in_flight;
	/* The oldest push is the one whose trigger came first: its deadline
	   is the earliest. A retry waiting in the future is still old. */
	iter = hash_table_iterate_init(sender->pending);
	while (hash_table_iterate(iter, sender->pending, &key, &pend)) {
		triggered = pend->state.deadline_msecs -
			I_MIN(pend->state.deadline_msecs,
			      sender->sched_set.retry_deadline_msecs);
		if (status_r->oldest_trigger_msecs == 0 ||
		    triggered < status_r->oldest_trigger_msecs)
			status_r->oldest_trigger_msecs = triggered;
	}
	hash_table_iterate_deinit(&iter);
	status_r->last_error = sender->last_error;
	status_r->last_error_time = sender->last_error_time;
}

void deltapush_sender_detach(struct deltapush_sender *sender)
{
	timeout_remove(&sender->to);
	sender->store = NULL;
}

unsigned int deltapush_sender_get_in_flight(struct deltapush_sender *sender)
{
	return sender->in_flight;
}

unsigned int deltapush_sender_get_pending(struct deltapush_sender *sender)
{
	return hash_table_count(sender->pending);
}

struct deltapush_sender *
deltapush_sender_init(const struct deltapush_settings *set,
		      struct deltapush_db *db, struct deltapush_store *store,
		      struct event *event_parent)
{
	struct deltapush_sender *sender;
	struct deltapush_http_settings http_set = {
		.ca_file = set->ca_file,
		.timeout_msecs = set->http_timeout_msecs,
		.max_connections = set->max_parallel,
		.user_agent = DELTAPUSH_USER_AGENT,
	};

	sender = i_new(struct deltapush_sender, 1);
	sender->set = set;
	sender->db = db;
	sender->store = store;
	sender->sched_set.debounce_msecs = set->debounce_msecs;
	sender->sched_set.retry_base_msecs = set->retry_base_msecs;
	sender->sched_set.retry_deadline_msecs =
		(uint64_t)set->retry_deadline_secs * 1000;
	sender->event = event_create(event_parent);
	event_add_category(sender->event, &event_category_deltapush);
	sender->queue = priorityq_init(deltapush_pending_cmp, 128);
	hash_table_create_direct(&sender->pending, default_pool, 128);
	i_array_init(&sender->committing, 16);
	sender->http = deltapush_http_init(&http_set, sender->event);
	return sender;
}

void deltapush_sender_deinit(struct deltapush_sender **_sender)
{
	struct deltapush_sender *sender = *_sender;
	struct hash_iterate_context *iter;
	struct deltapush_pending *pend;
	void *key;

	*_sender = NULL;

	timeout_remove(&sender->to);
	/* No callbacks after this: in-flight pushes stay due in the store. */
	deltapush_http_deinit(&sender->http);
	iter = hash_table_iterate_init(sender->pending);
	while (hash_table_iterate(iter, sender->pending, &key, &pend))
		deltapush_pending_free(pend);
	hash_table_iterate_deinit(&iter);
	hash_table_destroy(&sender->pending);
	array_free(&sender->committing);
	priorityq_deinit(&sender->queue);
	i_free(sender->last_error);
	event_unref(&sender->event);
	i_free(sender);
}
