// SPDX-License-Identifier: GPL-2.0

//! PCI devices and drivers, in the shape of upstream `kernel::pci` (6.18).
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::{any::Any, marker::PhantomData, ops::Deref, pin::Pin, ptr::NonNull};

use kernel::{
    bindings,
    error::{from_result, to_result},
    ffi,
    init::pin_init_from_closure,
    prelude::*,
    str::CStr,
    sync::Arc,
    types::{ARef, AlwaysRefCounted, ForeignOwnable, Opaque},
    ThisModule,
};

use super::{
    bindings::sys,
    device::{self, AsDevice, Bound, Core, DeviceContext, Normal},
    io::{Io, IoRaw},
    irq,
    sysfs::{DeviceAttribute, ShowBuffer},
};

/// `PCI_ANY_ID`: matches any vendor, device, subsystem vendor or subsystem device.
const PCI_ANY_ID: u32 = !0;

/// Number of standard BARs of a PCI function (`PCI_STD_NUM_BARS`).
const PCI_STD_NUM_BARS: u32 = 6;

/// One entry of a PCI driver's ID table (`struct pci_device_id`).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct DeviceId(bindings::pci_device_id);

impl DeviceId {
    /// The all-zero entry that terminates an ID table.
    pub(crate) const TERMINATOR: Self = Self(bindings::pci_device_id {
        vendor: 0,
        device: 0,
        subvendor: 0,
        subdevice: 0,
        class: 0,
        class_mask: 0,
        driver_data: 0,
        override_only: 0,
    });

    /// Matches a vendor and device ID, any subsystem.
    pub(crate) const fn from_id(vendor: u16, device: u16) -> Self {
        Self(bindings::pci_device_id {
            vendor: vendor as u32,
            device: device as u32,
            subvendor: PCI_ANY_ID,
            subdevice: PCI_ANY_ID,
            class: 0,
            class_mask: 0,
            driver_data: 0,
            override_only: 0,
        })
    }

    /// Matches a class code (`class` is the 24-bit base class, subclass and programming
    /// interface), compared under `class_mask`, of any vendor.
    pub(crate) const fn from_class(class: u32, class_mask: u32) -> Self {
        Self(bindings::pci_device_id {
            vendor: PCI_ANY_ID,
            device: PCI_ANY_ID,
            subvendor: PCI_ANY_ID,
            subdevice: PCI_ANY_ID,
            class,
            class_mask,
            driver_data: 0,
            override_only: 0,
        })
    }

    /// Numbers the entries of a table: entry `i` gets `driver_data = i`, the index of its
    /// [`IdTable`] info. Used by [`pci_device_table!`].
    pub(crate) const fn index_table<const N: usize>(mut ids: [Self; N]) -> [Self; N] {
        let mut i = 0;
        // The last entry is the terminator and keeps zero.
        while i + 1 < N {
            ids[i].0.driver_data = i as ffi::c_ulong;
            i += 1;
        }
        ids
    }
}

/// A driver's ID table: the zero-terminated C array and one `T` per entry.
///
/// # Invariants
///
/// `ids` ends with [`DeviceId::TERMINATOR`], `ids.len() == info.len() + 1` and entry `i` has
/// `driver_data == i`.
pub(crate) struct IdTable<T: 'static> {
    ids: &'static [DeviceId],
    info: &'static [T],
}

impl<T: 'static> IdTable<T> {
    /// Builds a table; use [`pci_device_table!`], which guarantees the invariants.
    pub(crate) const fn new(ids: &'static [DeviceId], info: &'static [T]) -> Self {
        assert!(
            ids.len() == info.len() + 1,
            "an ID table needs one info per entry"
        );
        Self { ids, info }
    }

    /// Whether an entry of the table matches a function of class code `class` from any
    /// vendor (the class-based part of the PCI core's `pci_match_one_device`).
    pub(crate) fn matches_class(&self, class: u32) -> bool {
        self.ids[..self.info.len()].iter().any(|id| {
            id.0.vendor == PCI_ANY_ID
                && id.0.device == PCI_ANY_ID
                && (id.0.class ^ class) & id.0.class_mask == 0
        })
    }

    pub(super) fn as_ptr(&self) -> *const bindings::pci_device_id {
        self.ids.as_ptr().cast()
    }

    /// Returns the info of the entry the PCI core matched, or `None` for an ID it got from
    /// elsewhere (a dynamic `new_id` with foreign driver data).
    pub(super) fn info(&self, id: &bindings::pci_device_id) -> Option<&'static T> {
        // `driver_data` is a `kernel_ulong_t`, i.e. a `usize` on every kernel target.
        self.info.get(id.driver_data)
    }
}

/// Declares a PCI ID table for a driver and exports it to modpost as
/// `__mod_pci__<module_table>_device_table`, so that the module gets `pci:` aliases
/// (like C's `MODULE_DEVICE_TABLE(pci, ...)`).
///
/// ```ignore
/// pci_device_table!(PCI_TABLE, rnvme_pci_ids, (), [
///     (pci::DeviceId::from_class(0x010802, 0xffffff), ()),
/// ]);
/// ```
macro_rules! pci_device_table {
    ($table:ident, $module_table:ident, $info_ty:ty, [ $( ($id:expr, $info:expr) ),+ $(,)? ]) => {
        // The table modpost reads under this symbol name; expanded in driver code, whose
        // crate denies `unsafe_code`, so the macro allows its own attribute.
        #[allow(unsafe_code)]
        #[export_name = concat!("__mod_pci__", stringify!($module_table), "_device_table")]
        static $module_table: [$crate::kapi::pci::DeviceId; [$(stringify!($id)),+].len() + 1] =
            $crate::kapi::pci::DeviceId::index_table([
                $($id,)+
                $crate::kapi::pci::DeviceId::TERMINATOR,
            ]);

        pub(crate) const $table: $crate::kapi::pci::IdTable<$info_ty> =
            $crate::kapi::pci::IdTable::new(&$module_table, &[$($info),+]);
    };
}
pub(crate) use pci_device_table;

/// A PCI function (`struct pci_dev`), borrowed in context `Ctx`.
///
/// # Invariants
///
/// A `&Device<Ctx>` points to a valid `struct pci_dev` whose state matches `Ctx`.
#[repr(transparent)]
pub(crate) struct Device<Ctx: DeviceContext = Normal>(Opaque<sys::pci_dev>, PhantomData<Ctx>);

