#ifndef DELTAPUSH_CONNECTION_H
#define DELTAPUSH_CONNECTION_H

struct master_service_connection;
struct deltapush_settings;
struct deltapush_store;
struct deltapush_sender;

/* The service's side of the line protocol (deltapush-protocol.h): one
   connection per plugin request, answered from the store and sender. */
struct deltapush_connections;

/* Called before each request: makes sure the backend is still the
   database file at its path (it may set a new backend). */
typedef void deltapush_connections_db_check_t(void);

struct deltapush_connections *
deltapush_connections_init(const struct deltapush_settings *set,
			   deltapush_connections_db_check_t *db_check,
			   struct event *event_parent);
/* Serve requests from store and sender, or (both NULL) answer FAIL with
   unavailable_reason while the database cannot be used. */
void deltapush_connections_set_backend(struct deltapush_connections *conns,
				       struct deltapush_store *store,
				       struct deltapush_sender *sender,
				       const char *unavailable_reason);
void deltapush_connections_deinit(struct deltapush_connections **conns);

void deltapush_connection_create(struct deltapush_connections *conns,
				 struct master_service_connection *conn);

#endif
