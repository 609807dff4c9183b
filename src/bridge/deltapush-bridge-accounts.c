/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "deltapush-compat.h"
#include "deltapush-common.h"
#include "deltapush-token.h"
#include "deltapush-bridge-accounts.h"

#include <ctype.h>
#include <sys/stat.h>

/* An accounts file larger than this is refused (about 1000 accounts with
   a few tokens each fit many times over) */
#define DELTAPUSH_BRIDGE_ACCOUNTS_MAX_SIZE (4 * 1024 * 1024)

bool deltapush_bridge_account_name_valid(const char *name)
{
	const char *p;

	if (name[0] == '\0' || name[0] == '.' || strlen(name) > 128)
		return FALSE;
	for (p = name; *p != '\0'; p++) {
		if (!i_isalnum(*p) && strchr("._-@+", *p) == NULL)
			return FALSE;
	}
	return TRUE;
}

static int
deltapush_bridge_account_set(pool_t pool,
			     struct deltapush_bridge_account_settings *set,
			     const char *key, const char *value,
			     bool *port_set, const char **error_r)
{
	const char *error;

	if (value[0] == '\0') {
		*error_r = t_strdup_printf("%s: Empty value", key);
		return -1;
	}
	if (strcmp(key, "host") == 0)
		set->host = p_strdup(pool, value);
	else if (strcmp(key, "port") == 0) {
		if (net_str2port(value, &set->port) < 0) {
			*error_r = t_strdup_printf("port: Invalid port '%s'",
						   value);
			return -1;
		}
		*port_set = TRUE;
	} else if (strcmp(key, "tls") == 0) {
		if (strcmp(value, "imaps") == 0)
			set->tls = DELTAPUSH_BRIDGE_TLS_IMAPS;
		else if (strcmp(value, "starttls") == 0)
			set->tls = DELTAPUSH_BRIDGE_TLS_STARTTLS;
		else {
			*error_r = t_strdup_printf(
				"tls: Invalid value '%s' (expected imaps or "
				"starttls)", value);
			return -1;
		}
	} else if (strcmp(key, "ca_file") == 0)
		set->ca_file = p_strdup(pool, value);
	else if (strcmp(key, "login") == 0)
		set->login = p_strdup(pool, value);
	else if (strcmp(key, "password_file") == 0)
		set->password_file = p_strdup(pool, value);
	else if (strcmp(key, "mailbox") == 0)
		set->mailbox = p_strdup(pool, value);
	else if (strcmp(key, "user") == 0)
		set->local_user = p_strdup(pool, value);
	else if (strcmp(key, "token") == 0) {
		if (!deltapush_token_is_valid((const unsigned char *)value,
					      strlen(value), &error)) {
			*error_r = t_strdup_printf("token: %s", error);
			return -1;
		}
		value = p_strdup(pool, value);
		array_push_back(&set->tokens, &value);
	} else if (strcmp(key, "skip_auto_submitted") == 0) {
		if (strcmp(value, "yes") == 0)
			set->skip_auto_submitted = 1;
		else if (strcmp(value, "no") == 0)
			set->skip_auto_submitted = 0;
		else {
			*error_r = t_strdup_printf(
				"skip_auto_submitted: Invalid value '%s' "
				"(expected yes or no)", value);
			return -1;
		}
	} else if (strcmp(key, "poll_interval") == 0) {
		if (deltapush_parse_interval_msecs(value,
				&set->poll_interval_msecs, &error) < 0) {
			*error_r = t_strdup_printf("poll_interval: %s", error);
			return -1;
		}
		if (set->poll_interval_msecs == 0) {
			*error_r = "poll_interval: Must not be 0";
			return -1;
		}
	} else {
		*error_r = t_strdup_printf("Unknown key '%s'", key);
		return -1;
	}
	return 0;
}

static int
deltapush_bridge_account_parse(pool_t pool, const char *const *words,
			       struct deltapush_bridge_account_settings **set_r,
			       const char **error_r)
{
	struct deltapush_bridge_account_settings *set;
	bool port_set = FALSE;
	const char *key, *value;

	if (!deltapush_bridge_account_name_valid(words[0])) {
		*error_r = t_strdup_printf(
			"Invalid account name '%s' (letters, digits and "
			"._-@+ only)", words[0]);
		return -1;
	}
	set = p_new(pool, struct deltapush_bridge_account_settings, 1);
	set->name = p_strdup(pool, words[0]);
	set->tls = DELTAPUSH_BRIDGE_TLS_IMAPS;
	set->mailbox = "INBOX";
	set->skip_auto_submitted = -1;
	set->poll_interval_msecs = DELTAPUSH_BRIDGE_DEFAULT_POLL_INTERVAL_MSECS;
	p_array_init(&set->tokens, pool, 2);

	for (words++; *words != NULL; words++) {
		value = strchr(*words, '=');
		if (value == NULL) {
			*error_r = t_strdup_printf("Expected key=value, "
						   "found '%s'", *words);
			return -1;
		}
		key = t_strdup_until(*words, value++);
		if (deltapush_bridge_account_set(pool, set, key, value,
						 &port_set, error_r) < 0)
			return -1;
	}
	if (!port_set) {
		set->port = set->tls == DELTAPUSH_BRIDGE_TLS_IMAPS ?
			993 : 143;
	}
	if (set->host == NULL)
		*error_r = "Missing host=";
	else if (set->login == NULL)
		*error_r = "Missing login=";
	else if (set->password_file == NULL)
		*error_r = "Missing password_file=";
	else if (set->local_user == NULL && array_count(&set->tokens) == 0)
		*error_r = "Missing user= or token= (whom to wake)";
	else {
		*set_r = set;
		return 0;
	}
	return -1;
}

