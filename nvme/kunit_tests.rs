// SPDX-License-Identifier: GPL-2.0

//! In-kernel KUnit tests of the driver's pure NVMe logic, compiled by the kernel's rustc with
//! the kernel's flags (the host runs the same logic through `cargo test`).

use crate::{
    driver::{PCI_CLASS_STORAGE_EXPRESS, PCI_TABLE},
    spec::regs::{doorbell_offset, Cap, Cc, Doorbell, Vs, CC_SHN_NORMAL},
};

crate::kapi::kunit::kunit_tests!(rnvme_spec, {
    fn cap_fields_decode() {
        let cap = Cap(0x0040_0820_0f01_07ff);
        assert_eq!(cap.max_queue_entries(), 2048);
        assert!(cap.cqr());
        assert_eq!(cap.timeout_ms(), 7500);
        assert_eq!(cap.doorbell_stride(), 4);
        assert_eq!(cap.css(), 0x41);
        assert!(cap.supports_nvm());
        assert_eq!(cap.min_page_size(), 4096);
        assert_eq!(Cap(0xf_0000_0000).doorbell_stride(), 4 << 15);
    }

    fn cc_encodes_enable_and_shutdown() {
        let cc = Cc::default().set_en(true).set_iosqes(6).set_iocqes(4);
        assert_eq!(cc.0, 0x0046_0001);
        assert_eq!(cc.set_shn(CC_SHN_NORMAL).0, 0x0046_4001);
    }

    fn version_and_doorbells() {
        let vs = Vs(0x0001_0400);
        assert_eq!((vs.mjr(), vs.mnr(), vs.ter()), (1, 4, 0));
        assert_eq!(doorbell_offset(0, Doorbell::SqTail, 4), Some(0x1000));
        assert_eq!(
            doorbell_offset(2, Doorbell::CqHead, 8),
            Some(0x1000 + 5 * 8)
        );
    }

    fn driver_matches_the_nvme_class() {
        assert_eq!(PCI_CLASS_STORAGE_EXPRESS, 0x01_08_02);
        assert!(PCI_TABLE.matches_class(0x01_08_02));
        assert!(!PCI_TABLE.matches_class(0x01_06_01));
    }
});
