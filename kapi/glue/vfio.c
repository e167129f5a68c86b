// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of the rnvme module: the VFIO device of a function in vfio mode.
 *
 * The device is a vfio-pci-core device with exactly the operations vfio-pci
 * uses; nothing of VFIO or of PCI config space, BAR, interrupt or reset
 * emulation is reimplemented here. What the module adds is a pointer to its
 * own per-function data next to the core device.
 */
#include <linux/device.h>
#include <linux/iommu.h>
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>

#include "helpers.h"

/* A vfio-pci-core device plus the driver's data (owned by the Rust side). */
struct rnvme_vfio_device {
	struct vfio_pci_core_device core;
	void *data;
};

static int rnvme_vfio_open_device(struct vfio_device *core_vdev)
{
	struct vfio_pci_core_device *vdev =
		container_of(core_vdev, struct vfio_pci_core_device, vdev);
	int ret;

	ret = vfio_pci_core_enable(vdev);
	if (ret)
		return ret;
	vfio_pci_core_finish_enable(vdev);
	return 0;
}

static const struct vfio_device_ops rnvme_vfio_ops = {
	.name		= "rnvme-vfio",
	.init		= vfio_pci_core_init_dev,
	.release	= vfio_pci_core_release_dev,
	.open_device	= rnvme_vfio_open_device,
	.close_device	= vfio_pci_core_close_device,
	.ioctl		= vfio_pci_core_ioctl,
	.device_feature = vfio_pci_core_ioctl_feature,
	.read		= vfio_pci_core_read,
	.write		= vfio_pci_core_write,
	.mmap		= vfio_pci_core_mmap,
	.request	= vfio_pci_core_request,
	.match		= vfio_pci_core_match,
	.bind_iommufd	= vfio_iommufd_physical_bind,
	.unbind_iommufd	= vfio_iommufd_physical_unbind,
	.attach_ioas	= vfio_iommufd_physical_attach_ioas,
	.detach_ioas	= vfio_iommufd_physical_detach_ioas,
};

/*
 * Creates and registers the VFIO device of @pdev (from the probe of a
 * pci_driver set up by rnvme_vfio_driver_init) with @data attached. The PCI
 * drvdata becomes the core device, as vfio-pci-core requires.
 */
int rnvme_vfio_register(struct pci_dev *pdev, void *data)
{
	struct rnvme_vfio_device *rdev;
	int ret;

	rdev = vfio_alloc_device(rnvme_vfio_device, core.vdev, &pdev->dev, &rnvme_vfio_ops);
	if (IS_ERR(rdev))
		return PTR_ERR(rdev);
	rdev->data = data;
	dev_set_drvdata(&pdev->dev, &rdev->core);
	ret = vfio_pci_core_register_device(&rdev->core);
	if (ret) {
		dev_set_drvdata(&pdev->dev, NULL);
		vfio_put_device(&rdev->core.vdev);
	}
	return ret;
}

/*
 * Unregisters the VFIO device of @pdev (waiting, as vfio does, until no user
 * holds it) and frees it; returns the data given to rnvme_vfio_register.
 */
void *rnvme_vfio_unregister(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core = dev_get_drvdata(&pdev->dev);
	struct rnvme_vfio_device *rdev = container_of(core, struct rnvme_vfio_device, core);
	void *data = rdev->data;

	vfio_pci_core_unregister_device(core);
	vfio_put_device(&core->vdev);
	dev_set_drvdata(&pdev->dev, NULL);
	return data;
}

/* Sets up @drv as a vfio-pci-core driver: DMA ownership left to VFIO, vfio's AER handlers. */
void rnvme_vfio_driver_init(struct pci_driver *drv)
{
	drv->driver_managed_dma = true;
	drv->err_handler = &vfio_pci_core_err_handlers;
}

/*
 * Whether @pdev is bound to the driver whose probe function is @probe (one set up by
 * rnvme_vfio_driver_init) and its VFIO device is open (by a VMM or any other user),
 * checked under the device lock so that the binding cannot change meanwhile.
 */
bool rnvme_vfio_in_use(struct pci_dev *pdev,
		       int (*probe)(struct pci_dev *, const struct pci_device_id *))
{
	struct vfio_pci_core_device *core;
	struct device_driver *drv;
	bool open = false;

	device_lock(&pdev->dev);
	drv = pdev->dev.driver;
	if (drv && to_pci_driver(drv)->probe == probe) {
		core = dev_get_drvdata(&pdev->dev);
		mutex_lock(&core->vdev.dev_set->lock);
		open = vfio_device_set_open_count(core->vdev.dev_set) > 0;
		mutex_unlock(&core->vdev.dev_set->lock);
	}
	device_unlock(&pdev->dev);
	return open;
}

static int rnvme_count_dev(struct device *dev, void *data)
{
	(*(unsigned int *)data)++;
	return 0;
}

/* How many devices share @pdev's IOMMU group (0: it has none). */
unsigned int rnvme_iommu_group_size(struct pci_dev *pdev)
{
	struct iommu_group *group = iommu_group_get(&pdev->dev);
	unsigned int n = 0;

	if (!group)
		return 0;
	iommu_group_for_each_dev(group, &n, rnvme_count_dev);
	iommu_group_put(group);
	return n;
}
