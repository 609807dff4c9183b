#ifndef DELTAPUSH_COMMON_H
#define DELTAPUSH_COMMON_H

/* Shared by the plugins, the service and the tests. */

#define DELTAPUSH_VERSION "0.1.0"
#define DELTAPUSH_USER_AGENT "deltapush/" DELTAPUSH_VERSION

extern struct event_category event_category_deltapush;

#endif
