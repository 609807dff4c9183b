#!/bin/bash
# deltapush soak test (not run in CI: it takes 10 minutes by default).
#
# Starts a throwaway Dovecot on loopback with the staged deltapush (the
# integration tests' harness), registers one token for each of 1000 users,
# then delivers 100 messages a second over LMTP to random users for 10
# minutes, while the stand-in notification proxy answers 500 to 10% of
# the pushes at random. Afterwards it waits for the last pushes and
# reports:
#
#   - deliveries, their replies and latency (all must be 250),
#   - pushes sent and their statuses,
#   - pushes lost: users whose last delivery was not followed by a push
#     the proxy accepted (must be 0; coalescing means fewer pushes than
#     deliveries, but never none after the last one),
#   - RSS and open fds of the service and of one lmtp process (the one
#     serving the first LMTP session for the whole run) at the start of
#     the load (after a warm-up) and at its end: RSS may grow by at most
#     10%, fds must be equal; the service must be the same process and
#     the log free of panics.
#
# It prints PASS or FAIL lines and exits non-zero on FAIL.
#
#   tests/soak/soak.sh                        the full run (10 min)
#   tests/soak/soak.sh --duration 30          a 30-second version
#   tests/soak/soak.sh --help                 all parameters (rate, users,
#                                             failure ratio, sessions, ...)
#
# Needs root and Dovecot 2.3 or 2.4 (dovecot-core, -imapd, -lmtpd), like the
# integration tests. Uses $DELTAPUSH_STAGE when set, else builds and
# stages the tree into build/stage.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)

if [ -z "${DELTAPUSH_STAGE:-}" ]; then
	# From a fresh clone too: install what is missing, configure, build.
	cd "$top" || exit 1
	. "$top/tests/deps.sh"
	deltapush_install_deps test || exit 1
	deltapush_build || exit 1
	echo "== staging into $top/build/stage"
	rm -rf build/stage
	make -s install DESTDIR="$top/build/stage" >/dev/null || {
		echo "make install failed; set DELTAPUSH_STAGE to a staged install" >&2
		exit 1
	}
	export DELTAPUSH_STAGE="$top/build/stage"
fi
if [ "$(id -u)" != 0 ]; then
	echo "the soak test starts Dovecot as root; run it as root" >&2
	exit 1
fi
exec /usr/bin/python3 "$top/tests/soak/soak.py" "$@"
