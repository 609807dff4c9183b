#!/bin/bash
# Package test: build dovecot-deltapush_*.deb from a copy of this tree,
# install it, run the system Dovecot with Debian's configuration plus the
# packaged conf.d file (loopback only, unprivileged ports), and check the
# capability, a registration and a push end to end. Then remove and purge
# the package and check that nothing of it is left but the database.
# Works against the system's Dovecot 2.3 (Debian 12) or 2.4 (Debian 13).
#
# It changes the system (packages, a test user, a file in
# /etc/dovecot/conf.d, Dovecot's state), so it runs only as root on Debian
# and only when asked:
#
#   tests/package/test-deb.sh --really
#   DELTAPUSH_PACKAGE_TEST=1 tests/package/test-deb.sh
#   DELTAPUSH_PACKAGE_TEST=1 tests/debian13.sh bash tests/package/test-deb.sh
#
# DELTAPUSH_DEB=/path/to/dovecot-deltapush_*.deb tests that package instead
# of building one. Everything it installs or creates is undone at the end,
# except the build tools it installs. Prints "N passed, N failed" last.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/tests/package"
pkg=dovecot-deltapush
test_conf=/etc/dovecot/conf.d/99-deltapush-package-test.conf
# Dovecot 2.4 only: the conffile for the deltapush_* settings, which only
# the package's load file includes.
settings_conf=/etc/dovecot/deltapush.conf
db_dir=/var/lib/dovecot/deltapush
db_glob=$db_dir/deltapush.sqlite

skip() {
	echo "test-deb.sh: skipped: $*"
	echo "0 passed, 0 failed (skipped)"
	exit 0
}

if [ "${1:-}" != --really ] && [ "${DELTAPUSH_PACKAGE_TEST:-}" != 1 ]; then
	skip "it installs and purges $pkg and runs the system Dovecot;" \
		"run it with --really or DELTAPUSH_PACKAGE_TEST=1 on a" \
		"disposable Debian 12 machine"
fi
[ "$(id -u)" = 0 ] || skip "needs root"
if [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then
	skip "needs Debian (apt-get)"
fi

passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...: pass when COMMAND succeeds
	local what=$1; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
	echo "$passed passed, $failed failed"
	[ $failed -eq 0 ] && [ $passed -gt 0 ]
	exit
}

if dpkg-query -W -f='${Status}' $pkg 2>/dev/null | grep -q installed; then
	fail "$pkg must not be installed before the test (it purges it)"
	finish
fi
if [ -e $test_conf ]; then
	fail "$test_conf exists already"
	finish
fi
abi=$(cat /usr/share/dovecot/dovecot-abi 2>/dev/null)
case $abi in
2.3.*) dovecot24=no ;;
2.4.*) dovecot24=yes ;;
*) skip "Dovecot ABI '$abi' (/usr/share/dovecot/dovecot-abi) is" \
	"neither 2.3 nor 2.4" ;;
esac
if [ $dovecot24 = yes ] && [ -e $settings_conf ]; then
	fail "$settings_conf exists already (the package installs it)"
	finish
fi

work=$(mktemp -d /tmp/deltapush-package-test.XXXXXX)
chmod 755 "$work"
test_user=dptest$$
test_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
user_created=no
ssl_cert=/etc/dovecot/private/dovecot.pem
ssl_key=/etc/dovecot/private/dovecot.key
ssl_created=no
dovecot_started=no
installed_pkgs=""

