/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-compat.h"
#include "test-common.h"
#include "deltapush-settings.h"

/* Every setting the header documents */
static const char *const setting_names[] = {
	"deltapush_notify_url",
	"deltapush_db",
	"deltapush_token_ttl",
	"deltapush_ca_file",
	"deltapush_max_parallel",
	"deltapush_http_timeout",
	"deltapush_debounce",
	"deltapush_retry_base",
	"deltapush_retry_deadline",
	"deltapush_fsync",
	"deltapush_gone_limit",
	"deltapush_socket",
	"deltapush_service_timeout",
	"deltapush_mailboxes",
	"deltapush_skip_self",
	"deltapush_skip_auto_submitted",
	"deltapush_max_smtp_recipients",
	"deltapush_iroh_relay",
	"deltapush_turn_server",
	"deltapush_turn_secret_file",
	"deltapush_turn_ttl",
	"deltapush_appversions_file",
};

/* A plugin {} block: name/value pairs, NULL-terminated */
struct test_env {
	const char *const *pairs;
	/* Names looked up that are not deltapush_* settings */
	unsigned int foreign_lookups;
};

static const char *test_getenv(const char *name, void *context)
{
	struct test_env *env = context;
	unsigned int i;

	if (!str_begins_with(name, "deltapush_"))
		env->foreign_lookups++;
	for (i = 0; env->pairs[i] != NULL; i += 2) {
		if (strcmp(env->pairs[i], name) == 0)
			return env->pairs[i + 1];
	}
	return NULL;
}

static int
test_parse(pool_t pool, const char *const *pairs,
	   const struct deltapush_settings **set_r, const char **error_r)
{
	struct test_env env = { .pairs = pairs };
	int ret;

	*set_r = NULL;
	*error_r = NULL;
	ret = deltapush_settings_parse(pool, test_getenv, &env, set_r,
				       error_r);
	test_assert(env.foreign_lookups == 0);
	return ret;
}

static void test_assert_defaults(const struct deltapush_settings *set)
{
	test_assert_strcmp(set->notify_url, DELTAPUSH_DEFAULT_NOTIFY_URL);
	test_assert_strcmp(set->notify_url,
			   "https://notifications.delta.chat/notify");
	test_assert(set->db_path == NULL);
	test_assert(set->token_ttl_secs == 90 * 24 * 3600);
	test_assert(set->ca_file == NULL);
	test_assert(set->max_parallel == 64);
	test_assert(set->http_timeout_msecs == 30 * 1000);
	test_assert(set->debounce_msecs == 10 * 1000);
	test_assert(set->retry_base_msecs == 8 * 1000);
	test_assert(set->retry_deadline_secs == 5 * 3600);
	test_assert(set->fsync == DELTAPUSH_FSYNC_OPTIMIZED);
	test_assert(set->gone_limit == 100);
	test_assert_strcmp(set->socket_path, DELTAPUSH_DEFAULT_SOCKET);
	test_assert_strcmp(set->socket_path, "deltapush");
	test_assert(set->service_timeout_msecs == 2 * 1000);
	test_assert(set->mailboxes != NULL &&
		    str_array_length(set->mailboxes) == 1 &&
		    strcmp(set->mailboxes[0], "INBOX") == 0);
	test_assert(set->skip_self);
	test_assert(!set->skip_auto_submitted);
	test_assert(set->max_smtp_recipients == 0);
	test_assert(set->iroh_relay == NULL);
	test_assert(set->turn_server == NULL);
	test_assert(set->turn_secret_file == NULL);
	test_assert(set->turn_ttl_secs == 5 * 24 * 3600);
	test_assert(set->appversions_file == NULL);
}