impl<Ctx: DeviceContext> Device<Ctx> {
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct pci_dev` in state `Ctx` for the lifetime `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut sys::pci_dev) -> &'a Self {
        // SAFETY: transparent wrapper; validity and context guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// The underlying `struct pci_dev`.
    pub(crate) fn as_raw(&self) -> *mut sys::pci_dev {
        self.0.get()
    }

    fn raw(&self) -> &sys::pci_dev {
        // SAFETY: By the type invariant the `pci_dev` is valid; the fields read through this
        // reference (IDs, class, devfn, flags) are set before probe and not changed while a
        // driver can see the device.
        unsafe { &*self.as_raw() }
    }

    /// Saves the function's configuration space (`pci_save_state`), for
    /// [`Device::restore_state`] after a reset took it away.
    pub(crate) fn save_state(&self) {
        // SAFETY: the device is valid (type invariant); the call reads config space and
        // takes the locks it needs. It fails only without memory for the saved PCIe
        // capability buffers, which the PCI core allocated when the device was added.
        unsafe { sys::pci_save_state(self.as_raw()) };
    }

    /// Writes the configuration space saved by [`Device::save_state`] back
    /// (`pci_restore_state`; with it the MSI-X set-up, and on a physical function its
    /// SR-IOV set-up, VF Enable included). The saved copy is used up: save again before
    /// the next restore. Does nothing if nothing was saved.
    pub(crate) fn restore_state(&self) {
        // SAFETY: the device is valid (type invariant); the call checks `state_saved`.
        unsafe { sys::pci_restore_state(self.as_raw()) };
    }

    /// Takes a reference on the function, usable beyond the current context.
    pub(crate) fn get_ref(&self) -> ARef<Device> {
        // SAFETY: `Normal` claims nothing beyond validity.
        let normal: &Device = unsafe { Device::from_raw(self.as_raw()) };
        normal.into()
    }

    /// The generic device embedded in this PCI function, in the same context.
    pub(crate) fn as_dev(&self) -> &device::Device<Ctx> {
        // SAFETY: `dev` is embedded in a valid `pci_dev` and shares its state.
        unsafe { device::Device::from_raw(&raw mut (*self.as_raw()).dev) }
    }

    /// PCI vendor ID.
    pub(crate) fn vendor_id(&self) -> u16 {
        self.raw().vendor
    }

    /// PCI device ID.
    pub(crate) fn device_id(&self) -> u16 {
        self.raw().device
    }

    /// PCI revision ID.
    pub(crate) fn revision_id(&self) -> u8 {
        self.raw().revision
    }

    /// PCI subsystem vendor ID.
    pub(crate) fn subsystem_vendor_id(&self) -> u16 {
        self.raw().subsystem_vendor
    }

    /// PCI subsystem ID.
    pub(crate) fn subsystem_id(&self) -> u16 {
        self.raw().subsystem_device
    }

    /// Entries of the function's MSI-X table (`EINVAL` without MSI-X).
    pub(crate) fn msix_vec_count(&self) -> Result<u16> {
        // SAFETY: the device is valid; `pci_msix_vec_count` only reads its capability.
        let n = unsafe { sys::pci_msix_vec_count(self.as_raw()) };
        if n < 0 {
            return Err(Error::from_errno(n));
        }
        u16::try_from(n).map_err(|_| EINVAL)
    }

    /// 24-bit class code: base class, subclass and programming interface.
    pub(crate) fn class(&self) -> u32 {
        self.raw().class
    }

    /// Whether this function is an SR-IOV virtual function.
    pub(crate) fn is_virtfn(&self) -> bool {
        self.raw().is_virtfn() != 0
    }

    /// Whether this function is an SR-IOV physical function.
    pub(crate) fn is_physfn(&self) -> bool {
        self.raw().is_physfn() != 0
    }

    /// For a VF: its 0-based index among the VFs of its physical function.
    pub(crate) fn vf_index(&self) -> Result<u16> {
        // SAFETY: the device is valid; `pci_iov_vf_id` fails with `EINVAL` for a non-VF.
        let raw = unsafe { sys::pci_iov_vf_id(self.as_raw()) };
        if raw < 0 {
            return Err(Error::from_errno(raw));
        }
        u16::try_from(raw).map_err(|_| EINVAL)
    }

    /// For a VF: its VF number, 1-based as in the SR-IOV capability (`vf_index() + 1`).
    pub(crate) fn vf_number(&self) -> Result<u16> {
        self.vf_index()?.checked_add(1).ok_or(EINVAL)
    }

    /// Start address of BAR `bar`, or `EINVAL` for an invalid BAR number.
    pub(crate) fn resource_start(&self, bar: u32) -> Result<u64> {
        let bar = valid_bar(bar)?;
        // SAFETY: the device is valid and `bar` is a valid BAR index.
        Ok(unsafe { sys::rnvme_pci_resource_start(self.as_raw(), bar) })
    }

    /// Length of BAR `bar` in bytes (0 if unimplemented), or `EINVAL` for an invalid BAR.
    pub(crate) fn resource_len(&self, bar: u32) -> Result<u64> {
        let bar = valid_bar(bar)?;
        // SAFETY: the device is valid and `bar` is a valid BAR index.
        Ok(unsafe { sys::rnvme_pci_resource_len(self.as_raw(), bar) })
    }

    fn resource_flags(&self, bar: ffi::c_int) -> ffi::c_ulong {
        // SAFETY: the device is valid and `bar` was checked by `valid_bar`.
        unsafe { sys::rnvme_pci_resource_flags(self.as_raw(), bar) }
    }
}

impl Device<Normal> {
    /// Adds attribute `attr` to this VF; it goes away when the VF is removed. `EINVAL` for
    /// a function that is not a VF.
    pub(crate) fn add_vf_attribute<T: Driver>(&self, attr: &'static VfAttribute<T>) -> Result {
        if !self.is_virtfn() {
            return Err(EINVAL);
        }
        // SAFETY: the device is valid; the attribute's callbacks accept any VF.
        to_result(unsafe { sys::device_create_file(self.as_dev().as_raw(), attr.0.as_raw()) })
    }

    /// Unbinds the function from its driver, if any (`device_release_driver`). Must not be
    /// called with the device's lock held (e.g. from a bus callback of this device).
    pub(crate) fn release_driver(&self) {
        // SAFETY: the device is valid; the caller does not hold its lock.
        unsafe { sys::device_release_driver(self.as_dev().as_raw()) }
    }

    /// Binds the (unbound) function to this module's PCI driver `name` and returns the
    /// driver's probe result; `ENODEV` if no such driver is registered. Must not be called
    /// with the device's lock held.
    pub(crate) fn attach_driver(&self, name: &CStr) -> Result {
        // SAFETY: the device is valid; `name` is NUL-terminated; the lock is not held.
        let ret = unsafe { sys::rnvme_pci_attach_driver(self.as_raw(), name.as_char_ptr()) };
        // `device_driver_attach` returns 0 or a negative errno.
        to_result(ret)
    }

