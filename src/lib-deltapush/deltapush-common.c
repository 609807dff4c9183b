/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "eacces-error.h"
#include "deltapush-common.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

struct event_category event_category_deltapush = {
	.name = "deltapush",
};

static int deltapush_read_fd(int fd, const char *path, unsigned char *buf,
			     size_t buf_size, size_t *size_r,
			     const char **error_r)
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

int deltapush_read_file(const char *path, unsigned char *buf,
			size_t buf_size, size_t *size_r, struct stat *st_r,
			const char **error_r)
{
	int fd, ret;

	fd = open(path, O_RDONLY);
	if (fd == -1) {
		if (errno == EACCES)
			*error_r = eacces_error_get("open", path);
		else {
			*error_r = t_strdup_printf("open(%s) failed: %m",
						   path);
		}
		return errno == ENOENT ? 0 : -1;
	}
	if (st_r != NULL && fstat(fd, st_r) < 0) {
		*error_r = t_strdup_printf("fstat(%s) failed: %m", path);
		i_close_fd(&fd);
		return -1;
	}
	ret = deltapush_read_fd(fd, path, buf, buf_size, size_r, error_r);
	i_close_fd(&fd);
	return ret < 0 ? -1 : 1;
}
