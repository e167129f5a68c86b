// SPDX-License-Identifier: GPL-2.0

//! The interrupt vectors of a PCI function (MSI-X, MSI or INTx): allocated as
//! [`IrqVectors`], from which [`irq::Registration`]s are made.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::any::Any;

use kernel::{bindings, prelude::*, sync::Arc, types::ARef};

use super::device::Device;
use crate::kapi::{bindings::sys, device::Core, irq};

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
