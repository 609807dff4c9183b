/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-compat.h"
#include "mail-storage.h"
#include "mail-user.h"
#include "message-address.h"
#include "push-notification-drivers.h"
#include "push-notification-events.h"
#include "push-notification-txn-msg.h"
#include "deltapush-protocol.h"
#include "deltapush-settings.h"
#include "deltapush-client.h"
#include "deltapush-plugin.h"
#include "deltapush-driver.h"

/* Our own push_notification event: like MessageNew it fires only for
   mail delivered by LMTP, dovecot-lda or Sieve during delivery (the
   "save" trigger), and it reads just the two headers we decide on
   instead of MessageNew's configurable set. */
#define DELTAPUSH_EVENT_NAME "DeltaPushMessageNew"

/* What the event recorded about one delivered message. */
struct deltapush_message {
	/* Why no push is wanted for it; NULL = push */
	const char *skip_reason;
};

/* Per mailbox transaction. */
struct deltapush_driver_txn {
	unsigned int messages;
	unsigned int skipped;
	/* The NOTIFY sent when the first wanted message was saved; its
	   reply is read when the transaction ends */
	struct deltapush_client_reply *notify;
};

static const struct push_notification_driver deltapush_driver;

static bool deltapush_auto_submitted(struct mail *mail)
{
	const char *value;

	if (mail_get_first_header(mail, "Auto-Submitted", &value) <= 0)
		return FALSE;
	/* RFC 3834: anything but "no" marks an automatic message; the
	   keywords we skip are the two it defines. */
	value = t_str_lcase(t_str_trim(value, " \t"));
	return str_begins_with(value, "auto-replied") ||
		str_begins_with(value, "auto-generated");
}

static bool deltapush_from_self(struct mail *mail, const char *username)
{
	const struct message_address *addr;
	const char *value;

	if (mail_get_first_header(mail, "From", &value) <= 0)
		return FALSE;
	addr = message_address_parse(pool_datastack_create(),
				     (const unsigned char *)value,
				     strlen(value), 1, 0);
	if (addr == NULL || addr->mailbox == NULL || addr->invalid_syntax)
		return FALSE;
	if (addr->domain == NULL || addr->domain[0] == '\0')
		return strcasecmp(addr->mailbox, username) == 0;
	return strcasecmp(t_strconcat(addr->mailbox, "@", addr->domain, NULL),
			  username) == 0;
}

static struct deltapush_driver_txn *
deltapush_driver_txn_get(struct push_notification_txn *ptxn)
{
	struct push_notification_driver_txn *dtxn;

	array_foreach_elem(&ptxn->drivers, dtxn) {
		if (dtxn->duser->driver == &deltapush_driver)
			return dtxn->context;
	}
	return NULL;
}

/* Send the transaction's NOTIFY now, as the message is saved, so that
   the service commits it while the mail storage commits the message;
   deltapush_driver_end_txn() waits for the acknowledgement before the
   delivery is. If the mail transaction fails after all, the only harm is
   one push too many. */
static void deltapush_driver_notify_send(struct push_notification_txn *ptxn)
{
	struct deltapush_driver_txn *txn = deltapush_driver_txn_get(ptxn);
	struct deltapush_user *duser = DELTAPUSH_USER_CONTEXT(ptxn->muser);
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_NOTIFY,
		.user = ptxn->muser->username,
	};

	if (txn == NULL || txn->notify != NULL) {
		/* not our transaction, or one request covers it all */
		return;
	}
	txn->notify = deltapush_client_send(duser->socket_path,
					    duser->set->service_timeout_msecs,
					    duser->event, &request, TRUE);
}

static void
deltapush_event_save(struct push_notification_txn *ptxn,
		     struct push_notification_event_config *ec,
		     struct push_notification_txn_msg *msg,
		     struct mail *mail)
{
	struct deltapush_user *duser = DELTAPUSH_USER_CONTEXT(ptxn->muser);
	struct deltapush_message *data;

	i_assert(duser != NULL && duser->set != NULL);

	data = p_new(ptxn->pool, struct deltapush_message, 1);
	T_BEGIN {
		if (duser->set->skip_self &&
		    deltapush_from_self(mail, ptxn->muser->username))
			data->skip_reason = "own message";
		else if (duser->set->skip_auto_submitted &&
			 deltapush_auto_submitted(mail))
			data->skip_reason = "Auto-Submitted";
	} T_END;
	push_notification_txn_msg_set_eventdata(ptxn, msg, ec, data);
	if (data->skip_reason == NULL)
		deltapush_driver_notify_send(ptxn);
}

