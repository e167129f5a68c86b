// SPDX-License-Identifier: GPL-2.0

//! The hardening campaigns (group `hardening`, `Documentation/testing.rst`): faults
//! (resets, removal, cancelled and killed migrations) and hostile input (sysfs attributes,
//! module parameters, ioctls, the migration data fd, fuzzed migration streams), each in a
//! file `hardening_*.rs` of its own. This file has what they share: the table of hostile
//! values and the campaign counter that prints the line the documentation quotes,
//! `# <campaign>: N inputs tried, N errors returned, N crashes`.

use crate::{
    harness::{ensure, Test},
    kmsg,
    tests::{
        hardening_cancel, hardening_corpus, hardening_datafd, hardening_ioctls, hardening_params,
        hardening_removal, hardening_reset, hardening_sysfs, vfio_qemu::problems,
    },
};

/// The hardening tests, in run order.
pub fn tests() -> Vec<Test> {
    let mut v = Vec::new();
    v.extend(hardening_sysfs::tests());
    v.extend(hardening_params::tests());
    v.extend(hardening_ioctls::tests());
    v.extend(hardening_datafd::tests());
    v.extend(hardening_reset::tests());
    v.extend(hardening_cancel::tests());
    v.extend(hardening_corpus::tests());
    v.extend(hardening_removal::tests());
    v
}

/// One campaign's counts: inputs tried and errors returned, and the kernel log since it
/// started, in which a problem report (oops, warning, BUG) counts as a crash.
pub(crate) struct Campaign {
    name: &'static str,
    mark: u64,
    /// Inputs tried.
    pub(crate) tried: u32,
    /// Inputs that got an error back.
    pub(crate) errors: u32,
}

impl Campaign {
    /// Starts counting campaign `name` (from the kernel log's current end).
    pub(crate) fn start(name: &'static str) -> Result<Self, String> {
        Ok(Self {
            name,
            mark: kmsg::mark()?,
            tried: 0,
            errors: 0,
        })
    }

    /// Where in the kernel log the campaign started.
    pub(crate) fn mark(&self) -> u64 {
        self.mark
    }

    /// Counts one input and whether it got an error.
    pub(crate) fn count<T, E>(&mut self, r: &Result<T, E>) {
        self.tried += 1;
        self.errors += u32::from(r.is_err());
    }

    /// Prints the campaign's line and fails if the kernel reported a problem meanwhile.
    pub(crate) fn finish(&self) -> Result<(), String> {
        let log = kmsg::since(self.mark)?;
        let crashes = problems(&log);
        println!(
            "# {}: {} inputs tried, {} errors returned, {} crashes",
            self.name,
            self.tried,
            self.errors,
            crashes.len()
        );
        ensure(crashes.is_empty(), || {
            format!("{}: the kernel reported {crashes:?}", self.name)
        })
    }
}

/// A hostile value: what it is (for messages) and its bytes.
pub(crate) type Hostile = (String, Vec<u8>);

/// Values no attribute or parameter of the driver takes: empty, a lone newline, numbers
/// out of every range, negative numbers, a page of junk and more than a page, bytes that are
/// not UTF-8, embedded NULs, prefixes of valid words, valid words with trailing garbage.
/// `valid` are the attribute's own words (their prefixes and garbage-suffixed forms are
/// added).
pub(crate) fn hostile_values(valid: &[&str]) -> Vec<Hostile> {
    let mut v: Vec<Hostile> = [
        ("empty", Vec::new()),
        ("a newline", b"\n".to_vec()),
        ("a NUL", b"\0".to_vec()),
        ("spaces", b"   ".to_vec()),
        ("2^64", b"18446744073709551616".to_vec()),
        (
            "a 40-digit number",
            b"9999999999999999999999999999999999999999".to_vec(),
        ),
        ("65536", b"65536".to_vec()),
        ("-1", b"-1".to_vec()),
        ("-4096", b"-4096".to_vec()),
        ("0x", b"0x".to_vec()),
        ("4 KiB of junk", junk(4096)),
        ("8 KiB of junk", junk(8192)),
        ("invalid UTF-8", vec![0xff, 0xfe, 0x80, 0xc3]),
        ("UTF-8 non-ASCII", "vfío ñvme €".as_bytes().to_vec()),
        ("control bytes", vec![0x1b, b'[', b'2', b'J', 0x07]),
    ]
    .into_iter()
    .map(|(n, b)| (n.to_string(), b))
    .collect();
    for w in valid {
        let b = w.as_bytes();
        v.push((format!("{w} prefix"), b[..b.len() - 1].to_vec()));
        v.push((format!("{w} upper case"), w.to_uppercase().into_bytes()));
        v.push((format!("leading space {w}"), [b" ", b].concat()));
        v.push((format!("{w}+NUL"), [b, b"\0"].concat()));
        v.push((format!("{w}+NUL+garbage"), [b, b"\0garbage"].concat()));
        v.push((format!("{w}+space"), [b, b" "].concat()));
        v.push((format!("{w}+tab"), [b, b"\t"].concat()));
        v.push((format!("{w}+two newlines"), [b, b"\n\n"].concat()));
        v.push((format!("{w}+newline+garbage"), [b, b"\nx"].concat()));
        v.push((format!("{w}+garbage"), [b, b"garbage"].concat()));
        v.push((format!("{w} twice"), [b, b" ", b].concat()));
        v.push((format!("{w}+0xff"), [b, &[0xff][..]].concat()));
    }
    // A word's variants may spell another valid word ("2" upper case): not hostile.
    v.retain(|(_, b)| !valid.iter().any(|w| b == w.as_bytes()));
    v
}

/// `n` bytes of junk (letters and digits: no whitespace or quotes, which would split a
/// module's load-time options).
fn junk(n: usize) -> Vec<u8> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..n).map(|i| CHARS[i * 7 % CHARS.len()]).collect()
}

/// Writes `bytes` to `path` with exactly one write(2); returns its errno if it failed. A
/// short write is reported as `EIO` (sysfs never writes short).
pub(crate) fn write_once(path: &std::path::Path, bytes: &[u8]) -> Result<(), i32> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.raw_os_error().unwrap_or(0))?;
    match f.write(bytes) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(_) => Err(libc::EIO),
        Err(e) => Err(e.raw_os_error().unwrap_or(0)),
    }
}
