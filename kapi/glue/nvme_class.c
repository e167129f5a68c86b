// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of the rnvme module: the "nvme" and "nvme-subsystem" device classes, which
 * libnvme (nvme-cli) reads, for the module parameter nvme_class (kapi/nvme_class.rs).
 *
 * Those classes belong to the C nvme-core module. rnvme registers them only when asked to
 * (nvme_class=on, or auto without nvme-core loaded) and then refuses to let nvme-core load
 * while it holds them: two registrations of one class name cannot coexist in sysfs.
 */
#include <linux/device.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/blkdev.h>

#include "helpers.h"

enum { RNVME_CLASS_OFF, RNVME_CLASS_ON, RNVME_CLASS_AUTO };

static int rnvme_nvme_class_mode = RNVME_CLASS_OFF;
static bool rnvme_nvme_class_active;

static const char *const rnvme_class_modes[] = { "off", "on", "auto" };

static int rnvme_param_set_nvme_class(const char *val, const struct kernel_param *kp)
{
	int i = sysfs_match_string(rnvme_class_modes, val);

	if (i < 0) {
		pr_err("rnvme: nvme_class: \"%s\" is not one of off, on, auto\n", val);
		return -EINVAL;
	}
	rnvme_nvme_class_mode = i;
	return 0;
}

static int rnvme_param_get_nvme_class(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", rnvme_class_modes[rnvme_nvme_class_mode]);
}

static const struct kernel_param_ops rnvme_nvme_class_ops = {
	.set = rnvme_param_set_nvme_class,
	.get = rnvme_param_get_nvme_class,
};

/* Read-only once loaded: the names of existing devices cannot change. */
module_param_cb(nvme_class, &rnvme_nvme_class_ops, &rnvme_nvme_class_mode, 0444);
MODULE_PARM_DESC(nvme_class,
		 "Register /sys/class/nvme and name devices nvme<N>, nvme<N>n<nsid> for nvme-cli: off (default: rnvme<N>), on (fail to load if nvme-core is loaded), auto (only if nvme-core is not loaded); while held, nvme-core cannot load");

static const struct class rnvme_nvme_class = { .name = "nvme" };
static const struct class rnvme_nvme_subsys_class = { .name = "nvme-subsystem" };

/* Refuses nvme-core while rnvme holds its classes. */
static int rnvme_module_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	struct module *mod = data;

	if (action != MODULE_STATE_COMING || strcmp(mod->name, "nvme_core"))
		return NOTIFY_DONE;
	pr_err("rnvme: refusing to load nvme_core: rnvme holds /sys/class/nvme (nvme_class=%s); unload rnvme or load it with nvme_class=off first\n",
	       rnvme_class_modes[rnvme_nvme_class_mode]);
	return notifier_from_errno(-EBUSY);
}

static struct notifier_block rnvme_module_nb = {
	.notifier_call = rnvme_module_notify,
};

/* Whether nvme-core is loaded (or built in): its exported symbols can be found. */
static bool rnvme_nvme_core_present(void)
{
	void *sym = __symbol_get("nvme_init_ctrl");

	if (!sym)
		return false;
	__symbol_put("nvme_init_ctrl");
	return true;
}

int rnvme_nvme_class_register(void)
{
	int ret;

	if (rnvme_nvme_class_mode == RNVME_CLASS_OFF)
		return 0;
	/* First the notifier: nvme-core cannot slip in between the check and the classes. */
	ret = register_module_notifier(&rnvme_module_nb);
	if (ret)
		return ret;
	if (rnvme_nvme_core_present()) {
		unregister_module_notifier(&rnvme_module_nb);
		if (rnvme_nvme_class_mode == RNVME_CLASS_AUTO) {
			pr_info("rnvme: nvme_class=auto: nvme-core is loaded, devices are named rnvme<N>\n");
			return 0;
		}
		pr_err("rnvme: nvme_class=on: nvme-core is loaded and owns /sys/class/nvme; unload it (modprobe -r nvme nvme_core) or use nvme_class=off\n");
		return -EBUSY;
	}
	ret = class_register(&rnvme_nvme_class);
	if (ret)
		goto out_notifier;
	ret = class_register(&rnvme_nvme_subsys_class);
	if (ret)
		goto out_class;
	rnvme_nvme_class_active = true;
	pr_info("rnvme: nvme_class=%s: devices are named nvme<N> in /sys/class/nvme\n",
		rnvme_class_modes[rnvme_nvme_class_mode]);
	return 0;

out_class:
	class_unregister(&rnvme_nvme_class);
out_notifier:
	unregister_module_notifier(&rnvme_module_nb);
	return ret;
}

void rnvme_nvme_class_unregister(void)
{
	if (!rnvme_nvme_class_active)
		return;
	rnvme_nvme_class_active = false;
	class_unregister(&rnvme_nvme_subsys_class);
	class_unregister(&rnvme_nvme_class);
	unregister_module_notifier(&rnvme_module_nb);
}

