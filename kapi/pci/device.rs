// SPDX-License-Identifier: GPL-2.0

//! A PCI function (`struct pci_dev`) in a device context: its IDs, its place in SR-IOV,
//! its configuration-space state and its resources.
//!
//! The methods of the other ideas live with them: [`Device::iomap_region_sized`] in
//! [`super::bar`], [`Device::alloc_irq_vectors`] in [`super::irq_vectors`],
//! [`Device::add_vf_attribute`] in [`super::vf_attribute`].
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::{marker::PhantomData, ops::Deref, ptr::NonNull};

use kernel::{
    error::to_result,
    ffi,
    prelude::*,
    str::CStr,
    types::{ARef, AlwaysRefCounted, Opaque},
};

use crate::kapi::{
    bindings::sys,
    device::{self, AsDevice, Bound, Core, DeviceContext, Normal},
};

/// Number of standard BARs of a PCI function (`PCI_STD_NUM_BARS`).
const PCI_STD_NUM_BARS: u32 = 6;

/// A PCI function (`struct pci_dev`), borrowed in context `Ctx`.
///
/// # Invariants
///
/// A `&Device<Ctx>` points to a valid `struct pci_dev` whose state matches `Ctx`.
#[repr(transparent)]
pub(crate) struct Device<Ctx: DeviceContext = Normal>(Opaque<sys::pci_dev>, PhantomData<Ctx>);

impl<Ctx: DeviceContext> Device<Ctx> {
    /// Borrows the `struct pci_dev` at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct pci_dev` in state `Ctx` for the lifetime `'a`.
    pub(in crate::kapi) unsafe fn from_raw<'a>(ptr: *mut sys::pci_dev) -> &'a Self {
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

    /// The `IORESOURCE_*` flags of BAR `bar`, a number [`valid_bar`] checked.
    pub(super) fn resource_flags(&self, bar: ffi::c_int) -> ffi::c_ulong {
        // SAFETY: the device is valid and `bar` was checked by `valid_bar`.
        unsafe { sys::rnvme_pci_resource_flags(self.as_raw(), bar) }
    }
}

impl Device<Normal> {
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

/// BAR number `bar` as the C functions take it; `EINVAL` unless it is a standard BAR.
pub(super) fn valid_bar(bar: u32) -> Result<ffi::c_int> {
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

    /// Enables the function's memory space (`pci_enable_device_mem`). The function is
    /// disabled again (`pci_disable_device`, which also stops bus mastering) automatically
    /// when the driver is detached, after its `unbind` and the drop of its object.
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

    /// The same function in the [`Normal`] context.
    pub(super) fn as_normal(&self) -> &Device<Normal> {
        // SAFETY: `Normal` claims nothing beyond validity.
        unsafe { Device::from_raw(self.as_raw()) }
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