    /// Whether the function is unbound or bound to PCI driver `a` or `b`.
    pub(crate) fn unbound_or_bound_to(&self, a: &CStr, b: &CStr) -> bool {
        // SAFETY: the device is valid; the names are NUL-terminated; the helper reads the
        // binding under the device lock.
        unsafe {
            sys::rnvme_pci_unbound_or_bound_to(self.as_raw(), a.as_char_ptr(), b.as_char_ptr())
        }
    }

    /// How many devices share this function's IOMMU group (0: it has none).
    pub(crate) fn iommu_group_size(&self) -> u32 {
        // SAFETY: the device is valid.
        unsafe { sys::rnvme_iommu_group_size(self.as_raw()) }
    }
}

impl Device<Core> {
    /// The VFs of this physical function, in VF order, found in one walk over the PCI
    /// functions (the VFs that exist; none while SR-IOV is disabled).
    pub(crate) fn vfs(&self) -> Result<KVec<ARef<Device>>> {
        let mut vfs = KVec::new();
        let mut cur: *mut sys::pci_dev = core::ptr::null_mut();
        loop {
            // SAFETY: the device is valid; `cur` is null or the VF the previous call
            // returned, whose reference the helper drops (as `pci_get_device` does).
            cur = unsafe { sys::rnvme_pci_next_vf(self.as_raw(), cur) };
            let Some(raw) = NonNull::new(cur) else {
                break;
            };
            // SAFETY: the helper returned a referenced, valid VF; `Device` is a
            // transparent wrapper of `pci_dev`. Converting to `ARef` takes a reference of
            // its own; the walk's reference goes with the next call.
            let vf: ARef<Device> = unsafe { raw.cast::<Device>().as_ref() }.into();
            if let Err(e) = vfs.push(vf, GFP_KERNEL) {
                // SAFETY: `raw` holds the walk's reference, which no later call drops now;
                // the `ARef` takes it over and drops it.
                drop(unsafe { ARef::<Device>::from_raw(raw.cast()) });
                return Err(e.into());
            }
        }
        vfs.sort_unstable_by_key(|vf| vf.vf_index().unwrap_or(u16::MAX));
        Ok(vfs)
    }
}

fn valid_bar(bar: u32) -> Result<ffi::c_int> {
    if bar >= PCI_STD_NUM_BARS {
        return Err(EINVAL);
    }
    ffi::c_int::try_from(bar).map_err(|_| EINVAL)
}

impl<Ctx: DeviceContext> AsDevice for Device<Ctx> {
    fn as_device(&self) -> &device::Device<Normal> {
        self.as_dev().as_normal()
    }
}

impl Device<Core> {
    /// Enables the function's memory space (`pci_enable_device_mem`). The function is
    /// disabled again (`pci_disable_device`, which also stops bus mastering) automatically
    /// when the driver is detached, after its `unbind` and the drop of its object.
    /// Enables `num_vfs` SR-IOV virtual functions; they are added (and probed by their
    /// drivers) before this returns.
    pub(crate) fn enable_sriov(&self, num_vfs: u16) -> Result {
        // SAFETY: the device is valid and its lock is held (`Core` context).
        to_result(unsafe { sys::pci_enable_sriov(self.as_raw(), num_vfs.into()) })
    }

    /// Disables SR-IOV: every VF is unbound and removed before this returns.
    pub(crate) fn disable_sriov(&self) {
        // SAFETY: the device is valid and its lock is held (`Core` context).
        unsafe { sys::pci_disable_sriov(self.as_raw()) }
    }

    /// Number of enabled VFs.
    pub(crate) fn num_vfs(&self) -> u16 {
        // SAFETY: the device is valid.
        u16::try_from(unsafe { sys::pci_num_vf(self.as_raw()) }).unwrap_or(0)
    }

    pub(crate) fn enable_device_mem(&self) -> Result {
        // SAFETY: the device is valid and its lock is held (`Core`).
        to_result(unsafe { sys::rnvme_pcim_enable_device_mem(self.as_raw()) })
    }

    /// Enables bus mastering (DMA) for the function.
    pub(crate) fn set_master(&self) {
        // SAFETY: the device is valid and its lock is held (`Core`).
        unsafe { sys::pci_set_master(self.as_raw()) }
    }

    /// Disables bus mastering (DMA) for the function.
    pub(crate) fn clear_master(&self) {
        // SAFETY: the device is valid and its lock is held (`Core`).
        unsafe { sys::pci_clear_master(self.as_raw()) }
    }

    /// Requests memory BAR `bar` for `name` and maps it. Fails with `EINVAL` if the BAR is
    /// not a memory BAR or is smaller than `SIZE`, `EBUSY` if another driver holds the
    /// region, `ENOMEM` if it cannot be mapped.
    pub(crate) fn iomap_region_sized<const SIZE: usize>(
        &self,
        bar: u32,
        name: &'static CStr,
    ) -> Result<Bar<SIZE>> {
        let num = valid_bar(bar)?;
        if self.resource_flags(num) & sys::IORESOURCE_MEM as ffi::c_ulong == 0 {
            return Err(EINVAL);
        }
        let len = usize::try_from(self.resource_len(bar)?).map_err(|_| EINVAL)?;
        if len < SIZE {
            return Err(EINVAL);
        }

        // SAFETY: the device is valid; `name` is a static NUL-terminated string, as the
        // resource tree keeps the pointer.
        to_result(unsafe { sys::pci_request_region(self.as_raw(), num, name.as_char_ptr()) })?;

        // SAFETY: the region was requested above; `0` maps the whole BAR.
        let ioptr = unsafe { sys::pci_iomap(self.as_raw(), num, 0) };
        if ioptr.is_null() {
            // SAFETY: the region was requested above and is not mapped.
            unsafe { sys::pci_release_region(self.as_raw(), num) };
            return Err(ENOMEM);
        }

        let io = match IoRaw::new(ioptr as usize, len) {
            Ok(io) => io,
            Err(e) => {
                // SAFETY: `ioptr` was mapped and the region requested above.
                unsafe {
                    sys::pci_iounmap(self.as_raw(), ioptr);
                    sys::pci_release_region(self.as_raw(), num);
                }
                return Err(e);
            }
        };

        // INVARIANT: `io` describes the BAR mapped above, which stays mapped and requested
        // until `Bar::drop`.
        Ok(Bar {
            pdev: self.as_normal().into(),
            io,
            num,
        })
    }

    fn as_normal(&self) -> &Device<Normal> {
        // SAFETY: `Normal` claims nothing beyond validity.
        unsafe { Device::from_raw(self.as_raw()) }
    }
}

