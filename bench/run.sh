#!/bin/bash
# deltapush benchmarks (issues 9 and 15): delivery overhead against no push
# and Dovecot's ox driver, push latency, login with token re-registration,
# sender throughput, 1M-user scale and coalescing, on the machine's disk and
# (figures 1, 2 and 6 again) on tmpfs. Installs what it needs, builds and
# stages deltapush, runs everything on loopback and prints the targets with
# verdicts; the full run also writes them as Markdown to
# bench/results/<date>.md (<date>-dovecot<version>.md for other than 2.3).
#
#   bench/run.sh              full run (make bench), about 12 minutes on 2
#                             cores
#   bench/run.sh --smoke      tiny sizes, a few minutes, writes no results
#                             (make bench-smoke)
#   bench/run.sh --only 1,6   only some figures
#   bench/run.sh --no-tmpfs   the disk pass only
#
# Against Dovecot 2.4: DELTAPUSH_KEEP_TMP=1 tests/debian13.sh bench/run.sh
# (the root's copy of the tree, with its results, is kept).
#
# Needs root: it installs Debian packages and starts Dovecot and nginx.
# Environment: DELTAPUSH_BENCH_TMPDIR (default /var/tmp, on disk) for the
# throwaway instances, DELTAPUSH_BENCH_KEEP=1 to keep their directories.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

smoke=no
args=()
for a in "$@"; do
	[ "$a" = --smoke ] && smoke=yes
	args+=("$a")
done

if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh must run as root (Debian packages, Dovecot, nginx)" >&2
	exit 1
fi

# Build dependencies and the build itself, as the tests do.
. "$top/tests/deps.sh"
deltapush_install_deps

# What the benchmarks add: smtp-source (postfix), nginx, openssl for the
# local CA of the HTTP/2 sink.
missing=""
command -v smtp-source >/dev/null 2>&1 || missing="$missing postfix"
command -v nginx >/dev/null 2>&1 || missing="$missing nginx"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
[ -x /usr/bin/python3 ] || missing="$missing python3"
if [ -n "$missing" ]; then
	echo "== installing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Only the smtp-source tool is used: no mail system gets configured.
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	# Debian starts the packaged services on install; the benchmarks run
	# their own nginx on loopback.
	if command -v systemctl >/dev/null 2>&1 &&
	   [ -d /run/systemd/system ]; then
		systemctl disable --now nginx postfix >/dev/null 2>&1 || true
	fi
fi

deltapush_build
# The sender's own benchmark program (figure 3), never installed
make -C src/service bench-deltapush-http >>build.log 2>&1 || {
	tail -20 build.log; exit 1; }
stage="$top/build/bench-stage"
echo "== staging install into build/bench-stage"
rm -rf "$stage"
mkdir -p "$top/build"
make install DESTDIR="$stage" >"$top/build/bench-install.log" 2>&1 || {
	tail -30 "$top/build/bench-install.log"; exit 1; }

out=()
if [ $smoke = no ]; then
	mkdir -p "$top/bench/results"
	# Named after the Dovecot it ran against unless that is 2.3
	dv=$(dovecot --version 2>/dev/null | cut -d. -f1,2)
	suffix=""
	case $dv in
	2.3|"") ;;
	*) suffix="-dovecot$dv" ;;
	esac
	name="$top/bench/results/$(date +%Y-%m-%d)$suffix.md"
	[ -e "$name" ] &&
		name="$top/bench/results/$(date +%Y-%m-%d-%H%M)$suffix.md"
	out=(--out "$name")
fi

echo "== running the benchmarks"
exec /usr/bin/python3 "$top/bench/bench.py" --stage "$stage" \
	${out[@]+"${out[@]}"} ${args[@]+"${args[@]}"}
