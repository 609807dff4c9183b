#ifndef DOVEADM_DELTAPUSH_PLUGIN_H
#define DOVEADM_DELTAPUSH_PLUGIN_H

struct module;

/* doveadm deltapush status|list|forget|flush|import-chatmail: talk to the
   service. */
void doveadm_deltapush_plugin_init(struct module *module);
void doveadm_deltapush_plugin_deinit(void);

#endif