static void test_deltapush_settings_defaults(void)
{
	static const char *const nothing[] = { NULL };
	/* Unrelated settings of the plugin {} block are ignored */
	static const char *const others[] = {
		"push_notification_driver", "deltapush",
		"deltapush", "yes",
		"quota", "count:User quota",
		NULL
	};
	const char *empty[N_ELEMENTS(setting_names) * 2 + 1];
	const struct deltapush_settings *set;
	const char *error;
	pool_t pool;
	unsigned int i;

	test_begin("deltapush settings defaults");
	pool = pool_alloconly_create("test settings", 1024);

	test_assert(test_parse(pool, nothing, &set, &error) == 0);
	test_assert(error == NULL);
	if (set != NULL)
		test_assert_defaults(set);

	test_assert(test_parse(pool, others, &set, &error) == 0);
	if (set != NULL)
		test_assert_defaults(set);

	/* An empty value means unset, as elsewhere in dovecot.conf */
	for (i = 0; i < N_ELEMENTS(setting_names); i++) {
		empty[i * 2] = setting_names[i];
		empty[i * 2 + 1] = "";
	}
	empty[i * 2] = NULL;
	test_assert(test_parse(pool, empty, &set, &error) == 0);
	if (set != NULL)
		test_assert_defaults(set);

	pool_unref(&pool);
	test_end();
}

enum test_setting_type {
	TEST_SETTING_STR,
	TEST_SETTING_UINT,
	TEST_SETTING_BOOL,
};

struct setting_case {
	const char *name;
	const char *value;
	enum test_setting_type type;
	size_t offset;
	const char *str;
	unsigned int num;
};

#define SET_STR(name, field, value, expected) \
	{ name, value, TEST_SETTING_STR, \
	  offsetof(struct deltapush_settings, field), expected, 0 }
#define SET_NUM(name, field, value, expected) \
	{ name, value, TEST_SETTING_UINT, \
	  offsetof(struct deltapush_settings, field), NULL, expected }
#define SET_BOOL(name, field, value, expected) \
	{ name, value, TEST_SETTING_BOOL, \
	  offsetof(struct deltapush_settings, field), NULL, expected }

static const struct setting_case custom_cases[] = {
	SET_STR("deltapush_notify_url", notify_url,
	    "https://push.example.org/notify",
	    "https://push.example.org/notify"),
	SET_STR("deltapush_notify_url", notify_url,
	    "http://127.0.0.1:8080/notify", "http://127.0.0.1:8080/notify"),
	SET_STR("deltapush_db", db_path, "/var/lib/dovecot/dp.sqlite",
	    "/var/lib/dovecot/dp.sqlite"),
	SET_NUM("deltapush_token_ttl", token_ttl_secs, "90d", 7776000),
	SET_NUM("deltapush_token_ttl", token_ttl_secs, "1h", 3600),
	SET_NUM("deltapush_token_ttl", token_ttl_secs, "2 mins", 120),
	SET_NUM("deltapush_token_ttl", token_ttl_secs, "1 week", 604800),
	SET_STR("deltapush_ca_file", ca_file, "/etc/ssl/test-ca.pem",
	    "/etc/ssl/test-ca.pem"),
	SET_NUM("deltapush_max_parallel", max_parallel, "1", 1),
	SET_NUM("deltapush_max_parallel", max_parallel, "1000", 1000),
	SET_NUM("deltapush_http_timeout", http_timeout_msecs, "500ms", 500),
	SET_NUM("deltapush_http_timeout", http_timeout_msecs, "1s", 1000),
	SET_NUM("deltapush_http_timeout", http_timeout_msecs, "2 mins", 120000),
	SET_NUM("deltapush_debounce", debounce_msecs, "0", 0),
	SET_NUM("deltapush_debounce", debounce_msecs, "500ms", 500),
	SET_NUM("deltapush_debounce", debounce_msecs, "1s", 1000),
	SET_NUM("deltapush_debounce", debounce_msecs, "2 mins", 120000),
	SET_NUM("deltapush_retry_base", retry_base_msecs, "1s", 1000),
	SET_NUM("deltapush_retry_base", retry_base_msecs, "250ms", 250),
	SET_NUM("deltapush_retry_deadline", retry_deadline_secs, "20s", 20),
	SET_NUM("deltapush_retry_deadline", retry_deadline_secs, "2 mins", 120),
	SET_NUM("deltapush_retry_deadline", retry_deadline_secs, "1d", 86400),
	SET_STR("deltapush_socket", socket_path, "/run/dovecot/deltapush",
	    "/run/dovecot/deltapush"),
	SET_STR("deltapush_socket", socket_path, "deltapush-test",
	    "deltapush-test"),
	SET_NUM("deltapush_service_timeout", service_timeout_msecs, "500ms",
		500),
	SET_NUM("deltapush_service_timeout", service_timeout_msecs, "5s", 5000),
	SET_BOOL("deltapush_skip_self", skip_self, "no", FALSE),
	SET_BOOL("deltapush_skip_self", skip_self, "NO", FALSE),
	SET_BOOL("deltapush_skip_self", skip_self, "yes", TRUE),
	SET_BOOL("deltapush_skip_auto_submitted", skip_auto_submitted, "yes",
	     TRUE),
	SET_BOOL("deltapush_skip_auto_submitted", skip_auto_submitted, "Yes",
	     TRUE),
	SET_BOOL("deltapush_skip_auto_submitted", skip_auto_submitted, "no",
	     FALSE),
	SET_NUM("deltapush_max_smtp_recipients", max_smtp_recipients, "1", 1),
	SET_NUM("deltapush_max_smtp_recipients", max_smtp_recipients, "100",
	    100),
	SET_STR("deltapush_iroh_relay", iroh_relay, "https://iroh.example.org/",
	    "https://iroh.example.org/"),
	SET_STR("deltapush_turn_server", turn_server, "turn.example.org:3478",
	    "turn.example.org:3478"),
	SET_STR("deltapush_turn_secret_file", turn_secret_file,
	    "/etc/dovecot/turn-secret", "/etc/dovecot/turn-secret"),
	SET_NUM("deltapush_turn_ttl", turn_ttl_secs, "1d", 86400),
	SET_NUM("deltapush_turn_ttl", turn_ttl_secs, "12h", 43200),
	SET_STR("deltapush_appversions_file", appversions_file,
	    "/etc/dovecot/appversions.json", "/etc/dovecot/appversions.json"),
};