static const struct push_notification_event deltapush_event = {
	.name = DELTAPUSH_EVENT_NAME,
	.msg_triggers = {
		.save = deltapush_event_save,
	},
};

#if DOVECOT_PREREQ(2, 4, 0)
/* 2.4: "push_notification deltapush { }"; the settings are our own */
static int
deltapush_driver_init_user(struct mail_user *user, pool_t pool ATTR_UNUSED,
			   const char *name ATTR_UNUSED, void **context,
			   const char **error_r)
#else
static int
deltapush_driver_init_user(struct push_notification_driver_config *config ATTR_UNUSED,
			   struct mail_user *user, pool_t pool ATTR_UNUSED,
			   void **context, const char **error_r)
#endif
{
	struct deltapush_user *duser;

	duser = deltapush_user_get(user, error_r);
	if (duser == NULL)
		return -1;
	*context = duser;
	return 0;
}

static bool deltapush_driver_begin_txn(struct push_notification_driver_txn *dtxn)
{
	struct deltapush_user *duser = dtxn->duser->context;
	const char *vname = mailbox_get_vname(dtxn->ptxn->mbox);

	if (!deltapush_settings_mailbox_wanted(duser->set, vname)) {
		e_debug(duser->event, "Mailbox %s is not in deltapush_mailboxes, "
			"skipping its transaction", vname);
		return FALSE;
	}
	push_notification_event_init(dtxn, DELTAPUSH_EVENT_NAME, NULL
				     DELTAPUSH_PN_LOG_EVENT(duser->event));
	dtxn->context = p_new(dtxn->ptxn->pool, struct deltapush_driver_txn, 1);
	return TRUE;
}

static void
deltapush_driver_process_msg(struct push_notification_driver_txn *dtxn,
			     struct push_notification_txn_msg *msg)
{
	struct deltapush_driver_txn *txn = dtxn->context;
	struct deltapush_user *duser = dtxn->duser->context;
	struct deltapush_message *data;

	data = push_notification_txn_msg_get_eventdata(msg, DELTAPUSH_EVENT_NAME);
	if (data == NULL)
		return;
	if (data->skip_reason != NULL) {
		e_debug(duser->event, "No push for UID %u in %s: %s",
			msg->uid, msg->mailbox, data->skip_reason);
		txn->skipped++;
		return;
	}
	txn->messages++;
}

static void
deltapush_driver_end_txn(struct push_notification_driver_txn *dtxn,
			 bool success)
{
	struct deltapush_driver_txn *txn = dtxn->context;
	struct deltapush_user *duser = dtxn->duser->context;
	const char *const *fields, *error;
	int ret;

	if (txn->notify == NULL)
		return;
	if (!success) {
		/* Nothing was delivered: nobody waits for the service. */
		deltapush_client_abandon(&txn->notify);
		return;
	}

	/* One request covers every message of the transaction. A failure
	   is logged, never passed on: mail delivery must work even when
	   push does not. */
	ret = deltapush_client_finish(&txn->notify, &fields, &error);
	if (ret == DELTAPUSH_CLIENT_SUSPENDED) {
		/* the client logged it once */
		e_debug(duser->event, "Not notifying the push service about "
			"%u new message(s): %s", txn->messages, error);
		return;
	}
	if (ret < 0) {
		e_error(duser->event, "Couldn't notify the push service about "
			"%u new message(s): %s", txn->messages, error);
		return;
	}
	e_debug(duser->event, "Notified the push service about %u new "
		"message(s) in %s: %s token(s) due", txn->messages,
		mailbox_get_vname(dtxn->ptxn->mbox),
		fields[0] != NULL ? fields[0] : "?");
}

static const struct push_notification_driver deltapush_driver = {
	.name = "deltapush",
	.v = {
		.init = deltapush_driver_init_user,
		.begin_txn = deltapush_driver_begin_txn,
		.process_msg = deltapush_driver_process_msg,
		.end_txn = deltapush_driver_end_txn,
	},
};

void deltapush_driver_init(void)
{
	push_notification_event_register(&deltapush_event);
	push_notification_driver_register(&deltapush_driver);
}

void deltapush_driver_deinit(void)
{
	push_notification_driver_unregister(&deltapush_driver);
	push_notification_event_unregister(&deltapush_event);
}
