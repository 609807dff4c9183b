#ifndef TEST_DELTAPUSH_COMMON_H
#define TEST_DELTAPUSH_COMMON_H

/* Helpers shared by the unit tests of src/lib-deltapush and
   src/service. */

/* Write data to a new (or truncated) file at path; i_fatal() on failure. */
void test_file_write(const char *path, const void *data, size_t size);

#endif
