/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

/* Dovecot 2.4 only: the settings struct the settings module declares. */

#include "lib.h"
#include "test-common.h"
#include "deltapush-compat.h"
#include "deltapush-dovecot-settings.h"

static void *test_settings_defaults(pool_t pool)
{
	const struct setting_parser_info *info = &deltapush_setting_parser_info;
	void *set = p_malloc(pool, info->struct_size);

	memcpy(set, info->defaults, info->struct_size);
	return set;
}

static void
test_settings_set(void *set, const char *key, const char *value)
{
	const struct setting_parser_info *info = &deltapush_setting_parser_info;
	unsigned int idx;

	if (!setting_parser_info_find_key(info, key, &idx))
		i_panic("%s is not declared", key);
	*(const char **)PTR_OFFSET(set, info->defines[idx].offset) = value;
}

static void test_deltapush_dovecot_settings_defines(void)
{
	const struct setting_parser_info *info = &deltapush_setting_parser_info;
	const struct setting_define *def;
	unsigned int count = 0;

	test_begin("deltapush settings: declared keys");
	test_assert_strcmp(info->name, "deltapush");
	for (def = info->defines; def->key != NULL; def++) {
		test_assert(str_begins_with(def->key, "deltapush_"));
		test_assert(def->type == SET_STR_NOVARS);
		count++;
	}
	/* every deltapush_* key of deltapush-settings.c */
	test_assert(count == 22);
	test_end();
}

static void test_deltapush_dovecot_settings_check_defaults(void)
{
	const struct setting_parser_info *info = &deltapush_setting_parser_info;
	pool_t pool = pool_alloconly_create("test settings", 1024);
	const char *error = NULL;

	test_begin("deltapush settings: defaults pass the check");
	/* the parser asks for every key it knows: an undeclared one would
	   panic here */
	test_assert(info->check_func(test_settings_defaults(pool), pool,
				     &error));
	test_assert(error == NULL);
	pool_unref(&pool);
	test_end();
}

static void test_deltapush_dovecot_settings_check_invalid(void)
{
	static const struct {
		const char *key, *value;
	} tests[] = {
		{ "deltapush_debounce", "bogus" },
		{ "deltapush_http_timeout", "0" },
		{ "deltapush_token_ttl", "5 parsecs" },
		{ "deltapush_max_parallel", "-1" },
		{ "deltapush_skip_self", "maybe" },
		{ "deltapush_skip_auto_submitted", "1" },
		{ "deltapush_notify_url", "ftp://example.org/" },
		{ "deltapush_iroh_relay", "example.org" },
		{ "deltapush_max_smtp_recipients", "0" },
		{ "deltapush_mailboxes", "   " },
	};
	const struct setting_parser_info *info = &deltapush_setting_parser_info;
	pool_t pool = pool_alloconly_create("test settings", 1024);
	const char *error;
	unsigned int i;
	void *set;

	test_begin("deltapush settings: the check names an invalid value");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		set = test_settings_defaults(pool);
		test_settings_set(set, tests[i].key, tests[i].value);
		error = NULL;
		test_assert_idx(!info->check_func(set, pool, &error), i);
		test_assert_idx(error != NULL &&
				str_begins_with(error, t_strconcat(
					tests[i].key, ": ", NULL)), i);
	}
	/* and a valid one passes */
	set = test_settings_defaults(pool);
	test_settings_set(set, "deltapush_debounce", "3s");
	test_assert(info->check_func(set, pool, &error));
	pool_unref(&pool);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_deltapush_dovecot_settings_defines,
		test_deltapush_dovecot_settings_check_defaults,
		test_deltapush_dovecot_settings_check_invalid,
		NULL
	};
	return test_run(test_functions);
}
