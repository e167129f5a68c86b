// SPDX-License-Identifier: GPL-2.0

//! libFuzzer binary of the `compat` target (`rnvme_fuzz::targets::compat`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rnvme_fuzz::targets::compat(data));
