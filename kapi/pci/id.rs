// SPDX-License-Identifier: GPL-2.0

//! PCI device IDs: the entries and tables a driver binds by, and [`pci_device_table!`],
//! which also exports a table to modpost for the module's `pci:` aliases.
//!
//! C header: [`include/linux/mod_devicetable.h`](srctree/include/linux/mod_devicetable.h)

use kernel::{bindings, ffi};

#[cfg(CONFIG_KUNIT)]
use {super::device::valid_bar, kernel::error::code::EINVAL};

/// `PCI_ANY_ID`: matches any vendor, device, subsystem vendor or subsystem device.
const PCI_ANY_ID: u32 = !0;

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

    /// The zero-terminated C array, for a `struct pci_driver`'s `id_table`.
    pub(in crate::kapi) fn as_ptr(&self) -> *const bindings::pci_device_id {
        self.ids.as_ptr().cast()
    }

    /// Returns the info of the entry the PCI core matched, or `None` for an ID it got from
    /// elsewhere (a dynamic `new_id` with foreign driver data).
    pub(in crate::kapi) fn info(&self, id: &bindings::pci_device_id) -> Option<&'static T> {
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

// The `pci` module's one KUnit suite (the guest tests look for it by this name): the ID
// tables above and the BAR number check of `super::device`.
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
