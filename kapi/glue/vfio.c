// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of the rnvme module: the VFIO device of a function in vfio mode.
 *
 * The device is a vfio-pci-core device with exactly the operations vfio-pci
 * uses; nothing of VFIO or of PCI config space, BAR, interrupt or reset
 * emulation is reimplemented here. What the module adds is a pointer to its
 * own per-function data next to the core device, and, where the driver asks
 * for them, the migration and DMA logging (dirty tracking) operations, which
 * forward to that data's callbacks.
 */
#include <linux/anon_inodes.h>
#include <linux/device.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/interval_tree.h>
#include <linux/iommu.h>
#include <linux/iova_bitmap.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>

#include "helpers.h"

#if IS_ENABLED(CONFIG_IOMMUFD_DRIVER)
/* iova_bitmap_set (the dirty bitmap of a DMA logging report) is exported in IOMMUFD. */
MODULE_IMPORT_NS(IOMMUFD);
#endif

/*
 * A vfio-pci-core device plus the driver's data (owned by the Rust side) and the
 * callbacks (kapi/vfio.rs) that reach it; log_max_ranges is how many IOVA ranges the
 * driver's DMA logging takes at most (0: the device has no log_ops).
 */
struct rnvme_vfio_device {
	struct vfio_pci_core_device core;
	void *data;
	const struct rnvme_vfio_callbacks *cb;
	u32 log_max_ranges;
};

static struct rnvme_vfio_device *to_rdev(struct vfio_device *core_vdev)
{
	return container_of(core_vdev, struct rnvme_vfio_device, core.vdev);
}

static int rnvme_vfio_open_device(struct vfio_device *core_vdev)
{
	struct rnvme_vfio_device *rdev = to_rdev(core_vdev);
	int ret;

	ret = vfio_pci_core_enable(&rdev->core);
	if (ret)
		return ret;
	/* vfio_pci_core_enable reset the function: no migration is under way. */
	rdev->cb->open(rdev->data);
	vfio_pci_core_finish_enable(&rdev->core);
	return 0;
}

static void rnvme_vfio_close_device(struct vfio_device *core_vdev)
{
	struct rnvme_vfio_device *rdev = to_rdev(core_vdev);

	rdev->cb->close(rdev->data);
	vfio_pci_core_close_device(core_vdev);
}

static struct file *rnvme_mig_set_state(struct vfio_device *core_vdev,
					enum vfio_device_mig_state new_state)
{
	struct rnvme_vfio_device *rdev = to_rdev(core_vdev);
	struct file *filp = NULL;
	int ret;

	ret = rdev->cb->set_state(rdev->data, core_vdev, new_state, &filp);
	return ret ? ERR_PTR(ret) : filp;
}

static int rnvme_mig_get_state(struct vfio_device *core_vdev,
			       enum vfio_device_mig_state *curr_state)
{
	struct rnvme_vfio_device *rdev = to_rdev(core_vdev);
	u32 state;
	int ret;

	ret = rdev->cb->get_state(rdev->data, &state);
	if (!ret)
		*curr_state = state;
	return ret;
}

static int rnvme_mig_get_data_size(struct vfio_device *core_vdev,
				   unsigned long *stop_copy_length)
{
	struct rnvme_vfio_device *rdev = to_rdev(core_vdev);

	return rdev->cb->data_size(rdev->data, stop_copy_length);
}

static const struct vfio_migration_ops rnvme_mig_ops = {
	.migration_set_state = rnvme_mig_set_state,
	.migration_get_state = rnvme_mig_get_state,
	.migration_get_data_size = rnvme_mig_get_data_size,
};

/*
 * VFIO_DEVICE_FEATURE_DMA_LOGGING_START: the core has checked @ranges (1 to 256 of
 * them, aligned to *@page_size, no overlap, no overflow) and built the interval tree.
 * Ranges beyond what the driver takes are merged (smallest gaps first) as mlx5 and pds
 * do; the driver gets them as a sorted array.
 */
