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
	state.uidvalidity = 1733000000;
	state.last_uid = 4294967295U;
	test_assert(deltapush_bridge_state_write(path, &state, &error) == 0);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) == 1);
	test_assert(read_state.uidvalidity == state.uidvalidity);
	test_assert(read_state.last_uid == state.last_uid);
	test_assert(access(t_strconcat(path, ".tmp", NULL), F_OK) < 0);

	/* a damaged file is an error, not "no state" */
	test_file_write(path, "12 x\n", 5);
	test_assert(deltapush_bridge_state_read(path, &read_state,
						&error) < 0);
	test_file_write(path, "0 5\n", 4);
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
		test_bridge_state,
		NULL
	};
	return test_run(test_functions);
}
