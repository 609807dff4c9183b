#!/bin/bash
# Build deltapush and run it for real: a throwaway Dovecot on loopback with
# the plugins and the service, a local sink standing in for the
# notification proxy, a token registered over IMAP as Delta Chat does it,
# a delivery over LMTP, and the push arriving at the sink.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. "$top/tests/deps.sh"
deltapush_install_deps || exit 1
deltapush_build || exit 1
rm -rf "$top/build/stage"
make install DESTDIR="$top/build/stage" >build.log 2>&1 || {
	tail -20 build.log; exit 1; }
DELTAPUSH_STAGE="$top/build/stage" exec /usr/bin/python3 "$top/tests/demo.py"
