// CPU backend: thread settings and shared helpers.
//
// One threading model: our loops and the matmul tiles run on OpenMP threads; OpenBLAS itself is
// kept single-threaded (each call computes one tile), see matmul.c.
#include <cblas.h>
#include <omp.h>
#include <pthread.h>

#include "../err.h"
#include "cpu_ops.h"

static int cpu_threads = 0; // 0: not set yet (OpenMP's default)
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void) { openblas_set_num_threads(1); }

void cpu_blas_init(void) { pthread_once(&blas_once, blas_single_thread); }

void cpu_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    cpu_blas_init();
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
