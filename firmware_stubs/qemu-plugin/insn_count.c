/* A QEMU TCG plugin that counts executed guest instructions exactly between two marker functions, and
 * optionally classifies them (Thumb-2, Cortex-M) for cycle estimates.
 *
 * Arguments: start=ADDR,stop=ADDR (the firmware's edgetk_mark_start / edgetk_mark_stop, from nm),
 * outfile=PATH. Each start→stop window appends one line "<instructions>" to outfile when it closes,
 * before the firmware prints its reply, so the host can read it with the reply.
 * classes=PATH (optional) also appends, per window, one line of "name=count" pairs (toolkit/hil/cycles.py
 * parses and prices them): insns, bytes (instruction bytes), lines (instruction fetch lines of `line` bytes,
 * default 8, that each executed translation block spans: the fetches of an uncached flash), alu, ld, st
 * (single loads/stores, LDRD/STRD excluded), pipe (single loads/stores right after a single load: the
 * Cortex-M pipelines them), lsm (LDM/STM/PUSH/POP/LDRD/STRD/VLDM/VSTM), lsm_regs (registers they move), mul,
 * mac (MLA/MLS, long multiplies and the DSP multiplies SMLAD, SMMUL, ...), div (SDIV/UDIV), fp (VFP), it, br
 * (instructions that may write the PC), taken (blocks ending in such an instruction whose successor is not
 * the fall-through address: a taken branch, conditional or not, IT blocks included; approximate: an exception
 * entered between two blocks counts as a taken branch), flash_rd (data reads below `ram` = 0x20000000: flash, or the code
 * RAM of the mps2 boards). The decoding is the plugin's own (from the instruction bytes), by encoding group,
 * not a full disassembler. Debian ships no qemu-plugin.h: the few API entry points used are declared here
 * as in QEMU 7.2 (plugin API v1). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
_Bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info,
                                                               int argc, char **argv);

/* ---- classes ----------------------------------------------------------------------------------- */

enum { C_INSNS, C_BYTES, C_LINES, C_ALU, C_LD, C_ST, C_PIPE, C_LSM, C_LSM_REGS, C_MUL, C_MAC, C_DIV, C_FP, C_IT,
       C_BR, C_TAKEN, C_FLASH_RD, N_CLASSES };
static const char *const k_names[N_CLASSES] = {"insns", "bytes", "lines", "alu", "ld", "st", "pipe", "lsm",
                                               "lsm_regs", "mul", "mac", "div", "fp", "it", "br", "taken",
                                               "flash_rd"};

enum { END_NONE, END_ALWAYS, END_COND };  /* how an instruction may leave its block (the last one's counts) */

/* One decoded instruction: its class, registers moved (LDM/STM...), whether it may write the PC and how. */
typedef struct {
    int cls;
    int regs;
    int pc;       /* END_NONE, END_ALWAYS (unconditional), END_COND (conditional or compare-and-branch) */
    int single;   /* 1 single load, 2 single store */
} insn_class;

static int popcount16(uint32_t v)
{
    int n = 0;
    for (v &= 0xFFFFu; v != 0u; v &= v - 1u) {
        n++;
    }
    return n;
}

static insn_class make(int cls, int regs, int pc, int single)
{
    insn_class c;
    c.cls = cls;
    c.regs = regs;
    c.pc = pc;
    c.single = single;
    return c;
}

