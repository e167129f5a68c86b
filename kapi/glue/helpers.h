/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C glue of the rnvme module: out-of-line wrappers for static inline
 * functions and macros that Rust cannot call directly. Every function here is
 * a thin wrapper with the semantics of the C API it is named after.
 */
#ifndef RNVME_HELPERS_H
#define RNVME_HELPERS_H

#include <linux/miscdevice.h>
#include <linux/mutex_types.h>
#include <linux/spinlock_types.h>
#include <linux/types.h>

struct blk_mq_tag_set;
struct gendisk;
struct pci_device_id;
struct file_operations;
struct block_device_operations;
struct device;
struct pci_dev;
struct queue_limits;
struct request;
struct rq_list;
struct scatterlist;

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
int rnvme_pcim_enable_device_mem(struct pci_dev *pdev);

void rnvme_blk_mq_map_queues(struct blk_mq_tag_set *set, unsigned int type,
			     unsigned int nr_queues, unsigned int offset, struct pci_dev *pdev,
			     unsigned int first_vector);
void rnvme_blk_mq_requeue_started(struct request *rq);
int rnvme_blk_rq_map_sg(struct request *rq, struct scatterlist *sgl, unsigned int nents);
/* The ioctl handler a disk's private_data points to. */
typedef int (*rnvme_disk_ioctl_t)(struct gendisk *disk, unsigned int cmd, unsigned long arg);
void *rnvme_pci_physfn_drvdata(struct pci_dev *vf,
			       int (*probe)(struct pci_dev *, const struct pci_device_id *));
int rnvme_pci_attach_driver(struct pci_dev *pdev, const char *name);
bool rnvme_pci_unbound_or_bound_to(struct pci_dev *pdev, const char *a, const char *b);
struct pci_dev *rnvme_pci_next_vf(struct pci_dev *pf, struct pci_dev *from);
struct pci_driver;
struct vfio_device;
struct inode;
struct file;
struct iova_bitmap;
/* An IOVA range to log DMA writes to: [start, last], last inclusive (as interval_tree_node). */
struct rnvme_iova_range {
	u64 start;
	u64 last;
};
/*
 * What the C glue of a VFIO device calls on the driver's data (kapi/vfio.rs): migration
 * (VFIO_MIGRATION_*; only with migration flags), open, close, function reset, and DMA
 * logging (device dirty tracking; only with a non-zero log_max_ranges).
 */
struct rnvme_vfio_callbacks {
	int (*set_state)(void *data, struct vfio_device *vdev, u32 state, struct file **filp);
	int (*get_state)(void *data, u32 *state);
	int (*data_size)(void *data, unsigned long *len);
	void (*open)(void *data);
	void (*close)(void *data);
	void (*reset_done)(void *data);
	int (*log_start)(void *data, const struct rnvme_iova_range *ranges, u32 n, u64 *page_size);
	int (*log_stop)(void *data);
	int (*log_read_and_clear)(void *data, unsigned long iova, unsigned long length,
				  struct iova_bitmap *dirty);
};
int rnvme_vfio_register(struct pci_dev *pdev, void *data, const struct rnvme_vfio_callbacks *cb,
			u64 mig_flags, u32 log_max_ranges);
bool rnvme_vfio_dirty_tracking_built(void);
void rnvme_iova_bitmap_set(struct iova_bitmap *bitmap, unsigned long iova, size_t length);
int rnvme_vfio_next_state(struct vfio_device *vdev, u32 cur, u32 new, u32 *next);
struct file *rnvme_mig_file_create(void *priv, bool writable);
void *rnvme_vfio_unregister(struct pci_dev *pdev);
void rnvme_vfio_driver_init(struct pci_driver *drv);
bool rnvme_vfio_in_use(struct pci_dev *pdev,
		       int (*probe)(struct pci_dev *, const struct pci_device_id *));
