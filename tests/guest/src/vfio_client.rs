// SPDX-License-Identifier: GPL-2.0

//! A userspace NVMe driver over VFIO, as a VMM would reach a VF in vfio mode: rust-vmm's
//! `vfio-ioctls` opens the device through the legacy container and group path and maps DMA
//! memory; BAR0 is mmapped from the device file; the controller is then driven with
//! polling (no interrupts): enable, Identify, one I/O queue pair, reads and writes.

use std::{
    fs,
    os::fd::RawFd,
    path::Path,
    ptr::NonNull,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use vfio_ioctls::{VfioContainer, VfioDevice};

/// IOVA of the client's DMA memory.
const IOVA: u64 = 0x1000_0000;
/// Its size: seven pages (queues, Identify buffer, two data buffers).
const DMA_BYTES: usize = 7 * 4096;
/// Queue entries of both queue pairs.
const QDEPTH: u16 = 16;
/// How long the controller may take to become ready or complete a command.
const TIMEOUT: Duration = Duration::from_secs(10);

// Offsets in the DMA memory.
const ASQ: usize = 0;
const ACQ: usize = 0x1000;
const IDBUF: usize = 0x2000;
const IOSQ: usize = 0x3000;
const IOCQ: usize = 0x4000;
/// Data buffer of writes and reads (one page).
const DATA: usize = 0x5000;

/// Anonymous memory mapped for DMA; unmapped on drop.
struct DmaMemory {
    ptr: NonNull<u8>,
}

impl DmaMemory {
    fn new() -> Result<Self, String> {
        // SAFETY: an anonymous private mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                DMA_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "mmap DMA memory: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self {
            ptr: NonNull::new(p.cast()).ok_or("mmap returned null")?,
        })
    }

    fn slice(&mut self, off: usize, len: usize) -> &mut [u8] {
        assert!(off + len <= DMA_BYTES);
        // SAFETY: in bounds of the mapping, which lives as long as `self`; the device
        // writes it only while a command the client waits for is outstanding.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(off), len) }
    }
}

impl Drop for DmaMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), DMA_BYTES) };
    }
}

/// BAR0 mmapped from the VFIO device file.
struct Bar0 {
    ptr: NonNull<u8>,
    len: usize,
}

impl Bar0 {
    fn read32(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.len);
        // SAFETY: an aligned register inside the mapping.
        unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(off).cast::<u32>()) }
    }

    fn read64(&self, off: usize) -> u64 {
        u64::from(self.read32(off)) | (u64::from(self.read32(off + 4)) << 32)
    }

    fn write32(&self, off: usize, v: u32) {
        assert!(off + 4 <= self.len);
        // SAFETY: an aligned register inside the mapping.
        unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(off).cast::<u32>(), v) }
    }

    fn write64(&self, off: usize, v: u64) {
        self.write32(off, v as u32);
        self.write32(off + 4, (v >> 32) as u32);
    }
}

impl Drop for Bar0 {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the BAR mapping.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The file descriptor `vfio-ioctls` holds for the device (it does not expose it): the one
/// `anon_inode:[vfio-device]` among this process's descriptors opened last.
fn device_fd() -> Result<RawFd, String> {
    let mut best = None;
    for e in fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))? {
        let e = e.map_err(|e| e.to_string())?;
        let Ok(target) = fs::read_link(e.path()) else {
            continue;
        };
        if target.to_string_lossy() == "anon_inode:[vfio-device]" {
            let fd: RawFd = e
                .file_name()
                .to_string_lossy()
                .parse()
                .map_err(|_| "fd name")?;
            best = best.max(Some(fd));
        }
    }
    best.ok_or_else(|| "no vfio device descriptor".to_string())
}

/// A queue pair driven by polling.
struct Queue {
    sq: usize,
    cq: usize,
    qid: u16,
    tail: u16,
    head: u16,
    phase: bool,
    cid: u16,
}

/// An NVMe controller driven through VFIO.
pub struct Client {
    bar: Bar0,
    mem: DmaMemory,
    container: Arc<VfioContainer>,
    _device: VfioDevice,
    dstrd: u32,
    admin: Queue,
    io: Option<Queue>,
}

/// What Identify Controller reported.
#[derive(Debug)]
pub struct CtrlId {
    pub serial: String,
    pub model: String,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end().to_string()
}

