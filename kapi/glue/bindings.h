/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers whose declarations the module's own bindgen run turns into Rust
 * (kapi/generated/sys.rs). Types that the kernel's `bindings` crate already
 * defines are not generated again: the generated code refers to them through
 * `kernel::bindings`, so both crates share one nominal type per C type.
 */
#include <linux/dma-mapping.h>
#include <linux/file.h>
#include <linux/dmapool.h>
#include <linux/interrupt.h>
#include <linux/iommu.h>
#include <linux/miscdevice.h>
#include <linux/mod_devicetable.h>
#include <linux/nvme.h>
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>

#include "helpers.h"
