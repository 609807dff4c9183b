#ifndef DELTAPUSH_DRIVER_H
#define DELTAPUSH_DRIVER_H

/* The push_notification driver "deltapush": on a delivery of new mail
   that should wake the user's devices, it tells the service NOTIFY. */

void deltapush_driver_init(void);
void deltapush_driver_deinit(void);

#endif
