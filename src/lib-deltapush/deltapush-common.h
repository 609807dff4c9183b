#ifndef DELTAPUSH_COMMON_H
#define DELTAPUSH_COMMON_H

/* Shared by the plugins, the service and the tests. */

#define DELTAPUSH_VERSION "0.1.0"
#define DELTAPUSH_USER_AGENT "deltapush/" DELTAPUSH_VERSION

extern struct event_category event_category_deltapush;

/* Read fd until EOF or until buf_size bytes are in buf (files that must
   stay small are read with one byte of room more than allowed, to notice
   an oversized one). st_size is not trusted: the file may be special or
   being rewritten. Returns 0 with the size read, or -1 with error_r
   naming path. */
int deltapush_read_fd(int fd, const char *path, unsigned char *buf,
		      size_t buf_size, size_t *size_r, const char **error_r);

#endif
