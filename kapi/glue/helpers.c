// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of the rnvme module. See helpers.h.
 */
#include <linux/blk-mq.h>
#include <linux/blk-mq-pci.h>
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/device.h>
#include <linux/dma-mapping.h>
#include <linux/idr.h>
#include <linux/log2.h>
#include <linux/scatterlist.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
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

/*
 * The driver data of a VF's physical function if the PF is bound to the driver whose probe
 * function is @probe (NULL otherwise, for a PF, or while the PF is still probing). The
 * caller holds the VF's device lock or a sysfs attribute of the VF is active: either keeps
 * the PF bound, because its driver disables SR-IOV (removing the VF, which waits for both)
 * before it drops its data.
 */
void *rnvme_pci_physfn_drvdata(struct pci_dev *vf,
			       int (*probe)(struct pci_dev *, const struct pci_device_id *))
{
	struct pci_dev *pf = pci_physfn(vf);
	struct device_driver *drv;

	if (pf == vf)
		return NULL;
	drv = READ_ONCE(pf->dev.driver);
	if (!drv || drv->bus != &pci_bus_type || to_pci_driver(drv)->probe != probe)
		return NULL;
	return dev_get_drvdata(&pf->dev);
}

/*
 * Binds @pdev to the PCI driver named @name (which must be one of this module's) and
 * returns its probe's result; the device must be unbound and its lock not held.
 */
int rnvme_pci_attach_driver(struct pci_dev *pdev, const char *name)
{
	struct device_driver *drv = driver_find(name, &pci_bus_type);

	if (!drv)
		return -ENODEV;
	return device_driver_attach(drv, &pdev->dev);
}

/* Whether @pdev is unbound or bound to the PCI driver named @a or @b. */
bool rnvme_pci_unbound_or_bound_to(struct pci_dev *pdev, const char *a, const char *b)
{
	struct device_driver *drv;
	bool ok;

	device_lock(&pdev->dev);
	drv = pdev->dev.driver;
	ok = !drv || !strcmp(drv->name, a) || !strcmp(drv->name, b);
	device_unlock(&pdev->dev);
	return ok;
}

/* The next VF of @pf after @from (NULL: the first), referenced; NULL after the last. */
struct pci_dev *rnvme_pci_next_vf(struct pci_dev *pf, struct pci_dev *from)
{
	struct pci_dev *dev = from;

	/*
	 * pci_iov_virtfn_bus() is not exported: walk all functions. Like pci_get_device(),
	 * this drops the reference on @from and returns the next VF of @pf referenced, so
	 * one whole walk visits every VF once.
	 */
	while ((dev = pci_get_device(PCI_ANY_ID, PCI_ANY_ID, dev))) {
		if (dev->is_virtfn && pci_physfn(dev) == pf)
			return dev;
	}
	return NULL;
}