static void test_deltapush_settings_custom(void)
{
	const struct deltapush_settings *set;
	const char *pairs[3], *error;
	char *value;
	pool_t pool;
	unsigned int i;

	test_begin("deltapush settings custom values");
	for (i = 0; i < N_ELEMENTS(custom_cases); i++) {
		const struct setting_case *c = &custom_cases[i];
		const void *field;

		pool = pool_alloconly_create("test settings", 1024);
		/* A buffer we scribble over after parsing: the settings
		   must hold their own copies. */
		value = i_strdup(c->value);
		pairs[0] = c->name;
		pairs[1] = value;
		pairs[2] = NULL;
		test_assert_idx(test_parse(pool, pairs, &set, &error) == 0, i);
		memset(value, 'X', strlen(value));
		i_free(value);
		if (set == NULL) {
			pool_unref(&pool);
			continue;
		}
		field = CONST_PTR_OFFSET(set, c->offset);
		switch (c->type) {
		case TEST_SETTING_STR:
			test_assert_strcmp_idx(*(const char *const *)field,
					       c->str, i);
			break;
		case TEST_SETTING_UINT:
			test_assert_idx(*(const unsigned int *)field ==
					c->num, i);
			break;
		case TEST_SETTING_BOOL:
			test_assert_idx(*(const bool *)field ==
					(c->num != 0), i);
			break;
		}
		pool_unref(&pool);
	}
	test_end();
}

