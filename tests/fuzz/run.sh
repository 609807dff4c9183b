#!/bin/bash
# Build the libFuzzer targets out of tree (clang, ASan + UBSan) and run
# each for a while, two at a time.
#
#   tests/fuzz/run.sh [seconds]        default 60 s per target (the CI run)
#   FUZZ_TARGETS="token turn" tests/fuzz/run.sh 600
#
# Environment:
#   FUZZ_BUILD_DIR  where to build and keep the work corpora, crash
#                   artifacts and logs (default: build/fuzz in the tree)
#   FUZZ_JOBS       targets run at the same time (default 2)
#   FUZZ_TARGETS    which targets (default: all, see below)
#
# The seed corpora in tests/fuzz/corpus/<target> are only read; what the
# fuzzer finds goes to $FUZZ_BUILD_DIR/corpus/<target>. A crash leaves its
# input in $FUZZ_BUILD_DIR/artifacts/<target>/ and makes this script fail;
# replay it with $FUZZ_BUILD_DIR/obj/tests/fuzz/fuzz-deltapush-<target>
# <file>.
set -u

seconds=${1:-60}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$top/build/fuzz}
jobs=${FUZZ_JOBS:-2}
targets=${FUZZ_TARGETS:-token protocol appversions turn chatmail}

# Largest input per target: over every size limit the code has (4096-byte
# tokens and TURN secrets) with room for the rest of the input.
max_len_for() {
	case $1 in
	token|turn) echo 8192 ;;
	*) echo 16384 ;;
	esac
}

. "$top/tests/deps.sh"

build_fuzzers() {
	local srcdir
	mkdir -p "$build/obj"
	srcdir=$(deltapush_source_dir "$top" "$build/src") || return 1
	if [ ! -f "$build/obj/Makefile" ]; then
		echo "== configuring in $build/obj"
		(cd "$build/obj" && "$srcdir/configure" CC=clang \
			--with-fuzzer=clang --enable-sanitizers) \
			>"$build/configure.log" 2>&1 || {
			tail -30 "$build/configure.log"; return 1; }
	fi
	echo "== building the fuzzers"
	(make -C "$build/obj/src/lib-deltapush" -j2 &&
	 make -C "$build/obj/tests/fuzz" -j2) >"$build/make.log" 2>&1 || {
		tail -30 "$build/make.log"; return 1; }
}

run_target() {
	local target=$1 bin="$build/obj/tests/fuzz/fuzz-deltapush-$1"
	local log="$build/logs/$target.log"

	mkdir -p "$build/corpus/$target" "$build/artifacts/$target"
	# The turn target writes its input to a file: keep that off the disk.
	# UBSan reports must stop the run like ASan's do.
	TMPDIR=$fuzz_tmpdir \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	"$bin" -max_total_time="$seconds" -max_len="$(max_len_for "$target")" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/$target/" \
		"$build/corpus/$target" "$top/tests/fuzz/corpus/$target" \
		</dev/null >"$log" 2>&1
}

# What a sanitizer, libFuzzer (crash, leak, timeout, OOM) or an oracle's
# i_panic() prints
failure_pattern='ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|^Panic:|^SUMMARY: '

report_target() {
	local target=$1 log="$build/logs/$1.log" runs crashes
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	crashes=$(find "$build/artifacts/$target" -type f | wc -l)
	if grep -q -E "$failure_pattern" "$log"; then
		echo "$target: FAILED after ${runs:-?} executions, see $log"
		grep -E -m5 "$failure_pattern|Test unit written" "$log" |
			sed 's/^/    /'
		return 1
	fi
	echo "$target: ${runs:-?} executions in $seconds s, no crashes"
	[ "$crashes" -gt 0 ] && echo "    ($crashes old artifact(s) in" \
		"$build/artifacts/$target)"
	return 0
}

fuzz_tmpdir=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && fuzz_tmpdir=/dev/shm

build_fuzzers || exit 1
mkdir -p "$build/logs"
echo "== fuzzing each target for $seconds s, $jobs at a time"
running=0
for target in $targets; do
	if [ ! -x "$build/obj/tests/fuzz/fuzz-deltapush-$target" ]; then
		echo "unknown target: $target" >&2
		exit 1
	fi
	run_target "$target" &
	running=$((running + 1))
	if [ $running -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

failed=0
for target in $targets; do
	report_target "$target" || failed=1
done
exit $failed
