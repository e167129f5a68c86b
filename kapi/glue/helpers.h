/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C glue of the rnvme module: out-of-line wrappers for static inline
 * functions and macros that Rust cannot call directly. Every function here is
 * a thin wrapper with the semantics of the C API it is named after.
 */
#ifndef RNVME_HELPERS_H
#define RNVME_HELPERS_H

#include <linux/types.h>

struct device;
struct pci_dev;

u8 rnvme_readb(const volatile void __iomem *addr);
u16 rnvme_readw(const volatile void __iomem *addr);
u32 rnvme_readl(const volatile void __iomem *addr);
u64 rnvme_readq(const volatile void __iomem *addr);
void rnvme_writeb(u8 value, volatile void __iomem *addr);
void rnvme_writew(u16 value, volatile void __iomem *addr);
void rnvme_writel(u32 value, volatile void __iomem *addr);
void rnvme_writeq(u64 value, volatile void __iomem *addr);

void *rnvme_dev_get_drvdata(const struct device *dev);
void rnvme_dev_set_drvdata(struct device *dev, void *data);
const char *rnvme_dev_name(const struct device *dev);

resource_size_t rnvme_pci_resource_start(struct pci_dev *pdev, int bar);
resource_size_t rnvme_pci_resource_len(struct pci_dev *pdev, int bar);
unsigned long rnvme_pci_resource_flags(struct pci_dev *pdev, int bar);

void rnvme_dma_rmb(void);
void rnvme_dma_wmb(void);

void rnvme_kunit_fail(const char *file, int line, const void *fmt_args);

#endif /* RNVME_HELPERS_H */
