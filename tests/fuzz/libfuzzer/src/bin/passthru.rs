// SPDX-License-Identifier: GPL-2.0

//! libFuzzer binary of the `passthru` target (`rnvme_fuzz::targets::passthru`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rnvme_fuzz::targets::passthru(data));
