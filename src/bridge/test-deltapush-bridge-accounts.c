/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "array.h"
#include "unlink-directory.h"
#include "test-common.h"
#include "test-deltapush-common.h"
#include "deltapush-bridge-accounts.h"
#include "deltapush-bridge-state.h"

#include <sys/stat.h>
#include <unistd.h>

static void test_bridge_accounts_parse(void)
{
	ARRAY_TYPE(deltapush_bridge_account_settings) accounts;
	const struct deltapush_bridge_account_settings *set;
	pool_t pool = pool_alloconly_create("test", 1024);
	const char *error;

	test_begin("bridge accounts parse");
	test_assert(deltapush_bridge_accounts_parse(pool,
		"# comment\n"
		"\n"
		"alice host=imap.example.com login=alice@example.com "
		"password_file=/etc/p user=alice\n"
		"bob\thost=mx.example.net port=1143 tls=starttls "
		"ca_file=/etc/ca.pem login=bob password_file=/p2 "
		"mailbox=Delta token=tok1 token=tok2 skip_auto_submitted=yes "
		"poll_interval=30s\r\n", &accounts, &error) == 0);
	test_assert(array_count(&accounts) == 2);
	set = array_idx_elem(&accounts, 0);
	test_assert_strcmp(set->name, "alice");
	test_assert_strcmp(set->host, "imap.example.com");
	test_assert(set->port == 993);
	test_assert(set->tls == DELTAPUSH_BRIDGE_TLS_IMAPS);
	test_assert(set->ca_file == NULL);
	test_assert_strcmp(set->mailbox, "INBOX");
	test_assert_strcmp(set->local_user, "alice");
	test_assert(array_count(&set->tokens) == 0);
	test_assert(set->skip_auto_submitted == -1);
	test_assert(set->poll_interval_msecs == 60000);
	test_assert_strcmp(deltapush_bridge_account_token_user(set),
			   "bridge:alice");
	set = array_idx_elem(&accounts, 1);
	test_assert(set->port == 1143);
	test_assert(set->tls == DELTAPUSH_BRIDGE_TLS_STARTTLS);
	test_assert_strcmp(set->ca_file, "/etc/ca.pem");
	test_assert_strcmp(set->mailbox, "Delta");
	test_assert(set->local_user == NULL);
	test_assert(array_count(&set->tokens) == 2);
	test_assert_strcmp(array_idx_elem(&set->tokens, 1), "tok2");
	test_assert(set->skip_auto_submitted == 1);
	test_assert(set->poll_interval_msecs == 30000);

	/* STARTTLS defaults to port 143 */
	test_assert(deltapush_bridge_accounts_parse(pool,
		"c host=h tls=starttls login=l password_file=/p token=t\n",
		&accounts, &error) == 0);
	test_assert(array_idx_elem(&accounts, 0)->port == 143);
	test_end();
	pool_unref(&pool);
}

static void test_bridge_accounts_parse_errors(void)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "a host=h login=l password_file=/p",
		  "line 1: Missing user= or token= (whom to wake)" },
		{ "a login=l password_file=/p user=u", "line 1: Missing host=" },
		{ "a host=h password_file=/p user=u", "line 1: Missing login=" },
		{ "a host=h login=l user=u", "line 1: Missing password_file=" },
		{ "\n\na/b host=h", "line 3: Invalid account name 'a/b' "
		  "(letters, digits and ._-@+ only)" },
		{ ".. host=h", "line 1: Invalid account name '..' "
		  "(letters, digits and ._-@+ only)" },
		{ "a host", "line 1: Expected key=value, found 'host'" },
		{ "a host=", "line 1: host: Empty value" },
		{ "a colour=red", "line 1: Unknown key 'colour'" },
		{ "a tls=none", "line 1: tls: Invalid value 'none' "
		  "(expected imaps or starttls)" },
		{ "a port=0", "line 1: port: Invalid port '0'" },
		{ "a token=a\"b", NULL },
		{ "a poll_interval=0", "line 1: poll_interval: Must not be 0" },
		{ "a host=h login=l password_file=/p user=u\n"
		  "a host=h login=l password_file=/p user=u",
		  "line 2: Account a is defined twice" },
	};
	ARRAY_TYPE(deltapush_bridge_account_settings) accounts;
	pool_t pool = pool_alloconly_create("test", 1024);
	const char *error;
	unsigned int i;

	test_begin("bridge accounts parse errors");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		error = NULL;
		test_assert_idx(deltapush_bridge_accounts_parse(pool,
			cases[i].text, &accounts, &error) < 0, i);
		if (cases[i].error != NULL)
			test_assert_strcmp_idx(error, cases[i].error, i);
		else
			test_assert_idx(error != NULL, i);
	}
	test_end();
	pool_unref(&pool);
}

