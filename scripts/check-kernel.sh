#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Checks that a kernel build tree can build and run rnvme.ko:
#
#   check-kernel.sh <kernel build tree> <rustc> <bindgen>
#
# Required (exit 1 with the reason if missing): a configured build tree built with
# CONFIG_RUST=y (its saved bindgen command and generated bindings), the rustc it was
# built with, bindgen, and the options the module's code needs. Recommended options
# (VFIO mode needs an IOMMU with interrupt remapping; the iommufd path needs IOMMUFD) only
# warn.

set -u
kdir=$1
rustc=$2
bindgen=$3
config=$kdir/.config
fail=0

err() { echo "rnvme: $*" >&2; fail=1; }
warn() { echo "rnvme: warning: $*" >&2; }

if [ ! -r "$config" ]; then
	echo "rnvme: $kdir is not a configured kernel build tree (no .config); set KDIR" >&2
	exit 1
fi

opt() { sed -n "s/^$1=//p" "$config"; }

need_y() {
	[ "$(opt "$1")" = y ] || err "$1=y is required (the kernel has '$(opt "$1")')"
}
need_ym() {
	case $(opt "$1") in
	y | m) ;;
	*) err "$1=y or =m is required (the kernel has '$(opt "$1")')" ;;
	esac
}
want() {
	case $(opt "$1") in
	y | m) ;;
	*) warn "$1 is not set: $2" ;;
	esac
}

need_y CONFIG_RUST
need_y CONFIG_MODULES
need_y CONFIG_PCI
need_y CONFIG_PCI_MSI
need_y CONFIG_BLOCK
need_y CONFIG_BLK_DEV
need_ym CONFIG_VFIO
need_ym CONFIG_VFIO_PCI_CORE
want CONFIG_PCI_IOV "no SR-IOV: VFs can neither be enabled nor switched to vfio mode"
want CONFIG_IOMMU_SUPPORT "no IOMMU: VFs cannot go to vfio mode (no IOMMU group of their own)"
want CONFIG_IRQ_REMAP "no interrupt remapping: VFIO refuses containers without vfio_iommu_type1.allow_unsafe_interrupts"
want CONFIG_IOMMUFD "no iommufd: only the legacy VFIO group path"
want CONFIG_VFIO_DEVICE_CDEV "no VFIO device cdevs (/dev/vfio/devices)"

saved=$kdir/rust/bindings/.bindings_generated.rs.cmd
[ -r "$saved" ] && [ -r "$kdir/rust/bindings/bindings_generated.rs" ] ||
	err "$kdir has no Rust bindings (rust/bindings/): build the kernel itself first, with CONFIG_RUST=y; a headers-only tree is not enough"

if ! command -v "$rustc" >/dev/null 2>&1; then
	err "rustc '$rustc' not found: set RUSTC to the rustc the kernel was built with"
else
	have=$("$rustc" --version 2>/dev/null)
	built=$(opt CONFIG_RUSTC_VERSION_TEXT | tr -d '"')
	[ -z "$built" ] || [ "$have" = "$built" ] ||
		err "RUSTC is '$have' but the kernel was built with '$built' (Rust modules need the same compiler)"
fi
command -v "$bindgen" >/dev/null 2>&1 ||
	err "bindgen '$bindgen' not found: set BINDGEN (the kernel's own, bindgen-cli 0.65 or newer)"

if [ $fail -ne 0 ]; then
	echo "rnvme: $kdir cannot build rnvme.ko (see above)" >&2
	exit 1
fi
echo "rnvme: $kdir: ok ($(opt CONFIG_RUSTC_VERSION_TEXT | tr -d '"'))"
