#!/usr/bin/env bash
# Builds unmodified tcpdump on libpcap's own BPF backend, for bpffs.
#
# Fetches Debian's libpcap and tcpdump sources with apt-get source (through
# a private apt configuration, so the machine's /etc/apt is never touched),
# then builds two variants under the cache directory:
#
#   buffered   libpcap exactly as released (configure --with-pcap=bpf)
#   zerocopy   the same plus compat/libpcap/zerocopy.patch, which turns on
#              libpcap's zero-copy buffer mode
#
# Each variant is libpcap.a, a tcpdump linked statically against it, and the
# test programs of this directory (inject, pcapdrop).  The only thing the
# sources get from bpffs is its include/ directory (net/bpf.h, net/dlt.h,
# machine/atomic.h) on CFLAGS; tcpdump needs no header of bpffs at all.
#
# Builds are cached in $BPFFS_LIBPCAP_CACHE (default <repo>/.cache/libpcap,
# which git ignores), keyed on the source package versions and a hash of
# the headers, the patch, the test programs and this script, so a second
# run only checks and prints.  The fetched sources are kept there too: a
# warm run needs no network.  BPFFS_LIBPCAP_REFETCH=1 fetches again.
#
# On success the last lines on stdout are KEY=VALUE pairs:
#   VERSIONS, BUFFERED_DIR, ZEROCOPY_DIR   (each DIR holds libpcap-X/,
#   tcpdump-Y/, bin/tcpdump, bin/inject, bin/pcapdrop)
# Progress and errors go to stderr.
#
# Needs: apt-get, dpkg-source (dpkg-dev), gcc, make, flex, bison; the
# missing ones are installed with apt-get when running as root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${BPFFS_LIBPCAP_CACHE:-$root/.cache/libpcap}
include=$root/include
patchfile=$root/compat/libpcap/zerocopy.patch
jobs=$(nproc 2>/dev/null || echo 2)

