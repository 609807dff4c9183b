#ifndef DELTAPUSH_SERVER_H
#define DELTAPUSH_SERVER_H

struct master_service_connection;
struct deltapush_settings;
struct deltapush_store;
struct deltapush_sender;

/* The service's side of the line protocol (deltapush-protocol.h): one
   connection per plugin request, answered from the store and sender. */
struct deltapush_server;

/* Called before each request: makes sure the backend is still the
   database file at its path (it may set a new backend). */
typedef void deltapush_server_db_check_t(void);

struct deltapush_server *
deltapush_server_init(const struct deltapush_settings *set,
		      deltapush_server_db_check_t *db_check,
		      struct event *event_parent);
/* Serve requests from store and sender, or (both NULL) answer FAIL with
   unavailable_reason while the database cannot be used. */
void deltapush_server_set_backend(struct deltapush_server *server,
				  struct deltapush_store *store,
				  struct deltapush_sender *sender,
				  const char *unavailable_reason);
void deltapush_server_deinit(struct deltapush_server **server);

void deltapush_server_accept(struct deltapush_server *server,
			     struct master_service_connection *conn);

#endif
