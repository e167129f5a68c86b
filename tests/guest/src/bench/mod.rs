// SPDX-License-Identifier: GPL-2.0

//! Benchmarks run inside the VM (`cargo xtask bench <name>`), each comparing rnvme with
//! the stock kernel in the same boot.

mod insns;
mod io;
mod migrate;
mod migrate_many;
mod migrate_vm;
mod provision;
mod staged_fio;

use crate::harness::Env;

/// The benchmarks this runner knows.
pub const KNOWN: &[&str] = &[
    "io",
    "insns",
    "provision",
    "migrate",
    "migrate-vm",
    "migrate-many",
];

/// Runs benchmark `name`.
pub fn run(env: &Env, name: &str) -> Result<(), String> {
    match name {
        "io" => io::run(env),
        "insns" => insns::run(env),
        "provision" => provision::run(env),
        "migrate" => migrate::run(env),
        "migrate-vm" => migrate_vm::run(env),
        "migrate-many" => migrate_many::run(env),
        other => Err(format!(
            "unknown benchmark {other:?} (known: {})",
            KNOWN.join(", ")
        )),
    }
}

/// Mean and relative spread ((max - min) / mean) of `v`.
pub fn mean_spread(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (min, max) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let spread = if mean > 0.0 { (max - min) / mean } else { 0.0 };
    (mean, spread)
}

/// The median of `v` (0 for none).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_spread() {
        let (m, s) = mean_spread(&[90.0, 100.0, 110.0]);
        assert!((m - 100.0).abs() < 1e-9);
        assert!((s - 0.2).abs() < 1e-9);
        assert_eq!(mean_spread(&[]), (0.0, 0.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
