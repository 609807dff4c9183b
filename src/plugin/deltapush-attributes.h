#ifndef DELTAPUSH_ATTRIBUTES_H
#define DELTAPUSH_ATTRIBUTES_H

/* The private METADATA entries that hold a user's push tokens:
   /private/devicetoken (what Delta Chat sends) and
   /private/vendor/deltachat/push-token, one set behind both names. */
#define DELTAPUSH_ATTRIBUTE_DEVICETOKEN "devicetoken"
#define DELTAPUSH_ATTRIBUTE_PUSH_TOKEN "vendor/deltachat/push-token"

void deltapush_attributes_init(void);
void deltapush_attributes_deinit(void);

#endif
