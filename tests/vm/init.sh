#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the rnvme test VM (started by `cargo xtask vm|test|demo`).
#
# The root filesystem is the host's / over 9p, read-only. This script mounts
# the pseudo filesystems and tmpfs on /tmp /run /var/tmp /root, mounts the
# per-run directory (9p tag "rnvmerun", read-write) at the path given by
# rnvme_vm.run=DIR on the kernel command line, runs DIR/cmd.sh, records its exit
# code in DIR/exit-code and on the console ("RNVME-EXIT: <n>"), and reboots;
# QEMU runs with -no-reboot, so the VM exits.
#
# The host's /root entries (e.g. ~/.cache/rnvme with the kernel module
# tree, ~/.cargo) stay visible, read-only, through bind mounts on the tmpfs.
#
# /bin/sh is dash: POSIX sh only.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
TERM=dumb
export PATH HOME TERM

RUN=

# Every exec of a dynamically linked binary over 9p costs ~0.1 s under TCG:
# use the static busybox (package busybox-static) for the mount work.
if [ -x /bin/busybox ]; then
	mount() { /bin/busybox mount "$@"; }
	umount() { /bin/busybox umount "$@"; }
	mkdir() { /bin/busybox mkdir "$@"; }
fi

say() {
	echo "rnvme-init: $*"
}

reboot_now() {
	sync
	# A real reboot: the kernel shuts every device down (the drivers' PCI shutdown
	# callbacks; cargo xtask test checks rnvme's). sysrq-b, which skips that, is the
	# fallback.
	if [ -x /bin/busybox ]; then
		/bin/busybox reboot -f
		sleep 10
	fi
	echo b > /proc/sysrq-trigger
	# Not reached unless sysrq failed; PID 1 exiting panics, and panic=-1
	# reboots, which also ends QEMU.
	sleep 5
	exit 1
}

# Something went wrong before cmd.sh could run.
die() {
	say "FATAL: $*"
	if [ -n "$RUN" ] && [ -d "$RUN" ]; then
		echo 125 > "$RUN/exit-code" 2>/dev/null
	fi
	echo "RNVME-EXIT: 125"
	reboot_now
}

say "starting"

mount -t proc proc /proc || die "mount /proc failed"
read -r rel </proc/sys/kernel/osrelease
say "kernel $rel"
mount -t sysfs sysfs /sys || die "mount /sys failed"
# CONFIG_DEVTMPFS_MOUNT may have mounted it already.
case "$(while read -r _ mp fs _; do [ "$mp" = /dev ] && echo "$fs"; done </proc/mounts)" in
*devtmpfs*) ;;
*) mount -t devtmpfs devtmpfs /dev || die "mount /dev failed" ;;
esac
mkdir -p /dev/pts /dev/shm 2>/dev/null
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || say "warning: devpts failed"
mount -t tmpfs -o mode=1777 tmpfs /dev/shm 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

for d in /tmp /var/tmp; do
	mount -t tmpfs -o mode=1777 tmpfs "$d" || die "mount tmpfs on $d failed"
done
mount -t tmpfs -o mode=0755 tmpfs /run || die "mount tmpfs on /run failed"

# Writable /root that still shows the host's /root entries (read-only).
HOSTROOT=/run/.rnvme-hostroot
mkdir -p "$HOSTROOT" || die "mkdir $HOSTROOT failed"
mount --bind /root "$HOSTROOT" || die "bind /root failed"
mount -t tmpfs -o mode=0700 tmpfs /root || die "mount tmpfs on /root failed"
for e in "$HOSTROOT"/* "$HOSTROOT"/.[!.]* "$HOSTROOT"/..?*; do
	name=${e##*/}
	if [ -L "$e" ]; then
		ln -s "$(readlink "$e")" "/root/$name"
	elif [ -d "$e" ]; then
		mkdir "/root/$name" && mount --bind "$e" "/root/$name" ||
			say "warning: cannot bind /root/$name"
	elif [ -f "$e" ]; then
		: > "/root/$name" && mount --bind "$e" "/root/$name" ||
			say "warning: cannot bind /root/$name"
	fi
done
umount -l "$HOSTROOT" 2>/dev/null

read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case "$arg" in
	rnvme_vm.run=*) RUN=${arg#rnvme_vm.run=} ;;
	esac
done
[ -n "$RUN" ] || die "no rnvme_vm.run=DIR on the kernel command line"
[ -d "$RUN" ] || mkdir -p "$RUN" || die "run dir $RUN does not exist"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 rnvmerun "$RUN" ||
	die "mounting the run dir (9p tag rnvmerun) on $RUN failed"
[ -f "$RUN/cmd.sh" ] || die "$RUN/cmd.sh is missing"

echo rnvme-vm >/proc/sys/kernel/hostname 2>/dev/null
cd / || die "cd / failed"

say "running $RUN/cmd.sh"
/bin/sh "$RUN/cmd.sh" </dev/null >/dev/console 2>&1
rc=$?

echo "$rc" > "$RUN/exit-code" || say "warning: cannot write $RUN/exit-code"
echo "RNVME-EXIT: $rc"
reboot_now
