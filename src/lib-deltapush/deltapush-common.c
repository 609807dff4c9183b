/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "deltapush-common.h"

#include <unistd.h>

struct event_category event_category_deltapush = {
	.name = "deltapush",
};

int deltapush_read_fd(int fd, const char *path, unsigned char *buf,
		      size_t buf_size, size_t *size_r, const char **error_r)
{
	size_t size = 0;
	ssize_t ret;

	while (size < buf_size) {
		ret = read(fd, buf + size, buf_size - size);
		if (ret == 0)
			break;
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			*error_r = t_strdup_printf("read(%s) failed: %m", path);
			return -1;
		}
		size += ret;
	}
	*size_r = size;
	return 0;
}
