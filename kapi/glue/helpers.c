// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of the rnvme module. See helpers.h.
 */
#include <linux/device.h>
#include <linux/io.h>
#include <linux/pci.h>
#include <kunit/test.h>
#include <kunit/test-bug.h>

#include "helpers.h"

u8 rnvme_readb(const volatile void __iomem *addr) { return readb(addr); }
u16 rnvme_readw(const volatile void __iomem *addr) { return readw(addr); }
u32 rnvme_readl(const volatile void __iomem *addr) { return readl(addr); }
u64 rnvme_readq(const volatile void __iomem *addr) { return readq(addr); }
void rnvme_writeb(u8 value, volatile void __iomem *addr) { writeb(value, addr); }
void rnvme_writew(u16 value, volatile void __iomem *addr) { writew(value, addr); }
void rnvme_writel(u32 value, volatile void __iomem *addr) { writel(value, addr); }
void rnvme_writeq(u64 value, volatile void __iomem *addr) { writeq(value, addr); }

void *rnvme_dev_get_drvdata(const struct device *dev)
{
	return dev_get_drvdata(dev);
}

void rnvme_dev_set_drvdata(struct device *dev, void *data)
{
	dev_set_drvdata(dev, data);
}

const char *rnvme_dev_name(const struct device *dev)
{
	return dev_name(dev);
}

resource_size_t rnvme_pci_resource_start(struct pci_dev *pdev, int bar)
{
	return pci_resource_start(pdev, bar);
}

resource_size_t rnvme_pci_resource_len(struct pci_dev *pdev, int bar)
{
	return pci_resource_len(pdev, bar);
}

unsigned long rnvme_pci_resource_flags(struct pci_dev *pdev, int bar)
{
	return pci_resource_flags(pdev, bar);
}

void rnvme_dma_rmb(void)
{
	dma_rmb();
}

void rnvme_dma_wmb(void)
{
	dma_wmb();
}

/*
 * Marks the KUnit test running on this task as failed and logs the failure
 * (file:line and a Rust `fmt::Arguments`, printed with %pA) into the test's
 * log. Outside a KUnit test it only prints the message.
 */
void rnvme_kunit_fail(const char *file, int line, const void *fmt_args)
{
#if IS_ENABLED(CONFIG_KUNIT)
	struct kunit *test = kunit_get_current_test();

	if (test) {
		kunit_set_failure(test);
		kunit_err(test, "%s:%d: %pA\n", file, line, fmt_args);
		return;
	}
#endif
	pr_err("rnvme: assertion failed outside KUnit at %s:%d: %pA\n", file, line, fmt_args);
}
