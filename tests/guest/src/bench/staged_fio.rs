// SPDX-License-Identifier: GPL-2.0

//! fio staged on tmpfs and pinned to one vCPU, for benchmark samples.
//!
//! Run from the guest's 9p root, fio makes about 1200 9p requests a second (measured with
//! its null engine: 4965 in a 4 s run against 357 idle, 734 from tmpfs), and QEMU serves
//! every one in its main loop under the lock that the NVMe model and the IOMMU's
//! invalidations need too. The copy on tmpfs (binary, libraries and loader) leaves the
//! NVMe model alone with the drivers under test. Pinning takes the scheduler's choice of
//! vCPU out of the samples: vCPU 0 also takes the 9p and console interrupts, and samples of
//! one driver on it measured as much as 35 % below those on vCPU 1.

use std::{fs, path::PathBuf};

use crate::module;

/// The vCPU every sample runs on.
const SAMPLE_CPU: &str = "1";

/// A copy of fio and everything it loads, in a tmpfs directory.
pub struct StagedFio {
    dir: PathBuf,
    loader: PathBuf,
}

/// The files `ldd` lists: libraries (`name => path`) and the loader (a bare path).
/// Returns the loader and the libraries; `None` if the output names no loader.
pub fn parse_ldd(out: &str) -> Option<(String, Vec<String>)> {
    let mut loader = None;
    let mut libs = Vec::new();
    for line in out.lines() {
        let line = line.trim();
        if let Some((_, rest)) = line.split_once("=>") {
            if let Some(path) = rest
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                libs.push(path.to_string());
            }
        } else if let Some(path) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            loader = Some(path.to_string());
        }
    }
    loader.map(|l| (l, libs))
}

impl StagedFio {
    /// Copies fio, its libraries and its loader into `/tmp` (tmpfs in the VM).
    pub fn stage() -> Result<Self, String> {
        let fio = module::run("sh", &["-c", "command -v fio"])?
            .trim()
            .to_string();
        let ldd = module::run("ldd", &[&fio])?;
        let (loader, libs) =
            parse_ldd(&ldd).ok_or_else(|| format!("ldd {fio} names no loader: {ldd}"))?;
        let dir = PathBuf::from("/tmp/rnvme-bench-fio");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let copy = |from: &str| -> Result<PathBuf, String> {
            let name = from.rsplit('/').next().unwrap_or(from);
            let to = dir.join(name);
            fs::copy(from, &to).map_err(|e| format!("copy {from} to {}: {e}", to.display()))?;
            Ok(to)
        };
        copy(&fio)?;
        for lib in &libs {
            copy(lib)?;
        }
        let loader = copy(&loader)?;
        Ok(Self { dir, loader })
    }

    /// Runs fio with `args` on the sample vCPU; returns its standard output.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let loader = self.loader.to_string_lossy();
        let dir = self.dir.to_string_lossy();
        let fio = self.dir.join("fio");
        let fio = fio.to_string_lossy();
        let mut argv = vec![
            "-c",
            SAMPLE_CPU,
            loader.as_ref(),
            "--library-path",
            dir.as_ref(),
            fio.as_ref(),
        ];
        argv.extend_from_slice(args);
        module::run("taskset", &argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_loader_and_the_libraries() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd5b1f2000)\n\
                   \tlibaio.so.1 => /lib/x86_64-linux-gnu/libaio.so.1 (0x00007f0c)\n\
                   \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f0d)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f0e)\n";
        let (loader, libs) = parse_ldd(out).unwrap();
        assert_eq!(loader, "/lib64/ld-linux-x86-64.so.2");
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libaio.so.1",
                "/lib/x86_64-linux-gnu/libz.so.1"
            ]
        );
        assert!(parse_ldd("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n").is_none());
        // A library ldd could not find is not copied.
        let (_, libs) = parse_ldd("\tlibx.so => not found\n\t/lib64/ld.so (0x1)\n").unwrap();
        assert!(libs.is_empty());
    }
}