int deltapush_bridge_accounts_parse(
	pool_t pool, const char *text,
	ARRAY_TYPE(deltapush_bridge_account_settings) *accounts_r,
	const char **error_r)
{
	struct deltapush_bridge_account_settings *set, *const *setp;
	const char *const *lines, *const *words, *error;
	unsigned int i;

	p_array_init(accounts_r, pool, 8);
	lines = t_strsplit(text, "\n");
	for (i = 0; lines[i] != NULL; i++) {
		words = (const char *const *)
			t_strsplit_spaces(lines[i], " \t\r");
		if (words[0] == NULL || words[0][0] == '#')
			continue;
		if (deltapush_bridge_account_parse(pool, words, &set,
						   &error) < 0) {
			*error_r = t_strdup_printf("line %u: %s", i + 1,
						   error);
			return -1;
		}
		array_foreach(accounts_r, setp) {
			if (strcmp((*setp)->name, set->name) == 0) {
				*error_r = t_strdup_printf(
					"line %u: Account %s is defined twice",
					i + 1, set->name);
				return -1;
			}
		}
		array_push_back(accounts_r, &set);
	}
	return 0;
}

int deltapush_bridge_accounts_read(
	pool_t pool, const char *path,
	ARRAY_TYPE(deltapush_bridge_account_settings) *accounts_r,
	const char **error_r)
{
	unsigned char *buf;
	size_t size;
	const char *error;
	int ret;

	buf = t_malloc_no0(DELTAPUSH_BRIDGE_ACCOUNTS_MAX_SIZE + 1);
	ret = deltapush_read_file(path, buf, DELTAPUSH_BRIDGE_ACCOUNTS_MAX_SIZE + 1,
				  &size, NULL, &error);
	if (ret <= 0) {
		*error_r = ret == 0 ? t_strdup_printf(
			"Accounts file %s does not exist", path) : error;
		return -1;
	}
	if (size > DELTAPUSH_BRIDGE_ACCOUNTS_MAX_SIZE) {
		*error_r = t_strdup_printf("Accounts file %s is too large",
					   path);
		return -1;
	}
	if (memchr(buf, '\0', size) != NULL) {
		*error_r = t_strdup_printf("Accounts file %s contains NUL",
					   path);
		return -1;
	}
	if (deltapush_bridge_accounts_parse(pool, t_strndup(buf, size),
					    accounts_r, &error) < 0) {
		*error_r = t_strdup_printf("%s %s", path, error);
		return -1;
	}
	return 0;
}

struct deltapush_bridge_account_settings *
deltapush_bridge_account_settings_dup(
	pool_t pool, const struct deltapush_bridge_account_settings *set)
{
	struct deltapush_bridge_account_settings *dest;
	const char *token;

	dest = p_new(pool, struct deltapush_bridge_account_settings, 1);
	*dest = *set;
	dest->name = p_strdup(pool, set->name);
	dest->host = p_strdup(pool, set->host);
	dest->ca_file = p_strdup(pool, set->ca_file);
	dest->login = p_strdup(pool, set->login);
	dest->password_file = p_strdup(pool, set->password_file);
	dest->mailbox = p_strdup(pool, set->mailbox);
	dest->local_user = p_strdup(pool, set->local_user);
	p_array_init(&dest->tokens, pool, I_MAX(array_count(&set->tokens), 1));
	array_foreach_elem(&set->tokens, token) {
		token = p_strdup(pool, token);
		array_push_back(&dest->tokens, &token);
	}
	return dest;
}

bool deltapush_bridge_account_settings_same_mailbox(
	const struct deltapush_bridge_account_settings *set1,
	const struct deltapush_bridge_account_settings *set2)
{
	return strcmp(set1->host, set2->host) == 0 &&
		strcmp(set1->login, set2->login) == 0 &&
		strcmp(set1->mailbox, set2->mailbox) == 0;
}

bool deltapush_bridge_account_settings_equal(
	const struct deltapush_bridge_account_settings *set1,
	const struct deltapush_bridge_account_settings *set2)
{
	const char *const *tokens1, *const *tokens2;
	unsigned int i, count1, count2;

	if (strcmp(set1->name, set2->name) != 0 ||
	    !deltapush_bridge_account_settings_same_mailbox(set1, set2) ||
	    set1->port != set2->port || set1->tls != set2->tls ||
	    null_strcmp(set1->ca_file, set2->ca_file) != 0 ||
	    strcmp(set1->password_file, set2->password_file) != 0 ||
	    null_strcmp(set1->local_user, set2->local_user) != 0 ||
	    set1->skip_auto_submitted != set2->skip_auto_submitted ||
	    set1->poll_interval_msecs != set2->poll_interval_msecs)
		return FALSE;
	tokens1 = array_get(&set1->tokens, &count1);
	tokens2 = array_get(&set2->tokens, &count2);
	if (count1 != count2)
		return FALSE;
	for (i = 0; i < count1; i++) {
		if (strcmp(tokens1[i], tokens2[i]) != 0)
			return FALSE;
	}
	return TRUE;
}

const char *
deltapush_bridge_account_token_user(
	const struct deltapush_bridge_account_settings *set)
{
	return t_strconcat(DELTAPUSH_BRIDGE_USER_PREFIX, set->name, NULL);
}
