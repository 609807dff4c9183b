# Sourced by the test and demo scripts: Debian 12 packages and the build.

deltapush_build_packages="build-essential autoconf automake libtool pkg-config
 dovecot-dev dovecot-core dovecot-imapd dovecot-lmtpd
 libcurl4-openssl-dev libsqlite3-dev python3"
deltapush_test_packages="python3-pytest valgrind coturn e2fsprogs dovecot-sieve
 nginx openssl"
# the fuzzers (tests/fuzz) need clang with libFuzzer
deltapush_fuzz_packages="clang libclang-rt-14-dev"

# deltapush_install_deps [test|fuzz]: install what is missing (as root).
deltapush_install_deps() {
	local pkgs="$deltapush_build_packages" missing=""
	[ "${1:-}" = test ] && pkgs="$pkgs $deltapush_test_packages"
	[ "${1:-}" = fuzz ] && pkgs="$pkgs $deltapush_fuzz_packages"
	for p in $pkgs; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "Missing Debian packages:$missing (run as root to install them)" >&2
		return 1
	fi
	echo "== installing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq $missing >/dev/null || {
		echo "apt-get install failed" >&2; return 1; }
	# Debian starts the system Dovecot (coturn, nginx) on install; the tests
	# run their own on loopback.
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now dovecot coturn nginx >/dev/null 2>&1 || true
	fi
}

deltapush_build() {
	echo "== building"
	if [ ! -x configure ]; then
		./autogen.sh >build.log 2>&1 || { cat build.log; return 1; }
	fi
	if [ ! -f Makefile ]; then
		./configure >>build.log 2>&1 || { tail -30 build.log; return 1; }
	fi
	make -j2 >>build.log 2>&1 || { tail -40 build.log; return 1; }
}

# A VPATH build needs a source tree that was never configured in place.
# If this one was, build from a copy of its files (tracked and new, as git
# sees them), refreshed on every run: only files whose content changed are
# copied, and they get the current time, so make rebuilds what changed.
# deltapush_source_dir <top> <copy>
deltapush_source_dir() {
	local top=$1 copy=$2
	if [ ! -f "$top/config.status" ]; then
		echo "$top"
		return 0
	fi
	if ! git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		echo "$top is configured in place and is not a git checkout:" \
			"run 'make distclean' there first" >&2
		return 1
	fi
	mkdir -p "$copy"
	(cd "$top" && git ls-files -z --cached --others --exclude-standard) |
	while IFS= read -r -d '' file; do
		[ -f "$top/$file" ] || continue
		cmp -s "$top/$file" "$copy"/"$file" && continue
		mkdir -p "$(dirname "$copy"/"$file")"
		cp "$top/$file" "$copy"/"$file" || return 1
	done || return 1
	if [ ! -x "$copy"/configure ]; then
		(cd "$copy" && ./autogen.sh) >"$copy".autogen.log 2>&1 || {
			tail -20 "$copy".autogen.log >&2; return 1; }
	fi
	echo "$copy"
}
