// SPDX-License-Identifier: GPL-2.0

//! Malformed controller states are refused and change nothing.

use super::*;

/// A change made to a copy of a state.
type Mutation<'a> = &'a dyn Fn(&mut State);

/// A small deterministic generator for the random states.
pub(super) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Malformed states: truncated at every dword, wrong versions, queue counts beyond the
/// VF's resources, duplicate and missing queue IDs, bad addresses, sizes, heads, vectors,
/// registers and vendor fields, random bytes. Each is refused with its status, the target
/// keeps its state, and QEMU keeps answering.
pub(super) fn malformed_state(env: &Env) -> Result<Vec<Report>, String> {
    with_pair(env, |pf, [_id1, id2], vfs| {
        let mut clients = Client::open_many(&[&vfs[0].bdf, &vfs[1].bdf], Path::Container)?;
        let mut c2 = clients.pop().ok_or("no client for VF 2")?;
        let lba = c2.lba_size(NSID)?;
        c2.create_io_queue()?;
        c2.write_page(NSID, 0, lba, &pattern(4096, 7))?;
        ensure(pf.suspend(id2)? == 0, || "Suspend VF 2 failed".into())?;
        let good = pf.get_state(id2)?;
        let base = State::parse(&good)?;
        ensure(base.sqs.len() == 1 && base.cqs.len() == 1, || {
            format!("{} SQs, {} CQs", base.sqs.len(), base.cqs.len())
        })?;
        let before = without_clock(&good);

        let mut cases: Vec<(String, Vec<u8>, u16)> = Vec::new();
        // Truncated at every dword boundary (the header's sizes then do not add up).
        for len in (4..good.len()).step_by(4) {
            cases.push((
                format!("truncated to {len} bytes"),
                good[..len].to_vec(),
                SC_INVALID_FIELD,
            ));
        }
        let mut add = |what: &str, want: u16, f: &dyn Fn(&mut State)| {
            let mut s = base.clone();
            f(&mut s);
            cases.push((what.to_string(), s.build(), want));
        };
        // Versions and the vendor section's identity.
        add("vendor magic", SC_INVALID_FIELD, &|s| {
            put32(&mut s.vendor, vs::MAGIC, 0x4d4c_4e53)
        });
        add("vendor version 2", SC_INVALID_FIELD, &|s| {
            put16(&mut s.vendor, vs::VER, 2)
        });
        add("vendor length field", SC_INVALID_FIELD, &|s| {
            put32(&mut s.vendor, vs::LEN, 204)
        });
        add("vendor section cut short", SC_INVALID_FIELD, &|s| {
            s.vendor.truncate(vs::FIXED - 4);
            s.fix_vendor_len();
        });
        add("no vendor section", SC_INVALID_FIELD, &|s| s.vendor.clear());
        // Queue counts and IDs.
        add("3 I/O SQs for 2 queues", SC_INVALID_FIELD, &|s| {
            let mut e = s.sqs[0];
            for qid in [2u16, 3] {
                put16(&mut e, 10, qid);
                s.sqs.push(e);
            }
        });
        add("3 I/O CQs for 2 queues", SC_INVALID_FIELD, &|s| {
            let mut e = s.cqs[0];
            for qid in [2u16, 3] {
                put16(&mut e, 10, qid);
                s.cqs.push(e);
            }
        });
        add("duplicate SQ ID", SC_INVALID_QID, &|s| {
            let e = s.sqs[0];
            s.sqs.push(e);
        });
        add("duplicate CQ ID", SC_INVALID_QID, &|s| {
            let e = s.cqs[0];
            s.cqs.push(e);
        });
        add("SQ ID 0", SC_INVALID_QID, &|s| put16(&mut s.sqs[0], 10, 0));
        add("SQ ID beyond the resources", SC_INVALID_QID, &|s| {
            put16(&mut s.sqs[0], 10, 3)
        });
        add("CQ ID 0", SC_INVALID_QID, &|s| put16(&mut s.cqs[0], 10, 0));
        add("SQ naming a missing CQ", SC_INVALID_CQID, &|s| {
            put16(&mut s.sqs[0], 12, 2)
        });
        add("SQ naming CQ 0", SC_INVALID_CQID, &|s| {
            put16(&mut s.sqs[0], 12, 0)
        });
        // Addresses.
        add("SQ PRP1 unaligned", SC_INVALID_PRP_OFFSET, &|s| {
            let p = le64(&s.sqs[0], 0);
            put64(&mut s.sqs[0], 0, p | 0x200);
        });
        add("CQ PRP1 unaligned", SC_INVALID_PRP_OFFSET, &|s| {
            let p = le64(&s.cqs[0], 0);
            put64(&mut s.cqs[0], 0, p | 0x4);
        });
        add("admin SQ unaligned", SC_INVALID_FIELD, &|s| {
            let p = le64(&s.vendor, vs::ASQ);
            put64(&mut s.vendor, vs::ASQ, p + 8);
        });
        // Sizes (QSIZE is 0's based: 0 is one entry) and positions.
        add("SQ of one entry", SC_QSIZE, &|s| put16(&mut s.sqs[0], 8, 0));
        add("CQ of one entry", SC_QSIZE, &|s| put16(&mut s.cqs[0], 8, 0));
        add("SQ beyond MQES", SC_QSIZE, &|s| {
            put16(&mut s.sqs[0], 8, 0x800)
        });
        add("CQ of 65536 entries", SC_QSIZE, &|s| {
            put16(&mut s.cqs[0], 8, 0xffff)
        });
        add("SQ head = size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.sqs[0], 16, QDEPTH)
        });
        add("SQ tail = size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.sqs[0], 18, QDEPTH)
        });
        add("CQ head = size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.cqs[0], 12, QDEPTH)
        });
        add("CQ tail beyond size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.cqs[0], 14, 999)
        });
        add("admin SQ head = size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.vendor, vs::ASQ_HEAD, QDEPTH)
        });
        // Attributes and vectors (a VF has 2 vectors).
        add("CQ vector 2", SC_INVALID_VECTOR, &|s| {
            let a = le32(&s.cqs[0], 16);
            put32(&mut s.cqs[0], 16, a & 0xffff | 2 << 16);
        });
        add("CQ not contiguous", SC_INVALID_FIELD, &|s| {
            let a = le32(&s.cqs[0], 16);
            put32(&mut s.cqs[0], 16, a & !1);
        });
        add("SQ not contiguous", SC_INVALID_FIELD, &|s| {
            put16(&mut s.sqs[0], 14, 0)
        });
        add("SQ reserved attribute", SC_INVALID_FIELD, &|s| {
            put16(&mut s.sqs[0], 14, 0x11)
        });
        add("SQ reserved bytes", SC_INVALID_FIELD, &|s| s.sqs[0][22] = 1);
        // Registers.
        add("CC.EN 0 with queues", SC_INVALID_FIELD, &|s| {
            let cc = le32(&s.vendor, vs::CC);
            put32(&mut s.vendor, vs::CC, cc & !1);
            put32(&mut s.vendor, vs::CSTS, 0);
        });
        add("CSTS.RDY 0 with CC.EN 1", SC_INVALID_FIELD, &|s| {
            put32(&mut s.vendor, vs::CSTS, 0)
        });
        add("CSTS.RDY 1 with CC.EN 0", SC_INVALID_FIELD, &|s| {
            let cc = le32(&s.vendor, vs::CC);
            put32(&mut s.vendor, vs::CC, cc & !1);
        });
        add("no admin queue, with queues", SC_INVALID_FIELD, &|s| {
            s.vendor[vs::FLAGS] |= 4;
            put32(&mut s.vendor, vs::CSTS, 2);
        });
        add("CC.MPS 15", SC_INVALID_FIELD, &|s| {
            let cc = le32(&s.vendor, vs::CC);
            put32(&mut s.vendor, vs::CC, cc | 0xf << 7);
        });
        add("AQA of one entry", SC_INVALID_FIELD, &|s| {
            let aqa = le32(&s.vendor, vs::AQA);
            put32(&mut s.vendor, vs::AQA, aqa & !0xfff);
        });
        // Features, namespaces, asynchronous events, pending completions.
        add("another Number of Queues", SC_INVALID_FIELD, &|s| {
            put32(&mut s.vendor, vs::FEAT_NQ, 0x0003_0003)
        });
        add("namespace 1 attached", SC_INVALID_FIELD, &|s| {
            s.vendor[vs::ATTACHED] |= 1
        });
        add("5 outstanding AERs", SC_INVALID_FIELD, &|s| {
            put16(&mut s.vendor, vs::NAER, 5);
            for cid in 1..=5u16 {
                s.vendor.extend_from_slice(&u32::from(cid).to_le_bytes());
            }
            s.fix_vendor_len();
        });
        add("pending completion for SQ 2", SC_INVALID_QID, &|s| {
            put16(&mut s.vendor, vs::NPEND, 1);
            let mut e = [0u8; 16];
            put16(&mut e, 0, 2);
            s.vendor.extend_from_slice(&e);
            s.fix_vendor_len();
        });
        add(
            "more pending completions than SQ entries",
            SC_INVALID_FIELD,
            &|s| {
                let n = QDEPTH + 1;
                put16(&mut s.vendor, vs::NPEND, n);
                for cid in 0..n {
                    let mut e = [0u8; 16];
                    put16(&mut e, 0, 1);
                    put16(&mut e, 2, cid);
                    s.vendor.extend_from_slice(&e);
                }
                s.fix_vendor_len();
            },
        );
        // Header fields (built by hand: `build` writes a valid header).
        let mut hdr_case = |what: &str, f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            cases.push((what.to_string(), b, SC_INVALID_FIELD));
        };
        hdr_case("header version 1", &|b| put16(b, 0, 1));
        hdr_case("header not suspended", &|b| b[2] = 0);
        hdr_case("header reserved byte", &|b| b[10] = 1);
        hdr_case("NVMECSS beyond 32 bits", &|b| b[24] = 1);
        hdr_case("NVMECSS one dword more", &|b| {
            let n = le32(b, 16);
            put32(b, 16, n + 1);
            let v = le32(b, 32);
            put32(b, 32, v - 1);
        });
        hdr_case("NVMECS version 1", &|b| put16(b, 48, 1));
        hdr_case("NVMECS reserved", &|b| put16(b, 54, 1));
        // Random bytes (seeded): whole states, and valid headers over random bodies.
        let mut rng = Rng(0x5eed_1159);
        for i in 0..16 {
            let len = 4 * (1 + (rng.next() % 200) as usize);
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if i % 2 == 1 && len >= 104 {
                b[..56].fill(0);
                b[2] = 1;
                put32(&mut b, 16, 2);
                put32(&mut b, 32, ((len - 56) / 4) as u32);
            }
            cases.push((format!("random state {i} ({len} bytes)"), b, 0));
        }

        let mut refused = 0;
        for (what, state, want) in &cases {
            let got = pf.set_entire(id2, state)?;
            // want 0: any error will do (random bytes).
            ensure(got != 0 && (*want == 0 || got == *want), || {
                format!(
                    "{what}: status {got:#x}, want {:#x}",
                    if *want == 0 { 0xffff } else { *want }
                )
            })?;
            ensure(without_clock(&pf.get_state(id2)?) == before, || {
                format!("{what}: the refused state changed VF 2")
            })?;
            pf.alive().map_err(|e| format!("{what}: {e}"))?;
            refused += 1;
        }
        ensure(refused > 100, || {
            format!("only {refused} malformed states tried")
        })?;

        // What a host can make a controller hold, however odd, Get returns and Set takes:
        // CC bits the model does not interpret (a reserved bit, AMS, an unsupported CSS,
        // other entry sizes), queues and doorbell buffers at IOVA 0, Host Behavior
        // Support's reserved bytes, two AERs with one command ID. Each is accepted and
        // reported back; the next Set replaces it.
        let odd: [(&str, Mutation); 8] = [
            ("CC reserved bit", &|s| {
                let cc = le32(&s.vendor, vs::CC);
                put32(&mut s.vendor, vs::CC, cc | 1 << 30);
            }),
            ("CC.AMS 1", &|s| {
                let cc = le32(&s.vendor, vs::CC);
                put32(&mut s.vendor, vs::CC, cc | 1 << 11);
            }),
            ("CC.CSS 1 and IOSQES 0", &|s| {
                let cc = le32(&s.vendor, vs::CC);
                put32(&mut s.vendor, vs::CC, (cc & !(7 << 4 | 0xf << 16)) | 1 << 4);
            }),
            ("SQ PRP1 zero", &|s| put64(&mut s.sqs[0], 0, 0)),
            ("CQ PRP1 zero", &|s| put64(&mut s.cqs[0], 0, 0)),
            ("admin CQ at 0", &|s| put64(&mut s.vendor, vs::ACQ, 0)),
            ("Host Behavior Support reserved byte", &|s| {
                s.vendor[vs::FEAT_HBS + 3] = 0x5a
            }),
            ("one AER command ID twice", &|s| {
                put16(&mut s.vendor, vs::NAER, 2);
                s.vendor.extend_from_slice(&9u32.to_le_bytes());
                s.vendor.extend_from_slice(&9u32.to_le_bytes());
                s.fix_vendor_len();
            }),
        ];
        for (what, f) in odd {
            let mut s = base.clone();
            f(&mut s);
            let state = s.build();
            let st = pf.set_entire(id2, &state)?;
            ensure(st == 0, || format!("{what}: status {st:#x}, want 0"))?;
            ensure(
                without_clock(&pf.get_state(id2)?) == without_clock(&state),
                || format!("{what}: Get returns another state than was set"),
            )?;
        }

        // The unchanged state is accepted, and VF 2 runs on.
        let st = pf.set_entire(id2, &good)?;
        ensure(st == 0, || format!("the valid state: status {st:#x}"))?;
        ensure(pf.resume(id2)? == 0, || "Resume VF 2 failed".into())?;
        ensure(c2.read_page(NSID, 0, lba)? == pattern(4096, 7), || {
            "VF 2 reads other data after the campaign".into()
        })
    })
}