say() { echo "libpcap/run.sh: $*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# tail_log prints the end of a failed step's log.
tail_log() {
	echo "----- last lines of $1 -----" >&2
	tail -n 40 "$1" >&2 || true
	echo "-----" >&2
}

need_tools() {
	local pkgs=()
	command -v gcc >/dev/null || pkgs+=(gcc libc6-dev)
	command -v make >/dev/null || pkgs+=(make)
	command -v flex >/dev/null || pkgs+=(flex)
	command -v bison >/dev/null || pkgs+=(bison)
	command -v patch >/dev/null || pkgs+=(patch)
	command -v dpkg-source >/dev/null || pkgs+=(dpkg-dev)
	[ ${#pkgs[@]} -eq 0 ] && return
	[ "$(id -u)" = 0 ] || die "missing tools (${pkgs[*]}); install them or run as root"
	say "installing ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 || die "apt-get update failed"
	apt-get install -y -qq "${pkgs[@]}" >&2 || die "apt-get install ${pkgs[*]} failed"
}

# debian_mirror finds the Debian archive the machine already uses (the
# deb822 .sources files or the one-line lists), skipping the security one.
debian_mirror() {
	if [ -n "${BPFFS_DEBIAN_MIRROR:-}" ]; then
		echo "$BPFFS_DEBIAN_MIRROR"
		return
	fi
	local f uri
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		uri=$(sed -n -e 's/^URIs:[[:space:]]*//p' \
			-e 's/^deb\(-src\)\?[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\3/p' "$f" |
			tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -n 1 || true)
		if [ -n "$uri" ]; then
			echo "${uri%/}"
			return
		fi
	done
	echo "http://deb.debian.org/debian"
}

debian_suite() {
	if [ -n "${BPFFS_DEBIAN_SUITE:-}" ]; then
		echo "$BPFFS_DEBIAN_SUITE"
		return
	fi
	local codename=""
	[ -r /etc/os-release ] && codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	echo "${codename:-bookworm}"
}

# fetch_sources leaves src/libpcap-*/ and src/tcpdump-*/ (upstream code
# as Debian ships it) and src/versions under the cache.
fetch_sources() {
	local src=$cache/src
	if [ -f "$src/.complete" ] && [ "${BPFFS_LIBPCAP_REFETCH:-0}" != 1 ]; then
		return
	fi
	rm -rf "$src"
	mkdir -p "$src"
	local apt mirror suite keyring
	apt=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$apt'" EXIT
	mirror=$(debian_mirror)
	suite=$(debian_suite)
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -r "$keyring" ] || die "$keyring is missing (package debian-archive-keyring); cannot verify the sources"
	mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" "$apt/state/lists/partial" "$apt/cache/archives/partial"
	echo "deb-src [signed-by=$keyring] $mirror $suite main" >"$apt/etc/sources.list"
	local opts=(
		-o "Dir::Etc::sourcelist=$apt/etc/sources.list"
		-o "Dir::Etc::sourceparts=$apt/etc/sources.list.d"
		-o "Dir::Etc::preferencesparts=$apt/etc/preferences.d"
		-o "Dir::State=$apt/state"
		-o "Dir::State::status=/var/lib/dpkg/status"
		-o "Dir::Cache=$apt/cache"
		-o "APT::Sandbox::User=root"
	)
	say "fetching libpcap and tcpdump sources from $mirror $suite (deb-src, private apt configuration)"
	if ! apt-get "${opts[@]}" -qq update >"$apt/update.log" 2>&1; then
		tail_log "$apt/update.log"
		die "cannot read the source index of $mirror $suite; set BPFFS_DEBIAN_MIRROR to a reachable Debian mirror"
	fi
	if ! (cd "$src" && apt-get "${opts[@]}" -q source --download-only libpcap tcpdump) >"$apt/source.log" 2>&1; then
		tail_log "$apt/source.log"
		die "apt-get source libpcap tcpdump failed"
	fi
	# Debian's own patches are left out on purpose: they are packaging for
	# Linux (shared library soname, pcap-config) and for the kFreeBSD and
	# Hurd ports, and kfreebsd.diff adds an unconditional
	# #include <sys/kern/time.h> to pcap-bpf.c, the very file built here,
	# which exists only on kFreeBSD.  What remains is upstream's release.
	local dsc
	for dsc in "$src"/libpcap_*.dsc "$src"/tcpdump_*.dsc; do
		[ -f "$dsc" ] || die "apt-get source left no $(basename "$dsc")"
		if ! (cd "$src" && dpkg-source --skip-patches -x "$(basename "$dsc")") >>"$apt/source.log" 2>&1; then
			tail_log "$apt/source.log"
			die "dpkg-source -x $(basename "$dsc") failed"
		fi
	done
	(cd "$src" && ls libpcap_*.dsc tcpdump_*.dsc | sed 's/\.dsc$//') >"$src/versions"
	rm -f "$src"/*.tar.* "$src"/*.asc
	touch "$src/.complete"
	rm -rf "$apt"
	trap - EXIT
}

# build_variant NAME DIR [PATCH] builds libpcap, tcpdump and the test
# programs into DIR.
build_variant() {
	local name=$1 dir=$2 patch=${3:-}
	local src=$cache/src pcapsrc tcpdumpsrc
	pcapsrc=$(basename "$(ls -d "$src"/libpcap-*/ | head -n 1)")
	tcpdumpsrc=$(basename "$(ls -d "$src"/tcpdump-*/ | head -n 1)")
	local tmp=$dir.tmp log=$dir.tmp/build.log
	rm -rf "$tmp"
	mkdir -p "$tmp/bin"
	cp -a "$src/$pcapsrc" "$src/$tcpdumpsrc" "$tmp/"
	: >"$log"
	say "building $name: $pcapsrc${patch:+ + $(basename "$patch")}, $tcpdumpsrc (log: $dir/build.log)"
	if [ -n "$patch" ] && ! (cd "$tmp/$pcapsrc" && patch -p1 <"$patch") >>"$log" 2>&1; then
		tail_log "$log"
		die "$(basename "$patch") does not apply to $pcapsrc"
	fi
	# libpcap's Makefile ignores CPPFLAGS, so the include path goes in
	# CFLAGS.  The Linux-only capture modules are switched off; the
	# netfilter one cannot be in 1.10.
	if ! (cd "$tmp/$pcapsrc" &&
		./configure --with-pcap=bpf --disable-shared --disable-usb --disable-netmap \
			--disable-bluetooth --disable-dbus --disable-rdma --without-dpdk \
			CFLAGS="-O2 -g -Wall -I$include" &&
		make -j"$jobs") >>"$log" 2>&1; then
		tail_log "$log"
		die "building $pcapsrc ($name) failed"
	fi
	# tcpdump's configure finds ../libpcap-X.Y.Z and links its libpcap.a.
	if ! (cd "$tmp/$tcpdumpsrc" &&
		./configure --without-crypto --without-smi --without-cap-ng CFLAGS="-O2 -g" &&
		make -j"$jobs") >>"$log" 2>&1; then
		tail_log "$log"
		die "building $tcpdumpsrc ($name) failed"
	fi
	cp "$tmp/$tcpdumpsrc/tcpdump" "$tmp/bin/tcpdump"
	local prog
	for prog in inject pcapdrop; do
		if ! gcc -O2 -g -Wall -Werror -I"$tmp/$pcapsrc" -o "$tmp/bin/$prog" "$here/$prog.c" \
			"$tmp/$pcapsrc/libpcap.a" >>"$log" 2>&1; then
			tail_log "$log"
			die "building $prog.c ($name) failed"
		fi
	done
	# Check that the variant is what it claims to be.
	local version
	version=$("$tmp/bin/tcpdump" --version 2>&1 | grep '^libpcap version' || true)
	case "$name:$version" in
	buffered:*zerocopy*) die "the buffered tcpdump reports zero-copy: $version" ;;
	zerocopy:*zerocopy*) ;;
	zerocopy:*) die "the patched tcpdump lacks zero-copy: $version" ;;
	esac
	case "$version" in
	"libpcap version ${pcapsrc#libpcap-}"*) ;;
	*) die "tcpdump ($name) is not linked with the libpcap just built: '$version'" ;;
	esac
	if grep -q 'pcap-bpf\.c:[0-9]*:[0-9]*: warning' "$log"; then
		grep 'pcap-bpf\.c:[0-9]*:[0-9]*: warning' "$log" >&2
		die "pcap-bpf.c ($name) compiles with warnings against bpffs's headers"
	fi
	rm -rf "$dir"
	mv "$tmp" "$dir"
	say "$name: $version"
}

