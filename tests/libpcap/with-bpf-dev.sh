#!/usr/bin/env bash
# with-bpf-dev.sh LINKDIR COMMAND [ARG...]
#
# Runs COMMAND where /dev/bpf, /dev/bpf0 ... are the bpffs nodes, without
# touching the machine's /dev.  libpcap opens those paths and no other, so
# a libpcap program needs them; `bpffs -link /dev` makes them for the whole
# machine, this makes them for one command.
#
# LINKDIR is a directory holding the bpf, bpfN symlinks into the bpffs mount
# (what `bpffs -link LINKDIR` creates).  In a private mount namespace (so
# nothing is visible outside it, and it vanishes with the command), /dev
# becomes a read-only overlay of LINKDIR on top of /dev: every node of /dev
# is still there, plus the symlinks.  Overlay layers do not include the
# mounts below /dev, so /dev/pts, /dev/shm and /dev/mqueue are bound back
# in.  COMMAND is exec'd, so it keeps this script's process id.
set -euo pipefail

if [ $# -lt 2 ]; then
	echo "usage: with-bpf-dev.sh LINKDIR COMMAND [ARG...]" >&2
	exit 2
fi

if [ "${BPFFS_WITH_BPF_DEV_INNER:-}" != 1 ]; then
	exec env BPFFS_WITH_BPF_DEV_INNER=1 unshare --mount --propagation private -- bash "$0" "$@"
fi
unset BPFFS_WITH_BPF_DEV_INNER

links=$(cd "$1" && pwd)
shift
[ -L "$links/bpf" ] || {
	echo "with-bpf-dev.sh: $links/bpf is not a symlink (start bpffs with -link $links)" >&2
	exit 2
}

# fd 3 keeps the original /dev reachable after the overlay hides it; mount
# must not canonicalize /proc/self/fd/3/..., which would lead back to /dev.
exec 3</dev
mount -t overlay bpffs-dev -o "lowerdir=$links:/dev" /dev
for sub in pts shm mqueue; do
	if mountpoint -q "/proc/self/fd/3/$sub" && [ -d "/dev/$sub" ]; then
		mount --no-canonicalize --bind "/proc/self/fd/3/$sub" "/dev/$sub"
	fi
done
exec 3<&-
exec "$@"