/// Interrupt types to allocate vectors of (`PCI_IRQ_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IrqTypes(u32);

impl IrqTypes {
    /// MSI-X only.
    pub(crate) const MSIX: Self = Self(sys::PCI_IRQ_MSIX);
    /// MSI-X, then MSI, then legacy INTx.
    pub(crate) const ALL: Self = Self(sys::PCI_IRQ_ALL_TYPES);
}

/// Interrupt vectors allocated for a PCI function; freed on drop, which happens only after
/// every [`irq::Registration`] made from them is gone (each holds a reference).
///
/// # Invariants
///
/// `count` vectors are allocated for `pdev` until drop.
pub(crate) struct IrqVectors {
    pdev: ARef<Device>,
    count: u32,
}

impl IrqVectors {
    /// Number of vectors allocated.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// The interrupt of vector `index`, to register a handler with.
    pub(crate) fn request(self: &Arc<Self>, index: u32) -> Result<irq::IrqRequest> {
        if index >= self.count {
            return Err(EINVAL);
        }
        // SAFETY: the vectors are allocated (type invariant) and `index` is in range.
        let irq = unsafe { sys::pci_irq_vector(self.pdev.as_raw(), index) };
        let irq = u32::try_from(irq).map_err(|_| Error::from_errno(irq))?;
        let owner: Arc<dyn Any + Send + Sync> = self.clone();
        // SAFETY: `owner` keeps the vectors, hence `irq`, allocated.
        Ok(unsafe { irq::IrqRequest::new(irq, owner) })
    }
}

impl Drop for IrqVectors {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_irq_vectors` (type invariant); no handler is
        // registered any more, since each registration holds a reference to `self`.
        unsafe { sys::pci_free_irq_vectors(self.pdev.as_raw()) };
    }
}

impl Device<Core> {
    /// Allocates between `min` and `max` interrupt vectors of `types`. With
    /// `spread = Some(pre)`, the vectors after the first `pre` get managed affinity: the
    /// kernel spreads them over the CPUs (`PCI_IRQ_AFFINITY`), so that a queue's interrupt
    /// arrives on the CPUs that submit to it; the first `pre` vectors are left unmanaged
    /// (e.g. for an admin queue).
    pub(crate) fn alloc_irq_vectors(
        &self,
        min: u32,
        max: u32,
        types: IrqTypes,
        spread: Option<u32>,
    ) -> Result<Arc<IrqVectors>> {
        let mut affd = bindings::irq_affinity {
            pre_vectors: spread.unwrap_or(0),
            post_vectors: 0,
            nr_sets: 0,
            set_size: [0; 4],
            calc_sets: None,
            priv_: core::ptr::null_mut(),
        };
        let (flags, affd_ptr) = match spread {
            Some(_) => (types.0 | sys::PCI_IRQ_AFFINITY, &raw mut affd),
            None => (types.0, core::ptr::null_mut()),
        };
        // SAFETY: the device is valid and its lock is held; `affd_ptr` is null or points
        // to a descriptor that lives across the call (the kernel copies what it needs).
        let n = unsafe {
            sys::pci_alloc_irq_vectors_affinity(self.as_raw(), min, max, flags, affd_ptr)
        };
        let count = u32::try_from(n).map_err(|_| Error::from_errno(n))?;
        // INVARIANT: `count` vectors were allocated above.
        let vectors = IrqVectors {
            pdev: self.get_ref(),
            count,
        };
        Ok(Arc::new(vectors, GFP_KERNEL)?)
    }
}

impl Deref for Device<Core> {
    type Target = Device<Bound>;

    fn deref(&self) -> &Device<Bound> {
        // SAFETY: a device in a bus callback is bound.
        unsafe { Device::from_raw(self.as_raw()) }
    }
}

impl Deref for Device<Bound> {
    type Target = Device<Normal>;

    fn deref(&self) -> &Device<Normal> {
        // SAFETY: `Normal` claims nothing beyond validity.
        unsafe { Device::from_raw(self.as_raw()) }
    }
}

// SAFETY: `pci_dev_get`/`pci_dev_put` manage the refcount of the embedded `struct device`.
unsafe impl AlwaysRefCounted for Device<Normal> {
    fn inc_ref(&self) {
        // SAFETY: the device is valid, so its refcount is non-zero.
        unsafe { sys::pci_dev_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference.
        unsafe { sys::pci_dev_put(obj.cast::<sys::pci_dev>().as_ptr()) }
    }
}

// SAFETY: a `struct pci_dev` may be referenced from any thread; the C API locks internally.
unsafe impl<Ctx: DeviceContext> Send for Device<Ctx> {}
// SAFETY: see `Send`.
unsafe impl<Ctx: DeviceContext> Sync for Device<Ctx> {}

/// A requested and mapped memory BAR.
///
/// Dereferences to [`Io<SIZE>`]; `SIZE` is the part of the BAR whose accesses are checked at
/// build time. The mapping and the region request are released on drop.
///
/// # Invariants
///
/// `io` describes the mapping of BAR `num` of `pdev`, which stays mapped and requested until
/// drop.
pub(crate) struct Bar<const SIZE: usize = 0> {
    pdev: ARef<Device<Normal>>,
    io: IoRaw<SIZE>,
    num: ffi::c_int,
}

impl<const SIZE: usize> Deref for Bar<SIZE> {
    type Target = Io<SIZE>;

    fn deref(&self) -> &Io<SIZE> {
        // SAFETY: by the type invariant the mapping is valid until drop.
        unsafe { Io::from_raw(&self.io) }
    }
}

/// A 32-bit register of a [`Bar`] whose offset was checked once, when the register was
/// made, so that a write costs no check (a queue doorbell, written for every command).
///
/// # Invariants
///
/// `offset` is aligned and a 32-bit access at it stays within `bar`'s mapping.
pub(crate) struct BarReg32<const SIZE: usize> {
    bar: Arc<Bar<SIZE>>,
    offset: usize,
}

impl<const SIZE: usize> BarReg32<SIZE> {
    /// The register at `offset` of `bar`; `EINVAL` if a 32-bit access there would leave the
    /// mapping or is not aligned.
    pub(crate) fn new(bar: &Arc<Bar<SIZE>>, offset: usize) -> Result<Self> {
        if !bar.valid_offset::<u32>(offset) {
            return Err(EINVAL);
        }
        // INVARIANT: checked above.
        Ok(Self {
            bar: bar.clone(),
            offset,
        })
    }

    /// Writes `value` to the register.
    #[inline(always)]
    pub(crate) fn write(&self, value: u32) {
        // SAFETY: the offset was checked against this BAR's mapping (type invariant).
        unsafe { self.bar.write32_prechecked(value, self.offset) }
    }
}

impl<const SIZE: usize> Drop for Bar<SIZE> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the BAR is mapped and requested; nothing uses the
        // mapping after this point because `self` is being dropped.
        unsafe {
            sys::pci_iounmap(self.pdev.as_raw(), self.io.addr() as *mut ffi::c_void);
            sys::pci_release_region(self.pdev.as_raw(), self.num);
        }
    }
}

/// The state of a function's link when PCI error recovery reports an error
/// (`pci_channel_state_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// I/O still works (a non-fatal error).
    Normal,
    /// I/O to the function is blocked until the link is reset (a fatal error).
    Frozen,
    /// The function is gone for good.
    PermanentFailure,
}

