#ifndef DELTAPUSH_APPVERSIONS_H
#define DELTAPUSH_APPVERSIONS_H

/* The /shared/vendor/deltachat/appversions entry: a JSON document the
   operator keeps in a file, served as one line of compact JSON. */

/* Validate the JSON text in data and append it to dest as one line of
   compact JSON (no whitespace outside strings). Returns 0 on success, -1
   with error_r if it is not a single valid JSON value. */
int deltapush_appversions_compact(const unsigned char *data, size_t size,
				  string_t *dest, const char **error_r);

/* Read path and compact it. Returns 0 on success, -1 with error_r if the
   file cannot be read or does not hold valid JSON. */
int deltapush_appversions_read(const char *path, pool_t pool,
			       const char **json_r, const char **error_r);

#endif
