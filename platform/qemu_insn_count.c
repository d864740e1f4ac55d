/* platform/qemu_insn_count.c: a qemu-user TCG plugin that prints how many
 * guest instructions a program executed ("guest_insns N" on stderr at exit).
 * Under emulation wall time says little about a real core (qemu runs every
 * floating-point vector lane through its software float code, so NEON code
 * gains nothing); the instruction count is the machine-independent measure.
 *
 *   gcc -O2 -shared -fPIC -o build-arm64/qemu_insn_count.so platform/qemu_insn_count.c
 *   QEMU_CPU=neoverse-n1 qemu-aarch64 -plugin build-arm64/qemu_insn_count.so -L SYSROOT PROGRAM
 *
 * Written against qemu 7.2's plugin API (version 1, Debian 12's qemu-user),
 * whose few declarations it repeats so that no qemu headers are needed. */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t, void *);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, qemu_plugin_vcpu_tb_trans_cb_t);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op,
                                                     void *, uint64_t);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, qemu_plugin_udata_cb_t, void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* Summed by every vCPU thread without atomics: exact for one thread, which is
 * how it is used (OMP_NUM_THREADS=1). */
static uint64_t executed;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void report(qemu_plugin_id_t id, void *unused) {
    (void)id;
    (void)unused;
    fprintf(stderr, "guest_insns %" PRIu64 "\n", executed);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info, int argc,
                                                               char **argv) {
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, report, NULL);
    return 0;
}
