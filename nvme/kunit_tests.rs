// SPDX-License-Identifier: GPL-2.0

//! In-kernel KUnit tests of the driver's pure NVMe logic, compiled by the kernel's rustc with
//! the kernel's flags (the host runs the same logic through `cargo test`), and of the typed
//! registers over the kernel's MMIO accessors (`reg_io.rs`).

use crate::nvme::{
    driver::{PCI_CLASS_STORAGE_EXPRESS, PCI_TABLE},
    spec::{
        cid::{self, Generation},
        command::{cns, Command},
        completion::Completion,
        ctrl_regs::{doorbell_offset, Aqa, Cap, Cc, Csts, Doorbell, Vs, CC_SHN_NORMAL},
        queue::{CqCursor, QueueError, SqRing},
    },
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

    fn commands_encode_little_endian() {
        let c = Command::identify(cns::CONTROLLER, 0, 0x1_0000_2000).with_cid(9);
        let b = c.to_bytes();
        assert_eq!(b[0], 0x06);
        assert_eq!((b[2], b[3]), (9, 0));
        assert_eq!(&b[24..28], &[0x00, 0x20, 0x00, 0x00]);
        assert_eq!(&b[28..32], &[0x01, 0x00, 0x00, 0x00]);
        assert_eq!(b[40], cns::CONTROLLER);
        assert_eq!(Command::from_bytes(&b), c);
    }

    fn command_ids_carry_a_generation() {
        let g = Generation::default().next().next();
        assert_eq!(cid::encode(7, g), Some(0x2007));
        assert_eq!(cid::tag(0x2007), 7);
        assert_eq!(cid::generation(0x2007), g);
        assert_ne!(cid::generation(0x1007), g);
        assert_eq!(cid::encode(cid::MAX_TAGS as u16, g), None);
    }

    fn completion_phase_and_ring_arithmetic() {
        let cq = CqCursor::new(2);
        assert!(cq.is_ok());
        let Ok(mut cq) = cq else { return };
        assert!(cq.is_new(true));
        cq.advance();
        cq.advance();
        assert!(cq.is_new(false));
        let sq = SqRing::new(2);
        assert!(sq.is_ok());
        let Ok(mut sq) = sq else { return };
        assert_eq!(sq.push(), Ok(0));
        assert_eq!(sq.push(), Err(QueueError::Full));
        let cqe = Completion::from_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0x03, 0x80]);
        assert!(cqe.phase());
        assert_eq!(cqe.cid, 9);
        assert_eq!(cqe.sq_head, 1);
        assert!(cqe.status().dnr());
        assert!(!cqe.status().is_success());
    }

    fn driver_matches_the_nvme_class() {
        assert_eq!(PCI_CLASS_STORAGE_EXPRESS, 0x01_08_02);
        assert!(PCI_TABLE.matches_class(0x01_08_02));
        assert!(!PCI_TABLE.matches_class(0x01_06_01));
    }

    fn typed_registers_use_their_offsets() {
        crate::kapi::io::with_fake_io(|io| {
            Cc::default()
                .set_en(true)
                .set_iosqes(6)
                .set_iocqes(4)
                .write(io);
            assert_eq!(io.read32(0x14), 0x0046_0001);
            Aqa::default().set_asqs(31).set_acqs(15).write(io);
            assert_eq!(io.read32(0x24), 0x000f_001f);
            io.write32(0b1001, 0x1c);
            let csts = Csts::read(io);
            assert!(csts.rdy());
            assert_eq!(csts.shst(), 2);
            Cc::alter(io, |cc| cc.set_en(false));
            assert_eq!(io.read32(0x14), 0x0046_0000);
        });
    }
});
