# SPDX-License-Identifier: GPL-2.0
#
# Builds rnvme.ko out of tree against a Rust-enabled kernel build tree.
#
#   make [KDIR=<kernel build tree>] [RUSTC=<the kernel's rustc>] [BINDGEN=<bindgen>]
#   make install          # modules_install into /lib/modules/<release>/updates, depmod
#   make check            # what the kernel build tree has and lacks
#   make clean
#
# KDIR must be a kernel *build* tree configured and built with CONFIG_RUST=y (the module
# reruns the kernel's own bindgen command, saved there), not only its headers. RUSTC and
# BINDGEN must be the ones that kernel was built with. Kbuild itself reads `Kbuild`; this
# file only drives it. `cargo xtask` builds through this file too.

KDIR ?= /lib/modules/$(shell uname -r)/build
RUSTC ?= rustc
BINDGEN ?= bindgen
INSTALL_MOD_DIR ?= updates

KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) RUSTC=$(RUSTC) HOSTRUSTC=$(RUSTC) BINDGEN=$(BINDGEN)

.PHONY: all modules check install modules_install clean help

all: modules

modules: check
	$(KMAKE) modules

check:
	@$(CURDIR)/scripts/check-kernel.sh "$(KDIR)" "$(RUSTC)" "$(BINDGEN)"

install modules_install: modules
	$(KMAKE) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) modules_install

clean:
	$(KMAKE) clean

help:
	@sed -n '3,15p' $(CURDIR)/Makefile