static insn_class thumb16(uint32_t h)
{
    if ((h & 0xFF00u) == 0x4700u) {                       /* BX / BLX register */
        return make(C_BR, 0, END_ALWAYS, 0);
    }
    if ((h & 0xFC00u) == 0x4400u && (h & 0x0300u) != 0x0100u && (((h >> 4) & 8u) | (h & 7u)) == 15u) {
        return make(C_BR, 0, END_ALWAYS, 0);              /* ADD / MOV to PC (high registers) */
    }
    if ((h & 0xFFC0u) == 0x4340u) {
        return make(C_MUL, 0, END_NONE, 0);               /* MULS */
    }
    if ((h & 0xF800u) == 0x4800u) {
        return make(C_LD, 0, END_NONE, 1);                /* LDR literal */
    }
    if ((h & 0xF000u) == 0x5000u) {                       /* register offset: STR STRH STRB | LDRSB LDR ... */
        int load = ((h >> 9) & 7u) >= 3u;
        return make(load ? C_LD : C_ST, 0, END_NONE, load ? 1 : 2);
    }
    if ((h & 0xE000u) == 0x6000u || (h & 0xE000u) == 0x8000u) {  /* immediate offset word/byte, halfword, SP */
        int load = (h >> 11) & 1u;
        return make(load ? C_LD : C_ST, 0, END_NONE, load ? 1 : 2);
    }
    if ((h & 0xFE00u) == 0xB400u) {                       /* PUSH {.., LR} */
        return make(C_LSM, popcount16(h & 0xFFu) + (int)((h >> 8) & 1u), END_NONE, 0);
    }
    if ((h & 0xFE00u) == 0xBC00u) {                       /* POP {.., PC} */
        int pc = (h >> 8) & 1u;
        return make(C_LSM, popcount16(h & 0xFFu) + pc, pc ? END_ALWAYS : END_NONE, 0);
    }
    if ((h & 0xF500u) == 0xB100u) {
        return make(C_BR, 0, END_COND, 0);                /* CBZ / CBNZ */
    }
    if ((h & 0xFF00u) == 0xBF00u) {
        return make((h & 0x000Fu) != 0u ? C_IT : C_ALU, 0, END_NONE, 0);  /* IT, or a hint (NOP) */
    }
    if ((h & 0xF000u) == 0xC000u) {                       /* STMIA / LDMIA */
        return make(C_LSM, popcount16(h & 0xFFu), END_NONE, 0);
    }
    if ((h & 0xF000u) == 0xD000u) {
        uint32_t cond = (h >> 8) & 0xFu;
        return cond >= 0xEu ? make(C_ALU, 0, END_NONE, 0) : make(C_BR, 0, END_COND, 0);  /* UDF/SVC | B<c> */
    }
    if ((h & 0xF800u) == 0xE000u) {
        return make(C_BR, 0, END_ALWAYS, 0);              /* B */
    }
    return make(C_ALU, 0, END_NONE, 0);
}

static insn_class multiply(uint32_t h1, uint32_t h2)
{
    uint32_t op1 = (h1 >> 4) & 7u, op2 = (h2 >> 4) & 0xFu;
    if ((h1 & 0xFF80u) == 0xFB00u) {                      /* 32-bit multiplies, DSP multiply-accumulates */
        int plain_mul = op1 == 0u && (op2 & 3u) == 0u && ((h2 >> 12) & 0xFu) == 0xFu;
        return make(plain_mul ? C_MUL : C_MAC, 0, END_NONE, 0);
    }
    if ((op1 == 1u || op1 == 3u) && op2 == 0xFu) {
        return make(C_DIV, 0, END_NONE, 0);               /* SDIV / UDIV */
    }
    return make(C_MAC, 0, END_NONE, 0);                   /* SMULL UMULL SMLAL UMLAL SMLALD ... */
}