bool rnvme_nvme_class_is_active(void)
{
	return rnvme_nvme_class_active;
}

/*
 * A controller's sysfs controls: the attributes of the C nvme driver's controller device
 * (identity, state, reset_controller, rescan_controller). They live on the class device
 * nvme<N> while rnvme holds the classes, and otherwise on rnvme's own controller device,
 * the misc device rnvme<N> (kapi/miscdevice.rs: its groups are rnvme_nvme_ctrl_groups and
 * its attribute data this object). With the classes the controller also has a subsystem
 * nvme-subsys<N> (a virtual device holding a link to the controller), with the attributes
 * libnvme reads. Everything but the state is fixed at creation; the state and the actions
 * come from the driver through @ops (Rust trampolines taking @data).
 */
struct rnvme_nvme_ctrl {
	struct device *parent;
	struct device *dev;
	struct device *subsys;
	bool linked;
	struct rnvme_nvme_ctrl_info info;
	const struct rnvme_nvme_ctrl_ops *ops;
	const void *data;
};

/*
 * The controller of an attribute's device: the drvdata of a class or subsystem device,
 * or the attribute data of the misc device (whose drvdata is its struct miscdevice).
 */
static struct rnvme_nvme_ctrl *rnvme_ctrl_of(struct device *dev)
{
	if (dev->class == &rnvme_nvme_class || dev->class == &rnvme_nvme_subsys_class)
		return dev_get_drvdata(dev);
	return rnvme_misc_attr_data(dev);
}

#define RNVME_STR_ATTR(name, field)							\
static ssize_t name##_show(struct device *dev, struct device_attribute *attr, char *buf)	\
{											\
	return sysfs_emit(buf, "%s\n", rnvme_ctrl_of(dev)->info.field);		\
}											\
static DEVICE_ATTR_RO(name)

#define RNVME_INT_ATTR(name, field)							\
static ssize_t name##_show(struct device *dev, struct device_attribute *attr, char *buf)	\
{											\
	return sysfs_emit(buf, "%d\n", (int)rnvme_ctrl_of(dev)->info.field);		\
}											\
static DEVICE_ATTR_RO(name)

RNVME_STR_ATTR(model, model);
RNVME_STR_ATTR(serial, serial);
RNVME_STR_ATTR(firmware_rev, firmware);
RNVME_STR_ATTR(subsysnqn, subsysnqn);
RNVME_STR_ATTR(address, address);
RNVME_INT_ATTR(cntlid, cntlid);
RNVME_INT_ATTR(queue_count, queue_count);
RNVME_INT_ATTR(sqsize, sqsize);

static ssize_t transport_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "pcie\n");
}
static DEVICE_ATTR_RO(transport);

static ssize_t state_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct rnvme_nvme_ctrl *c = rnvme_ctrl_of(dev);

	return sysfs_emit(buf, "%s\n", c->ops->state(c->data));
}
static DEVICE_ATTR_RO(state);

/* The PCI function's node: the misc device has no parent, so not dev->parent. */
static ssize_t numa_node_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", dev_to_node(rnvme_ctrl_of(dev)->parent));
}
static DEVICE_ATTR_RO(numa_node);

/*
 * The actions run synchronously in the writer's context; the driver parses @buf (it
 * accepts "1" with an optional newline) and returns 0 or a negative errno.
 */
static ssize_t reset_controller_store(struct device *dev, struct device_attribute *attr,
				      const char *buf, size_t count)
{
	struct rnvme_nvme_ctrl *c = rnvme_ctrl_of(dev);
	int ret = c->ops->reset(c->data, buf, count);

	return ret ? ret : count;
}
static DEVICE_ATTR_WO(reset_controller);

static ssize_t rescan_controller_store(struct device *dev, struct device_attribute *attr,
				       const char *buf, size_t count)
{
	struct rnvme_nvme_ctrl *c = rnvme_ctrl_of(dev);
	int ret = c->ops->rescan(c->data, buf, count);

	return ret ? ret : count;
}
static DEVICE_ATTR_WO(rescan_controller);

static ssize_t cntrltype_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "io\n");
}
static DEVICE_ATTR_RO(cntrltype);

static ssize_t dctype_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "none\n");
}
static DEVICE_ATTR_RO(dctype);

static struct attribute *rnvme_ctrl_attrs[] = {
	&dev_attr_transport.attr,
	&dev_attr_address.attr,
	&dev_attr_model.attr,
	&dev_attr_serial.attr,
	&dev_attr_firmware_rev.attr,
	&dev_attr_cntlid.attr,
	&dev_attr_state.attr,
	&dev_attr_subsysnqn.attr,
	&dev_attr_numa_node.attr,
	&dev_attr_queue_count.attr,
	&dev_attr_sqsize.attr,
	&dev_attr_cntrltype.attr,
	&dev_attr_dctype.attr,
	&dev_attr_reset_controller.attr,
	&dev_attr_rescan_controller.attr,
	NULL,
};

