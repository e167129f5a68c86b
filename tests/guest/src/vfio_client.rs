// SPDX-License-Identifier: GPL-2.0

//! A userspace NVMe driver over VFIO, as a VMM would reach a VF in vfio mode. rust-vmm's
//! `vfio-ioctls` opens the device through either VFIO path ([`Path`]) and maps DMA memory;
//! BAR0 is mmapped from the device file; the controller is then driven with polling (no
//! interrupts): enable, Identify, one I/O queue pair, reads and writes. Everything after
//! the open is the same for both paths: `vfio-ioctls` hides the path behind its `VfioOps`
//! trait (DMA mapping) and `VfioDevice` (regions, the device file).
//!
//! Several VFs can be opened in one container (or one IOAS) with one DMA mapping
//! ([`Client::open_many`]): every device then reaches all of the memory at the same
//! IOVAs, so a controller can take over the queues of another one (live migration). Each
//! client has its own area in that memory; queues and commands can also be driven step by
//! step ([`Client::submit`], [`Client::ring_sq`], [`Client::reap`]).

use std::{
    fmt,
    fs::{self, OpenOptions},
    os::fd::AsRawFd,
    path::PathBuf,
    ptr::NonNull,
    rc::Rc,
    sync::{
        atomic::{fence, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use iommufd_ioctls::IommuFd;
use vfio_ioctls::{VfioContainer, VfioDevice, VfioError, VfioIommufd, VfioOps};

/// IOVA of the DMA memory.
pub const IOVA: u64 = 0x1000_0000;
/// The area of one client in the DMA memory: its queues, an Identify buffer and
/// [`DATA_PAGES`] data pages.
const AREA: usize = 0x20000;
/// Queue entries of both queue pairs.
pub const QDEPTH: u16 = 16;
/// How long the controller may take to become ready or complete a command.
const TIMEOUT: Duration = Duration::from_secs(10);

// Offsets in a client's area.
const ASQ: usize = 0;
const ACQ: usize = 0x1000;
const IDBUF: usize = 0x2000;
const IOSQ: usize = 0x3000;
const IOCQ: usize = 0x4000;
/// Data pages of writes and reads; page 0 is the one of `read_page`/`write_page`.
const DATA: usize = 0x8000;
/// How many data pages a client has.
pub const DATA_PAGES: usize = (AREA - DATA) / 4096;

/// VFIO's region index of PCI config space.
const CONFIG_REGION: u32 = 7;
/// PCI_COMMAND: memory space and bus master enable.
const CMD_MEM_MASTER: u16 = 0x6;

/// How the client reaches the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The legacy path: a container (`/dev/vfio/vfio`) with the VF's group
    /// (`/dev/vfio/<group>`) and the type1v2 IOMMU; the device file comes from
    /// `VFIO_GROUP_GET_DEVICE_FD`, DMA is mapped with `VFIO_IOMMU_MAP_DMA`.
    Container,
    /// The iommufd path: the VF's device cdev (`/dev/vfio/devices/vfio<N>`) bound to an
    /// iommufd (`/dev/iommu`, `VFIO_DEVICE_BIND_IOMMUFD`) and attached to an IOAS
    /// (`IOMMU_IOAS_ALLOC`, `VFIO_DEVICE_ATTACH_IOMMUFD_PT`); DMA is mapped with
    /// `IOMMU_IOAS_MAP`.
    Cdev,
}

/// Why [`Client::open`] failed, with the errno the kernel returned where there was one.
#[derive(Debug)]
pub struct OpenError {
    pub errno: Option<i32>,
    pub msg: String,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<String> for OpenError {
    fn from(msg: String) -> Self {
        Self { errno: None, msg }
    }
}

impl From<&str> for OpenError {
    fn from(msg: &str) -> Self {
        msg.to_string().into()
    }
}

impl From<OpenError> for String {
    fn from(e: OpenError) -> Self {
        e.msg
    }
}

/// `what: error: source: ...`, each source only once (some of `vfio-ioctls`' messages
/// already contain their source, others do not).
fn chain(what: &str, e: &dyn std::error::Error) -> String {
    let mut msg = format!("{what}: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg = format!("{msg}: {t}");
        }
        src = s.source();
    }
    msg
}

/// An [`OpenError`] from a `vfio-ioctls` error, keeping the errno of the steps whose
/// refusal the tests check (opening the group, binding the cdev, opening the cdev).
fn vfio_err(what: &str, e: VfioError) -> OpenError {
    let errno = match &e {
        VfioError::OpenContainer(io) | VfioError::OpenGroup(io, _) => io.raw_os_error(),
        VfioError::OpenDeviceCdev(io) => io.raw_os_error(),
        VfioError::GroupGetDeviceFD(sys)
        | VfioError::VfioDeviceBindIommufd(sys)
        | VfioError::VfioDeviceAttachIommufdPt(sys) => Some(sys.errno()),
        _ => None,
    };
    OpenError {
        errno,
        msg: chain(what, &e),
    }
}

/// The device cdev of the VF at `bdf`: the one `vfio<N>` in its sysfs `vfio-dev`
/// directory, as `/dev/vfio/devices/vfio<N>`.
pub fn cdev(bdf: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from("/sys/bus/pci/devices")
        .join(bdf)
        .join("vfio-dev");
    let names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    match names.as_slice() {
        [n] if n.starts_with("vfio") => Ok(PathBuf::from("/dev/vfio/devices").join(n)),
        _ => Err(format!("{}: {names:?}, want one vfio<N>", dir.display())),
    }
}

/// Anonymous memory mapped for DMA; unmapped on drop. The device reads and writes it, so
/// the client never makes a Rust reference to it: it copies in and out through raw
/// pointers, and polls completions with volatile reads.
struct DmaMemory {
    ptr: NonNull<u8>,
    len: usize,
}

impl DmaMemory {
    fn new(len: usize) -> Result<Self, String> {
        // SAFETY: an anonymous private mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
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
            len,
        })
    }

    fn at(&self, off: usize, len: usize) -> *mut u8 {
        assert!(off + len <= self.len);
        // SAFETY: in bounds of the mapping (checked above).
        unsafe { self.ptr.as_ptr().add(off) }
    }

    /// Copies `data` to `off`.
    fn write(&self, off: usize, data: &[u8]) {
        let p = self.at(off, data.len());
        // SAFETY: in bounds; `data` is ordinary memory, not the mapping.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) }
    }

    /// Zeroes `len` bytes at `off`.
    fn zero(&self, off: usize, len: usize) {
        let p = self.at(off, len);
        // SAFETY: in bounds.
        unsafe { std::ptr::write_bytes(p, 0, len) }
    }

    /// Copies `len` bytes at `off` out.
    fn read(&self, off: usize, len: usize) -> Vec<u8> {
        let p = self.at(off, len);
        let mut v = vec![0u8; len];
        // SAFETY: in bounds; `v` is ordinary memory of `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), len) };
        v
    }

    /// A little-endian dword the device may be writing (a completion's status dword).
    fn read32_volatile(&self, off: usize) -> u32 {
        assert!(off & 3 == 0);
        let p = self.at(off, 4);
        // SAFETY: in bounds and aligned (the mapping is page aligned).
        u32::from_le(unsafe { std::ptr::read_volatile(p.cast::<u32>()) })
    }
}

