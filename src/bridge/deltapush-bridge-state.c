/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "str.h"
#include "strnum.h"
#include "write-full.h"
#include "deltapush-common.h"
#include "deltapush-bridge-state.h"

#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>

const char *deltapush_bridge_state_path(const char *state_dir,
					const char *name)
{
	return t_strconcat(state_dir, "/", name,
			   DELTAPUSH_BRIDGE_STATE_SUFFIX, NULL);
}

int deltapush_bridge_state_read(const char *path,
				struct deltapush_bridge_state *state_r,
				const char **error_r)
{
	unsigned char buf[128];
	const char *const *fields;
	unsigned int count;
	int64_t until = 0;
	size_t size;
	int ret;

	i_zero(state_r);
	ret = deltapush_read_file(path, buf, sizeof(buf) - 1, &size, NULL,
				  error_r);
	if (ret <= 0)
		return ret;
	buf[size] = '\0';
	fields = t_strsplit_spaces((const char *)buf, " \n");
	count = str_array_length(fields);
	if ((count != 2 && count != 5) ||
	    str_to_uint32(fields[0], &state_r->uidvalidity) < 0 ||
	    str_to_uint32(fields[1], &state_r->last_uid) < 0 ||
	    (count == 2 && state_r->uidvalidity == 0) ||
	    (count == 5 &&
	     (str_to_uint(fields[2], &state_r->failures) < 0 ||
	      str_to_uint(fields[3], &state_r->retry_msecs) < 0 ||
	      str_to_int64(fields[4], &until) < 0 || until < 0))) {
		i_zero(state_r);
		*error_r = t_strdup_printf("%s: Invalid contents", path);
		return -1;
	}
	state_r->retry_until = (time_t)until;
	return 1;
}

int deltapush_bridge_state_write(const char *path,
				 const struct deltapush_bridge_state *state,
				 const char **error_r)
{
	const char *temp_path = t_strconcat(path, ".tmp", NULL);
	const char *line;
	int fd;

	line = t_strdup_printf("%u %u %u %u %lld\n", state->uidvalidity,
			       state->last_uid, state->failures,
			       state->retry_msecs,
			       (long long)state->retry_until);
	fd = open(temp_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", temp_path);
		return -1;
	}
	if (write_full(fd, line, strlen(line)) < 0) {
		*error_r = t_strdup_printf("write(%s) failed: %m", temp_path);
		i_close_fd(&fd);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = t_strdup_printf("close(%s) failed: %m", temp_path);
		return -1;
	}
	if (rename(temp_path, path) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   temp_path, path);
		return -1;
	}
	return 0;
}
