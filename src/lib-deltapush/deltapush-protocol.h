#ifndef DELTAPUSH_PROTOCOL_H
#define DELTAPUSH_PROTOCOL_H

/* The line protocol between the mail plugins (and doveadm) and the
   deltapush service, on a unix socket. Both sides first exchange
   connection.h's handshake:

     VERSION <TAB> deltapush <TAB> <major> <TAB> <minor> <LF>

   Then the client sends one request per line and the service answers each
   with one line, in order. Every field is tab-escaped (str_tabescape()), so
   values may contain any byte except NUL.

   The mail plugins send:

     REGISTER <user> <token>  -> OK <1 if added, 0 if refreshed>
     GET <user>               -> OK [<token> ...]   (oldest first)
     FORGET <user>            -> OK <number of tokens removed>
     NOTIFY <user>            -> OK <number of tokens now due for a push>

   doveadm deltapush sends the verb of its command (import-chatmail one
   IMPORT a token):

     STATUS                   -> OK [<name> <value> ...]
     LIST <user>              -> OK [<prefix> <created> <last seen>
                                     <state> <next attempt msecs>
                                     <attempts> ...]   (6 fields a token)
     FORGET <user> [<prefix>] -> OK <number of tokens removed>
     FLUSH [<user>]           -> OK <number of pushes made due now>
     IMPORT <user> <token> <last seen unix time>
                              -> OK <1 if added, 0 if already known>

   A request the service cannot carry out is answered FAIL <reason>. A line
   that is not a valid request (unknown command, wrong number of fields)
   closes the connection. */

#define DELTAPUSH_PROTOCOL_SERVICE_NAME "deltapush"
/* 2: LIST became GET, TOKENS became LIST (doveadm deltapush list) */
#define DELTAPUSH_PROTOCOL_MAJOR_VERSION 2
#define DELTAPUSH_PROTOCOL_MINOR_VERSION 0

/* The connection_settings both sides share: the handshake and the line
   size (a designated-initializer list for struct connection_settings) */
#define DELTAPUSH_PROTOCOL_CONNECTION_SETTINGS \
	.service_name_in = DELTAPUSH_PROTOCOL_SERVICE_NAME, \
	.service_name_out = DELTAPUSH_PROTOCOL_SERVICE_NAME, \
	.major_version = DELTAPUSH_PROTOCOL_MAJOR_VERSION, \
	.minor_version = DELTAPUSH_PROTOCOL_MINOR_VERSION, \
	.input_max_size = DELTAPUSH_PROTOCOL_MAX_LINE_SIZE, \
	.output_max_size = SIZE_MAX

#define DELTAPUSH_PROTOCOL_CMD_REGISTER "REGISTER"
#define DELTAPUSH_PROTOCOL_CMD_GET "GET"
#define DELTAPUSH_PROTOCOL_CMD_FORGET "FORGET"
#define DELTAPUSH_PROTOCOL_CMD_NOTIFY "NOTIFY"
#define DELTAPUSH_PROTOCOL_CMD_IMPORT "IMPORT"
#define DELTAPUSH_PROTOCOL_CMD_LIST "LIST"
#define DELTAPUSH_PROTOCOL_CMD_FLUSH "FLUSH"
#define DELTAPUSH_PROTOCOL_CMD_STATUS "STATUS"

/* Fields per token in a LIST reply */
#define DELTAPUSH_PROTOCOL_LIST_FIELDS 6

#define DELTAPUSH_PROTOCOL_REPLY_OK "OK"
#define DELTAPUSH_PROTOCOL_REPLY_FAIL "FAIL"

/* Longest line either side accepts: 32 tokens of 4096 bytes in a GET
   reply, each possibly escaped, plus the other fields. */
#define DELTAPUSH_PROTOCOL_MAX_LINE_SIZE (320 * 1024)

enum deltapush_request_type {
	DELTAPUSH_REQUEST_REGISTER,
	DELTAPUSH_REQUEST_GET,
	DELTAPUSH_REQUEST_FORGET,
	DELTAPUSH_REQUEST_NOTIFY,
	DELTAPUSH_REQUEST_IMPORT,
	DELTAPUSH_REQUEST_LIST,
	DELTAPUSH_REQUEST_FLUSH,
	DELTAPUSH_REQUEST_STATUS,
};

struct deltapush_request {
	enum deltapush_request_type type;
	/* NULL with STATUS, and with FLUSH for all users */
	const char *user;
	/* REGISTER and IMPORT: the token; FORGET: a token prefix or NULL */
	const char *token;
	/* IMPORT only */
	time_t last_seen;
};

/* Append one request line (with its LF) to dest. */
void deltapush_protocol_append_request(string_t *dest,
				       const struct deltapush_request *request);
/* Append one reply line of the given fields (with its LF) to dest. */
void deltapush_protocol_append_reply(string_t *dest, const char *status,
				     const char *const *fields);

/* Parse the unescaped fields of a request line (as connection.h's
   input_args gives them). Returns 0 on success, -1 with error_r when the
   line is not a valid request. The strings in request_r point into args. */
int deltapush_protocol_parse_request(const char *const *args,
				     struct deltapush_request *request_r,
				     const char **error_r);

#endif
