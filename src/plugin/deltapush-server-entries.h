#ifndef DELTAPUSH_SERVER_ENTRIES_H
#define DELTAPUSH_SERVER_ENTRIES_H

/* The read-only server entries Delta Chat reads with GETMETADATA "":
   /shared/vendor/deltachat/{maxsmtprecipients,irohrelay,turn,appversions},
   served from the deltapush_* settings. */

void deltapush_server_entries_init(void);
void deltapush_server_entries_deinit(void);

#endif
