#!/bin/bash
# The sanitizer lane: build deltapush out of tree with ASan + UBSan
# (./configure --enable-sanitizers), run the unit tests there (make check),
# then the integration tests with that build: the service as built, the
# plugins inside imap, lmtp, dovecot-lda and doveadm processes that get
# libasan preloaded (tests/sanitize_pytest.py does that). Any sanitizer
# report (LeakSanitizer included) fails the run.
#
#   tests/sanitize.sh               unit + integration tests under ASan
#   tests/sanitize.sh --unit        only the unit tests
#   tests/sanitize.sh --valgrind    also the integration tests with a
#                                   normal build, imap and lmtp under
#                                   valgrind memcheck (slow; timing
#                                   assertions may fail there)
#   tests/sanitize.sh --valgrind-only   only that
#   PYTEST_ARGS="-k hostile" tests/sanitize.sh
#
# Builds go to build/asan (and build/valgrind) in the tree, or under
# $SANITIZE_BUILD_DIR. Reports are kept in <build>/reports.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
root=${SANITIZE_BUILD_DIR:-$top/build}
unit_only=no
with_asan=yes
with_valgrind=no
for arg in "$@"; do
	case $arg in
	--unit) unit_only=yes ;;
	--valgrind) with_valgrind=yes ;;
	--valgrind-only) with_valgrind=yes; with_asan=no ;;
	*) echo "usage: $0 [--unit | --valgrind | --valgrind-only]" >&2
	   exit 2 ;;
	esac
done

. "$top/tests/deps.sh"

# build_tree <dir> <configure args...>: configure (once) and build in
# <dir>/obj, then stage an install in <dir>/stage.
build_tree() {
	local dir=$1 srcdir
	shift
	mkdir -p "$dir/obj"
	srcdir=$(deltapush_source_dir "$top" "$dir/src") || return 1
	if [ ! -f "$dir/obj/Makefile" ]; then
		echo "== configuring $dir/obj: $*"
		(cd "$dir/obj" && "$srcdir/configure" "$@") \
			>"$dir/configure.log" 2>&1 || {
			tail -30 "$dir/configure.log"; return 1; }
	fi
	echo "== building in $dir/obj"
	make -C "$dir/obj" -j2 >"$dir/make.log" 2>&1 || {
		tail -40 "$dir/make.log"; return 1; }
	rm -rf "$dir/stage"
	make -C "$dir/obj" install DESTDIR="$dir/stage" \
		>"$dir/install.log" 2>&1 || {
		tail -30 "$dir/install.log"; return 1; }
}

# run_integration <mode> <stage> <report dir>
run_integration() {
	local mode=$1 stage=$2 reports=$3
	rm -rf "$reports"
	mkdir -p "$reports"
	echo "== integration tests, $mode"
	# shellcheck disable=SC2086
	DELTAPUSH_STAGE=$stage DELTAPUSH_SANITIZE=$mode \
	DELTAPUSH_SANITIZE_LOGS=$reports PYTHONPATH="$top/tests" \
		/usr/bin/python3 -m pytest -p no:cacheprovider -p sanitize_pytest \
		-q -rs ${PYTEST_ARGS:-} "$top/tests/integration"
}

failed=0

if [ $with_asan = yes ]; then
	build_tree "$root/asan" --enable-sanitizers || exit 1
	echo "== unit tests under ASan + UBSan (make check)"
	# Leaks count: LeakSanitizer runs at the exit of every test program.
	asan_options=detect_leaks=1:detect_stack_use_after_return=1
	if ASAN_OPTIONS=${ASAN_OPTIONS:-$asan_options} \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
		make -C "$root/asan/obj" check >"$root/asan/check.log" 2>&1; then
		grep -E '^[0-9]+ / [0-9]+ tests failed' "$root/asan/check.log"
		echo "unit tests: OK"
	else
		grep -E '^[0-9]+ / [0-9]+ tests failed|^==[0-9]+==ERROR|^SUMMARY' \
			"$root/asan/check.log"
		grep -E 'runtime error' "$root/asan/check.log"
		echo "unit tests: FAILED, see $root/asan/check.log"
		failed=1
	fi
	if [ $unit_only = no ]; then
		run_integration asan "$root/asan/stage" \
			"$root/asan/reports" || failed=1
	fi
fi
if [ $with_valgrind = yes ] && [ $unit_only = no ]; then
	build_tree "$root/valgrind" || exit 1
	run_integration valgrind "$root/valgrind/stage" \
		"$root/valgrind/reports" || failed=1
fi
exit $failed
