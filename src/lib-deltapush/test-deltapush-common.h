#ifndef TEST_DELTAPUSH_COMMON_H
#define TEST_DELTAPUSH_COMMON_H

/* Helpers shared by the unit tests of src/lib-deltapush and
   src/service. */

/* Write data to a new (or truncated) file at path; i_fatal() on failure. */
void test_file_write(const char *path, const void *data, size_t size);

/* A table entry for input that must be refused with the given error
   (or an error starting with it); the size allows NUL bytes. */
struct test_invalid_input {
	const char *input;
	size_t size;
	const char *error;
};
#define TEST_INVALID(input, error) { input, sizeof(input) - 1, error }

#endif
