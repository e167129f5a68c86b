#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Generates the rnvme module's own Rust bindings (kapi/generated/sys.rs).
#
#   gen-bindings.sh <kernel objtree> <header> <output>
#
# Runs from the kernel objtree (as Kbuild does). It reuses the exact bindgen
# command the kernel used for rust/bindings/bindings_generated.rs, read back
# from its saved command (.bindings_generated.rs.cmd): the same bindgen binary,
# libclang flags, GCC-flag filter, rust/bindgen_parameters and .config, hence
# the same layouts. Only the input, the output, the dependency-file flag and
# the allowlists differ.
#
# Every type that the kernel's `bindings` crate already defines completely is
# blocklisted: the generated file is included below `use kernel::bindings::*`,
# so those names resolve to the kernel's own types and both crates share one
# nominal Rust type per C type. Types the kernel only has as opaque forward
# declarations (e.g. `struct pci_dev`) are generated here in full.

set -eu

objtree=$1
header=$2
out=$3

cmdfile=$objtree/rust/bindings/.bindings_generated.rs.cmd
kernel_rs=$objtree/rust/bindings/bindings_generated.rs

if [ ! -r "$cmdfile" ] || [ ! -r "$kernel_rs" ]; then
	echo "gen-bindings.sh: $cmdfile or $kernel_rs is missing:" >&2
	echo "  the kernel must be built with CONFIG_RUST=y before this module" >&2
	exit 1
fi

saved=$(sed -n 's/^savedcmd_rust\/bindings\/bindings_generated.rs := //p' "$cmdfile")
# Drop the trailing `; sed ...` post-processing step and unescape make's `$$`.
saved=${saved%%; sed *}
saved=$(printf '%s' "$saved" | sed 's/\$\$/$/g')

# Split into "bindgen <input> <bindgen flags> -o <output> -- <clang flags>".
bindgen_part=${saved%% -- *}
clang_part=${saved#* -- }
bindgen_part=${bindgen_part% -o *}

eval "set -- $bindgen_part"
bindgen_bin=$1
shift 2 # the binary and the kernel's input header
bindgen_flags_file=$(mktemp)
clang_flags_file=$(mktemp)
blocklist_file=${out%/*}/blocklist.txt
trap 'rm -f "$bindgen_flags_file" "$clang_flags_file"' EXIT

for arg in "$@"; do
	printf '%s\n' "$arg"
done >"$bindgen_flags_file"

eval "set -- $clang_part"
for arg in "$@"; do
	case $arg in
	-Wp,-MMD,* | -Wp,-MD,*) ;;
	*) printf '%s\n' "$arg" ;;
	esac
done >"$clang_flags_file"

# Names of types the kernel's bindings define completely. Opaque forward
# declarations (`pub struct x { _unused: [u8; 0] }`) and bindgen's own
# helper/anonymous type names are left out.
awk '
	/^pub (struct|union) [A-Za-z0-9_]+ \{$/ {
		name = $3; getline nxt
		if (nxt ~ /_unused: \[u8; 0\]/) next
		print name; next
	}
	/^pub (type|enum) [A-Za-z0-9_]+/ { name = $3; sub(/[^A-Za-z0-9_].*/, "", name); print name }
	/^pub use self::[A-Za-z0-9_]+ as [A-Za-z0-9_]+;$/ { name = $5; sub(/;$/, "", name); print name }
' "$kernel_rs" |
	grep -Ev '^(_bindgen_ty_[0-9]+|__Bindgen.*|__IncompleteArrayField|__BindgenUnionField)$' |
	sort -u >"$blocklist_file"

# Build the argument list: flags from files, blocklist in chunks of 200 names.
set --
while IFS= read -r arg; do set -- "$@" "$arg"; done <"$bindgen_flags_file"

chunk=
n=0
while IFS= read -r name; do
	chunk=${chunk:+$chunk|}$name
	n=$((n + 1))
	if [ "$n" -eq 200 ]; then
		set -- "$@" --blocklist-type "^($chunk)\$"
		chunk=
		n=0
	fi
done <"$blocklist_file"
[ -n "$chunk" ] && set -- "$@" --blocklist-type "^($chunk)\$"

set -- "$@" \
	--allowlist-function 'rnvme_.*' \
	--allowlist-function 'pci_alloc_irq_vectors_affinity|pci_free_irq_vectors|pci_irq_vector|pci_msix_vec_count' \
	--allowlist-function '__pci_register_driver|pci_unregister_driver' \
	--allowlist-function 'pci_(enable_device_mem|disable_device|set_master|clear_master)' \
	--allowlist-function 'pci_(request_region|release_region|iomap|iounmap)' \
	--allowlist-function 'pci_(dev_get|dev_put|read_config_.*|write_config_.*|save_state|restore_state)' \
	--allowlist-function 'pci_(enable_sriov|disable_sriov|num_vf|iov_vf_id)' \
	--allowlist-function '_dev_printk' \
	--allowlist-function 'device_(create_file|remove_file|release_driver)|flush_delayed_fput' \
	--allowlist-type 'device_attribute' \
	--allowlist-function 'misc_register|misc_deregister' \
	--allowlist-type 'miscdevice|rnvme_miscdevice|rnvme_nvme_ctrl_ops' \
	--allowlist-function 'dma_pool_(create|destroy|alloc|free)|dma_opt_mapping_size' \
	--allowlist-type 'pci_driver|pci_device_id|pci_dev' \
	--allowlist-type 'nvme_.*' \
	--allowlist-var 'PCI_.*|NVME_.*|IORESOURCE_.*|MISC_DYNAMIC_MINOR|rnvme_.*' \
	-o "$out" --

while IFS= read -r arg; do set -- "$@" "$arg"; done <"$clang_flags_file"
set -- "$@" -I"${header%/*}"

"$bindgen_bin" "$header" "$@"
