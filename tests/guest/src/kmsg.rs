// SPDX-License-Identifier: GPL-2.0

//! Reading the kernel log from `/dev/kmsg`.

use std::{fs::OpenOptions, io::Read, os::unix::fs::OpenOptionsExt};

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (monotonic).
    pub seq: u64,
    /// When it was logged, in microseconds since boot.
    pub usec: u64,
    /// Message text without the record header.
    pub text: String,
}

/// Parses one `/dev/kmsg` record: `prio,seq,timestamp,flags[,...];text` followed by optional
/// continuation lines (` KEY=value`), which are dropped.
pub fn parse_record(raw: &str) -> Option<Record> {
    let first = raw.lines().next()?;
    let (header, text) = first.split_once(';')?;
    let mut fields = header.split(',');
    let seq = fields.nth(1)?.parse().ok()?;
    let usec = fields.next()?.parse().ok()?;
    Some(Record {
        seq,
        usec,
        text: text.to_string(),
    })
}

/// Returns every record currently in the kernel log buffer.
pub fn read_all() -> Result<Vec<Record>, String> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(|e| format!("open /dev/kmsg: {e}"))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16384];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(r) = parse_record(&String::from_utf8_lossy(&buf[..n])) {
                    out.push(r);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // A record overwritten while reading: continue with the next one.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(format!("read /dev/kmsg: {e}")),
        }
    }
    Ok(out)
}

/// The sequence number after the newest record: messages logged later have `seq >= mark`.
pub fn mark() -> Result<u64, String> {
    Ok(read_all()?.last().map_or(0, |r| r.seq + 1))
}

/// The texts of the records logged since `mark`.
pub fn since(mark: u64) -> Result<Vec<String>, String> {
    Ok(records_since(mark)?.into_iter().map(|r| r.text).collect())
}

/// How many records logged since `mark` contain `needle`.
pub fn count_since(mark: u64, needle: &str) -> Result<usize, String> {
    Ok(since(mark)?.iter().filter(|l| l.contains(needle)).count())
}

/// The records logged since `mark`.
pub fn records_since(mark: u64) -> Result<Vec<Record>, String> {
    Ok(read_all()?.into_iter().filter(|r| r.seq >= mark).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_drops_dict_lines() {
        let r = parse_record("6,1234,5678,-;rnvme 0000:01:00.0: unbound\n SUBSYSTEM=pci\n")
            .expect("record");
        assert_eq!(r.seq, 1234);
        assert_eq!(r.usec, 5678);
        assert_eq!(r.text, "rnvme 0000:01:00.0: unbound");
        assert!(parse_record("garbage").is_none());
    }
}
