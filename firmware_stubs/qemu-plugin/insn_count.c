/* A QEMU TCG plugin that counts executed guest instructions exactly between two marker functions.
 *
 * Arguments: start=ADDR,stop=ADDR (the firmware's edgetk_mark_start / edgetk_mark_stop, from nm),
 * outfile=PATH. Each start→stop window appends one line "<instructions>" to outfile when it closes,
 * before the firmware prints its reply, so the host can read it with the reply. Debian ships no
 * qemu-plugin.h: the few API entry points used are declared here as in QEMU 7.2 (plugin API v1). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info,
                                                               int argc, char **argv);

/* Every translation block adds its instruction count inline (fast); only the two marker blocks
 * call back, to snapshot the counter (start) and write the difference (stop). */
static uint64_t g_start, g_stop, g_insns, g_snap;
static char g_out[512] = "insn_count.txt";

static void on_start(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    g_snap = g_insns;
}

static void on_stop(unsigned int vcpu, void *udata)
{
    FILE *f = fopen(g_out, "a");
    (void)vcpu;
    (void)udata;
    if (f != NULL) {
        fprintf(f, "%llu\n", (unsigned long long)(g_insns - g_snap));
        fclose(f);
    }
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t pc = qemu_plugin_tb_vaddr(tb) & ~(uint64_t)1;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &g_insns,
                                             (uint64_t)qemu_plugin_tb_n_insns(tb));
    if (pc == g_start) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_start, QEMU_PLUGIN_CB_NO_REGS, NULL);
    } else if (pc == g_stop) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_stop, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "outfile=", 8) == 0) {
            snprintf(g_out, sizeof g_out, "%s", argv[i] + 8);
        } else if (strncmp(argv[i], "start=", 6) == 0) {
            g_start = strtoull(argv[i] + 6, NULL, 0) & ~(uint64_t)1;
        } else if (strncmp(argv[i], "stop=", 5) == 0) {
            g_stop = strtoull(argv[i] + 5, NULL, 0) & ~(uint64_t)1;
        }
    }
    if (g_start == 0 || g_stop == 0) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    return 0;
}
