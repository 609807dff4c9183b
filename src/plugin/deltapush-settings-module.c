/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

/* lib30_deltapush_settings.so (Dovecot 2.4): the config process and
   doveconf load every module in $moduledir/settings and learn the
   deltapush_* keys from here. Only libdovecot symbols may be used. */

#include "lib.h"
#include "deltapush-dovecot-settings.h"

const char *deltapush_settings_version = DOVECOT_ABI_VERSION;

const struct setting_parser_info *deltapush_settings_set_infos[] = {
	&deltapush_setting_parser_info,
	NULL
};