static insn_class thumb32(uint32_t h1, uint32_t h2)
{
    uint32_t op1 = (h1 >> 11) & 3u;
    if (op1 == 1u) {
        if ((h1 & 0xFE40u) == 0xE800u) {                  /* LDM / STM (incl. PUSH.W / POP.W) */
            int load = (h1 >> 4) & 1u, pc = load && (h2 & 0x8000u);
            return make(C_LSM, popcount16(h2), pc ? END_ALWAYS : END_NONE, 0);
        }
        if ((h1 & 0xFE40u) == 0xE840u) {
            if ((h1 & 0x0120u) != 0u) {
                return make(C_LSM, 2, END_NONE, 0);       /* LDRD / STRD */
            }
            if ((h1 & 0xFFF0u) == 0xE8D0u && (h2 & 0xFFE0u) == 0xF000u) {
                return make(C_BR, 0, END_ALWAYS, 1);      /* TBB / TBH: a load, then the jump */
            }
            return make((h1 >> 4) & 1u ? C_LD : C_ST, 0, END_NONE, 0);  /* LDREX / STREX ... */
        }
        if ((h1 & 0xFE00u) == 0xEA00u) {
            return make(C_ALU, 0, END_NONE, 0);           /* data processing, shifted register */
        }
        if ((h1 & 0xFF20u) == 0xED00u) {
            return make((h1 >> 4) & 1u ? C_LD : C_ST, 0, END_NONE, 0);  /* VLDR / VSTR */
        }
        if ((h1 & 0xFE00u) == 0xEC00u && (h1 & 0xFFE0u) != 0xEC40u) {
            return make(C_LSM, (int)(h2 & 0xFFu), END_NONE, 0);  /* VLDM / VSTM / VPUSH / VPOP: imm8 words */
        }
        return make(C_FP, 0, END_NONE, 0);                /* VFP data processing, register transfers */
    }
    if (op1 == 2u) {
        if ((h2 & 0x8000u) == 0u) {
            return make(C_ALU, 0, END_NONE, 0);           /* data processing, immediate */
        }
        if ((h2 & 0x5000u) != 0u) {
            return make(C_BR, 0, END_ALWAYS, 0);          /* B.W / BL */
        }
        if (((h1 >> 7) & 7u) != 7u) {
            return make(C_BR, 0, END_COND, 0);            /* B<c>.W */
        }
        return make(C_ALU, 0, END_NONE, 0);               /* MSR / MRS / hints / barriers */
    }
    if ((h1 & 0xFE00u) == 0xF800u) {                      /* single loads and stores */
        uint32_t rt = (h2 >> 12) & 0xFu, size = (h1 >> 5) & 3u;
        if (((h1 >> 4) & 1u) == 0u) {
            return make(C_ST, 0, END_NONE, 2);
        }
        if (rt == 15u) {
            return size == 2u ? make(C_LD, 0, END_ALWAYS, 1) : make(C_ALU, 0, END_NONE, 0);  /* LDR PC | PLD */
        }
        return make(C_LD, 0, END_NONE, 1);
    }
    if ((h1 & 0xFF00u) == 0xFA00u) {
        return make(C_ALU, 0, END_NONE, 0);  /* register data processing: SXTB16, SIMD add/sub, SEL, CLZ, REV */
    }
    if ((h1 & 0xFF00u) == 0xFB00u) {
        return multiply(h1, h2);
    }
    return make(C_FP, 0, END_NONE, 0);
}

static insn_class classify(const uint8_t *b, size_t size)
{
    uint32_t h1 = (uint32_t)b[0] | ((uint32_t)b[1] << 8);
    if (size >= 4u) {
        return thumb32(h1, (uint32_t)b[2] | ((uint32_t)b[3] << 8));
    }
    return thumb16(h1);
}

/* ---- counting ---------------------------------------------------------------------------------- */

/* Every translation block adds its instruction count inline (fast); only the two marker blocks
 * call back, to snapshot the counter (start) and write the difference (stop). With classes=, every
 * block calls back (its class counts, the taken-branch test) and every load reports its address. */
typedef struct {
    uint64_t vaddr, next;         /* first instruction, fall-through address */
    uint64_t n[N_CLASSES];
    int end;
} tb_info;

static uint64_t g_start, g_stop, g_insns, g_snap;
static uint64_t g_cls[N_CLASSES], g_cls_snap[N_CLASSES];
static uint64_t g_line = 8u, g_ram = 0x20000000u;
static const tb_info *g_prev;
static int g_classes;
static char g_out[512] = "insn_count.txt";
static char g_cls_out[512];

