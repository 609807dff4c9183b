#!/bin/sh
# Generate the build system (needs autoconf, automake, libtool, dovecot-dev).
#
# DC_DOVECOT and the other DC_* macros come from the dovecot.m4 that
# dovecot-dev installs into aclocal's directory (/usr/share/aclocal on
# Debian), as for every Dovecot plugin built outside Dovecot's tree: it
# differs between 2.3 and 2.4 and always matches the Dovecot the build is
# for, so no copy is kept here. For a Dovecot installed elsewhere, point
# aclocal at it: ACLOCAL_PATH=/opt/dovecot/share/aclocal ./autogen.sh
set -e
mkdir -p m4
if ! grep -qs 'DC_DOVECOT' \
	$(aclocal --print-ac-dir)/dovecot.m4 \
	$(echo "${ACLOCAL_PATH:-}" | tr ':' '\n' | sed 's,$,/dovecot.m4,'); then
	echo "autogen.sh: dovecot.m4 not found: install dovecot-dev, or set" \
		"ACLOCAL_PATH to the directory that has it" >&2
	exit 1
fi
autoreconf -fi