impl Drop for DmaMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The DMA memory of one container or IOAS, mapped at [`IOVA`]; shared by the clients of
/// the devices in it. Fields drop in order: the IOMMU mapping goes (in `drop`) before the
/// memory, and the container or iommufd last.
struct Dma {
    mem: DmaMemory,
    ops: Arc<dyn VfioOps>,
}

impl Dma {
    fn map(ops: Arc<dyn VfioOps>, len: usize) -> Result<Self, OpenError> {
        let mem = DmaMemory::new(len)?;
        // SAFETY: the clients only reach the memory through raw pointers (`DmaMemory`
        // makes no references to it), and `drop` unmaps it from the IOMMU before
        // `DmaMemory` unmaps it from the process.
        unsafe { ops.vfio_dma_map(IOVA, len, mem.ptr.as_ptr()) }
            .map_err(|e| vfio_err("VFIO DMA map", e))?;
        Ok(Self { mem, ops })
    }
}

impl Drop for Dma {
    fn drop(&mut self) {
        let _ = self.ops.vfio_dma_unmap(IOVA, self.mem.len);
    }
}

/// BAR0 mmapped from the VFIO device file.
struct Bar0 {
    ptr: NonNull<u8>,
    len: usize,
}

impl Bar0 {
    /// Maps BAR0 (region 0) of `device`.
    fn map(device: &VfioDevice) -> Result<Self, String> {
        let len = device.get_region_size(0) as usize;
        let offset = device.get_region_offset(0);
        if len < 0x2000 {
            return Err(format!("BAR0 is {len} bytes"));
        }
        // SAFETY: maps the BAR0 region of the device file, as VFIO documents.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                device.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap BAR0: {}", std::io::Error::last_os_error()));
        }
        Ok(Self {
            ptr: NonNull::new(p.cast()).ok_or("BAR0 mmap returned null")?,
            len,
        })
    }

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