static void on_start(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    g_snap = g_insns;
    memcpy(g_cls_snap, g_cls, sizeof g_cls);
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
    if (g_classes && (f = fopen(g_cls_out, "a")) != NULL) {
        for (int c = 0; c < N_CLASSES; c++) {
            fprintf(f, "%s%s=%llu", c ? " " : "", k_names[c], (unsigned long long)(g_cls[c] - g_cls_snap[c]));
        }
        fputc('\n', f);
        fclose(f);
    }
}

static void on_exec(unsigned int vcpu, void *udata)
{
    const tb_info *t = udata;
    if (g_prev != NULL && g_prev->end != END_NONE && t->vaddr != g_prev->next) {
        g_cls[C_TAKEN]++;
    }
    g_prev = t;
    for (int c = 0; c < N_CLASSES; c++) {
        g_cls[c] += t->n[c];
    }
    if (t->vaddr == g_start) {
        on_start(vcpu, NULL);
    } else if (t->vaddr == g_stop) {
        on_stop(vcpu, NULL);
    }
}

static void on_load(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    (void)vcpu;
    (void)udata;
    if (vaddr < g_ram && !qemu_plugin_mem_is_store(info)) {
        g_cls[C_FLASH_RD]++;
    }
}

/* Class counts of a block, the loads' address callbacks, how it ends (NULL when out of memory). */
static tb_info *describe(struct qemu_plugin_tb *tb, uint64_t pc)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    tb_info *t = calloc(1, sizeof *t);
    uint64_t first = pc, last = pc;
    int after_load = 0;
    if (t == NULL) {
        return NULL;
    }
    t->vaddr = pc;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        size_t size = qemu_plugin_insn_size(insn);
        insn_class c = classify(qemu_plugin_insn_data(insn), size);
        uint64_t at = qemu_plugin_insn_vaddr(insn) & ~(uint64_t)1;
        t->n[C_INSNS]++;
        t->n[C_BYTES] += size;
        t->n[c.cls]++;
        t->n[C_LSM_REGS] += (uint64_t)c.regs;
        t->n[C_PIPE] += (uint64_t)(c.single && after_load);
        after_load = c.single == 1 && c.cls == C_LD;
        if (c.cls == C_LD || c.cls == C_LSM || c.single == 1) {
            /* both directions, filtered in on_load: QEMU 7.2 reports loads under QEMU_PLUGIN_MEM_W (measured:
             * registering MEM_R alone gets the stores) */
            qemu_plugin_register_vcpu_mem_cb(insn, on_load, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
        }
        last = at + size;
        t->end = i + 1 == n ? c.pc : END_NONE;
    }
    t->next = last;
    t->n[C_LINES] = n ? (last - 1u) / g_line - first / g_line + 1u : 0u;
    return t;
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t pc = qemu_plugin_tb_vaddr(tb) & ~(uint64_t)1;
    tb_info *t;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &g_insns,
                                             (uint64_t)qemu_plugin_tb_n_insns(tb));
    if (g_classes && (t = describe(tb, pc)) != NULL) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, t);
    } else if (pc == g_start) {
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
        } else if (strncmp(argv[i], "classes=", 8) == 0) {
            snprintf(g_cls_out, sizeof g_cls_out, "%s", argv[i] + 8);
            g_classes = g_cls_out[0] != '\0';
        } else if (strncmp(argv[i], "start=", 6) == 0) {
            g_start = strtoull(argv[i] + 6, NULL, 0) & ~(uint64_t)1;
        } else if (strncmp(argv[i], "stop=", 5) == 0) {
            g_stop = strtoull(argv[i] + 5, NULL, 0) & ~(uint64_t)1;
        } else if (strncmp(argv[i], "line=", 5) == 0) {
            g_line = strtoull(argv[i] + 5, NULL, 0);
        } else if (strncmp(argv[i], "ram=", 4) == 0) {
            g_ram = strtoull(argv[i] + 4, NULL, 0);
        }
    }
    if (g_start == 0 || g_stop == 0 || g_line == 0) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    return 0;
}
