// CPU backend: thread settings and shared helpers.
#include <cblas.h>
#include <omp.h>

#include "../err.h"
#include "cpu_ops.h"

static int cpu_threads = 0; // 0: not set yet (OpenMP's default)

void cpu_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
    cpu_threads = n;
}

int cpu_get_threads(void) { return cpu_threads ? cpu_threads : omp_get_max_threads(); }

int cpu_require_f32(const char *op, const char *name, const tensor_t *t) {
    if (t->dtype != DTYPE_F32)
        return err_set("%s: the CPU backend computes in F32; %s is %s (convert it when loading)", op,
                       name, dtype_name(t->dtype));
    return 0;
}