/* How many times the whole disk is open (mounted, opened by a process, held). */
unsigned int rnvme_disk_openers(struct gendisk *disk)
{
	return disk_openers(disk);
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

/* All kapi::sync::IrqSpinLock locks share this lockdep class. */
void rnvme_spin_lock_init(spinlock_t *lock)
{
	spin_lock_init(lock);
}

/* Whether local interrupts are disabled (for kapi::sync's KUnit cases). */
bool rnvme_irqs_disabled(void)
{
	return irqs_disabled();
}

/* All kapi::sync::SpinLock locks share this lockdep class (never taken in hardirq). */
void rnvme_plain_spin_lock_init(spinlock_t *lock)
{
	spin_lock_init(lock);
}

/*
 * kapi::sync::IrqSpinLock calls _raw_spin_lock_irqsave() and
 * _raw_spin_unlock_irqrestore(), and kapi::sync::SpinLock _raw_spin_lock(), on the
 * spinlock_t itself: its raw lock must come first (it does unless PREEMPT_RT, where
 * spinlock_t is an rt_mutex), and the functions must be out of line.
 */
#ifndef CONFIG_PREEMPT_RT
static_assert(offsetof(spinlock_t, rlock) == 0);
#else
#error "kapi::sync::IrqSpinLock and SpinLock assume a spinlock_t built on a raw spinlock"
#endif
#if defined(CONFIG_INLINE_SPIN_LOCK) || defined(CONFIG_INLINE_SPIN_LOCK_IRQSAVE) || \
	defined(CONFIG_INLINE_SPIN_UNLOCK_IRQRESTORE)
#error "kapi::sync calls _raw_spin_lock(), _raw_spin_lock_irqsave() and _raw_spin_unlock_irqrestore(), which this configuration inlines"
#endif

void rnvme_dma_set_max_seg_size(struct device *dev, unsigned int size)
{
	dma_set_max_seg_size(dev, size);
}

void rnvme_mb(void)
{
	mb();
}

void rnvme_dma_rmb(void)
{
	dma_rmb();
}

void rnvme_dma_wmb(void)
{
	dma_wmb();
}

static void rnvme_pci_disable(void *pdev)
{
	pci_disable_device(pdev);
}

/*
 * pci_enable_device_mem() whose pci_disable_device() runs as a devres action
 * when the driver is detached, i.e. after the driver's remove callback has
 * returned and every Rust object of the binding is gone.
 */
int rnvme_pcim_enable_device_mem(struct pci_dev *pdev)
{
	int ret = pci_enable_device_mem(pdev);

	if (ret)
		return ret;
	return devm_add_action_or_reset(&pdev->dev, rnvme_pci_disable, pdev);
}

/*
 * Gives map @type of @set the @nr_queues hardware queues from @offset on and maps the
 * CPUs to them: following the affinity of @pdev's interrupt vectors from @first_vector
 * on, or spread evenly when @pdev is NULL. A map of no queues is left empty (blk-mq then
 * uses the default map for that type). The caller checked @type and the queue range.
 */
void rnvme_blk_mq_map_queues(struct blk_mq_tag_set *set, unsigned int type,
			     unsigned int nr_queues, unsigned int offset, struct pci_dev *pdev,
			     unsigned int first_vector)
{
	struct blk_mq_queue_map *map = &set->map[type];

	map->nr_queues = nr_queues;
	map->queue_offset = offset;
	if (!nr_queues)
		return;
	if (pdev)
		blk_mq_pci_map_queues(map, pdev, first_vector);
	else
		blk_mq_map_queues(map);
}

/* Gives a started request that never reached the hardware back to blk-mq for later. */
void rnvme_blk_mq_requeue_started(struct request *rq)
{
	blk_mq_requeue_request(rq, true);
}

/*
 * Maps the request's data into the scatterlist @sgl of @nents entries;
 * returns the number of entries used, or -EINVAL if the request has more
 * physical segments than @nents.
 */
int rnvme_blk_rq_map_sg(struct request *rq, struct scatterlist *sgl, unsigned int nents)
{
	unsigned short segments = blk_rq_nr_phys_segments(rq);

	if (!segments || segments > nents)
		return -EINVAL;
	/* Only the entries the request needs: clearing all of them costs on every I/O. */
	sg_init_table(sgl, segments);
	return blk_rq_map_sg(rq->q, rq, sgl);
}

/*
 * A disk's ioctls go to the Rust function its gendisk's private_data points to
 * (kapi/block/mq/gen_disk.rs), which knows the driver's types.
 */
static int rnvme_bdev_ioctl(struct block_device *bdev, blk_mode_t mode, unsigned int cmd,
			    unsigned long arg)
{
	rnvme_disk_ioctl_t ioctl = bdev->bd_disk->private_data;

	return ioctl ? ioctl(bdev->bd_disk, cmd, arg) : -ENOTTY;
}

/* The block device operations of every rnvme disk: an open disk pins the module. */
const struct block_device_operations rnvme_bdev_fops = {
	.owner = THIS_MODULE,
	.ioctl = rnvme_bdev_ioctl,
	.compat_ioctl = blkdev_compat_ptr_ioctl,
};

/* queue_limits_start_update() is a static inline: takes the limits lock, copies them. */
struct queue_limits rnvme_queue_limits_start_update(struct request_queue *q)
{
	return queue_limits_start_update(q);
}

/* blk_mq_alloc_disk() is a macro that gives each call site its own lockdep class. */
struct gendisk *rnvme_blk_mq_alloc_disk(struct blk_mq_tag_set *set, struct queue_limits *lim,
					void *queuedata)
{
	return blk_mq_alloc_disk(set, lim, queuedata);
}

/* Implemented in Rust (kapi/miscdevice.rs). */
int rnvme_misc_open(struct inode *inode, struct file *file);
int rnvme_misc_release(struct inode *inode, struct file *file);
long rnvme_misc_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* The file operations of every rnvme character device: an open file pins the module. */
const struct file_operations rnvme_misc_fops = {
	.owner = THIS_MODULE,
	.open = rnvme_misc_open,
	.release = rnvme_misc_release,
	.unlocked_ioctl = rnvme_misc_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

void *rnvme_misc_attr_data(struct device *dev)
{
	struct miscdevice *misc = dev_get_drvdata(dev);

	return container_of(misc, struct rnvme_miscdevice, misc)->attr_data;
}

/*
 * The deferring mutex (kapi/sync/deferring_mutex.rs DeferringMutex): a context that must not wait for
 * the mutex (a PCI reset_done callback, which runs under locks the mutex's holders take
 * in turn) marks work pending; whoever holds the mutex, or the deferring context itself
 * if the mutex is free, runs it before the mutex is released. The pending flag is set and
 * checked under a spinlock together with the trylock and the release, so no deferral is
 * lost (the scheme of drivers/vfio/pci/mlx5/main.c).
 */
void rnvme_dmutex_init(struct rnvme_deferring_mutex *m)
{
	mutex_init(&m->lock);
	spin_lock_init(&m->pending_lock);
	m->pending = false;
}

void rnvme_dmutex_lock(struct rnvme_deferring_mutex *m)
{
	mutex_lock(&m->lock);
}

/* Marks work pending; returns true if the caller took the mutex and must release it. */
bool rnvme_dmutex_defer(struct rnvme_deferring_mutex *m)
{
	spin_lock(&m->pending_lock);
	m->pending = true;
	if (!mutex_trylock(&m->lock)) {
		spin_unlock(&m->pending_lock);
		return false;
	}
	spin_unlock(&m->pending_lock);
	return true;
}

/*
 * Releases the mutex and returns true, unless work is pending: then clears the flag,
 * keeps the mutex and returns false (the caller runs the work and calls again).
 */
bool rnvme_dmutex_unlock(struct rnvme_deferring_mutex *m)
{
	spin_lock(&m->pending_lock);
	if (m->pending) {
		m->pending = false;
		spin_unlock(&m->pending_lock);
		return false;
	}
	mutex_unlock(&m->lock);
	spin_unlock(&m->pending_lock);
	return true;
}

u64 rnvme_sg_dma_address(struct scatterlist *sg)
{
	return sg_dma_address(sg);
}

unsigned int rnvme_sg_dma_len(struct scatterlist *sg)
{
	return sg_dma_len(sg);
}

/* Controller instance numbers (rnvme<N>), reused after unbind. */
static DEFINE_IDA(rnvme_instance_ida);

int rnvme_instance_get(void)
{
	return ida_alloc(&rnvme_instance_ida, GFP_KERNEL);
}

void rnvme_instance_put(int id)
{
	ida_free(&rnvme_instance_ida, id);
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

/*
 * Module parameters (6.12's Rust module! macro has none): the flexible resources each
 * VF's secondary controller gets; 0 means an even split (nvme/pf/sriov.rs). A write is
 * parsed here with the kernel's kstrto*, and the number checked by the driver's rule
 * (nvme/spec/params.rs, exported by kapi/params.rs); the messages below describe those
 * rules. The driver checks the VF resources against the controller when VFs are enabled.
 */
bool rnvme_param_valid_vf_queues(u32 value);
bool rnvme_param_valid_vf_vectors(u32 value);
bool rnvme_param_valid_cdq_entries(u32 value);
bool rnvme_param_valid_poll_queues(u32 value);
bool rnvme_param_valid_sgls(u32 value);

static unsigned short rnvme_vf_queues;
static unsigned short rnvme_vf_vectors;

static int rnvme_param_set_vf_queues(const char *val, const struct kernel_param *kp)
{
	u16 v;
	int ret = kstrtou16(val, 0, &v);

	if (ret) {
		pr_err("rnvme: vf_queues: \"%s\" is not a number up to 4096\n", val);
		return ret;
	}
	/* A secondary controller needs its admin queue and at least one I/O queue. */
	if (!rnvme_param_valid_vf_queues(v)) {
		pr_err("rnvme: vf_queues: %u is not 0 or 2 to 4096\n", v);
		return -EINVAL;
	}
	WRITE_ONCE(rnvme_vf_queues, v);
	return 0;
}

static int rnvme_param_set_vf_vectors(const char *val, const struct kernel_param *kp)
{
	u16 v;
	int ret = kstrtou16(val, 0, &v);

	if (ret) {
		pr_err("rnvme: vf_vectors: \"%s\" is not a number up to 2048\n", val);
		return ret;
	}
	if (!rnvme_param_valid_vf_vectors(v)) {
		pr_err("rnvme: vf_vectors: %u is more than 2048\n", v);
		return -EINVAL;
	}
	WRITE_ONCE(rnvme_vf_vectors, v);
	return 0;
}

static const struct kernel_param_ops rnvme_vf_queues_ops = {
	.set = rnvme_param_set_vf_queues,
	.get = param_get_ushort,
};

static const struct kernel_param_ops rnvme_vf_vectors_ops = {
	.set = rnvme_param_set_vf_vectors,
	.get = param_get_ushort,
};

module_param_cb(vf_queues, &rnvme_vf_queues_ops, &rnvme_vf_queues, 0644);
MODULE_PARM_DESC(vf_queues,
		 "Queue resources (admin included) per VF when VFs are enabled: 0 for an even split (default), or 2 to 4096");
module_param_cb(vf_vectors, &rnvme_vf_vectors_ops, &rnvme_vf_vectors, 0644);
MODULE_PARM_DESC(vf_vectors,
		 "Interrupt vectors per VF when VFs are enabled: 0 for an even split (default), or 1 to 2048");

/*
 * Entries of the Controller Data Queue the PF keeps for each VF's dirty page tracking
 * (16 bytes each, in the PF's DMA memory, allocated when VFs are enabled). Small values
 * make the queue overflow, which the driver must survive (a test does that).
 */
#define RNVME_CDQ_ENTRIES_MIN 4
#define RNVME_CDQ_ENTRIES_MAX 65536
static unsigned int rnvme_cdq_entries = 4096;

static int rnvme_param_set_cdq_entries(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int ret = kstrtouint(val, 0, &v);

	if (ret) {
		pr_err("rnvme: cdq_entries: \"%s\" is not a number\n", val);
		return ret;
	}
	if (!rnvme_param_valid_cdq_entries(v)) {
		pr_err("rnvme: cdq_entries: %u is not a power of two from %u to %u\n", v,
		       RNVME_CDQ_ENTRIES_MIN, RNVME_CDQ_ENTRIES_MAX);
		return -EINVAL;
	}
	WRITE_ONCE(rnvme_cdq_entries, v);
	return 0;
}

static const struct kernel_param_ops rnvme_cdq_entries_ops = {
	.set = rnvme_param_set_cdq_entries,
	.get = param_get_uint,
};

module_param_cb(cdq_entries, &rnvme_cdq_entries_ops, &rnvme_cdq_entries, 0644);
MODULE_PARM_DESC(cdq_entries,
		 "Entries of each VF's dirty tracking queue, read when VFs are enabled: a power of two from 4 to 65536 (default 4096)");

unsigned int rnvme_param_cdq_entries(void)
{
	return READ_ONCE(rnvme_cdq_entries);
}

/*
 * Polled I/O queues (no interrupt) per controller, used by polled requests (io_uring with
 * IORING_SETUP_IOPOLL); read when a controller is probed, as the C driver's poll_queues.
 */
#define RNVME_MAX_POLL_QUEUES 8
static unsigned int rnvme_poll_queues;

/*
 * Sets unsigned int parameter @name from @val into @dst if it is a number and @valid (the
 * driver's rule, called directly by the caller: no indirect call into Rust); either
 * refusal logs a message naming the parameter. @max is the largest valid value.
 */
static int rnvme_param_set_uint(const char *name, const char *val, unsigned int v, int ret,
				bool valid, unsigned int max, unsigned int *dst)
{
	if (ret) {
		pr_err("rnvme: %s: \"%s\" is not a number\n", name, val);
		return ret;
	}
	if (!valid) {
		pr_err("rnvme: %s: %u is more than %u\n", name, v, max);
		return -EINVAL;
	}
	WRITE_ONCE(*dst, v);
	return 0;
}

static int rnvme_param_set_poll_queues(const char *val, const struct kernel_param *kp)
{
	unsigned int v = 0;
	int ret = kstrtouint(val, 0, &v);

	return rnvme_param_set_uint("poll_queues", val, v, ret,
				    !ret && rnvme_param_valid_poll_queues(v), RNVME_MAX_POLL_QUEUES,
				    &rnvme_poll_queues);
}

static const struct kernel_param_ops rnvme_poll_queues_ops = {
	.set = rnvme_param_set_poll_queues,
	.get = param_get_uint,
};

module_param_cb(poll_queues, &rnvme_poll_queues_ops, &rnvme_poll_queues, 0644);
MODULE_PARM_DESC(poll_queues,
		 "Polled I/O queues (no interrupt) per controller probed from now on, for polled I/O: 0 (default) to 8");

unsigned int rnvme_param_poll_queues(void)
{
	return READ_ONCE(rnvme_poll_queues);
}

/*
 * 1: a read or write whose data is one DMA segment (as an IOMMU maps it) is described by
 * one SGL descriptor when the controller supports SGLs; 0: always PRPs. Read for every
 * request, so it can be changed at run time.
 */
static unsigned int rnvme_sgls = 1;

static int rnvme_param_set_sgls(const char *val, const struct kernel_param *kp)
{
	unsigned int v = 0;
	int ret = kstrtouint(val, 0, &v);

	return rnvme_param_set_uint("sgls", val, v, ret, !ret && rnvme_param_valid_sgls(v), 1,
				    &rnvme_sgls);
}

static const struct kernel_param_ops rnvme_sgls_ops = {
	.set = rnvme_param_set_sgls,
	.get = param_get_uint,
};

module_param_cb(sgls, &rnvme_sgls_ops, &rnvme_sgls, 0644);
MODULE_PARM_DESC(sgls,
		 "1 (default): reads and writes in one DMA segment use an SGL descriptor where the controller supports SGLs; 0: always PRPs");

unsigned int rnvme_param_sgls(void)
{
	return READ_ONCE(rnvme_sgls);
}

unsigned short rnvme_param_vf_queues(void)
{
	return READ_ONCE(rnvme_vf_queues);
}

unsigned short rnvme_param_vf_vectors(void)
{
	return READ_ONCE(rnvme_vf_vectors);
}
