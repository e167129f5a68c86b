// SPDX-License-Identifier: GPL-2.0

//! libFuzzer binary of the `sysfs-words` target (`rnvme_fuzz::targets::sysfs_words`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rnvme_fuzz::targets::sysfs_words(data));
