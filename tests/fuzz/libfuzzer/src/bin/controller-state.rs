// SPDX-License-Identifier: GPL-2.0

//! libFuzzer binary of the `controller-state` target (`rnvme_fuzz::targets::controller_state`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rnvme_fuzz::targets::controller_state(data));
