// SPDX-License-Identifier: GPL-2.0
/*
 * A TCG plugin for `cargo xtask bench insns`: counts how often each translation block
 * of the guest runs between two markers, so that the host can add up the instructions
 * each function executed.
 *
 * The guest marks a window with the `cpuid` instruction: leaf RNVME_START zeroes every
 * count, leaf RNVME_DUMP writes the counts of the blocks that ran since to
 * "<out>.<n>" (n = 0, 1, ... in the order of the dumps), one line per block:
 * "<start address, hex> <instructions> <executions>".
 *
 * Arguments: out=<path prefix> (default /tmp/rnvme-insns).
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define RNVME_START 0x524e5601u
#define RNVME_DUMP 0x524e5602u

/* One translated block; blocks translated again at the same address share it. */
struct block {
	uint64_t vaddr;
	uint64_t insns;
	uint64_t count;
};

static GMutex lock;
static GHashTable *by_key; /* (vaddr, insns) -> struct block */
static GPtrArray *blocks;
static struct qemu_plugin_register *rax;
static const char *out = "/tmp/rnvme-insns";
static int dumps;

static guint key_hash(gconstpointer k)
{
	const struct block *b = k;

	return g_int64_hash(&b->vaddr) ^ (guint)b->insns;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
	const struct block *x = a, *y = b;

	return x->vaddr == y->vaddr && x->insns == y->insns;
}

static void block_ran(unsigned int vcpu, void *udata)
{
	struct block *b = udata;

	__atomic_fetch_add(&b->count, 1, __ATOMIC_RELAXED);
}

static void dump(void)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s.%d", out, dumps++);
	f = fopen(path, "w");
	if (!f) {
		qemu_plugin_outs("insn_count: cannot write the dump\n");
		return;
	}
	for (guint i = 0; i < blocks->len; i++) {
		struct block *b = g_ptr_array_index(blocks, i);
		uint64_t n = __atomic_load_n(&b->count, __ATOMIC_RELAXED);

		if (n)
			fprintf(f, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", b->vaddr, b->insns, n);
	}
	fclose(f);
}

static void cpuid_ran(unsigned int vcpu, void *udata)
{
	GByteArray *buf = g_byte_array_new();
	uint32_t leaf = 0;

	if (rax && qemu_plugin_read_register(rax, buf) >= 4)
		memcpy(&leaf, buf->data, sizeof(leaf));
	g_byte_array_free(buf, TRUE);

	if (leaf != RNVME_START && leaf != RNVME_DUMP)
		return;
	g_mutex_lock(&lock);
	if (leaf == RNVME_START) {
		for (guint i = 0; i < blocks->len; i++) {
			struct block *b = g_ptr_array_index(blocks, i);

			__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
		}
	} else {
		dump();
	}
	g_mutex_unlock(&lock);
}

static void vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
	GArray *regs;

	if (rax)
		return;
	regs = qemu_plugin_get_registers();
	for (guint i = 0; i < regs->len; i++) {
		qemu_plugin_reg_descriptor *d =
			&g_array_index(regs, qemu_plugin_reg_descriptor, i);

		if (!strcmp(d->name, "rax")) {
			rax = d->handle;
			break;
		}
	}
	g_array_free(regs, TRUE);
}

static void tb_translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	struct block key = {
		.vaddr = qemu_plugin_tb_vaddr(tb),
		.insns = qemu_plugin_tb_n_insns(tb),
	};
	struct block *b;

	g_mutex_lock(&lock);
	b = g_hash_table_lookup(by_key, &key);
	if (!b) {
		b = g_new0(struct block, 1);
		*b = key;
		g_hash_table_add(by_key, b);
		g_ptr_array_add(blocks, b);
	}
	g_mutex_unlock(&lock);
	qemu_plugin_register_vcpu_tb_exec_cb(tb, block_ran, QEMU_PLUGIN_CB_NO_REGS, b);

	for (size_t i = 0; i < key.insns; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint8_t op[2];

		if (qemu_plugin_insn_size(insn) == 2 && qemu_plugin_insn_data(insn, op, 2) == 2 &&
		    op[0] == 0x0f && op[1] == 0xa2)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, cpuid_ran,
							       QEMU_PLUGIN_CB_R_REGS, NULL);
	}
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
					   int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4)) {
			out = g_strdup(argv[i] + 4);
		} else {
			fprintf(stderr, "insn_count: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
	by_key = g_hash_table_new(key_hash, key_equal);
	blocks = g_ptr_array_new();
	qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_translated);
	return 0;
}
