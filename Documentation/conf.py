# SPDX-License-Identifier: GPL-2.0
#
# Sphinx configuration of rnvme's Documentation/ (kernel-style reStructuredText).
# `cargo xtask lint` builds it with `sphinx-build -W`: any warning fails the lint.

project = "rnvme"
author = "rnvme developers"
root_doc = "index"
# The ABI file is plain text in the kernel's ABI format, not reStructuredText.
exclude_patterns = ["ABI"]
html_theme = "alabaster"
