/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "write-full.h"
#include "test-deltapush-common.h"

#include <fcntl.h>

void test_file_write(const char *path, const void *data, size_t size)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		i_fatal("open(%s) failed: %m", path);
	if (write_full(fd, data, size) < 0)
		i_fatal("write(%s) failed: %m", path);
	i_close_fd(&fd);
}