/// A queue pair driven by polling: where it lives in the DMA memory and the host's side
/// of its state.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Offsets of the submission and completion queue in the DMA memory.
    sq: usize,
    cq: usize,
    pub qid: u16,
    /// The host's submission queue tail (the next entry it writes).
    pub tail: u16,
    /// The host's completion queue head (the next entry it reads) and expected phase.
    pub head: u16,
    pub phase: bool,
    cid: u16,
}

impl Queue {
    /// IOVA of the submission queue.
    pub fn sq_iova(&self) -> u64 {
        IOVA + self.sq as u64
    }

    /// IOVA of the completion queue.
    pub fn cq_iova(&self) -> u64 {
        IOVA + self.cq as u64
    }
}

/// Which queue of a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q {
    Admin,
    Io,
}

/// A completion queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    pub dw0: u32,
    pub sqid: u16,
    pub sqhd: u16,
    pub cid: u16,
    /// Status field without the phase tag.
    pub status: u16,
}

/// An NVMe controller driven through VFIO. Fields drop in order: the BAR mapping, the DMA
/// memory (the last client's drop unmaps it), the device.
pub struct Client {
    bar: Bar0,
    dma: Rc<Dma>,
    /// This client's area in the DMA memory.
    base: usize,
    device: VfioDevice,
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
    /// Opens the VF at `bdf` (in vfio mode) through `path`, maps BAR0 and the DMA memory,
    /// and enables the controller with an admin queue pair.
    pub fn open(bdf: &str, path: Path) -> Result<Self, OpenError> {
        let mut v = Self::open_many(&[bdf], path)?;
        v.pop().ok_or_else(|| "no client".into())
    }

