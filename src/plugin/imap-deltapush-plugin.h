#ifndef IMAP_DELTAPUSH_PLUGIN_H
#define IMAP_DELTAPUSH_PLUGIN_H

struct module;

extern const char imap_deltapush_plugin_binary_dependency[];

void imap_deltapush_plugin_init(struct module *module);
void imap_deltapush_plugin_deinit(void);

#endif
