#ifndef DELTAPUSH_COMPAT_H
#define DELTAPUSH_COMPAT_H

/* The few Dovecot APIs that differ between 2.3 and 2.4 and that the code
   uses in the same way on both: the code is written against the 2.4
   names, this header maps them to 2.3. Include after lib.h. */

#if DOVECOT_PREREQ(2, 4, 0)
#  include "str-parse.h"
#  define deltapush_parse_interval(str, secs_r, error_r) \
	str_parse_get_interval(str, secs_r, error_r)
#  define deltapush_parse_interval_msecs(str, msecs_r, error_r) \
	str_parse_get_interval_msecs(str, msecs_r, error_r)
/* push_notification_event_init() takes the event to log with */
#  define DELTAPUSH_PN_LOG_EVENT(event) , (event)
#else
#  include "settings-parser.h"
/* 2.4 renamed the bool form; str_begins() there takes a suffix_r */
#  define str_begins_with(haystack, needle) str_begins(haystack, needle)
#  define deltapush_parse_interval(str, secs_r, error_r) \
	settings_get_time(str, secs_r, error_r)
#  define deltapush_parse_interval_msecs(str, msecs_r, error_r) \
	settings_get_time_msecs(str, msecs_r, error_r)
#  define DELTAPUSH_PN_LOG_EVENT(event)
#endif

#endif