impl ChannelState {
    /// From the C value (`enum pci_channel_state` in `include/linux/pci.h`: 1, 2, 3);
    /// an unknown value is taken as the worst case.
    fn from_raw(raw: u32) -> Self {
        match raw {
            1 => Self::Normal,
            2 => Self::Frozen,
            _ => Self::PermanentFailure,
        }
    }
}

/// What a driver asks of PCI error recovery (`pci_ers_result_t`; the values are those of
/// `enum pci_ers_result` in `include/linux/pci.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum ErsResult {
    /// No opinion.
    None = 1,
    /// The driver can recover without a reset.
    CanRecover = 2,
    /// The driver needs the link or slot reset.
    NeedReset = 3,
    /// The device cannot be recovered.
    Disconnect = 4,
    /// The driver recovered.
    Recovered = 5,
}

/// A PCI driver.
pub(crate) trait Driver: Sized + Send + Sync + 'static {
    /// Per-entry data of the ID table, handed to [`Driver::probe`].
    type IdInfo: 'static;

    /// The devices this driver binds to.
    const ID_TABLE: IdTable<Self::IdInfo>;

    /// Binds the driver to `dev`; the returned object lives until the device is unbound.
    /// `physfn` is the driver's object of `dev`'s physical function when `dev` is a VF
    /// whose PF is bound to this driver too.
    fn probe(
        dev: &Device<Core>,
        id_info: &Self::IdInfo,
        physfn: Option<Pin<&Self>>,
    ) -> impl PinInit<Self, Error>;

    /// Called before the driver's object is dropped at unbind, with the device still bound.
    fn unbind(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// Called at system shutdown or reboot with the device still bound: quiesce it so that
    /// it does no more DMA (the object is not dropped).
    fn shutdown(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// `echo N > sriov_numvfs` on a bound physical function: enable `num_vfs` VFs (0:
    /// disable them); returns how many are enabled. The PCI core has checked `num_vfs`
    /// against the function's total and that VFs are disabled before new ones are enabled.
    /// By default SR-IOV is not supported (`ENODEV`).
    fn sriov_configure(dev: &Device<Core>, this: Pin<&Self>, num_vfs: u16) -> Result<u16> {
        let _ = (dev, this, num_vfs);
        Err(ENODEV)
    }

    /// A reset of the function is about to happen (`echo 1 > reset`, a reset of the bus
    /// it sits on, or a VFIO user's): stop using the device. The PCI core saves the
    /// configuration space after this and restores it before [`Driver::reset_done`].
    fn reset_prepare(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// The reset announced by [`Driver::reset_prepare`] is over (successful or not): bring
    /// the device back into use.
    fn reset_done(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// PCI error recovery (AER, DPC): an error was detected on the function's link in
    /// `state`. Returns what the driver needs next. The default asks for nothing, which
    /// the PCI core takes as "no opinion".
    fn error_detected(dev: &Device<Core>, this: Pin<&Self>, state: ChannelState) -> ErsResult {
        let _ = (dev, this, state);
        ErsResult::None
    }

    /// PCI error recovery: MMIO works again (after [`ErsResult::CanRecover`]).
    fn mmio_enabled(dev: &Device<Core>, this: Pin<&Self>) -> ErsResult {
        let _ = (dev, this);
        ErsResult::Recovered
    }

    /// PCI error recovery: the link or slot was reset (after [`ErsResult::NeedReset`]);
    /// the function's configuration space is as after power-on.
    fn slot_reset(dev: &Device<Core>, this: Pin<&Self>) -> ErsResult {
        let _ = (dev, this);
        ErsResult::Disconnect
    }

    /// PCI error recovery is over: normal operation may resume.
    fn resume(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// The sysfs attributes added to a function once it is bound (and removed before
    /// [`Driver::unbind`]); none by default.
    fn attributes(dev: &Device<Core>) -> &'static [&'static BoundAttribute<Self>] {
        let _ = dev;
        &[]
    }
}

/// The data of driver `T` bound to the physical function of `vf`, if `vf` is a VF and its
/// PF is bound to `T` (and done probing).
///
/// # Safety
///
/// `vf` is a valid `pci_dev`, and for `'a` either its device lock is held or a sysfs
/// attribute callback of it is running: either keeps the PF's data alive, because
/// `remove_callback` disables SR-IOV (removing the VF, which waits for both) before it
/// drops the data.
pub(super) unsafe fn physfn_data<'a, T: Driver>(vf: *mut sys::pci_dev) -> Option<Pin<&'a T>> {
    // SAFETY: `vf` is valid; the helper returns the PF's driver data only if the PF is
    // bound to the driver whose probe is `T`'s, so it came from
    // `Pin<KBox<T>>::into_foreign` in `probe_callback`; it lives for `'a` (caller).
    unsafe {
        let ptr = sys::rnvme_pci_physfn_drvdata(vf, Some(Adapter::<T>::probe_callback));
        (!ptr.is_null()).then(|| <Pin<KBox<T>> as ForeignOwnable>::borrow(ptr))
    }
}

/// The `struct pci_dev` a sysfs callback's `struct device` is embedded in.
///
/// # Safety
///
/// `dev` is the `dev` member of a valid `struct pci_dev`.
unsafe fn to_pci_dev(dev: *mut bindings::device) -> *mut sys::pci_dev {
    // SAFETY: by the caller, stepping back by the offset of `dev` stays in the `pci_dev`.
    unsafe {
        dev.cast::<u8>()
            .sub(core::mem::offset_of!(sys::pci_dev, dev))
            .cast()
    }
}

/// Runs a `show` callback: `f` formats into the page sysfs gave.
///
/// # Safety
///
/// `buf` is the `PAGE_SIZE` buffer of a sysfs `show` call.
unsafe fn run_show(buf: *mut ffi::c_char, f: impl FnOnce(&mut ShowBuffer<'_>) -> Result) -> isize {
    // SAFETY: sysfs passes a writable page, exclusively ours for the call.
    let page =
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE) };
    let mut out = ShowBuffer::new(page);
    match f(&mut out) {
        Ok(()) => out.len() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Runs a `store` callback: `f` gets the written bytes; a success consumes all of them.
///
/// # Safety
///
/// `buf` points to `count` bytes, valid for the call.
unsafe fn run_store(
    buf: *const ffi::c_char,
    count: usize,
    f: impl FnOnce(&[u8]) -> Result,
) -> isize {
    // SAFETY: by the caller.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    match f(input) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The callbacks of a [`VfAttribute`]: they see the VF and the data of driver `T` bound to
/// its physical function.
pub(crate) trait VfAttributeOps<T: Driver> {
    /// Formats the value.
    fn show(vf: &Device, pf: Pin<&T>, out: &mut ShowBuffer<'_>) -> Result;
    /// Parses and applies a write.
    fn store(vf: &Device, pf: Pin<&T>, input: &[u8]) -> Result;
}

/// A sysfs attribute of SR-IOV VFs whose physical function is bound to driver `T`; the PF's
/// driver adds it to its VFs ([`Device::add_vf_attribute`]). It goes away with the VF,
/// which cannot outlive the PF's binding. Callbacks fail with `ENODEV` if the PF is not
/// bound to `T`.
pub(crate) struct VfAttribute<T: Driver>(DeviceAttribute, PhantomData<T>);

impl<T: Driver> VfAttribute<T> {
    /// An attribute `name` with permissions `mode`, served by `A`.
    pub(crate) const fn new<A: VfAttributeOps<T>>(name: &'static CStr, mode: u16) -> Self {
        // SAFETY: the trampolines accept any device the attribute is added to:
        // `add_vf_attribute` only adds it to PCI VFs.
        let attr = unsafe { DeviceAttribute::new(name, mode, vf_show::<T, A>, vf_store::<T, A>) };
        Self(attr, PhantomData)
    }
}

/// sysfs `show` of a [`VfAttribute`].
///
/// # Safety
///
/// Called by sysfs for a PCI VF the attribute was added to, with sysfs's buffer.
unsafe extern "C" fn vf_show<T: Driver, A: VfAttributeOps<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut ffi::c_char,
) -> isize {
    // SAFETY: the attribute is only added to PCI VFs (`add_vf_attribute`).
    let pdev = unsafe { to_pci_dev(dev) };
    // SAFETY: a callback of the VF's attribute is running.
    let Some(pf) = (unsafe { physfn_data::<T>(pdev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: `pdev` is valid for the call.
    let vf = unsafe { Device::<Normal>::from_raw(pdev) };
    // SAFETY: sysfs passes its `show` page.
    unsafe { run_show(buf, |out| A::show(vf, pf, out)) }
}

/// sysfs `store` of a [`VfAttribute`].
///
/// # Safety
///
/// Called by sysfs for a PCI VF the attribute was added to, with sysfs's buffer.
unsafe extern "C" fn vf_store<T: Driver, A: VfAttributeOps<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *const ffi::c_char,
    count: usize,
) -> isize {
    // SAFETY: the attribute is only added to PCI VFs (`add_vf_attribute`).
    let pdev = unsafe { to_pci_dev(dev) };
    // SAFETY: a callback of the VF's attribute is running.
    let Some(pf) = (unsafe { physfn_data::<T>(pdev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: `pdev` is valid for the call.
    let vf = unsafe { Device::<Normal>::from_raw(pdev) };
    // SAFETY: sysfs passes the written bytes.
    unsafe { run_store(buf, count, |input| A::store(vf, pf, input)) }
}

/// The callbacks of a [`BoundAttribute`]: they see the function and driver `T`'s data.
pub(crate) trait BoundAttributeOps<T: Driver> {
    /// Formats the value.
    fn show(dev: &Device, this: Pin<&T>, out: &mut ShowBuffer<'_>) -> Result;
    /// Parses and applies a write.
    fn store(dev: &Device, this: Pin<&T>, input: &[u8]) -> Result;
}

/// A sysfs attribute of functions bound to driver `T`, listed by [`Driver::attributes`]:
/// added once the function is bound, removed before it unbinds.
pub(crate) struct BoundAttribute<T: Driver>(DeviceAttribute, PhantomData<T>);

impl<T: Driver> BoundAttribute<T> {
    /// An attribute `name` with permissions `mode`, served by `A`.
    pub(crate) const fn new<A: BoundAttributeOps<T>>(name: &'static CStr, mode: u16) -> Self {
        // SAFETY: the adapter adds the attribute only to functions bound to `T`, while
        // their data is set (see `bound_show`).
        let attr =
            unsafe { DeviceAttribute::new(name, mode, bound_show::<T, A>, bound_store::<T, A>) };
        Self(attr, PhantomData)
    }

    fn name(&self) -> &'static str {
        // SAFETY: the name is a static NUL-terminated string (`DeviceAttribute` invariant).
        let name = unsafe { CStr::from_char_ptr((*self.0.as_raw()).attr.name) };
        name.to_str().unwrap_or("?")
    }
}

/// # Safety
///
/// `dev` is a PCI function bound to `T` whose data is set and stays alive for the call.
unsafe fn bound_data<'a, T: Driver>(
    dev: *mut bindings::device,
) -> Option<(&'a Device, Pin<&'a T>)> {
    // SAFETY: by the caller `dev` is embedded in a valid `pci_dev`.
    let pdev = unsafe { Device::<Normal>::from_raw(to_pci_dev(dev)) };
    // SAFETY: the device is valid.
    let ptr = unsafe { sys::rnvme_dev_get_drvdata(dev) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: by the caller a non-null drvdata is `T`'s, from `probe_callback`.
    let this = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(ptr) };
    Some((pdev, this))
}

/// sysfs `show` of a [`BoundAttribute`].
///
/// # Safety
///
/// Called by sysfs for a PCI function bound to `T`, with sysfs's buffer.
unsafe extern "C" fn bound_show<T: Driver, A: BoundAttributeOps<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut ffi::c_char,
) -> isize {
    // SAFETY: the attribute exists only between `probe_callback` setting the data and
    // `remove_callback` removing it (which waits for running callbacks).
    let Some((pdev, this)) = (unsafe { bound_data::<T>(dev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: sysfs passes its `show` page.
    unsafe { run_show(buf, |out| A::show(pdev, this, out)) }
}

/// sysfs `store` of a [`BoundAttribute`].
///
/// # Safety
///
/// Called by sysfs for a PCI function bound to `T`, with sysfs's buffer.
unsafe extern "C" fn bound_store<T: Driver, A: BoundAttributeOps<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *const ffi::c_char,
    count: usize,
) -> isize {
    // SAFETY: as in `bound_show`.
    let Some((pdev, this)) = (unsafe { bound_data::<T>(dev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: sysfs passes the written bytes.
    unsafe { run_store(buf, count, |input| A::store(pdev, this, input)) }
}

/// The C callbacks of a [`Driver`].
struct Adapter<T: Driver>(PhantomData<T>);

impl<T: Driver> Adapter<T> {
    /// # Safety
    ///
    /// Called by the PCI core with a valid device (lock held) and a valid matched ID.
    unsafe extern "C" fn probe_callback(
        pdev: *mut sys::pci_dev,
        id: *const bindings::pci_device_id,
    ) -> ffi::c_int {
        // SAFETY: the PCI core calls probe with a valid device, locked and being bound.
        let dev = unsafe { Device::<Core>::from_raw(pdev) };
        // SAFETY: the PCI core passes the matched entry, valid for the call.
        let id = unsafe { &*id };

        from_result(|| {
            let info = T::ID_TABLE.info(id).ok_or(ENODEV)?;
            // SAFETY: the device is valid and its lock is held.
            let physfn = unsafe { physfn_data::<T>(pdev) };
            let data = KBox::pin_init(T::probe(dev, info, physfn), GFP_KERNEL)?;
            // SAFETY: the device is valid; ownership of `data` moves to the drvdata pointer
            // and is taken back exactly once in `remove_callback`.
            unsafe { sys::rnvme_dev_set_drvdata(dev.as_dev().as_raw(), data.into_foreign() as _) };
            for attr in T::attributes(dev) {
                // SAFETY: the device is valid and bound to `T` with its data set, as the
                // attribute's callbacks expect; `remove_callback` removes it before the data
                // is dropped.
                let ret =
                    unsafe { sys::device_create_file(dev.as_dev().as_raw(), attr.0.as_raw()) };
                if ret != 0 {
                    crate::kapi::device::dev_warn!(
                        dev,
                        "sysfs attribute {} not added: {:?}\n",
                        attr.name(),
                        Error::from_errno(ret)
                    );
                }
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device that `probe_callback` bound.
    unsafe extern "C" fn remove_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: the PCI core calls remove with a valid, locked, still bound device.
        let dev = unsafe { Device::<Core>::from_raw(pdev) };
        // SAFETY: the device is valid.
        let ptr = unsafe { sys::rnvme_dev_get_drvdata(dev.as_dev().as_raw()) };
        // SAFETY: probe succeeded (otherwise remove is not called), so `ptr` came from
        // `Pin<KBox<T>>::into_foreign` and is converted back exactly once.
        let data = unsafe { <Pin<KBox<T>> as ForeignOwnable>::from_foreign(ptr) };
        for attr in T::attributes(dev) {
            // SAFETY: the device is valid; removing a file that was never added is a no-op.
            // Removal waits for running callbacks, which borrow `data`.
            unsafe { sys::device_remove_file(dev.as_dev().as_raw(), attr.0.as_raw()) };
        }
        // VFs go first: their probes and attributes may borrow this function's data (see
        // `physfn_data`), and a VF must not outlive the driver that configured it.
        if dev.num_vfs() > 0 {
            dev.disable_sriov();
        }
        T::unbind(dev, data.as_ref());
        drop(data);
        // SAFETY: the device is valid; the stale pointer must not be seen by the next driver.
        unsafe { sys::rnvme_dev_set_drvdata(dev.as_dev().as_raw(), core::ptr::null_mut()) };
    }

    /// # Safety
    ///
    /// Called by the PCI core (from `sriov_numvfs`) with a valid, locked device.
    unsafe extern "C" fn sriov_configure_callback(
        pdev: *mut sys::pci_dev,
        num_vfs: ffi::c_int,
    ) -> ffi::c_int {
        // SAFETY: the PCI core passes a valid device with its lock held.
        let Some((dev, data)) = (unsafe { Self::bound(pdev) }) else {
            return ENODEV.to_errno();
        };
        from_result(|| {
            let n = u16::try_from(num_vfs).map_err(|_| EINVAL)?;
            T::sriov_configure(dev, data, n).map(ffi::c_int::from)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core at shutdown with a valid device, bound or not.
    unsafe extern "C" fn shutdown_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: the PCI core calls shutdown with a valid device, its lock held.
        if let Some((dev, data)) = unsafe { Self::bound(pdev) } {
            T::shutdown(dev, data);
        }
    }

    /// The device and the driver's data of a bound function, for the callbacks that run
    /// on a bound function with its device lock held (all but probe and remove).
    ///
    /// # Safety
    ///
    /// `pdev` is valid and its device lock is held for `'a`.
    unsafe fn bound<'a>(pdev: *mut sys::pci_dev) -> Option<(&'a Device<Core>, Pin<&'a T>)> {
        // SAFETY: valid and locked (caller).
        let dev = unsafe { Device::<Core>::from_raw(pdev) };
        // SAFETY: the device is valid.
        let ptr = unsafe { sys::rnvme_dev_get_drvdata(dev.as_dev().as_raw()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: a non-null drvdata is the object `probe_callback` stored, alive until
        // `remove_callback`, which cannot run while the device lock is held.
        Some((dev, unsafe {
            <Pin<KBox<T>> as ForeignOwnable>::borrow(ptr)
        }))
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn reset_prepare_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: as this function's contract.
        if let Some((dev, data)) = unsafe { Self::bound(pdev) } {
            T::reset_prepare(dev, data);
        }
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn reset_done_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: as this function's contract.
        if let Some((dev, data)) = unsafe { Self::bound(pdev) } {
            T::reset_done(dev, data);
        }
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn error_detected_callback(
        pdev: *mut sys::pci_dev,
        state: sys::pci_channel_state_t,
    ) -> sys::pci_ers_result_t {
        // SAFETY: as this function's contract.
        let result = match unsafe { Self::bound(pdev) } {
            Some((dev, data)) => T::error_detected(dev, data, ChannelState::from_raw(state)),
            None => ErsResult::None,
        };
        result as sys::pci_ers_result_t
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn mmio_enabled_callback(pdev: *mut sys::pci_dev) -> sys::pci_ers_result_t {
        // SAFETY: as this function's contract.
        let result = match unsafe { Self::bound(pdev) } {
            Some((dev, data)) => T::mmio_enabled(dev, data),
            None => ErsResult::None,
        };
        result as sys::pci_ers_result_t
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn slot_reset_callback(pdev: *mut sys::pci_dev) -> sys::pci_ers_result_t {
        // SAFETY: as this function's contract.
        let result = match unsafe { Self::bound(pdev) } {
            Some((dev, data)) => T::slot_reset(dev, data),
            None => ErsResult::None,
        };
        result as sys::pci_ers_result_t
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn resume_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: as this function's contract.
        if let Some((dev, data)) = unsafe { Self::bound(pdev) } {
            T::resume(dev, data);
        }
    }

    /// The error handlers of every driver of type `T`: a constant, so `&ERROR_HANDLERS`
    /// is a static the PCI core may keep.
    const ERROR_HANDLERS: sys::pci_error_handlers = sys::pci_error_handlers {
        error_detected: Some(Self::error_detected_callback),
        mmio_enabled: Some(Self::mmio_enabled_callback),
        slot_reset: Some(Self::slot_reset_callback),
        reset_prepare: Some(Self::reset_prepare_callback),
        reset_done: Some(Self::reset_done_callback),
        resume: Some(Self::resume_callback),
        cor_error_detected: None,
    };
}

/// A `struct pci_driver` registered with the PCI core; unregistered on drop. The typed
/// registrations ([`Registration`], [`super::vfio::Registration`]) differ only in the
/// callbacks they fill in.
///
/// # Invariants
///
/// `drv` is registered with the PCI core for the lifetime of the object.
#[pin_data(PinnedDrop)]
pub(super) struct DriverRegistration {
    #[pin]
    drv: Opaque<sys::pci_driver>,
}

// SAFETY: the registration is only touched at creation and drop; the PCI core serialises
// access to the `pci_driver` it holds.
unsafe impl Send for DriverRegistration {}
// SAFETY: no `&self` method touches the `pci_driver`.
unsafe impl Sync for DriverRegistration {}

impl DriverRegistration {
    /// Registers PCI driver `name` of `module` with ID table `ids`; `fill` sets its
    /// callbacks in the otherwise zeroed `pci_driver` before registration.
    ///
    /// # Safety
    ///
    /// `ids` is a zero-terminated table that outlives the registration, and the callbacks
    /// `fill` sets are valid for the PCI core to call while the driver is registered.
    pub(super) unsafe fn new(
        name: &'static CStr,
        module: &'static ThisModule,
        ids: *const bindings::pci_device_id,
        fill: impl FnOnce(*mut sys::pci_driver),
    ) -> impl PinInit<Self, Error> {
        let init = move |slot: *mut Opaque<sys::pci_driver>| {
            let drv = Opaque::raw_get(slot);
            // SAFETY: `drv` is valid for writes; all-zero is a valid `pci_driver`.
            unsafe {
                core::ptr::write_bytes(drv, 0, 1);
                (*drv).name = name.as_char_ptr();
                (*drv).id_table = ids;
            }
            fill(drv);
            // SAFETY: `drv` is fully initialised and pinned (it lives in a pinned `Opaque`
            // that is only dropped through `PinnedDrop`, which unregisters it); `name` is a
            // static string; the table and callbacks are valid (caller).
            to_result(unsafe {
                sys::__pci_register_driver(drv, module.as_ptr(), name.as_char_ptr())
            })
        };
        try_pin_init!(Self {
            // SAFETY: the closure initialises the whole `pci_driver` before registering it,
            // and returns an error only when registration failed (nothing to undo).
            drv <- unsafe { pin_init_from_closure(init) },
        })
    }
}

#[pinned_drop]
impl PinnedDrop for DriverRegistration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariant the driver is registered.
        unsafe { sys::pci_unregister_driver(self.drv.get()) };
    }
}

/// The registration of a [`Driver`] with the PCI core; unregisters on drop.
#[pin_data]
pub(crate) struct Registration<T: Driver> {
    #[pin]
    reg: DriverRegistration,
    _p: PhantomData<T>,
}

impl<T: Driver> Registration<T> {
    /// Registers `T` as PCI driver `name` of `module`.
    pub(crate) fn new(
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> impl PinInit<Self, Error> {
        let fill = |drv: *mut sys::pci_driver| {
            // SAFETY: `drv` points to the `pci_driver` being initialised, not yet registered.
            unsafe {
                (*drv).probe = Some(Adapter::<T>::probe_callback);
                (*drv).remove = Some(Adapter::<T>::remove_callback);
                (*drv).shutdown = Some(Adapter::<T>::shutdown_callback);
                (*drv).sriov_configure = Some(Adapter::<T>::sriov_configure_callback);
                (*drv).err_handler = &Adapter::<T>::ERROR_HANDLERS;
            }
        };
        try_pin_init!(Self {
            // SAFETY: `T::ID_TABLE` is a static, terminated table (`IdTable` invariant); the
            // adapter's callbacks are valid for any device the PCI core binds.
            reg <- unsafe { DriverRegistration::new(name, module, T::ID_TABLE.as_ptr(), fill) },
            _p: PhantomData,
        })
    }
}

#[cfg(CONFIG_KUNIT)]
crate::kapi::kunit::kunit_tests!(rnvme_kapi_pci, {
    fn id_tables_are_numbered_and_terminated() {
        let ids = DeviceId::index_table([
            DeviceId::from_id(0x1b36, 0x0010),
            DeviceId::from_class(0x01_08_02, 0xff_ff_ff),
            DeviceId::TERMINATOR,
        ]);
        assert_eq!(ids[0].0.driver_data, 0);
        assert_eq!(ids[1].0.driver_data, 1);
        assert_eq!(ids[2].0.driver_data, 0);
        assert_eq!(ids[2].0.vendor, 0);
        assert_eq!(ids[2].0.class_mask, 0);
        assert_eq!(ids[0].0.vendor, 0x1b36);
        assert_eq!(ids[0].0.subvendor, PCI_ANY_ID);
        assert_eq!(ids[1].0.vendor, PCI_ANY_ID);
        assert_eq!(ids[1].0.class, 0x01_08_02);
    }

    fn id_table_info_rejects_foreign_driver_data() {
        static IDS: [DeviceId; 2] =
            DeviceId::index_table([DeviceId::from_id(1, 2), DeviceId::TERMINATOR]);
        const TABLE: IdTable<u32> = IdTable::new(&IDS, &[42]);
        assert_eq!(TABLE.info(&IDS[0].0), Some(&42));
        let mut foreign = IDS[0].0;
        foreign.driver_data = 7;
        assert_eq!(TABLE.info(&foreign), None);
    }

    fn bar_numbers_are_validated() {
        assert_eq!(valid_bar(0), Ok(0));
        assert_eq!(valid_bar(5), Ok(5));
        assert_eq!(valid_bar(6), Err(EINVAL));
        assert_eq!(valid_bar(u32::MAX), Err(EINVAL));
    }
});