static void test_bridge_accounts_equal(void)
{
	static const char *const base =
		"a host=h login=l password_file=/p token=t1 token=t2";
	static const char *const changed[] = {
		"a host=h2 login=l password_file=/p token=t1 token=t2",
		"a host=h login=l2 password_file=/p token=t1 token=t2",
		"a host=h login=l password_file=/p2 token=t1 token=t2",
		"a host=h login=l password_file=/p token=t2 token=t1",
		"a host=h login=l password_file=/p token=t1",
		"a host=h login=l password_file=/p token=t1 token=t2 user=u",
		"a host=h login=l password_file=/p token=t1 token=t2 port=994",
		"a host=h login=l password_file=/p token=t1 token=t2 "
		"tls=starttls",
		"a host=h login=l password_file=/p token=t1 token=t2 ca_file=/c",
		"a host=h login=l password_file=/p token=t1 token=t2 mailbox=X",
		"a host=h login=l password_file=/p token=t1 token=t2 "
		"skip_auto_submitted=no",
		"a host=h login=l password_file=/p token=t1 token=t2 "
		"poll_interval=5s",
		"b host=h login=l password_file=/p token=t1 token=t2",
	};
	ARRAY_TYPE(deltapush_bridge_account_settings) accounts;
	struct deltapush_bridge_account_settings *set, *set2, *copy;
	pool_t pool = pool_alloconly_create("test", 1024);
	pool_t copy_pool = pool_alloconly_create("test copy", 1024);
	const char *error;
	unsigned int i;

	test_begin("bridge accounts equal");
	test_assert(deltapush_bridge_accounts_parse(pool, base, &accounts,
						    &error) == 0);
	set = array_idx_elem(&accounts, 0);
	copy = deltapush_bridge_account_settings_dup(copy_pool, set);
	/* the copy outlives the parsed file */
	p_clear(pool);
	test_assert(deltapush_bridge_accounts_parse(pool, base, &accounts,
						    &error) == 0);
	set = array_idx_elem(&accounts, 0);
	test_assert(deltapush_bridge_account_settings_equal(set, copy));
	/* order and spelling of the keys don't matter */
	test_assert(deltapush_bridge_accounts_parse(pool,
		"a  token=t1 password_file=/p login=l host=h port=993 "
		"tls=imaps mailbox=INBOX token=t2", &accounts, &error) == 0);
	test_assert(deltapush_bridge_account_settings_equal(
		array_idx_elem(&accounts, 0), copy));
	for (i = 0; i < N_ELEMENTS(changed); i++) {
		test_assert_idx(deltapush_bridge_accounts_parse(pool,
			changed[i], &accounts, &error) == 0, i);
		set2 = array_idx_elem(&accounts, 0);
		test_assert_idx(!deltapush_bridge_account_settings_equal(
			set2, copy), i);
		test_assert_idx(deltapush_bridge_account_settings_same_mailbox(
			set2, copy) == (i != 0 && i != 1 && i != 9), i);
	}
	test_end();
	pool_unref(&pool);
	pool_unref(&copy_pool);
}

static void test_bridge_state(void)
{
	const char *dir = ".test-bridge-state";
	const char *path = t_strconcat(dir, "/a.state", NULL);
	struct deltapush_bridge_state state, read_state;
	const char *error;

	test_begin("bridge state");
	(void)unlink_directory(dir, UNLINK_DIRECTORY_FLAG_RMDIR, &error);
	if (mkdir(dir, 0700) < 0)
		i_fatal("mkdir(%s) failed: %m", dir);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) == 0);
	i_zero(&state);
	state.uidvalidity = 1733000000;
	state.last_uid = 4294967295U;
	state.failures = 3;
	state.retry_msecs = 240000;
	state.retry_until = 1765000000;
	test_assert(deltapush_bridge_state_write(path, &state, &error) == 0);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) == 1);
	test_assert(read_state.uidvalidity == state.uidvalidity);
	test_assert(read_state.last_uid == state.last_uid);
	test_assert(read_state.failures == 3);
	test_assert(read_state.retry_msecs == 240000);
	test_assert(read_state.retry_until == 1765000000);
	test_assert(access(t_strconcat(path, ".tmp", NULL), F_OK) < 0);

	/* an account that never got as far as its mailbox, backing off */
	test_file_write(path, "0 0 1 60000 1765000000\n", 23);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) == 1);
	test_assert(read_state.uidvalidity == 0);
	test_assert(read_state.failures == 1);
	/* 0.2's files: no backoff */
	test_file_write(path, "12 34\n", 6);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) == 1);
	test_assert(read_state.uidvalidity == 12 &&
		    read_state.last_uid == 34 && read_state.failures == 0 &&
		    read_state.retry_until == 0);

	/* a damaged file is an error, not "no state" */
	test_file_write(path, "12 x\n", 5);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) < 0);
	test_file_write(path, "0 5\n", 4);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) < 0);
	test_file_write(path, "1 5 1 2 -3\n", 11);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) < 0);
	(void)unlink_directory(dir, UNLINK_DIRECTORY_FLAG_RMDIR, &error);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_bridge_accounts_parse,
		test_bridge_accounts_parse_errors,
		test_bridge_accounts_equal,
		test_bridge_state,
		NULL
	};
	return test_run(test_functions);
}
