/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-common.h"

struct event_category event_category_deltapush = {
	.name = "deltapush",
};
