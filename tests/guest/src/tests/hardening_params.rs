// SPDX-License-Identifier: GPL-2.0

//! Every module parameter (`kapi/glue/helpers.c`, `kapi/glue/nvme_class.c`) against the
//! table of hostile values, written at run time through `/sys/module/rnvme/parameters` and
//! given at load time to insmod. At run time a refused value changes nothing (read back);
//! the writable parameters take exactly what the kernel's parser (`kstrtou16` /
//! `kstrtouint`, base 0, one trailing newline) and the driver's range take, and a value
//! with an embedded NUL is what precedes the NUL (the kernel hands `set` a C string). At
//! load time every hostile value fails the load with a message naming the parameter, and
//! nothing stays loaded. Afterwards the defaults are in place and the PF's disk and a VF
//! work.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt, path::PathBuf, process::Command};

use crate::fixture::with_loaded;
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    sriov::{list_secondary, set_numvfs},
    tests::hardening::{hostile_values, write_once, Campaign},
};

/// The parameter campaigns.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "hardening/module-parameters-at-run-time",
            groups: &["hardening"],
            run: at_run_time,
        },
        Test {
            name: "hardening/module-parameters-at-load-time",
            groups: &["hardening"],
            run: at_load_time,
        },
    ]
}

/// A parameter: its name, its valid words (for the table), its default as read back, and
/// the largest number it takes, with the number it refuses below that (`vf_queues=1`).
struct Param {
    name: &'static str,
    words: &'static [&'static str],
    default: &'static str,
    /// `None`: not a number (`nvme_class`, read-only once loaded).
    range: Option<(u64, u64, Option<u64>)>,
    /// Only powers of two in the range are taken (`cdq_entries`).
    powers_of_two: bool,
}

const PARAMS: &[Param] = &[
    Param {
        name: "vf_queues",
        words: &["0", "2", "4096"],
        default: "0",
        range: Some((0, 4096, Some(1))),
        powers_of_two: false,
    },
    Param {
        name: "vf_vectors",
        words: &["0", "1", "2048"],
        default: "0",
        range: Some((0, 2048, None)),
        powers_of_two: false,
    },
    Param {
        name: "poll_queues",
        words: &["0", "8"],
        default: "0",
        range: Some((0, 8, None)),
        powers_of_two: false,
    },
    Param {
        name: "sgls",
        words: &["0", "1"],
        default: "1",
        range: Some((0, 1, None)),
        powers_of_two: false,
    },
    Param {
        name: "nvme_class",
        words: &["off", "on", "auto"],
        default: "off",
        range: None,
        powers_of_two: false,
    },
    Param {
        name: "cdq_entries",
        words: &["4", "4096", "65536"],
        default: "4096",
        range: Some((4, 65536, None)),
        powers_of_two: true,
    },
];

fn param_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/sys/module/{RNVME}/parameters/{name}"))
}

/// What a run-time write of `bytes` to numeric parameter `p` must do: `Ok(Some(v))` the
/// parameter becomes `v`, `Ok(None)` nothing happens (an empty write), `Err(errnos)`
/// refused with one of them.
fn expected(p: &Param, bytes: &[u8]) -> Result<Option<u64>, &'static [i32]> {
    let (min, max, hole) = p.range.expect("a numeric parameter");
    if bytes.is_empty() {
        return Ok(None);
    }
    // sysfs passes the first page of a longer write on.
    let bytes = &bytes[..bytes.len().min(4096)];
    let c_string = bytes.split(|b| *b == 0).next().unwrap_or_default();
    // u16 parameters overflow at 65536 (ERANGE); the driver's range is EINVAL.
    let width = if matches!(p.name, "poll_queues" | "sgls" | "cdq_entries") {
        u64::from(u32::MAX)
    } else {
        u64::from(u16::MAX)
    };
    // The kernel's parser, as modelled for the fuzzer's module-params target.
    match rnvme_fuzz::kstrto::parse(c_string) {
        Some(v)
            if v >= min
                && v <= max
                && Some(v) != hole
                && (!p.powers_of_two || v.is_power_of_two()) =>
        {
            Ok(Some(v))
        }
        Some(v) if v > width => Err(&[libc::ERANGE]),
        Some(_) => Err(&[libc::EINVAL]),
        None => Err(&[libc::EINVAL, libc::ERANGE]),
    }
}

fn read_param(name: &str) -> Result<String, String> {
    module::sysfs_read(&param_path(name))
}

