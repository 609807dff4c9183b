#ifndef DELTAPUSH_COMMON_H
#define DELTAPUSH_COMMON_H

/* Shared by the plugins, the service and the tests. */

#include "deltapush-config.h"

#define DELTAPUSH_USER_AGENT "deltapush/" DELTAPUSH_VERSION

extern struct event_category event_category_deltapush;

struct stat;

/* Read the file at path until EOF or until buf_size bytes are in buf
   (files that must stay small are read with one byte of room more than
   allowed, to notice an oversized one). st_size is not trusted: the file
   may be special or being rewritten. st_r (if not NULL) gets its fstat().
   Returns 1 with the size read, 0 if the file doesn't exist, -1 on other
   errors; error_r names path in both. */
int deltapush_read_file(const char *path, unsigned char *buf,
			size_t buf_size, size_t *size_r, struct stat *st_r,
			const char **error_r);

#endif