    /// Opens the VFs `bdfs` through `path` in one container (or one IOAS) with one DMA
    /// mapping that each of them reaches at the same IOVAs, and enables each controller
    /// with an admin queue pair in its own area of that memory.
    pub fn open_many(bdfs: &[&str], path: Path) -> Result<Vec<Self>, OpenError> {
        let mut devices = Vec::new();
        let ops: Arc<dyn VfioOps> = match path {
            Path::Container => {
                let container =
                    Arc::new(VfioContainer::new(None).map_err(|e| vfio_err("VFIO container", e))?);
                for bdf in bdfs {
                    let sysfs = PathBuf::from("/sys/bus/pci/devices").join(bdf);
                    let device = VfioDevice::new(&sysfs, container.clone(), false)
                        .map_err(|e| vfio_err(&format!("VFIO device {bdf} (group)"), e))?;
                    devices.push(device);
                }
                container
            }
            Path::Cdev => {
                let iommufd = IommuFd::new().map_err(|e| chain("/dev/iommu", &e))?;
                // Allocates the IOAS the devices are attached to and DMA is mapped in.
                let iommufd = Arc::new(
                    VfioIommufd::new(Arc::new(iommufd), None, None)
                        .map_err(|e| vfio_err("iommufd IOAS", e))?,
                );
                for bdf in bdfs {
                    let node = cdev(bdf)?;
                    let file = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&node)
                        .map_err(|e| OpenError {
                            errno: e.raw_os_error(),
                            msg: format!("{}: {e}", node.display()),
                        })?;
                    // Binds the cdev to the iommufd and attaches it to the IOAS.
                    let device = VfioDevice::new_from_fd(file, iommufd.clone(), true)
                        .map_err(|e| vfio_err(&format!("VFIO device {}", node.display()), e))?;
                    devices.push(device);
                }
                iommufd
            }
        };
        let dma = Rc::new(Dma::map(ops, AREA * bdfs.len())?);
        let mut clients = Vec::new();
        for (i, (device, bdf)) in devices.into_iter().zip(bdfs).enumerate() {
            clients.push(Self::start(device, bdf, dma.clone(), i * AREA)?);
        }
        Ok(clients)
    }

    /// Turns on memory space and bus mastering, maps BAR0 and enables the controller with
    /// its admin queue at `base` of `dma`.
    fn start(device: VfioDevice, bdf: &str, dma: Rc<Dma>, base: usize) -> Result<Self, OpenError> {
        // Memory space and bus mastering on, as a VMM's guest would set them (the command
        // register at offset 4 of config space). `region_read`/`region_write` only log
        // their errors, so the write is checked by reading it back.
        let command = |device: &VfioDevice| {
            let mut cmd = [0u8; 2];
            device.region_read(CONFIG_REGION, &mut cmd, 4);
            u16::from_le_bytes(cmd)
        };
        let cmd = command(&device) | CMD_MEM_MASTER;
        device.region_write(CONFIG_REGION, &cmd.to_le_bytes(), 4);
        let cmd = command(&device);
        if cmd & CMD_MEM_MASTER != CMD_MEM_MASTER {
            return Err(format!("{bdf}: PCI command register is {cmd:#x} after enabling").into());
        }

        let bar = Bar0::map(&device).map_err(|e| format!("{bdf}: {e}"))?;
        let cap = bar.read64(0);
        let mut c = Self {
            bar,
            dma,
            base,
            device,
            dstrd: ((cap >> 32) & 0xf) as u32,
            admin: Queue {
                sq: base + ASQ,
                cq: base + ACQ,
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

    /// The iommufd device ID the cdev was bound with; `None` on the container path.
    pub fn iommufd_dev_id(&self) -> Option<u32> {
        self.device.iommufd_dev_id()
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
        self.bar.write64(0x28, self.admin.sq_iova());
        self.bar.write64(0x30, self.admin.cq_iova());
        // IOCQES 16 bytes, IOSQES 64 bytes, 4 KiB pages, NVM command set, enable.
        self.bar.write32(0x14, 4 << 20 | 6 << 16 | 1);
        self.wait_ready(true)
    }

    fn doorbell(&self, qid: u16, cq: bool) -> usize {
        0x1000 + (2 * usize::from(qid) + usize::from(cq)) * (4 << self.dstrd)
    }

    fn queue(&mut self, q: Q) -> Result<&mut Queue, String> {
        match q {
            Q::Admin => Ok(&mut self.admin),
            Q::Io => self.io.as_mut().ok_or_else(|| "no I/O queue".to_string()),
        }
    }

    /// The host's state of queue `q`.
    pub fn queue_state(&self, q: Q) -> Option<&Queue> {
        match q {
            Q::Admin => Some(&self.admin),
            Q::Io => self.io.as_ref(),
        }
    }

    /// Writes `sqe` (its command ID is set here) at the tail of queue `q` and moves the
    /// host's tail on, without ringing the doorbell; returns the command ID.
    pub fn push(&mut self, q: Q, mut sqe: [u32; 16]) -> Result<u16, String> {
        let dma = self.dma.clone();
        let queue = self.queue(q)?;
        queue.cid = queue.cid.wrapping_add(1);
        let cid = queue.cid;
        sqe[0] = sqe[0] & 0xffff | u32::from(cid) << 16;
        let at = queue.sq + usize::from(queue.tail) * 64;
        let bytes: Vec<u8> = sqe.iter().flat_map(|d| d.to_le_bytes()).collect();
        dma.mem.write(at, &bytes);
        queue.tail = (queue.tail + 1) % QDEPTH;
        Ok(cid)
    }

    /// Rings the submission queue tail doorbell of queue `q` with the host's tail.
    pub fn ring_sq(&mut self, q: Q) -> Result<(), String> {
        let queue = self.queue(q)?;
        let (qid, tail) = (queue.qid, queue.tail);
        fence(Ordering::SeqCst);
        self.bar.write32(self.doorbell(qid, false), u32::from(tail));
        Ok(())
    }

    /// [`Client::push`] and [`Client::ring_sq`]: submits without waiting.
    pub fn submit(&mut self, q: Q, sqe: [u32; 16]) -> Result<u16, String> {
        let cid = self.push(q, sqe)?;
        self.ring_sq(q)?;
        Ok(cid)
    }

    /// Whether the entry at the host's head of completion queue `q` has the expected phase
    /// (a completion is there to reap).
    pub fn cq_ready(&mut self, q: Q) -> Result<bool, String> {
        let dma = self.dma.clone();
        let queue = self.queue(q)?;
        let dw3 = dma
            .mem
            .read32_volatile(queue.cq + usize::from(queue.head) * 16 + 12);
        Ok((dw3 >> 16 & 1 == 1) == queue.phase)
    }

    /// Waits up to `timeout` for a completion on queue `q`; consumes it and rings the
    /// completion queue head doorbell. `None` if nothing came.
    pub fn reap(&mut self, q: Q, timeout: Duration) -> Result<Option<Cqe>, String> {
        let start = Instant::now();
        while !self.cq_ready(q)? {
            if start.elapsed() > timeout {
                return Ok(None);
            }
            thread::sleep(Duration::from_micros(200));
        }
        // What the command wrote is read only after its completion was seen.
        fence(Ordering::Acquire);
        let dma = self.dma.clone();
        let queue = self.queue(q)?;
        let e = dma.mem.read(queue.cq + usize::from(queue.head) * 16, 16);
        let dw =
            |i: usize| u32::from_le_bytes([e[4 * i], e[4 * i + 1], e[4 * i + 2], e[4 * i + 3]]);
        let cqe = Cqe {
            dw0: dw(0),
            sqhd: dw(2) as u16,
            sqid: (dw(2) >> 16) as u16,
            cid: dw(3) as u16,
            status: (dw(3) >> 17) as u16,
        };
        queue.head = (queue.head + 1) % QDEPTH;
        if queue.head == 0 {
            queue.phase = !queue.phase;
        }
        let (qid, head) = (queue.qid, queue.head);
        self.bar.write32(self.doorbell(qid, true), u32::from(head));
        Ok(Some(cqe))
    }

    /// Submits `sqe` on queue `q` and waits for its completion.
    pub fn execute(&mut self, q: Q, sqe: [u32; 16]) -> Result<Cqe, String> {
        let cid = self.submit(q, sqe)?;
        let cqe = self
            .reap(q, TIMEOUT)?
            .ok_or_else(|| format!("{q:?} queue: no completion"))?;
        if cqe.cid != cid {
            return Err(format!(
                "completion for command {}, expected {cid}",
                cqe.cid
            ));
        }
        Ok(cqe)
    }

    fn submit_wait(&mut self, io: bool, sqe: [u32; 16]) -> Result<u16, String> {
        let q = if io { Q::Io } else { Q::Admin };
        Ok(self.execute(q, sqe)?.status)
    }

    /// Takes the queues of `other` over: from now on this client drives them (with its
    /// own doorbells), as after a migration of `other`'s controller state to this
    /// controller. Both clients must share their DMA memory ([`Client::open_many`]).
    pub fn adopt_queues(&mut self, other: &Client) {
        self.admin = other.admin.clone();
        self.io = other.io.clone();
    }

    fn admin(&mut self, sqe: [u32; 16], what: &str) -> Result<(), String> {
        match self.submit_wait(false, sqe)? {
            0 => Ok(()),
            s => Err(format!("{what}: status {s:#x}")),
        }
    }

    /// A submission queue entry with `opcode`, `nsid`, PRP1 and CDW10 to 12.
    pub fn sqe(opcode: u8, nsid: u32, prp1: u64, cdw10: u32, cdw11: u32, cdw12: u32) -> [u32; 16] {
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
        let buf = self.base + IDBUF;
        self.admin(Self::sqe(0x06, 0, IOVA + buf as u64, 1, 0, 0), "Identify")?;
        let id = self.dma.mem.read(buf, 4096);
        Ok(CtrlId {
            serial: text(&id[4..24]),
            model: text(&id[24..64]),
        })
    }

    /// Identify with CNS `cns`: the status and the data.
    pub fn identify_raw(&mut self, cns: u32) -> Result<(u16, Vec<u8>), String> {
        let buf = self.base + IDBUF;
        self.dma.mem.zero(buf, 4096);
        let cqe = self.execute(Q::Admin, Self::sqe(0x06, 0, IOVA + buf as u64, cns, 0, 0))?;
        Ok((cqe.status, self.dma.mem.read(buf, 4096)))
    }

    /// Get Log Page `lid` (at most a page): the status and the data.
    pub fn get_log(&mut self, lid: u8, len: usize) -> Result<(u16, Vec<u8>), String> {
        let buf = self.base + IDBUF;
        self.dma.mem.zero(buf, 4096);
        let numdl = ((len.min(4096) / 4 - 1) as u32) << 16;
        let sqe = Self::sqe(
            0x02,
            0xffff_ffff,
            IOVA + buf as u64,
            numdl | u32::from(lid),
            0,
            0,
        );
        let cqe = self.execute(Q::Admin, sqe)?;
        Ok((cqe.status, self.dma.mem.read(buf, len.min(4096))))
    }

    /// The LBA size of namespace `nsid` in bytes (Identify Namespace).
    pub fn lba_size(&mut self, nsid: u32) -> Result<usize, String> {
        let buf = self.base + IDBUF;
        self.admin(
            Self::sqe(0x06, nsid, IOVA + buf as u64, 0, 0, 0),
            "Identify Namespace",
        )?;
        let id = self.dma.mem.read(buf, 4096);
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
        let (sq, cq) = (self.base + IOSQ, self.base + IOCQ);
        // Physically contiguous, interrupts off: the client polls.
        self.admin(
            Self::sqe(0x05, 0, IOVA + cq as u64, size, 1, 0),
            "Create I/O CQ",
        )?;
        self.admin(
            Self::sqe(0x01, 0, IOVA + sq as u64, size, 1 << 16 | 1, 0),
            "Create I/O SQ",
        )?;
        self.io = Some(Queue {
            sq,
            cq,
            qid: 1,
            tail: 0,
            head: 0,
            phase: true,
            cid: 0,
        });
        Ok(())
    }

    /// Creates I/O queue pairs 2 to `total` beside queue 1 (which [`Self::create_io_queue`]
    /// made), their rings in the last data pages (which are then taken): a controller
    /// state with that many queues. The client itself only drives queue 1.
    pub fn create_more_io_queues(&mut self, total: u16) -> Result<(), String> {
        let extra = usize::from(total.saturating_sub(1));
        if 2 * extra > DATA_PAGES - 1 {
            return Err(format!("no room for {total} I/O queue pairs"));
        }
        let size = u32::from(QDEPTH - 1) << 16;
        for i in 0..extra {
            let qid = i as u16 + 2;
            let sq = self.data(DATA_PAGES - 1 - 2 * i);
            let cq = self.data(DATA_PAGES - 2 - 2 * i);
            self.dma.mem.zero(sq, 4096);
            self.dma.mem.zero(cq, 4096);
            self.admin(
                Self::sqe(0x05, 0, IOVA + cq as u64, size | u32::from(qid), 1, 0),
                "Create I/O CQ",
            )?;
            self.admin(
                Self::sqe(
                    0x01,
                    0,
                    IOVA + sq as u64,
                    size | u32::from(qid),
                    u32::from(qid) << 16 | 1,
                    0,
                ),
                "Create I/O SQ",
            )?;
        }
        Ok(())
    }

    /// IOVA and length of this client's area of the DMA memory.
    pub fn area(&self) -> (u64, u64) {
        (IOVA + self.base as u64, AREA as u64)
    }

    /// IOVA of data page `page` (below [`DATA_PAGES`]).
    pub fn data_iova(&self, page: usize) -> u64 {
        IOVA + self.data(page) as u64
    }

    /// Reads one page at byte `offset` of namespace `nsid` (LBA size `lba`) into data page
    /// `page`.
    pub fn read_into(
        &mut self,
        nsid: u32,
        offset: u64,
        lba: usize,
        page: usize,
    ) -> Result<(), String> {
        let sqe = self.rw_sqe(0x02, nsid, offset, lba, page);
        match self.submit_wait(true, sqe)? {
            0 => Ok(()),
            s => Err(format!("Read at {offset} into page {page}: status {s:#x}")),
        }
    }

    /// Offset of data page `page` (below [`DATA_PAGES`]) in the DMA memory.
    fn data(&self, page: usize) -> usize {
        assert!(page < DATA_PAGES);
        self.base + DATA + page * 4096
    }

    /// Copies `data` (at most a page) into data page `page`.
    pub fn set_page(&self, page: usize, data: &[u8]) {
        assert!(data.len() <= 4096);
        self.dma.mem.write(self.data(page), data);
    }

    /// Data page `page`.
    pub fn page(&self, page: usize) -> Vec<u8> {
        self.dma.mem.read(self.data(page), 4096)
    }

    /// Zeroes data page `page`.
    pub fn clear_page(&self, page: usize) {
        self.dma.mem.zero(self.data(page), 4096);
    }

    /// A Read (0x02) or Write (0x01) of one page at byte `offset` of namespace `nsid`
    /// (LBA size `lba`) to or from data page `page`.
    pub fn rw_sqe(&self, opcode: u8, nsid: u32, offset: u64, lba: usize, page: usize) -> [u32; 16] {
        let slba = offset / lba as u64;
        let nlb = (4096 / lba - 1) as u32;
        Self::sqe(
            opcode,
            nsid,
            IOVA + self.data(page) as u64,
            slba as u32,
            (slba >> 32) as u32,
            nlb,
        )
    }

    fn rw(&mut self, opcode: u8, nsid: u32, offset: u64, lba: usize) -> Result<(), String> {
        let sqe = self.rw_sqe(opcode, nsid, offset, lba, 0);
        match self.submit_wait(true, sqe)? {
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
        if data.len() != 4096 {
            return Err(format!("write_page of {} bytes", data.len()));
        }
        self.set_page(0, data);
        self.rw(0x01, nsid, offset, lba)
    }

    /// Reads one page at byte `offset` of namespace `nsid` (LBA size `lba`).
    pub fn read_page(&mut self, nsid: u32, offset: u64, lba: usize) -> Result<Vec<u8>, String> {
        self.clear_page(0);
        self.rw(0x02, nsid, offset, lba)?;
        Ok(self.page(0))
    }
}

impl AsRawFd for Client {
    /// The VFIO device file (for the device features, such as migration).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.device.as_raw_fd()
    }
}

/// `VFIO_DEVICE_RESET`: `_IO(';', 100 + 11)`.
const VFIO_DEVICE_RESET: u64 = (b';' as u64) << 8 | 111;

impl Client {
    /// `VFIO_DEVICE_RESET`: resets the function (an FLR); the controller comes back
    /// disabled, its queues gone.
    pub fn reset_device(&mut self) -> Result<(), String> {
        // SAFETY: an ioctl without argument on the device file.
        let r = unsafe { libc::ioctl(self.device.as_raw_fd(), VFIO_DEVICE_RESET as _) };
        if r < 0 {
            return Err(format!(
                "VFIO_DEVICE_RESET: {}",
                std::io::Error::last_os_error()
            ));
        }
        self.io = None;
        self.admin.tail = 0;
        self.admin.head = 0;
        self.admin.phase = true;
        Ok(())
    }

    /// Enables the controller again after a reset, with an empty admin queue.
    pub fn reenable(&mut self) -> Result<(), String> {
        self.dma.mem.zero(self.admin.sq, 4096);
        self.dma.mem.zero(self.admin.cq, 4096);
        self.enable()
    }

    /// Sets CC.EN with an admin queue of one entry (AQA 0), which a controller refuses to
    /// start with: CSTS.CFS, no admin queue. Call after a reset.
    pub fn enable_badly(&mut self) -> Result<(), String> {
        self.bar.write32(0x24, 0);
        self.bar.write64(0x28, self.admin.sq_iova());
        self.bar.write64(0x30, self.admin.cq_iova());
        self.bar.write32(0x14, 4 << 20 | 6 << 16 | 1);
        let start = Instant::now();
        while self.csts() & 2 == 0 {
            if start.elapsed() > TIMEOUT {
                return Err(format!("CSTS {:#x} after a bad enable", self.csts()));
            }
            thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// CC, as read through the mapped BAR.
    pub fn cc(&self) -> u32 {
        self.bar.read32(0x14)
    }

    /// CSTS, as read through the mapped BAR.
    pub fn csts(&self) -> u32 {
        self.bar.read32(0x1c)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Stop the controller before the DMA memory goes (VFIO also resets the function
        // when the device is closed; the last client's `Dma` unmaps the memory).
        self.bar.write32(0x14, 0);
        let _ = self.wait_ready(false);
    }
}