fn at_run_time(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        let mut c = Campaign::start("module parameters at run time")?;
        let mut accepted = 0u32;
        for p in PARAMS {
            let path = param_path(p.name);
            let before = read_param(p.name)?;
            ensure(before == p.default, || {
                format!("{} is {before:?}, want {:?}", p.name, p.default)
            })?;
            for (what, bytes) in hostile_values(p.words) {
                let got = write_once(&path, &bytes);
                c.count(&got);
                let now = read_param(p.name)?;
                if p.range.is_none() {
                    // Read-only once loaded: not even opened for writing.
                    ensure(got == Err(libc::EACCES) && now == before, || {
                        format!("{what} > {}: got {got:?}, reads {now:?}", p.name)
                    })?;
                    continue;
                }
                match expected(p, &bytes) {
                    Ok(Some(v)) => {
                        accepted += 1;
                        ensure(got.is_ok() && now == v.to_string(), || {
                            format!("{what} > {}: got {got:?}, reads {now:?}, want {v}", p.name)
                        })?;
                        module::sysfs_write(&path, &before)?;
                    }
                    Ok(None) => ensure(got.is_ok() && now == before, || {
                        format!("{what} > {}: got {got:?}, reads {now:?}", p.name)
                    })?,
                    Err(errnos) => ensure(
                        got.is_err_and(|e| errnos.contains(&e)) && now == before,
                        || {
                            format!(
                                "{what} > {}: got {got:?}, want one of {errnos:?}; reads {now:?}, \
                                 was {before:?}",
                                p.name
                            )
                        },
                    )?,
                }
            }
            ensure(read_param(p.name)? == before, || {
                format!("{} changed during the campaign", p.name)
            })?;
        }
        c.finish()?;
        println!(
            "# of which {accepted} were valid numbers (a prefix such as 409, a number before a \
             NUL), taken as such"
        );
        // The driver works with what is left: the PF's disk, and a VF with the default split.
        let data = pattern(64 << 10, 0x9a7a);
        let mut d = Direct::open()?;
        d.write_at(8 << 20, &data)?;
        ensure(d.read_at(8 << 20, data.len())? == data, || {
            "the PF disk does not read back after the campaign".into()
        })?;
        drop(d);
        set_numvfs(pf, 1)?;
        let online = list_secondary()?.iter().filter(|s| s.online).count();
        set_numvfs(pf, 0)?;
        ensure(online == 1, || {
            format!("{online} secondary controllers online with 1 VF")
        })
    })
}

/// Whether `bytes` can be a load-time value that must fail: insmod's options are one
/// string split at whitespace, so a value with a NUL cannot be passed and one with
/// whitespace after a valid word is the word (`vf_queues=2 ` is `vf_queues=2`).
fn usable_at_load(bytes: &[u8]) -> bool {
    let ws = |b: &u8| b.is_ascii_whitespace();
    !bytes.contains(&0) && (!bytes.iter().any(ws) || bytes.iter().all(ws))
}

fn at_load_time(env: &Env) -> Result<Vec<Report>, String> {
    module::ensure_unloaded(RNVME)?;
    let mut c = Campaign::start("module parameters at load time")?;
    let mut skipped = 0u32;
    let mut accepted = 0u32;
    for p in PARAMS {
        for (what, bytes) in hostile_values(p.words) {
            if !usable_at_load(&bytes) {
                skipped += 1;
                continue;
            }
            let arg = [p.name.as_bytes(), b"=", &bytes].concat();
            let mark = kmsg::mark()?;
            let out = Command::new("insmod")
                .arg(&env.module)
                .arg(OsStr::from_bytes(&arg))
                .output()
                .map_err(|e| format!("insmod: {e}"))?;
            let loaded = module::is_loaded(RNVME);
            let shown = if loaded {
                read_param(p.name).ok()
            } else {
                None
            };
            if loaded {
                module::rmmod(RNVME)?;
            }
            let r = if out.status.success() {
                Ok(())
            } else {
                Err(())
            };
            c.count(&r);
            // A numeric parameter takes what its parser takes (`vf_queues=409`, a prefix);
            // an empty value is no value.
            let valid = match (p.range, bytes.is_empty()) {
                (Some(_), false) => expected(p, &bytes).ok().flatten(),
                _ => None,
            };
            if let Some(v) = valid {
                accepted += 1;
                ensure(r.is_ok() && shown == Some(v.to_string()), || {
                    format!(
                        "insmod with {}={what}: {r:?}, reads {shown:?}, want {v}",
                        p.name
                    )
                })?;
                continue;
            }
            ensure(r.is_err() && !loaded, || {
                format!("insmod with {}={what} loaded", p.name)
            })?;
            let log = kmsg::since(mark)?;
            ensure(
                log.iter().any(|l| {
                    l.starts_with("rnvme:")
                        && (l.contains(p.name) || l.contains("Unknown parameter"))
                }),
                || {
                    format!(
                        "insmod with {}={what}: no message naming it in {log:?}",
                        p.name
                    )
                },
            )?;
        }
    }
    c.finish()?;
    println!(
        "# of which {accepted} were valid numbers and loaded; {skipped} values with a NUL or \
         inner whitespace cannot be passed to insmod"
    );
    // A plain load has the defaults and works.
    with_loaded(env, |_pf| {
        for p in PARAMS {
            let v = read_param(p.name)?;
            ensure(v == p.default, || {
                format!(
                    "{} is {v:?} after the campaign, want {:?}",
                    p.name, p.default
                )
            })?;
        }
        let data = pattern(4096, 0x10ad);
        let mut d = Direct::open()?;
        d.write_at(0, &data)?;
        ensure(d.read_at(0, 4096)? == data, || {
            "the PF disk does not read back after the load-time campaign".into()
        })
    })
}
