/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "deltapush-bridge.h"
#include "deltapush-bridge-imapc.h"

#if DOVECOT_PREREQ(2, 4, 0)
#  include "settings.h"
#  include "master-service.h"
#endif

/* imapc's own reconnecting is off: the bridge reconnects with its own
   backoff, which providers that lock hammering accounts need. */

struct deltapush_bridge_imapc {
	struct imapc_client *client;
#if DOVECOT_PREREQ(2, 4, 0)
	/* a child of the account's event, with the settings instance of
	   the account's imapc_* overrides */
	struct event *event;
	struct settings_instance *set_instance;
#endif
};

#if DOVECOT_PREREQ(2, 4, 0)
static void
deltapush_bridge_imapc_override(struct deltapush_bridge_imapc *imapc,
				const char *key, const char *value)
{
	settings_override(imapc->set_instance, key, value,
			  SETTINGS_OVERRIDE_TYPE_CODE);
}

/* imapc_user is %{variable}-expanded: "%%{" is a literal "%{" */
static const char *deltapush_bridge_imapc_escape(const char *value)
{
	string_t *str = t_str_new(strlen(value) + 8);
	const char *p;

	for (p = value; *p != '\0'; p++) {
		if (p[0] == '%' && p[1] == '{')
			str_append_c(str, '%');
		str_append_c(str, *p);
	}
	return str_c(str);
}

int deltapush_bridge_imapc_init(const struct deltapush_bridge *bridge,
				const struct deltapush_bridge_account_settings *set,
				const char *password, struct event *event,
				struct deltapush_bridge_imapc **imapc_r,
				const char **error_r)
{
	struct deltapush_bridge_imapc *imapc;
	struct imapc_parameters params;

	imapc = i_new(struct deltapush_bridge_imapc, 1);
	imapc->event = event_create(event);
	imapc->set_instance = settings_instance_new(
		master_service_get_settings_root(master_service));
	event_set_ptr(imapc->event, SETTINGS_EVENT_INSTANCE,
		      imapc->set_instance);

	deltapush_bridge_imapc_override(imapc, "imapc_host", set->host);
	deltapush_bridge_imapc_override(imapc, "imapc_port",
					dec2str(set->port));
	deltapush_bridge_imapc_override(imapc, "imapc_user",
		deltapush_bridge_imapc_escape(set->login));
	deltapush_bridge_imapc_override(imapc, "imapc_ssl",
		set->tls == DELTAPUSH_BRIDGE_TLS_IMAPS ? "imaps" : "starttls");
	deltapush_bridge_imapc_override(imapc, "imapc_connection_retry_count",
					"0");
	deltapush_bridge_imapc_override(imapc, "imapc_rawlog_dir", "");
	deltapush_bridge_imapc_override(imapc, "imapc_features", "");
	deltapush_bridge_imapc_override(imapc, "ssl_client_require_valid_cert",
					"yes");
	if (set->ca_file != NULL) {
		deltapush_bridge_imapc_override(imapc, "ssl_client_ca_file",
						set->ca_file);
	}

	i_zero(&params);
	params.temp_path_prefix = t_strconcat(bridge->state_dir,
					      "/.imapc-temp-", NULL);
	params.override_dns_client_socket_path =
		bridge->dns_client_socket_path;
	params.override_rawlog_dir = "";
	params.override_password = password;
	imapc->client = imapc_client_init(&params, imapc->event);
	*imapc_r = imapc;
	*error_r = NULL;
	return 0;
}
#else
int deltapush_bridge_imapc_init(const struct deltapush_bridge *bridge,
				const struct deltapush_bridge_account_settings *set,
				const char *password, struct event *event,
				struct deltapush_bridge_imapc **imapc_r,
				const char **error_r)
{
	struct deltapush_bridge_imapc *imapc;
	struct imapc_client_settings imapc_set;
	struct ssl_iostream_context *ssl_ctx;
	const char *error;

	i_zero(&imapc_set);
	imapc_set.host = set->host;
	imapc_set.port = set->port;
	imapc_set.username = set->login;
	imapc_set.password = password;
	imapc_set.sasl_mechanisms = "";
	imapc_set.max_idle_time = IMAPC_DEFAULT_MAX_IDLE_TIME;
	imapc_set.dns_client_socket_path = bridge->dns_client_socket_path;
	imapc_set.temp_path_prefix = t_strconcat(bridge->state_dir,
						 "/.imapc-temp-", NULL);
	imapc_set.rawlog_dir = "";
	imapc_set.ssl_mode = set->tls == DELTAPUSH_BRIDGE_TLS_IMAPS ?
		IMAPC_CLIENT_SSL_MODE_IMMEDIATE :
		IMAPC_CLIENT_SSL_MODE_STARTTLS;
	/* certificate and host name are always verified */
	imapc_set.ssl_set.verify_remote_cert = TRUE;
	imapc_set.ssl_set.allow_invalid_cert = FALSE;
	if (set->ca_file != NULL)
		imapc_set.ssl_set.ca_file = set->ca_file;
	else
		imapc_set.ssl_set.ca_dir = "/etc/ssl/certs";
	imapc_set.connect_retry_count = 0;

	/* 2.3's imapc goes on without an SSL context it couldn't make (an
	   unreadable CA file) and crashes on the connection: make it here
	   first, so that the error is ours. The context stays cached. */
	if (ssl_iostream_client_context_cache_get(&imapc_set.ssl_set,
						  &ssl_ctx, &error) < 0) {
		*error_r = t_strdup_printf("TLS setup failed: %s", error);
		return -1;
	}
	ssl_iostream_context_unref(&ssl_ctx);
	/* imapc makes a child event of its own: none in between, an event
	   costs a 1 kB pool per account */
	imapc = i_new(struct deltapush_bridge_imapc, 1);
	imapc->client = imapc_client_init(&imapc_set, event);
	*imapc_r = imapc;
	return 0;
}
#endif

struct imapc_client *
deltapush_bridge_imapc_client(struct deltapush_bridge_imapc *imapc)
{
	return imapc->client;
}

void deltapush_bridge_imapc_deinit(struct deltapush_bridge_imapc **_imapc)
{
	struct deltapush_bridge_imapc *imapc = *_imapc;

	*_imapc = NULL;
	imapc_client_deinit(&imapc->client);
#if DOVECOT_PREREQ(2, 4, 0)
	event_set_ptr(imapc->event, SETTINGS_EVENT_INSTANCE, NULL);
	settings_instance_free(&imapc->set_instance);
	event_unref(&imapc->event);
#endif
	i_free(imapc);
}
