//! The shutdown check of `cargo xtask test`: the guest's last test leaves rnvme bound to
//! the PF and writes its address to `shutdown-expected` in the run directory; the guest
//! then reboots through the kernel (`reboot -f`), which calls every driver's PCI
//! `shutdown` callback. rnvme's logs `rnvme <BDF>: shut down (CSTS 0x..)`. The check
//! passes only if that line comes after the guest's exit marker with CSTS.SHST reading
//! "shutdown complete" (10b). Pure.

use crate::results::{Outcome, TestResult};
use crate::vm::EXIT_MARKER;

/// The result's name.
pub const NAME: &str = "lifecycle/shutdown-at-reboot";

/// The file the guest test writes, holding the PF's address.
pub const EXPECTED_FILE: &str = "shutdown-expected";

/// CSTS.SHST (bits 3:2) of a controller whose shutdown completed.
const SHST_COMPLETE: u32 = 0b10;

/// Judges the serial log `lines` for the PF `bdf`.
pub fn check<S: AsRef<str>>(lines: &[S], bdf: &str) -> TestResult {
    let fail = |why: String| TestResult {
        name: NAME.to_string(),
        outcome: Outcome::Fail(why),
    };
    let Some(exit) = lines.iter().rposition(|l| l.as_ref().contains(EXIT_MARKER)) else {
        return fail("the guest printed no exit marker".into());
    };
    let needle = format!("rnvme {bdf}: shut down (CSTS ");
    let Some(rest) = lines[exit..].iter().find_map(|l| {
        let l = l.as_ref();
        l.find(&needle).map(|i| l[i + needle.len()..].to_string())
    }) else {
        return fail(format!(
            "no \"{needle}...)\" line after the exit marker: the reboot did not shut the controller down"
        ));
    };
    let hex = rest.split(')').next().unwrap_or_default();
    let Ok(csts) = u32::from_str_radix(hex.trim_start_matches("0x"), 16) else {
        return fail(format!("cannot read CSTS from {rest:?}"));
    };
    if (csts >> 2) & 0b11 != SHST_COMPLETE {
        return fail(format!(
            "CSTS {csts:#x} after the shutdown: SHST is not \"complete\""
        ));
    }
    TestResult {
        name: NAME.to_string(),
        outcome: Outcome::Pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BDF: &str = "0000:01:00.0";

    #[test]
    fn passes_only_with_a_complete_shutdown_after_the_marker() {
        let ok = [
            "PASS x",
            "RNVME-EXIT: 0",
            "[  9.1] rnvme 0000:01:00.0: shut down (CSTS 0x8)",
        ];
        assert_eq!(check(&ok, BDF).outcome, Outcome::Pass);
        // Before the marker only: not the reboot's.
        let early = ["rnvme 0000:01:00.0: shut down (CSTS 0x8)", "RNVME-EXIT: 0"];
        assert!(matches!(check(&early, BDF).outcome, Outcome::Fail(_)));
        // Shutdown still in progress (SHST 01b) or not started.
        for csts in ["0x5", "0x1", "0x0"] {
            let l = [
                "RNVME-EXIT: 0".to_string(),
                format!("rnvme {BDF}: shut down (CSTS {csts})"),
            ];
            assert!(matches!(check(&l, BDF).outcome, Outcome::Fail(_)), "{csts}");
        }
        // Another function's line does not count.
        let other = ["RNVME-EXIT: 0", "rnvme 0000:01:00.1: shut down (CSTS 0x8)"];
        assert!(matches!(check(&other, BDF).outcome, Outcome::Fail(_)));
        assert!(matches!(check(&["x"], BDF).outcome, Outcome::Fail(_)));
    }
}
