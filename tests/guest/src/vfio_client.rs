// SPDX-License-Identifier: GPL-2.0

//! A userspace NVMe driver over VFIO, as a VMM would reach a VF in vfio mode. rust-vmm's
//! `vfio-ioctls` opens the device through either VFIO path ([`Path`]) and maps DMA memory;
//! BAR0 is mmapped from the device file; the controller is then driven with polling (no
//! interrupts): enable, Identify, one I/O queue pair, reads and writes. Everything after
//! the open is the same for both paths: `vfio-ioctls` hides the path behind its `VfioOps`
//! trait (DMA mapping) and `VfioDevice` (regions, the device file).

use std::{
    fmt,
    fs::{self, OpenOptions},
    os::fd::AsRawFd,
    path::PathBuf,
    ptr::NonNull,
    sync::{
        atomic::{fence, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use iommufd_ioctls::IommuFd;
use vfio_ioctls::{VfioContainer, VfioDevice, VfioError, VfioIommufd, VfioOps};

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

    fn at(&self, off: usize, len: usize) -> *mut u8 {
        assert!(off + len <= DMA_BYTES);
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
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), DMA_BYTES) };
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

/// An NVMe controller driven through VFIO. Fields drop in order: the BAR mapping, the DMA
/// memory (after `drop` unmapped it from the IOMMU), the device, then the container or
/// iommufd.
pub struct Client {
    bar: Bar0,
    mem: DmaMemory,
    device: VfioDevice,
    /// The container or the iommufd: where DMA is mapped.
    ops: Arc<dyn VfioOps>,
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
        let sysfs = PathBuf::from("/sys/bus/pci/devices").join(bdf);
        let (ops, device): (Arc<dyn VfioOps>, VfioDevice) = match path {
            Path::Container => {
                let container =
                    Arc::new(VfioContainer::new(None).map_err(|e| vfio_err("VFIO container", e))?);
                let device = VfioDevice::new(&sysfs, container.clone(), false)
                    .map_err(|e| vfio_err(&format!("VFIO device {bdf} (group)"), e))?;
                (container, device)
            }
            Path::Cdev => {
                let node = cdev(bdf)?;
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&node)
                    .map_err(|e| OpenError {
                        errno: e.raw_os_error(),
                        msg: format!("{}: {e}", node.display()),
                    })?;
                let iommufd = IommuFd::new().map_err(|e| chain("/dev/iommu", &e))?;
                // Allocates the IOAS the device is attached to and DMA is mapped in.
                let iommufd = Arc::new(
                    VfioIommufd::new(Arc::new(iommufd), None, None)
                        .map_err(|e| vfio_err("iommufd IOAS", e))?,
                );
                // Binds the cdev to the iommufd and attaches it to the IOAS.
                let device = VfioDevice::new_from_fd(file, iommufd.clone(), true)
                    .map_err(|e| vfio_err(&format!("VFIO device {}", node.display()), e))?;
                (iommufd, device)
            }
        };

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
        let mem = DmaMemory::new()?;
        // SAFETY: the client only reaches the memory through raw pointers (`DmaMemory`
        // makes no references to it), and `drop` unmaps it from the IOMMU before
        // `DmaMemory` unmaps it from the process.
        unsafe { ops.vfio_dma_map(IOVA, DMA_BYTES, mem.ptr.as_ptr()) }
            .map_err(|e| vfio_err("VFIO DMA map", e))?;
        let cap = bar.read64(0);
        let mut c = Self {
            bar,
            mem,
            device,
            ops,
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
        self.mem.write(at, &bytes);
        q.tail = (q.tail + 1) % QDEPTH;
        let (qid, tail, cqoff) = (q.qid, q.tail, q.cq);
        fence(Ordering::SeqCst);
        let sqdb = self.doorbell(qid, false);
        self.bar.write32(sqdb, u32::from(tail));

        let start = Instant::now();
        loop {
            let q = if io {
                self.io.as_mut().ok_or("no I/O queue")?
            } else {
                &mut self.admin
            };
            let dw3 = self
                .mem
                .read32_volatile(cqoff + usize::from(q.head) * 16 + 12);
            if (dw3 >> 16 & 1 == 1) == q.phase {
                // What the command wrote is read only after its completion was seen.
                fence(Ordering::Acquire);
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
        let id = self.mem.read(IDBUF, 4096);
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
        let id = self.mem.read(IDBUF, 4096);
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
        if data.len() != 4096 {
            return Err(format!("write_page of {} bytes", data.len()));
        }
        self.mem.write(DATA, data);
        self.rw(0x01, nsid, offset, lba)
    }

    /// Reads one page at byte `offset` of namespace `nsid` (LBA size `lba`).
    pub fn read_page(&mut self, nsid: u32, offset: u64, lba: usize) -> Result<Vec<u8>, String> {
        self.mem.zero(DATA, 4096);
        self.rw(0x02, nsid, offset, lba)?;
        Ok(self.mem.read(DATA, 4096))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Stop the controller before the DMA memory goes (VFIO also resets the function
        // when the device is closed).
        self.bar.write32(0x14, 0);
        let _ = self.wait_ready(false);
        let _ = self.ops.vfio_dma_unmap(IOVA, DMA_BYTES);
    }
}
