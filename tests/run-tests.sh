#!/bin/bash
# Build deltapush, run the unit tests, stage an install and run the
# integration tests against a real Dovecot on loopback. Prints one closing
# line "N passed, N failed, N skipped" over all of them.
#
#   tests/run-tests.sh                    everything
#   tests/run-tests.sh --integration-only skip the build and unit tests
#   PYTEST_ARGS="-k delivery" tests/run-tests.sh
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

integration_only=no
[ "${1:-}" = "--integration-only" ] && integration_only=yes

. "$top/tests/deps.sh"
deltapush_install_deps test || exit 1

passed=0 failed=0 skipped=0
log_dir="$top/build/test-logs"
mkdir -p "$log_dir"

if [ $integration_only = no ]; then
	deltapush_build || exit 1
	echo "== unit tests (make check)"
	make check >"$log_dir/unit.log" 2>&1
	unit_rc=$?
	cat "$log_dir/unit.log" | grep -E '^(test|[0-9]+ / [0-9]+ tests failed)|Failed|FAILED|==[0-9]+==' || true
	# Dovecot's test_run() ends each program with "F / N tests failed".
	while read -r f n; do
		failed=$((failed + f)); passed=$((passed + n - f))
	done < <(sed -n 's/^\([0-9]\+\) \/ \([0-9]\+\) tests failed.*/\1 \2/p' "$log_dir/unit.log")
	if [ $unit_rc -ne 0 ] && ! grep -q 'tests failed' "$log_dir/unit.log"; then
		tail -30 "$log_dir/unit.log"
		failed=$((failed + 1))
	elif [ $unit_rc -ne 0 ]; then
		# A crash or a valgrind report after the counts.
		tail -30 "$log_dir/unit.log"
		[ $failed -eq 0 ] && failed=1
	fi
fi

echo "== staging install"
rm -rf "$top/build/stage"
make install DESTDIR="$top/build/stage" >"$log_dir/install.log" 2>&1 || {
	tail -30 "$log_dir/install.log"; echo "0 passed, 1 failed"; exit 1; }

echo "== integration tests"
export DELTAPUSH_STAGE="$top/build/stage"
# shellcheck disable=SC2086
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rs ${PYTEST_ARGS:-} tests/integration 2>&1 | tee "$log_dir/integration.log"
# pytest's last line, e.g. "201 passed, 5 skipped in 247.72s" (framed by
# "=" unless -q)
summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|errors?)\b.* in [0-9.]+s' "$log_dir/integration.log" | tail -1)
for kind in passed failed skipped error errors; do
	n=$(echo "$summary" | grep -oE "[0-9]+ $kind\b" | grep -oE '^[0-9]+' || true)
	n=${n:-0}
	case $kind in
	passed) passed=$((passed + n)) ;;
	failed|error|errors) failed=$((failed + n)) ;;
	skipped) skipped=$((skipped + n)) ;;
	esac
done
if [ -z "$summary" ]; then
	echo "integration tests did not report a summary"
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
