#!/bin/sh
# Generate the build system (needs autoconf, automake, libtool, dovecot-dev).
set -e
mkdir -p m4
autoreconf -fi
