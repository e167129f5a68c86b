// SPDX-License-Identifier: GPL-2.0

//! A minimal writer of `newc` cpio archives (what the kernel unpacks as an initramfs,
//! `Documentation/driver-api/early-userspace/buffer-format.rst`): regular files,
//! directories and symlinks, owned by root.
//!
//! The nested guests of the migration tests boot from one: QEMU refuses to migrate a guest
//! that has a 9p export mounted, so their root cannot be the test VM's `/` over 9p.

/// An archive being built.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

impl Cpio {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry_dev(name, mode, data, (0, 0));
    }

    fn entry_dev(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, S_IFDIR | 0o755, &[]);
        self
    }

    /// A regular file with permissions `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(name, S_IFREG | perm, data);
        self
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, S_IFLNK | 0o777, target.as_bytes());
        self
    }

    /// A character device node (the kernel opens `dev/console` for init).
    pub fn chardev(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        self.entry_dev(name, S_IFCHR | 0o600, &[], (major, minor));
        self
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::new();
        c.dir("bin")
            .file("bin/x", 0o755, b"abc")
            .symlink("sh", "bin/x");
        let a = c.finish();
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        // The first header: inode 1, a directory, name "bin" (4 bytes with its NUL).
        let head = std::str::from_utf8(&a[..110]).unwrap();
        assert_eq!(&head[6..14], "00000001");
        assert_eq!(&head[14..22], "000041ed");
        assert_eq!(&head[94..102], "00000004");
        assert_eq!(&a[110..114], b"bin\0");
        let trailer = a.windows(10).position(|w| w == b"TRAILER!!!");
        assert!(trailer.is_some());
        // The file's data follows its (padded) header and name.
        let x = a.windows(6).position(|w| w == b"bin/x\0").unwrap();
        let data = (x + 6 + 3) & !3;
        assert_eq!(&a[data..data + 3], b"abc");
    }
}