unsigned int rnvme_iommu_group_size(struct pci_dev *pdev);
unsigned int rnvme_param_poll_queues(void);
unsigned int rnvme_param_sgls(void);
unsigned short rnvme_param_vf_queues(void);
unsigned short rnvme_param_vf_vectors(void);
unsigned int rnvme_param_cdq_entries(void);
unsigned int rnvme_disk_openers(struct gendisk *disk);
extern const struct block_device_operations rnvme_bdev_fops;
extern const struct file_operations rnvme_misc_fops;
/*
 * A misc device of rnvme (kapi/miscdevice.rs): misc.groups' callbacks find @attr_data
 * with rnvme_misc_attr_data() (the misc core makes the device's drvdata the miscdevice).
 */
struct rnvme_miscdevice {
	struct miscdevice misc;
	void *attr_data;
};
void *rnvme_misc_attr_data(struct device *dev);
struct request_queue;
struct queue_limits rnvme_queue_limits_start_update(struct request_queue *q);
struct gendisk *rnvme_blk_mq_alloc_disk(struct blk_mq_tag_set *set, struct queue_limits *lim,
					void *queuedata);

u64 rnvme_sg_dma_address(struct scatterlist *sg);
unsigned int rnvme_sg_dma_len(struct scatterlist *sg);

void rnvme_spin_lock_init(spinlock_t *lock);
void rnvme_plain_spin_lock_init(spinlock_t *lock);
bool rnvme_irqs_disabled(void);

/* A mutex whose holder runs actions deferred by contexts that could not wait for it. */
struct rnvme_deferring_mutex {
	struct mutex lock;
	spinlock_t pending_lock;
	bool pending;
};
void rnvme_dmutex_init(struct rnvme_deferring_mutex *m);
void rnvme_dmutex_lock(struct rnvme_deferring_mutex *m);
bool rnvme_dmutex_defer(struct rnvme_deferring_mutex *m);
bool rnvme_dmutex_unlock(struct rnvme_deferring_mutex *m);

void rnvme_dma_set_max_seg_size(struct device *dev, unsigned int size);
void rnvme_mb(void);
void rnvme_dma_rmb(void);
void rnvme_dma_wmb(void);

int rnvme_instance_get(void);
void rnvme_instance_put(int id);

/* kapi/glue/nvme_class.c: the nvme and nvme-subsystem classes (nvme_class=on|auto). */
struct attribute_group;
struct rnvme_nvme_ctrl;
/* What a controller's class and subsystem devices show (fixed at creation). */
struct rnvme_nvme_ctrl_info {
	unsigned int instance;
	char model[41];
	char serial[21];
	char firmware[9];
	char subsysnqn[257];
	char address[32];
	u16 cntlid;
	u16 queue_count;
	u16 sqsize;
};
int rnvme_nvme_class_register(void);
void rnvme_nvme_class_unregister(void);
bool rnvme_nvme_class_is_active(void);
/*
 * What the driver answers for a controller's attributes (Rust trampolines; @data is the
 * argument given at creation): the state's name, and the actions of reset_controller and
 * rescan_controller, which get the written bytes and return 0 or a negative errno.
 */
struct rnvme_nvme_ctrl_ops {
	const char *(*state)(const void *data);
	int (*reset)(const void *data, const char *buf, size_t count);
	int (*rescan)(const void *data, const char *buf, size_t count);
};
struct rnvme_nvme_ctrl *rnvme_nvme_ctrl_create(struct device *parent,
					       const struct rnvme_nvme_ctrl_info *info,
					       const struct rnvme_nvme_ctrl_ops *ops,
					       const void *data);
void rnvme_nvme_ctrl_destroy(struct rnvme_nvme_ctrl *c);
struct device *rnvme_nvme_ctrl_device(struct rnvme_nvme_ctrl *c);
extern const struct attribute_group *rnvme_nvme_ctrl_groups[];
extern const struct attribute_group *rnvme_nvme_ns_groups[];

void rnvme_kunit_fail(const char *file, int line, const void *fmt_args);

#endif /* RNVME_HELPERS_H */
