// SPDX-License-Identifier: GPL-2.0

//! libFuzzer binary of the `module-params` target (`rnvme_fuzz::targets::module_params`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rnvme_fuzz::targets::module_params(data));