# The system Dovecot's master, if it runs (Debian starts it on install
# where an init system runs).
master_pid() {
	local pid
	pid=$(cat /run/dovecot/master.pid 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_dovecot() {
	local pid
	pid=$(master_pid) || return 0
	doveadm stop >/dev/null 2>&1 || kill "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "Dovecot master $pid did not stop" >&2
	return 1
}

system_dovecot_was_running=no
master_pid >/dev/null && system_dovecot_was_running=yes
db_existed=no
ls $db_glob* >/dev/null 2>&1 && db_existed=yes
db_dir_existed=no
[ -d $db_dir ] && db_dir_existed=yes
bridge_dir=/var/lib/dovecot/deltapush-bridge
bridge_dir_existed=no
[ -d $bridge_dir ] && bridge_dir_existed=yes
# Dovecot's own runtime and state files, to be removed again if the test
# is the first to run the system Dovecot here.
run_dir_existed=no
[ -e /run/dovecot ] && run_dir_existed=yes
instances_existed=no
[ -e /var/lib/dovecot/instances ] && instances_existed=yes

cleanup() {
	set +e
	if [ $dovecot_started = yes ] ||
	   [ $system_dovecot_was_running = no ]; then
		stop_dovecot
	fi
	rm -f $test_conf
	if dpkg-query -W -f='${Status}' $pkg 2>/dev/null | grep -q installed ||
	   dpkg-query -W -f='${Status}' $pkg 2>/dev/null | grep -q config-files
	then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $pkg \
			>/dev/null 2>&1
	fi
	if [ -n "$installed_pkgs" ]; then
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq \
			$installed_pkgs >/dev/null 2>&1
	fi
	[ "$ssl_created" = yes ] && rm -f "$ssl_cert" "$ssl_key"
	[ "$user_created" = yes ] && userdel -r "$test_user" >/dev/null 2>&1
	[ "$db_existed" = no ] && rm -f "$db_glob" "$db_glob-wal" "$db_glob-shm"
	[ "$db_dir_existed" = no ] && rmdir $db_dir 2>/dev/null
	[ "$bridge_dir_existed" = no ] && rmdir $bridge_dir 2>/dev/null
	if ! master_pid >/dev/null; then
		[ $run_dir_existed = no ] && rm -rf /run/dovecot
		[ $instances_existed = no ] && rm -f /var/lib/dovecot/instances
	fi
	if [ $system_dovecot_was_running = yes ] && ! master_pid >/dev/null
	then
		if [ -d /run/systemd/system ]; then
			systemctl start dovecot
		else
			dovecot
		fi
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

export DEBIAN_FRONTEND=noninteractive

# Build the package from a copy of the tree: tracked and new files only
# (no build output), so the tree itself stays as it is.
if [ -n "${DELTAPUSH_DEB:-}" ]; then
	deb=$DELTAPUSH_DEB
else
	echo "== building the package (log: $work/build.log)"
	mkdir "$work/src"
	if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$top" && git ls-files -z -co --exclude-standard |
			xargs -0 cp --parents -t "$work/src")
	else
		(cd "$top" && tar -cf - --exclude=./build --exclude=.git .) |
			tar -xf - -C "$work/src"
	fi
	apt-get update -qq >/dev/null 2>&1
	apt-get install -y -qq --no-install-recommends dpkg-dev debhelper \
		>"$work/build.log" 2>&1 &&
	apt-get build-dep -y -qq "$work/src" >>"$work/build.log" 2>&1 &&
	(cd "$work/src" && dpkg-buildpackage -us -uc -b) \
		>>"$work/build.log" 2>&1
	rc=$?
	deb=$(ls "$work"/${pkg}_*.deb 2>/dev/null | head -1)
	if [ $rc -ne 0 ] || [ -z "$deb" ]; then
		tail -30 "$work/build.log"
		fail "dpkg-buildpackage -us -uc -b builds $pkg"
		finish
	fi
	pass "dpkg-buildpackage -us -uc -b builds $(basename "$deb")"
fi

check "the package depends on dovecot-abi-$abi" \
	sh -c "dpkg-deb -f '$deb' Depends | grep -q 'dovecot-abi-$abi'"

# dpkg would silently take over files of a deltapush installed from source
# (make install) and delete them on purge.
present=""
for f in $(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }'); do
	[ -e "$f" ] && present="$present $f"
done
if [ -n "$present" ]; then
	fail "none of the package's files exists before it is installed" \
		"(there:$present)"
	finish
fi
# Names the final check for leftovers does not blame on the package.
find_deltapush() {
	find /etc /usr /var /run -path /var/tmp -prune -o \
		-name '*deltapush*' -print 2>/dev/null | sort
}
find_deltapush >"$work/before"
# The test settings go in before the package, so that a Dovecot that
# dovecot-core's trigger (re)starts on install or remove listens on
# loopback only too.
echo "== configuring Dovecot for the test"
read -r imap_port lmtp_port sink_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
notify_url=http://127.0.0.1:$sink_port/notify
{
	echo "# deltapush package test (tests/package/test-deb.sh); removed"
	echo "# when the test ends."
	echo "listen = 127.0.0.1"
	echo "log_path = $work/dovecot.log"
	echo "service imap-login {"
	echo "  inet_listener imap {"
	echo "    port = $imap_port"
	echo "  }"
	echo "  inet_listener imaps {"
	echo "    port = 0"
	echo "  }"
	echo "}"
	echo "service pop3-login {"
	echo "  inet_listener pop3 {"
	echo "    port = 0"
	echo "  }"
	echo "  inet_listener pop3s {"
	echo "    port = 0"
	echo "  }"
	echo "}"
	echo "service submission-login {"
	echo "  inet_listener submission {"
	echo "    port = 0"
	echo "  }"
	echo "}"
	echo "service lmtp {"
	echo "  inet_listener lmtp {"
	echo "    port = $lmtp_port"
	echo "  }"
	echo "}"
	# Where Debian's 2.3 configuration has the settings; 2.4's go to
	# $settings_conf, which the package installs.
	if [ $dovecot24 = no ]; then
		echo "plugin {"
		echo "  deltapush_notify_url = $notify_url"
		echo "}"
	fi
} >$test_conf

# Debian's 10-ssl.conf reads the certificate dovecot-core links from
# ssl-cert's snakeoil pair, even with ssl = no. Where there is none (a
# container image), a throwaway pair stands in until the test ends.
if [ ! -e $ssl_cert ] && [ ! -L $ssl_cert ] &&
   [ ! -e $ssl_key ] && [ ! -L $ssl_key ]; then
	if openssl req -x509 -newkey rsa:2048 -nodes -days 1 \
		-subj /CN=localhost -keyout $ssl_key -out $ssl_cert \
		>"$work/openssl.log" 2>&1; then
		ssl_created=yes
		chmod 600 $ssl_key
	else
		cat "$work/openssl.log"
	fi
fi

# A system user, as Debian's default configuration expects (PAM passdb,
# passwd userdb, mail in /var/mail and ~/mail): the mail processes run
# with its uid, not dovecot's or vmail's.
if ! useradd --create-home --shell /usr/sbin/nologin "$test_user"; then
	fail "useradd $test_user"
	finish
fi
user_created=yes
echo "$test_user:$test_password" | chpasswd

echo "== installing $(basename "$deb")"
for p in dovecot-imapd dovecot-lmtpd; do
	dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q 'ok installed' ||
		installed_pkgs="$installed_pkgs $p"
done
if ! apt-get install -y -qq "$(realpath "$deb")" dovecot-imapd \
	dovecot-lmtpd >"$work/install.log" 2>&1; then
	tail -20 "$work/install.log"
	fail "apt-get install ./$(basename "$deb") dovecot-imapd dovecot-lmtpd"
	finish
fi
pass "apt-get install ./$(basename "$deb") dovecot-imapd dovecot-lmtpd"
dpkg -L $pkg | sort >"$work/files"
check "90-deltapush.conf is a conffile" \
	sh -c "dpkg-query -W -f='\${Conffiles}' $pkg |
		grep -q '^ /etc/dovecot/conf.d/90-deltapush.conf '"
check "no libtool archives installed" \
	sh -c "! grep -q '\\.la\$' '$work/files'"
check "the bridge's state directory belongs to the internal user" \
	sh -c "[ \"\$(stat -c '%U %a' $bridge_dir)\" = 'dovecot 700' ]"
if [ $dovecot24 = yes ]; then
	check "$settings_conf is a conffile" \
		sh -c "dpkg-query -W -f='\${Conffiles}' $pkg |
			grep -q '^ $settings_conf '"
	check "the settings module is installed" \
		grep -qx /usr/lib/dovecot/modules/settings/lib30_deltapush_settings.so \
		"$work/files"
	# As README.Debian tells operators to: a top-level setting in the
	# file only the package reads. It stays there after "apt-get
	# remove", which the checks after the removal rely on.
	printf '\n# deltapush package test\ndeltapush_notify_url = %s\n' \
		"$notify_url" >>$settings_conf
else
	check "the settings module is 2.4's only" \
		sh -c "! grep -q '/settings/' '$work/files'"
fi

# dovecot-core's trigger restarts Dovecot for new modules where an init
# system runs; the test starts its own and restores the system's state at
# the end.
stop_dovecot

check "doveconf accepts the configuration" \
	sh -c "doveconf -n >'$work/doveconf.txt' 2>&1"
# has_plugin NAME [doveconf options]: NAME is in mail_plugins. 2.3 prints
# the list space-separated, 2.4 as "name = yes" lines.
has_plugin() {
	local name=$1; shift
	doveconf -h "$@" mail_plugins | awk '
		NF == 3 && $2 == "=" { if ($3 == "yes") print $1; next }
		{ for (i = 1; i <= NF; i++) print $i }' | grep -qx "$name"
}
# 2.3 prints "service/deltapush/executable = x", 2.4 the service block.
service_runs_deltapush() {
	doveconf service/deltapush/executable 2>/dev/null |
		sed -n 's/^\(service\/deltapush\/\| *\)executable = //p' |
		grep -qx deltapush &&
	test -x /usr/lib/dovecot/deltapush
}
notify_url_is_sink() {
	local url
	if [ $dovecot24 = yes ]; then
		url=$(doveconf -h deltapush_notify_url)
	else
		url=$(doveconf -h plugin/deltapush_notify_url)
	fi
	[ "$url" = "$notify_url" ]
}
check "doveconf: mail_plugins load deltapush" has_plugin deltapush
check "doveconf: imap loads imap_deltapush" \
	has_plugin imap_deltapush -f protocol=imap
check "doveconf: service deltapush runs /usr/lib/dovecot/deltapush" \
	service_runs_deltapush
check "doveconf: deltapush_notify_url is the test's sink" notify_url_is_sink

echo "== starting Dovecot"
if dovecot; then
	dovecot_started=yes
	for _ in $(seq 50); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1', $imap_port), 1)" \
			2>/dev/null && break
		sleep 0.2
	done
fi
dovecot_running() { master_pid >/dev/null; }
check "the system Dovecot starts with the packaged configuration" \
	dovecot_running
service_running() {
	local pid
	pid=$(master_pid) || return 1
	for _ in $(seq 25); do
		pgrep -P "$pid" -f 'dovecot/deltapush' >/dev/null && return 0
		sleep 0.2
	done
	return 1
}
check "Dovecot's master started the deltapush service" service_running

echo "== end to end: IMAP, LMTP and the push"
python3 "$here/e2e.py" "$imap_port" "$lmtp_port" "$sink_port" \
	"$test_user" "$test_password" >"$work/e2e.out" 2>&1
cat "$work/e2e.out"
passed=$((passed + $(grep -c '^PASS:' "$work/e2e.out")))
failed=$((failed + $(grep -c '^FAIL:' "$work/e2e.out")))
if grep -q '^FAIL:' "$work/e2e.out" || ! grep -q '^PASS:' "$work/e2e.out"
then
	grep -q '^PASS:\|^FAIL:' "$work/e2e.out" ||
		fail "e2e.py ran its checks"
	echo "-- Dovecot log:"
	tail -30 "$work/dovecot.log" 2>/dev/null
fi
if grep -q -E 'deltapush.*(Error|Fatal|Panic)|(Error|Fatal|Panic):.*deltapush' \
	"$work/dovecot.log" 2>/dev/null; then
	grep -E 'Error|Fatal|Panic' "$work/dovecot.log" | tail -10
	fail "no deltapush errors in Dovecot's log"
else
	pass "no deltapush errors in Dovecot's log"
fi

echo "== stopping Dovecot, removing and purging the package"
check "Dovecot stops" stop_dovecot
dovecot_started=no
db_files=$(echo $db_glob*)

check "apt-get remove $pkg" \
	sh -c "apt-get remove -y -qq $pkg >'$work/remove.log' 2>&1"
# The conffiles stay on remove; they must not keep Dovecot from starting.
if [ $dovecot24 = yes ]; then
	# 2.4 refuses a deltapush_* setting without the settings module: the
	# test's one must still be there, in a file Dovecot no longer reads.
	check "after remove, $settings_conf keeps the test's setting" \
		grep -qx "deltapush_notify_url = $notify_url" $settings_conf
	check "after remove, the settings module is gone" \
		test ! -e /usr/lib/dovecot/modules/settings/lib30_deltapush_settings.so
fi
deltapush_unloaded() {
	if ! doveconf -n >"$work/doveconf-removed.txt" 2>&1; then
		cat "$work/doveconf-removed.txt"
		return 1
	fi
	! has_plugin deltapush && ! has_plugin imap_deltapush -f protocol=imap &&
	! grep -q '^service deltapush' "$work/doveconf-removed.txt"
}
check "after remove, Dovecot's configuration no longer loads deltapush" \
	deltapush_unloaded
dovecot_starts() {
	# Already running if dovecot-core's trigger restarted it.
	master_pid >/dev/null || dovecot || return 1
	sleep 1
	master_pid >/dev/null
}
dovecot_started=yes
check "after remove, Dovecot starts with the conffile left behind" \
	dovecot_starts
check "Dovecot stops again" stop_dovecot
dovecot_started=no
check "apt-get purge $pkg" \
	sh -c "apt-get purge -y -qq $pkg >'$work/purge.log' 2>&1"
check "dpkg no longer knows $pkg" \
	sh -c "! dpkg-query -W -f='\${Status}' $pkg 2>/dev/null | grep -q ' installed\|config-files'"

# Every file the package had is gone; directories other packages share
# (/usr/lib/dovecot, /etc/dovecot/conf.d, ...) may stay.
left=""
while read -r f; do
	[ "$f" = /. ] && continue
	[ -e "$f" ] || [ -L "$f" ] || continue
	[ -d "$f" ] && [ ! -L "$f" ] && dpkg -S "$f" >/dev/null 2>&1 &&
		continue
	left="$left $f"
done <"$work/files"
check "no file of the package remains${left:+ (left:$left)}" test -z "$left"

# Nothing named after deltapush anywhere else either, but the database
# and what was there before the test. /var/tmp is no package's: it may hold
# copies of this tree (the Debian 13 root of tests/debian13.sh).
if [ -s "$work/before" ]; then
	echo "note: there before the test, not checked:" $(cat "$work/before")
fi
stray=$(find_deltapush | comm -23 - "$work/before" |
	grep -v -x -F -e $test_conf \
		-e $db_dir -e $db_glob -e $db_glob-wal -e $db_glob-shm)
check "nothing named *deltapush* left but the database${stray:+ (left: $stray)}" \
	test -z "$stray"
check "the database stays ($db_files)" test -f $db_glob

finish