main() {
	need_tools
	mkdir -p "$cache"
	# One run at a time: test runs of several packages (or people) share
	# the cache, and a run removes builds keyed differently from its own.
	exec 9>"$cache/.lock"
	flock 9
	fetch_sources
	local key
	key=$(cat "$cache/src/versions" "$include/net/bpf.h" "$include/net/dlt.h" "$include/machine/atomic.h" \
		"$patchfile" "$here/inject.c" "$here/pcapdrop.c" "$here/run.sh" | sha256sum | cut -c1-16)
	local build=$cache/build-$key
	local old
	for old in "$cache"/build-*; do
		[ -d "$old" ] && [ "$old" != "$build" ] && rm -rf "$old"
	done
	mkdir -p "$build"
	[ -f "$build/buffered/.complete" ] || { build_variant buffered "$build/buffered" && touch "$build/buffered/.complete"; }
	[ -f "$build/zerocopy/.complete" ] || { build_variant zerocopy "$build/zerocopy" "$patchfile" && touch "$build/zerocopy/.complete"; }
	echo "VERSIONS=$(tr '\n' ' ' <"$cache/src/versions" | sed 's/ $//')"
	echo "BUFFERED_DIR=$build/buffered"
	echo "ZEROCOPY_DIR=$build/zerocopy"
}

main "$@"