static void test_deltapush_settings_all_custom(void)
{
	static const char *const pairs[] = {
		"deltapush_notify_url", "http://127.0.0.1:9/n",
		"deltapush_debounce", "1s",
		"deltapush_retry_base", "1s",
		"deltapush_retry_deadline", "20s",
		"deltapush_mailboxes", "INBOX Junk",
		"deltapush_skip_self", "no",
		"deltapush_skip_auto_submitted", "yes",
		"deltapush_max_parallel", "2",
		NULL
	};
	const struct deltapush_settings *set;
	const char *error;
	pool_t pool;

	test_begin("deltapush settings several at once");
	pool = pool_alloconly_create("test settings", 1024);
	test_assert(test_parse(pool, pairs, &set, &error) == 0);
	if (set != NULL) {
		test_assert_strcmp(set->notify_url, "http://127.0.0.1:9/n");
		test_assert(set->debounce_msecs == 1000);
		test_assert(set->retry_base_msecs == 1000);
		test_assert(set->retry_deadline_secs == 20);
		test_assert(str_array_length(set->mailboxes) == 2);
		test_assert(!set->skip_self);
		test_assert(set->skip_auto_submitted);
		test_assert(set->max_parallel == 2);
		/* The others keep their defaults */
		test_assert(set->token_ttl_secs == 7776000);
		test_assert(set->http_timeout_msecs == 30000);
		test_assert(set->service_timeout_msecs == 2000);
		test_assert(set->turn_ttl_secs == 432000);
		test_assert_strcmp(set->socket_path, "deltapush");
	}
	pool_unref(&pool);
	test_end();
}

static const struct {
	const char *name;
	const char *value;
} invalid_cases[] = {
	{ "deltapush_notify_url", "notifications.delta.chat/notify" },
	{ "deltapush_notify_url", "ftp://example.org/notify" },
	{ "deltapush_notify_url", "https:/example.org" },
	{ "deltapush_iroh_relay", "iroh.example.org" },
	{ "deltapush_token_ttl", "0" },
	{ "deltapush_token_ttl", "abc" },
	{ "deltapush_token_ttl", "-1d" },
	{ "deltapush_token_ttl", "90" },
	{ "deltapush_token_ttl", "10x" },
	{ "deltapush_token_ttl", "500ms" },
	{ "deltapush_token_ttl", "1.5d" },
	{ "deltapush_max_parallel", "0" },
	{ "deltapush_max_parallel", "-1" },
	{ "deltapush_max_parallel", "abc" },
	{ "deltapush_max_parallel", "10k" },
	{ "deltapush_max_parallel", "99999999999999999999" },
	{ "deltapush_http_timeout", "0" },
	{ "deltapush_http_timeout", "abc" },
	{ "deltapush_http_timeout", "30" },
	{ "deltapush_http_timeout", "50d" },
	{ "deltapush_debounce", "abc" },
	{ "deltapush_debounce", "-5s" },
	{ "deltapush_debounce", "10" },
	{ "deltapush_retry_base", "0" },
	{ "deltapush_retry_base", "abc" },
	{ "deltapush_retry_base", "8" },
	{ "deltapush_retry_deadline", "abc" },
	{ "deltapush_retry_deadline", "500ms" },
	{ "deltapush_service_timeout", "0" },
	{ "deltapush_service_timeout", "two seconds" },
	{ "deltapush_mailboxes", " " },
	{ "deltapush_mailboxes", "   " },
	{ "deltapush_skip_self", "maybe" },
	{ "deltapush_skip_self", "ye" },
	{ "deltapush_skip_auto_submitted", "maybe" },
	{ "deltapush_max_smtp_recipients", "abc" },
	{ "deltapush_max_smtp_recipients", "-1" },
	{ "deltapush_turn_ttl", "abc" },
	{ "deltapush_turn_ttl", "500ms" },
};

static void test_deltapush_settings_invalid(void)
{
	const struct deltapush_settings *set;
	const char *pairs[3], *error;
	pool_t pool;
	unsigned int i;

	test_begin("deltapush settings invalid values");
	for (i = 0; i < N_ELEMENTS(invalid_cases); i++) {
		pool = pool_alloconly_create("test settings", 1024);
		pairs[0] = invalid_cases[i].name;
		pairs[1] = invalid_cases[i].value;
		pairs[2] = NULL;
		test_assert_idx(test_parse(pool, pairs, &set, &error) == -1,
				i);
		/* The error starts with the setting's name, so the operator
		   knows which line of dovecot.conf to fix */
		test_assert_idx(error != NULL &&
				str_begins_with(error, t_strconcat(
					invalid_cases[i].name, ":", NULL)), i);
		pool_unref(&pool);
	}
	test_end();
}