static const struct attribute_group rnvme_ctrl_group = {
	.attrs = rnvme_ctrl_attrs,
};

/* Also the groups of the misc device when the classes are not held. */
const struct attribute_group *rnvme_nvme_ctrl_groups[] = {
	&rnvme_ctrl_group,
	NULL,
};

static ssize_t subsystype_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "nvm\n");
}
static DEVICE_ATTR_RO(subsystype);

static ssize_t iopolicy_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	/* One controller per subsystem here: every path is the only one. */
	return sysfs_emit(buf, "numa\n");
}
static DEVICE_ATTR_RO(iopolicy);

static struct attribute *rnvme_subsys_attrs[] = {
	&dev_attr_subsysnqn.attr,
	&dev_attr_model.attr,
	&dev_attr_serial.attr,
	&dev_attr_firmware_rev.attr,
	&dev_attr_subsystype.attr,
	&dev_attr_iopolicy.attr,
	NULL,
};
ATTRIBUTE_GROUPS(rnvme_subsys);

/* Creates the class and subsystem devices of @c (the classes are held). */
static int rnvme_nvme_ctrl_add_class_devices(struct rnvme_nvme_ctrl *c)
{
	int ret;

	c->subsys = device_create_with_groups(&rnvme_nvme_subsys_class, NULL, 0, c,
					      rnvme_subsys_groups, "nvme-subsys%u",
					      c->info.instance);
	if (IS_ERR(c->subsys)) {
		ret = PTR_ERR(c->subsys);
		c->subsys = NULL;
		return ret;
	}
	c->dev = device_create_with_groups(&rnvme_nvme_class, c->parent, 0, c,
					   rnvme_nvme_ctrl_groups, "nvme%u", c->info.instance);
	if (IS_ERR(c->dev)) {
		ret = PTR_ERR(c->dev);
		c->dev = NULL;
		goto out_subsys;
	}
	/* libnvme finds a controller's subsystem by this link. */
	ret = sysfs_create_link(&c->subsys->kobj, &c->dev->kobj, dev_name(c->dev));
	if (ret)
		goto out_dev;
	c->linked = true;
	return 0;

out_dev:
	device_unregister(c->dev);
	c->dev = NULL;
out_subsys:
	device_unregister(c->subsys);
	c->subsys = NULL;
	return ret;
}

/*
 * The controls of a controller of PCI function @parent; with the classes held, also its
 * class device nvme<N> and subsystem nvme-subsys<N>.
 */
struct rnvme_nvme_ctrl *rnvme_nvme_ctrl_create(struct device *parent,
					       const struct rnvme_nvme_ctrl_info *info,
					       const struct rnvme_nvme_ctrl_ops *ops,
					       const void *data)
{
	struct rnvme_nvme_ctrl *c;
	int ret;

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return ERR_PTR(-ENOMEM);
	c->parent = get_device(parent);
	c->info = *info;
	c->ops = ops;
	c->data = data;
	if (rnvme_nvme_class_active) {
		ret = rnvme_nvme_ctrl_add_class_devices(c);
		if (ret) {
			put_device(c->parent);
			kfree(c);
			return ERR_PTR(ret);
		}
	}
	return c;
}

/*
 * Removes the class devices; once it returns, no attribute callback of them runs any
 * more. The misc device using @c must be deregistered before.
 */
void rnvme_nvme_ctrl_destroy(struct rnvme_nvme_ctrl *c)
{
	if (c->linked)
		sysfs_remove_link(&c->subsys->kobj, dev_name(c->dev));
	if (c->dev)
		device_unregister(c->dev);
	if (c->subsys)
		device_unregister(c->subsys);
	put_device(c->parent);
	kfree(c);
}

/* The class device nvme<N>, or NULL without the classes. */
struct device *rnvme_nvme_ctrl_device(struct rnvme_nvme_ctrl *c)
{
	return c->dev;
}

/* The namespace attributes of a disk named <prefix><N>n<nsid> (rnvme's own names). */
static ssize_t nsid_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	const char *n = strrchr(dev_to_disk(dev)->disk_name, 'n');
	u32 nsid;

	if (!n || kstrtou32(n + 1, 10, &nsid))
		return -EINVAL;
	return sysfs_emit(buf, "%u\n", nsid);
}
static DEVICE_ATTR_RO(nsid);

static struct attribute *rnvme_ns_attrs[] = {
	&dev_attr_nsid.attr,
	NULL,
};

static const struct attribute_group rnvme_ns_group = {
	.attrs = rnvme_ns_attrs,
};

const struct attribute_group *rnvme_nvme_ns_groups[] = {
	&rnvme_ns_group,
	NULL,
};