static int rnvme_log_start(struct vfio_device *core_vdev, struct rb_root_cached *ranges,
			   u32 nnodes, u64 *page_size)
{
	struct rnvme_vfio_device *rdev = to_rdev(core_vdev);
	struct interval_tree_node *node;
	struct rnvme_iova_range *array;
	u32 cap = min(nnodes, rdev->log_max_ranges);
	u32 n = 0;
	int ret;

	if (!cap)
		return -EINVAL;
	if (nnodes > cap)
		vfio_combine_iova_ranges(ranges, nnodes, cap);

	array = kcalloc(cap, sizeof(*array), GFP_KERNEL);
	if (!array)
		return -ENOMEM;
	/* The array holds what the tree holds, never more than it was allocated for. */
	for (node = interval_tree_iter_first(ranges, 0, ULONG_MAX); node;
	     node = interval_tree_iter_next(node, 0, ULONG_MAX)) {
		if (WARN_ON_ONCE(n == cap)) {
			ret = -EINVAL;
			goto out;
		}
		array[n].start = node->start;
		array[n].last = node->last;
		n++;
	}
	ret = n ? rdev->cb->log_start(rdev->data, array, n, page_size) : -EINVAL;
out:
	kfree(array);
	return ret;
}

/* VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, and the undoing of a start the user never saw. */
static int rnvme_log_stop(struct vfio_device *core_vdev)
{
	struct rnvme_vfio_device *rdev = to_rdev(core_vdev);

	return rdev->cb->log_stop(rdev->data);
}

/*
 * VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, through iova_bitmap_for_each (in 6.12 one call
 * for the report's whole window): record the pages written in [@iova, @iova + @length)
 * in @dirty and forget them.
 */
static int rnvme_log_read_and_clear(struct vfio_device *core_vdev, unsigned long iova,
				    unsigned long length, struct iova_bitmap *dirty)
{
	struct rnvme_vfio_device *rdev = to_rdev(core_vdev);

	return rdev->cb->log_read_and_clear(rdev->data, iova, length, dirty);
}

static const struct vfio_log_ops rnvme_log_ops = {
	.log_start = rnvme_log_start,
	.log_stop = rnvme_log_stop,
	.log_read_and_clear = rnvme_log_read_and_clear,
};

/*
 * Marks [@iova, @iova + @length) dirty in @bitmap. Out of line because without
 * CONFIG_IOMMUFD_DRIVER iova_bitmap_set is a static inline stub (and no device has
 * log_ops then, so nothing calls this).
 */
void rnvme_iova_bitmap_set(struct iova_bitmap *bitmap, unsigned long iova, size_t length)
{
	iova_bitmap_set(bitmap, iova, length);
}

/* Whether this kernel has the dirty bitmaps of DMA logging (CONFIG_IOMMUFD_DRIVER). */
bool rnvme_vfio_dirty_tracking_built(void)
{
	return IS_ENABLED(CONFIG_IOMMUFD_DRIVER);
}

static const struct vfio_device_ops rnvme_vfio_ops = {
	.name		= "rnvme-vfio",
	.init		= vfio_pci_core_init_dev,
	.release	= vfio_pci_core_release_dev,
	.open_device	= rnvme_vfio_open_device,
	.close_device	= rnvme_vfio_close_device,
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
 * pci_driver set up by rnvme_vfio_driver_init) with @data attached and @cb to
 * reach it; with @mig_flags (VFIO_MIGRATION_*) non-zero the device migrates
 * through @cb; with @log_max_ranges non-zero, on a kernel with the dirty bitmaps
 * (CONFIG_IOMMUFD_DRIVER), it offers DMA logging through @cb, for at most that many
 * IOVA ranges at a time. The PCI drvdata becomes the core device, as vfio-pci-core
 * requires.
 */
