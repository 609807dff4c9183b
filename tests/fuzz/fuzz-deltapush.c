/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "fuzz-deltapush.h"

#include <fcntl.h>
#include <unistd.h>

void deltapush_fuzz_init(void)
{
	int fd;

	if (lib_is_initialized())
		return;
	lib_init();
	/* A closed fd 0 would be handed out by the next open(), and
	   i_close_fd() panics on fd 0. */
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) ;
	if (fd > 2)
		i_close_fd(&fd);
}
