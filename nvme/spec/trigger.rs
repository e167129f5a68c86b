// SPDX-License-Identifier: GPL-2.0

//! The input of the controller's action attributes (`reset_controller`,
//! `rescan_controller`): a write of `1` triggers the action.

/// Whether a write to an action attribute asks for the action: exactly `1`, optionally
/// followed by one newline (what `echo 1` writes). Anything else (`0`, `2`, words, spaces,
/// a second `1`, a bare newline, NUL bytes) is refused.
///
/// The C nvme driver ignores what is written; rnvme refuses anything but `1` so that a
/// script writing the wrong thing learns of it (`EINVAL`) instead of resetting a
/// controller by accident.
pub fn is_trigger(input: &[u8]) -> bool {
    matches!(input, b"1" | b"1\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_with_an_optional_newline_triggers() {
        assert!(is_trigger(b"1"));
        assert!(is_trigger(b"1\n"));
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            &b""[..],
            b"\n",
            b"0",
            b"0\n",
            b"2",
            b"yes",
            b"1 1",
            b"11",
            b"1\n\n",
            b" 1",
            b"1 ",
            b"1\0",
            b"1\r\n",
            b"01",
            b"+1",
            b"\xff",
            &[b'1'; 4096][..],
        ] {
            assert!(!is_trigger(bad), "{bad:?}");
        }
    }
}