int rnvme_vfio_register(struct pci_dev *pdev, void *data, const struct rnvme_vfio_callbacks *cb,
			u64 mig_flags, u32 log_max_ranges)
{
	struct rnvme_vfio_device *rdev;
	int ret;

	rdev = vfio_alloc_device(rnvme_vfio_device, core.vdev, &pdev->dev, &rnvme_vfio_ops);
	if (IS_ERR(rdev))
		return PTR_ERR(rdev);
	rdev->data = data;
	rdev->cb = cb;
	/* Static properties of the device: set before registration (include/linux/vfio.h). */
	if (mig_flags) {
		rdev->core.vdev.migration_flags = mig_flags;
		rdev->core.vdev.mig_ops = &rnvme_mig_ops;
	}
	/* Without the dirty bitmaps a report could not record a page: offer no logging. */
	if (log_max_ranges && IS_ENABLED(CONFIG_IOMMUFD_DRIVER)) {
		rdev->log_max_ranges = log_max_ranges;
		rdev->core.vdev.log_ops = &rnvme_log_ops;
	}
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

/*
 * After a function reset (VFIO_DEVICE_RESET, FLR on open and close, AER recovery) the
 * migration state must start again from RUNNING; the Rust side defers that if it cannot
 * take its state lock (kapi/sync/deferring_mutex.rs, DeferringMutex).
 */
static void rnvme_vfio_reset_done(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core = dev_get_drvdata(&pdev->dev);
	struct rnvme_vfio_device *rdev;

	/* A reset during probe, before the device is registered. */
	if (!core)
		return;
	rdev = container_of(core, struct rnvme_vfio_device, core);
	rdev->cb->reset_done(rdev->data);
}

static const struct pci_error_handlers rnvme_vfio_err_handlers = {
	.error_detected = vfio_pci_core_aer_err_detected,
	.reset_done = rnvme_vfio_reset_done,
};

/* Sets up @drv as a vfio-pci-core driver: DMA ownership left to VFIO, vfio's AER handler. */
void rnvme_vfio_driver_init(struct pci_driver *drv)
{
	drv->driver_managed_dma = true;
	drv->err_handler = &rnvme_vfio_err_handlers;
}

/* The step of the VFIO migration state machine from @cur towards @new. */
int rnvme_vfio_next_state(struct vfio_device *vdev, u32 cur, u32 new, u32 *next)
{
	enum vfio_device_mig_state n;
	int ret;

	ret = vfio_mig_get_next_state(vdev, cur, new, &n);
	if (!ret)
		*next = n;
	return ret;
}

/* Implemented in Rust (kapi/vfio.rs). */
ssize_t rnvme_mig_file_read(struct file *filp, char __user *buf, size_t len, loff_t *pos);
ssize_t rnvme_mig_file_write(struct file *filp, const char __user *buf, size_t len,
			     loff_t *pos);
long rnvme_mig_file_ioctl(struct file *filp, unsigned int cmd, unsigned long arg);
int rnvme_mig_file_release(struct inode *inode, struct file *filp);

/* The migration data fd: a stream (no seeking); an open one pins the module. */
static const struct file_operations rnvme_mig_fops = {
	.owner = THIS_MODULE,
	.read = rnvme_mig_file_read,
	.write = rnvme_mig_file_write,
	.unlocked_ioctl = rnvme_mig_file_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = rnvme_mig_file_release,
};

/*
 * A migration data fd whose private_data is @priv (for writing if @writable, else for
 * reading), or an ERR_PTR. The caller owns the file reference.
 */
struct file *rnvme_mig_file_create(void *priv, bool writable)
{
	struct file *filp;

	filp = anon_inode_getfile("rnvme_mig", &rnvme_mig_fops, priv,
				  writable ? O_WRONLY : O_RDONLY);
	if (IS_ERR(filp))
		return filp;
	stream_open(filp->f_inode, filp);
	return filp;
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
