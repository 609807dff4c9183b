#!/bin/bash
# Run a command against Dovecot 2.4 (Debian 13 "trixie") on a Debian 12
# machine: make (once, then reuse) a Debian 13 root with debootstrap, copy
# this tree into it and run the command there with chroot. As root.
#
#   tests/debian13.sh                      the README's test command inside
#   tests/debian13.sh tests/demo.sh        any command, from the tree's top
#   tests/debian13.sh --shell              a shell in the copied tree
#
# DELTAPUSH_DEBIAN13_ROOT  where the root lives (default
#                          /var/tmp/deltapush-debian13); kept between runs
# DELTAPUSH_DEBIAN13_MIRROR  Debian mirror (default: the one this machine's
#                          apt sources use for Debian)
# Environment variables named DELTAPUSH_*, PYTEST_ARGS and IMAPTEST are
# passed into the root (IMAPTEST's binary is copied in).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${DELTAPUSH_DEBIAN13_ROOT:-/var/tmp/deltapush-debian13}
root=$cache/root
suite=trixie

if [ "$(id -u)" != 0 ]; then
	echo "debian13.sh: needs root (debootstrap, chroot, mount)" >&2
	exit 1
fi

# What the tests need inside, beyond what run-tests.sh installs itself:
# the package test's build tools, so a cached root already has them.
packages="build-essential autoconf automake libtool pkg-config
 dovecot-dev dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve
 libcurl4-openssl-dev libsqlite3-dev python3 python3-pytest valgrind
 coturn dpkg-dev debhelper fakeroot ca-certificates procps nginx openssl"

mirror() {
	if [ -n "${DELTAPUSH_DEBIAN13_MIRROR:-}" ]; then
		echo "$DELTAPUSH_DEBIAN13_MIRROR"; return
	fi
	# The first Debian URI of this machine's apt sources (deb822 or
	# one-line format), else Debian's default mirror.
	local uri
	uri=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
		2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' |
		grep -v security | head -1 | tr -d ' ')
	echo "${uri:-http://deb.debian.org/debian}"
}

make_root() {
	command -v debootstrap >/dev/null || {
		echo "== installing debootstrap"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			debootstrap >/dev/null; } || return 1
	echo "== making a Debian 13 root in $root (debootstrap, once)"
	umount_all
	rm -rf --one-file-system "$root"
	mkdir -p "$cache"
	debootstrap --variant=minbase --include=ca-certificates "$suite" \
		"$root" "$(mirror)" >"$cache/debootstrap.log" 2>&1 || {
		tail -20 "$cache/debootstrap.log"; return 1; }
	# Installing dovecot-core must not start a system Dovecot.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
}

# Runs may overlap: each holds a shared lock on the root while it runs,
# and the last one out unmounts.
mount_all() {
	local m
	# The root is a mount point of its own, as / is on a real system: the
	# tests' private mount namespaces (unshare -m) need that.
	if ! mountpoint -q "$root"; then
		mount --bind "$root" "$root" && mount --make-private "$root" ||
			return 1
	fi
	for m in proc sys dev dev/pts; do
		mkdir -p "$root/$m"
		mountpoint -q "$root/$m" && continue
		mount --bind "/$m" "$root/$m" || return 1
	done
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}
umount_all() {
	local m
	for m in dev/pts dev sys proc; do
		mountpoint -q "$root/$m" && umount -l "$root/$m"
	done
	mountpoint -q "$root" && umount -l "$root"
	return 0
}
dest=/build/deltapush.$$
cleanup() {
	[ -n "${DELTAPUSH_KEEP_TMP:-}" ] || rm -rf "${root:?}$dest"
	flock -x -n 9 && umount_all
}
mkdir -p "$cache"
exec 9>"$cache/lock"
flock -s 9
trap cleanup EXIT

in_root() {
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

install_packages() {
	local missing="" p
	for p in $packages; do
		in_root dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "== installing in the Debian 13 root:$missing"
	in_root apt-get update -qq >/dev/null &&
	in_root apt-get install -y -qq --no-install-recommends $missing \
		>"$cache/apt.log" 2>&1 || { tail -20 "$cache/apt.log"; return 1; }
}

if [ ! -x "$root/usr/bin/apt-get" ] || [ ! -f "$root/usr/sbin/policy-rc.d" ]; then
	make_root || exit 1
fi
mount_all || exit 1
install_packages || exit 1
echo "== Dovecot in the root: $(in_root dovecot --version)"

# A fresh copy of the tree (tracked and new files, as git sees them; or all
# files when this is not a git checkout), so the root builds from scratch;
# one per run, removed at the end (kept with DELTAPUSH_KEEP_TMP).
mkdir -p "$root$dest"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 cp --parents -t "$root$dest" 2>/dev/null)
else
	(cd "$top" && tar --exclude=./build -cf - .) | (cd "$root$dest" && tar xf -)
fi

envs=()
for v in $(compgen -e); do
	case $v in
	DELTAPUSH_DEBIAN13_*) ;;
	DELTAPUSH_*|PYTEST_ARGS|CI) envs+=("$v=${!v}") ;;
	esac
done
if [ -n "${IMAPTEST:-}" ] && [ -x "$IMAPTEST" ]; then
	cp "$IMAPTEST" "$root/usr/local/bin/imaptest"
	envs+=("IMAPTEST=/usr/local/bin/imaptest")
fi

if [ $# -eq 0 ]; then
	set -- tests/run-tests.sh
elif [ "$1" = --shell ]; then
	set -- /bin/bash
fi
in_root "${envs[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$dest" "$@"