impl Client {
    /// Opens the VF at `bdf` (in vfio mode) through the legacy VFIO container, maps BAR0
    /// and the DMA memory, and enables the controller with an admin queue pair.
    pub fn open(bdf: &str) -> Result<Self, String> {
        let container =
            Arc::new(VfioContainer::new(None).map_err(|e| format!("VFIO container: {e}"))?);
        let sysfs = Path::new("/sys/bus/pci/devices").join(bdf);
        let device = VfioDevice::new(&sysfs, container.clone())
            .map_err(|e| format!("VFIO device {bdf}: {e}"))?;
        // Memory space and bus mastering on, as a VMM's guest would set them (config space
        // region 7, the command register at offset 4).
        let mut cmd = [0u8; 2];
        device.region_read(7, &mut cmd, 4);
        let cmd = u16::from_le_bytes(cmd) | 0x6;
        device.region_write(7, &cmd.to_le_bytes(), 4);
        let fd = device_fd()?;
        let len = device.get_region_size(0) as usize;
        let offset = device.get_region_offset(0);
        if len < 0x2000 {
            return Err(format!("BAR0 of {bdf} is {len} bytes"));
        }
        // SAFETY: maps the BAR0 region of the device file, as VFIO documents.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap BAR0: {}", std::io::Error::last_os_error()));
        }
        let bar = Bar0 {
            ptr: NonNull::new(p.cast()).ok_or("BAR0 mmap returned null")?,
            len,
        };
        let mem = DmaMemory::new()?;
        container
            .vfio_dma_map(IOVA, DMA_BYTES as u64, mem.ptr.as_ptr() as u64)
            .map_err(|e| format!("VFIO DMA map: {e}"))?;
        let cap = bar.read64(0);
        let mut c = Self {
            bar,
            mem,
            container,
            _device: device,
            dstrd: ((cap >> 32) & 0xf) as u32,
            admin: Queue {
                sq: ASQ,
                cq: ACQ,
                qid: 0,
                tail: 0,
                head: 0,
                phase: true,
                cid: 0,
            },
            io: None,
        };
        c.enable()?;
        Ok(c)
    }

    /// VS, as read through the mapped BAR.
    pub fn version(&self) -> u32 {
        self.bar.read32(8)
    }

    fn wait_ready(&self, ready: bool) -> Result<(), String> {
        let start = Instant::now();
        while (self.bar.read32(0x1c) & 1 == 1) != ready {
            if start.elapsed() > TIMEOUT {
                return Err(format!("CSTS.RDY did not become {ready}"));
            }
            thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn enable(&mut self) -> Result<(), String> {
        self.bar.write32(0x14, 0);
        self.wait_ready(false)?;
        let depth = u32::from(QDEPTH - 1);
        self.bar.write32(0x24, depth << 16 | depth);
        self.bar.write64(0x28, IOVA + ASQ as u64);
        self.bar.write64(0x30, IOVA + ACQ as u64);
        // IOCQES 16 bytes, IOSQES 64 bytes, 4 KiB pages, NVM command set, enable.
        self.bar.write32(0x14, 4 << 20 | 6 << 16 | 1);
        self.wait_ready(true)
    }

    fn doorbell(&self, qid: u16, cq: bool) -> usize {
        0x1000 + (2 * usize::from(qid) + usize::from(cq)) * (4 << self.dstrd)
    }

    /// Submits `sqe` (its command ID is set here) on the admin or the I/O queue and waits
    /// for its completion; returns the status field.
    fn submit(&mut self, io: bool, mut sqe: [u32; 16]) -> Result<u16, String> {
        let q = if io {
            self.io.as_mut().ok_or("no I/O queue")?
        } else {
            &mut self.admin
        };
        q.cid = q.cid.wrapping_add(1);
        sqe[0] = sqe[0] & 0xffff | u32::from(q.cid) << 16;
        let at = q.sq + usize::from(q.tail) * 64;
        let bytes: Vec<u8> = sqe.iter().flat_map(|d| d.to_le_bytes()).collect();
        // SAFETY-free: `slice` checks bounds.
        let sq = self.mem.slice(at, 64);
        sq.copy_from_slice(&bytes);
        q.tail = (q.tail + 1) % QDEPTH;
        let (qid, tail, cqoff) = (q.qid, q.tail, q.cq);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let sqdb = self.doorbell(qid, false);
        self.bar.write32(sqdb, u32::from(tail));

        let start = Instant::now();
        loop {
            let q = if io {
                self.io.as_mut().ok_or("no I/O queue")?
            } else {
                &mut self.admin
            };
            let cqe = self.mem.slice(cqoff + usize::from(q.head) * 16, 16);
            let dw3 = u32::from_le_bytes([cqe[12], cqe[13], cqe[14], cqe[15]]);
            if (dw3 >> 16 & 1 == 1) == q.phase {
                let status = (dw3 >> 17) as u16;
                let cid = dw3 as u16;
                q.head = (q.head + 1) % QDEPTH;
                if q.head == 0 {
                    q.phase = !q.phase;
                }
                let (head, expected) = (q.head, q.cid);
                let cqdb = self.doorbell(qid, true);
                self.bar.write32(cqdb, u32::from(head));
                if cid != expected {
                    return Err(format!("completion for command {cid}, expected {expected}"));
                }
                return Ok(status);
            }
            if start.elapsed() > TIMEOUT {
                return Err(format!("queue {qid}: no completion"));
            }
            thread::sleep(Duration::from_micros(200));
        }
    }

    fn admin(&mut self, sqe: [u32; 16], what: &str) -> Result<(), String> {
        match self.submit(false, sqe)? {
            0 => Ok(()),
            s => Err(format!("{what}: status {s:#x}")),
        }
    }

    fn sqe(opcode: u8, nsid: u32, prp1: u64, cdw10: u32, cdw11: u32, cdw12: u32) -> [u32; 16] {
        let mut s = [0u32; 16];
        s[0] = u32::from(opcode);
        s[1] = nsid;
        s[6] = prp1 as u32;
        s[7] = (prp1 >> 32) as u32;
        s[10] = cdw10;
        s[11] = cdw11;
        s[12] = cdw12;
        s
    }

    /// Identify Controller.
    pub fn identify(&mut self) -> Result<CtrlId, String> {
        self.admin(Self::sqe(0x06, 0, IOVA + IDBUF as u64, 1, 0, 0), "Identify")?;
        let id = self.mem.slice(IDBUF, 4096);
        Ok(CtrlId {
            serial: text(&id[4..24]),
            model: text(&id[24..64]),
        })
    }

    /// The LBA size of namespace `nsid` in bytes (Identify Namespace).
    pub fn lba_size(&mut self, nsid: u32) -> Result<usize, String> {
        self.admin(
            Self::sqe(0x06, nsid, IOVA + IDBUF as u64, 0, 0, 0),
            "Identify Namespace",
        )?;
        let id = self.mem.slice(IDBUF, 4096);
        let fmt = usize::from(id[26] & 0xf);
        let lbads = id[128 + 4 * fmt + 2];
        if !(9..=12).contains(&lbads) {
            return Err(format!("namespace {nsid}: LBA data size 2^{lbads}"));
        }
        Ok(1 << lbads)
    }

    /// Creates I/O completion and submission queue 1.
    pub fn create_io_queue(&mut self) -> Result<(), String> {
        let size = u32::from(QDEPTH - 1) << 16 | 1;
        // Physically contiguous, interrupts off: the client polls.
        self.admin(
            Self::sqe(0x05, 0, IOVA + IOCQ as u64, size, 1, 0),
            "Create I/O CQ",
        )?;
        self.admin(
            Self::sqe(0x01, 0, IOVA + IOSQ as u64, size, 1 << 16 | 1, 0),
            "Create I/O SQ",
        )?;
        self.io = Some(Queue {
            sq: IOSQ,
            cq: IOCQ,
            qid: 1,
            tail: 0,
            head: 0,
            phase: true,
            cid: 0,
        });
        Ok(())
    }

    fn rw(&mut self, opcode: u8, nsid: u32, offset: u64, lba: usize) -> Result<(), String> {
        let slba = offset / lba as u64;
        let nlb = (4096 / lba - 1) as u32;
        let sqe = Self::sqe(
            opcode,
            nsid,
            IOVA + DATA as u64,
            slba as u32,
            (slba >> 32) as u32,
            nlb,
        );
        match self.submit(true, sqe)? {
            0 => Ok(()),
            s => Err(format!("I/O opcode {opcode:#x} at {offset}: status {s:#x}")),
        }
    }

    /// Writes one page at byte `offset` of namespace `nsid` (LBA size `lba`).
    pub fn write_page(
        &mut self,
        nsid: u32,
        offset: u64,
        lba: usize,
        data: &[u8],
    ) -> Result<(), String> {
        self.mem.slice(DATA, 4096).copy_from_slice(data);
        self.rw(0x01, nsid, offset, lba)
    }

    /// Reads one page at byte `offset` of namespace `nsid` (LBA size `lba`).
    pub fn read_page(&mut self, nsid: u32, offset: u64, lba: usize) -> Result<Vec<u8>, String> {
        self.mem.slice(DATA, 4096).fill(0);
        self.rw(0x02, nsid, offset, lba)?;
        Ok(self.mem.slice(DATA, 4096).to_vec())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Stop the controller before the DMA memory goes (VFIO also resets the function
        // when the device is closed).
        self.bar.write32(0x14, 0);
        let _ = self.wait_ready(false);
        let _ = self.container.vfio_dma_unmap(IOVA, DMA_BYTES as u64);
    }
}
