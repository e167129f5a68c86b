// SPDX-License-Identifier: GPL-2.0

//! A model of the kernel's `kstrtou16`/`kstrtouint`/`kstrtoull` with base 0 (`lib/kstrtox.c`),
//! which parse every write to rnvme's numeric module parameters: the fuzzer's
//! `module-params` target and the in-kernel parameter campaigns
//! (`hardening/module-parameters-*`, which hold the kernel to it) use it.

/// The number the kernel's parser makes of `s`, if any (`None`: `EINVAL`, or `ERANGE`
/// beyond 64 bits): an optional `+`, then `0x`/`0X` and hex digits, a leading `0` and
/// octal digits, or decimal digits, then at most one newline.
pub fn parse(s: &[u8]) -> Option<u64> {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let (radix, digits) = if let Some(h) = s.strip_prefix(b"0x").or_else(|| s.strip_prefix(b"0X")) {
        (16, h)
    } else if s.len() > 1 && s[0] == b'0' {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let text = std::str::from_utf8(digits).ok()?;
    if text.is_empty() || !text.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(text, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn bases_signs_and_newlines() {
        assert_eq!(parse(b"4096\n"), Some(4096));
        assert_eq!(parse(b"+0x10"), Some(16));
        assert_eq!(parse(b"010"), Some(8));
        assert_eq!(parse(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"\n",
            b"0x",
            b"08",
            b"-1",
            b"1\n\n",
            b" 1",
            b"++1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse(b"18446744073709551616"), None);
    }
}
