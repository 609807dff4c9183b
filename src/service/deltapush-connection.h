#ifndef DELTAPUSH_CONNECTION_H
#define DELTAPUSH_CONNECTION_H

struct master_service_connection;
struct deltapush_settings;
struct deltapush_db;

/* The service's side of the line protocol (deltapush-protocol.h): parses
   each request, asks the database (deltapush-db.h) and replies; a write
   is answered once its group commit is on disk. */
struct deltapush_connections;

struct deltapush_connections *
deltapush_connections_init(const struct deltapush_settings *set,
			   struct deltapush_db *db, struct event *event_parent);
void deltapush_connections_deinit(struct deltapush_connections **conns);

void deltapush_connection_create(struct deltapush_connections *conns,
				 struct master_service_connection *conn);

#endif