static void test_deltapush_settings_invalid_among_valid(void)
{
	const struct deltapush_settings *set;
	const char *pairs[N_ELEMENTS(setting_names) * 2 + 1], *error;
	pool_t pool;
	unsigned int i, j;

	test_begin("deltapush settings invalid value among valid ones");
	/* One bad setting is found and named even when everything else is
	   set to a valid value. */
	for (i = 0; i < N_ELEMENTS(invalid_cases); i++) {
		unsigned int n = 0;

		for (j = 0; j < N_ELEMENTS(custom_cases); j++) {
			if (strcmp(custom_cases[j].name,
				   invalid_cases[i].name) == 0)
				continue;
			/* Each setting once: the first valid value */
			if (j > 0 && strcmp(custom_cases[j - 1].name,
					    custom_cases[j].name) == 0)
				continue;
			pairs[n++] = custom_cases[j].name;
			pairs[n++] = custom_cases[j].value;
		}
		pairs[n++] = invalid_cases[i].name;
		pairs[n++] = invalid_cases[i].value;
		pairs[n] = NULL;
		i_assert(n < N_ELEMENTS(pairs));

		pool = pool_alloconly_create("test settings", 1024);
		test_assert_idx(test_parse(pool, pairs, &set, &error) == -1,
				i);
		test_assert_idx(error != NULL &&
				str_begins_with(error, t_strconcat(
					invalid_cases[i].name, ":", NULL)), i);
		pool_unref(&pool);
	}
	test_end();
}

static void test_deltapush_settings_mailboxes(void)
{
	static const struct {
		const char *setting;
		const char *vname;
		bool wanted;
	} cases[] = {
		{ NULL, "INBOX", TRUE },
		{ NULL, "Junk", FALSE },
		{ NULL, "INBOX/Sub", FALSE },
		{ NULL, "INBOX.", FALSE },
		{ NULL, "INBO", FALSE },
		{ NULL, "", FALSE },
		{ "INBOX Junk", "INBOX", TRUE },
		{ "INBOX Junk", "Junk", TRUE },
		{ "INBOX Junk", "Trash", FALSE },
		{ "INBOX Junk", "INBOX Junk", FALSE },
		{ "  INBOX   Archive/2026  ", "Archive/2026", TRUE },
		{ "  INBOX   Archive/2026  ", "INBOX", TRUE },
		{ "  INBOX   Archive/2026  ", "Archive", FALSE },
		{ "  INBOX   Archive/2026  ", "", FALSE },
		/* Only the listed ones: INBOX is not implied */
		{ "Chats", "Chats", TRUE },
		{ "Chats", "INBOX", FALSE },
		{ "DeltaChat", "deltachat", FALSE },
	};
	const struct deltapush_settings *set;
	const char *pairs[3], *error;
	pool_t pool;
	unsigned int i;

	test_begin("deltapush settings mailbox_wanted");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		pool = pool_alloconly_create("test settings", 1024);
		pairs[0] = "deltapush_mailboxes";
		pairs[1] = cases[i].setting;
		pairs[2] = NULL;
		if (cases[i].setting == NULL)
			pairs[0] = NULL;
		test_assert_idx(test_parse(pool, pairs, &set, &error) == 0, i);
		if (set != NULL) {
			test_assert_idx(deltapush_settings_mailbox_wanted(
				set, cases[i].vname) == cases[i].wanted, i);
		}
		pool_unref(&pool);
	}
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_deltapush_settings_defaults,
		test_deltapush_settings_custom,
		test_deltapush_settings_all_custom,
		test_deltapush_settings_invalid,
		test_deltapush_settings_invalid_among_valid,
		test_deltapush_settings_mailboxes,
		NULL
	};
	return test_run(test_functions);
}
