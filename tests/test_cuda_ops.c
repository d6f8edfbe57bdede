// test_cuda_ops: every op of kernels/kernels.h on the CUDA backend against the CPU backend (the
// reference), on the same inputs, over odd shapes (N = 1 decode, N = 37, GQA ratios 1/2/4, head
// dims 64 and 128, KV lengths that are not multiples of the page size 16).
//
// Error measure: max |cuda - cpu| / max |cpu| over the whole output.
//   1e-5  when both backends see the same values (F32, or BF16 storage whose values the CPU side
//         gets exactly, converted to F32) and the result is stored in F32;
//   1e-2  when the CUDA side rounds on the way: a BF16 output (relative step 2^-8), or a matmul of
//         F32 x with BF16 w (x is rounded to BF16 first, see kernels/cuda/cuda_ops.h).
// Bad indices (embedding / logsoftmax ids, kv_store slots, attention pages and seq_info) must be
// reported as errors, and the device must stay usable afterwards.
//
// Without a usable CUDA device it prints "SKIP: ..." and exits 77. With --self-check it runs the
// same harness with the CPU backend as the device under test (F32 cases only), which checks the
// harness itself on machines without a GPU.
#define _POSIX_C_SOURCE 200809L // setenv
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "kernels/kernels.h"
#ifdef TRUSTEE_CUDA
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemm.h"
#endif
#include "tests/test.h"
#include "tests/cuda_harness.h"

#define TOL_EXACT 1e-5
#define TOL_BF16 1e-2

// ---- matmul ----

// misalign = 1: x and out are views that start one row into larger buffers, so their addresses
// are aligned only to the row size (e.g. 12 bytes for 3 F32 values): the GEMM plans must not
// assume cudaMalloc's 256-byte alignment
static tensor_t row_view(const tensor_t *t, int64_t skip, int64_t rows) {
    char *base = (char *)t->data + (size_t)(skip * t->shape[1]) * dtype_size(t->dtype);
    return tensor_view(base, t->dtype, t->device, 2, (int64_t[]){rows, t->shape[1]});
}

static int case_matmul(int64_t N, int64_t I, int64_t O, dtype_t xdt, dtype_t wdt, dtype_t odt,
                       int accumulate, int misalign) {
    int64_t xs[2] = {N + misalign, I}, ws[2] = {O, I}, os[2] = {N + misalign, O};
    pair_t x, w, out;
    OK(pair_rand(&x, xdt, 2, xs, -1, 1));
    OK(pair_rand(&w, wdt, 2, ws, -1, 1));
    OK(pair_rand(&out, odt, 2, os, -1, 1)); // the prior contents matter when accumulating
    tensor_t xr = row_view(&x.ref, misalign, N), xd = row_view(&x.dev, misalign, N);
    tensor_t orf = row_view(&out.ref, misalign, N), od = row_view(&out.dev, misalign, N);
    OK(op_matmul(&orf, &xr, &w.ref, accumulate));
    OK(op_matmul(&od, &xd, &w.dev, accumulate));
    char what[128];
    snprintf(what, sizeof what, "matmul N=%lld I=%lld O=%lld x %s w %s out %s acc %d%s",
             (long long)N, (long long)I, (long long)O, dtype_name(xdt), dtype_name(wdt),
             dtype_name(odt), accumulate, misalign ? " misaligned" : "");
    int rounds = odt == DTYPE_BF16 || (xdt != wdt && wdt == DTYPE_BF16);
    int rc = compare(what, &out.dev, &out.ref, rounds ? TOL_BF16 : TOL_EXACT); // whole buffers
    pair_free(&x);
    pair_free(&w);
    pair_free(&out);
    return rc;
}

static int test_matmul(void) {
    const int64_t shapes[][3] = {{1, 64, 96}, {37, 128, 200}, {37, 1000, 33}, {5, 3, 7}};
    // x, w, out dtypes
    const dtype_t combos[][3] = {
        {DTYPE_F32, DTYPE_F32, DTYPE_F32},   {DTYPE_F32, DTYPE_BF16, DTYPE_F32},
        {DTYPE_BF16, DTYPE_BF16, DTYPE_F32}, {DTYPE_BF16, DTYPE_BF16, DTYPE_BF16},
        {DTYPE_BF16, DTYPE_F32, DTYPE_F32},  {DTYPE_F32, DTYPE_F32, DTYPE_BF16}};
    int ncombos = self_check ? 1 : 6;
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < 4; s++)
            for (int c = 0; c < ncombos; c++)
                for (int acc = 0; acc < 2; acc++)
                    if (case_matmul(shapes[s][0], shapes[s][1], shapes[s][2], combos[c][0],
                                    combos[c][1], combos[c][2], acc, m))
                        return 1;
    // the same shapes again: answered from the plan cache (the GPU run prints the counts)
    dtype_t dt = self_check ? DTYPE_F32 : DTYPE_BF16;
#ifdef TRUSTEE_CUDA
    long built0, hits0, built1, hits1;
    cuda_gemm_stats(&built0, &hits0);
#endif
    for (int s = 0; s < 4; s++)
        if (case_matmul(shapes[s][0], shapes[s][1], shapes[s][2], dt, dt, DTYPE_F32, 0, 0))
            return 1;
#ifdef TRUSTEE_CUDA
    if (!self_check) {
        cuda_gemm_stats(&built1, &hits1);
        printf("  gemm plans: %ld built in all; the repeated shapes built %ld, found %ld cached\n",
               built1, built1 - built0, hits1 - hits0);
        CHECK(built1 == built0 && hits1 - hits0 == 4, "repeated GEMM shapes were not cached");
    }
#endif
    return 0;
}

// ---- rmsnorm ----

static int test_rmsnorm(void) {
    // (ndim, shape): a decode row, 37 rows, QK-norm over (N, H, D) with w (D) (the CUDA kernel's
    // 128-bit path: C % 8 == 0), and a row length that is not a multiple of 8 (its scalar path)
    const int64_t shapes[][3] = {{1, 64, 0}, {37, 1000, 0}, {37, 8, 128}, {5, 1001, 0}};
    const int ndims[] = {2, 2, 3, 2};
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < n_dtypes(); t++)
            for (int inplace = 0; inplace < 2; inplace++) {
                dtype_t dt = dtypes[t];
                int nd = ndims[s];
                int64_t C = shapes[s][nd - 1];
                pair_t x, w, out;
                OK(pair_rand(&x, dt, nd, shapes[s], -3, 3));
                OK(pair_rand(&w, dt, 1, &C, 0.5f, 1.5f));
                pair_t *o = &x;
                if (!inplace) {
                    OK(pair_rand(&out, DTYPE_F32, nd, shapes[s], 0, 0));
                    o = &out;
                }
                OK(op_rmsnorm(&o->ref, &x.ref, &w.ref, 1e-6f));
                OK(op_rmsnorm(&o->dev, &x.dev, &w.dev, 1e-6f));
                char what[128];
                snprintf(what, sizeof what, "rmsnorm rows=%lld C=%lld x/w %s out %s%s",
                         (long long)(tensor_numel(&x.ref) / C), (long long)C, dtype_name(dt),
                         dtype_name(o->dev.dtype), inplace ? " (in place)" : "");
                if (compare(what, &o->dev, &o->ref,
                            o->dev.dtype == DTYPE_BF16 ? TOL_BF16 : TOL_EXACT))
                    return 1;
                pair_free(&x);
                pair_free(&w);
                if (!inplace) pair_free(&out);
            }
    return 0;
}

// ---- rope ----

static int test_rope(void) {
    const int64_t Ns[] = {1, 37};
    return harness_rope_cases(0, Ns, 2);
}

// ---- add, swiglu ----

static int test_elementwise(void) {
    const int64_t shapes[][2] = {{1, 96}, {37, 333}};
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < n_dtypes(); t++)
            for (int alias = 0; alias < 2; alias++) {
                dtype_t dt = dtypes[t];
                double tol = dt == DTYPE_BF16 ? TOL_BF16 : TOL_EXACT;
                pair_t a, b, out;
                OK(pair_rand(&a, dt, 2, shapes[s], -4, 4));
                OK(pair_rand(&b, dt, 2, shapes[s], -4, 4));
                OK(pair_rand(&out, dt, 2, shapes[s], 0, 0));
                pair_t *o = alias ? &a : &out;
                char what[128];
                snprintf(what, sizeof what, "add (%lld, %lld) %s%s", (long long)shapes[s][0],
                         (long long)shapes[s][1], dtype_name(dt), alias ? " (out = a)" : "");
                OK(op_add(&o->ref, &a.ref, &b.ref));
                OK(op_add(&o->dev, &a.dev, &b.dev));
                if (compare(what, &o->dev, &o->ref, tol)) return 1;
                // swiglu on fresh inputs (a may have been overwritten)
                pair_free(&a);
                OK(pair_rand(&a, dt, 2, shapes[s], -6, 6));
                snprintf(what, sizeof what, "swiglu (%lld, %lld) %s%s", (long long)shapes[s][0],
                         (long long)shapes[s][1], dtype_name(dt), alias ? " (out = gate)" : "");
                OK(op_swiglu(&o->ref, &a.ref, &b.ref));
                OK(op_swiglu(&o->dev, &a.dev, &b.dev));
                if (compare(what, &o->dev, &o->ref, tol)) return 1;
                pair_free(&a);
                pair_free(&b);
                pair_free(&out);
            }
    return 0;
}

// ---- embedding ----

static int test_embedding(void) {
    const int64_t V = 500, C = 96, tshape[2] = {500, 96};
    for (int t = 0; t < n_dtypes(); t++)
        for (int64_t N = 1; N <= 37; N += 36) {
            int64_t oshape[2] = {N, C};
            int32_t ids[37];
            for (int64_t n = 0; n < N; n++)
                ids[n] = (int32_t)(rng_u32() % V);
            ids[0] = (int32_t)(V - 1);
            pair_t table, id, out;
            OK(pair_rand(&table, dtypes[t], 2, tshape, -1, 1));
            OK(pair_i32(&id, 1, &N, ids));
            OK(pair_rand(&out, dtypes[t], 2, oshape, 0, 0));
            OK(op_embedding(&out.ref, &table.ref, &id.ref));
            OK(op_embedding(&out.dev, &table.dev, &id.dev));
            char what[128];
            snprintf(what, sizeof what, "embedding V=%lld C=%lld N=%lld %s", (long long)V,
                     (long long)C, (long long)N, dtype_name(dtypes[t]));
            if (compare(what, &out.dev, &out.ref, TOL_EXACT)) return 1; // a copy: exact
            pair_free(&id);
            // an id outside [0, V) is an error, on both sides of the table
            for (int k = 0; k < 2; k++) {
                ids[N - 1] = k ? -1 : (int32_t)V;
                OK(pair_i32(&id, 1, &N, ids));
                err_clear();
                int rc = op_embedding(&out.dev, &table.dev, &id.dev);
                CHECK(rc != 0, "embedding: id %d was accepted", ids[N - 1]);
                CHECK(strstr(err_msg(), "outside") != NULL, "embedding: unexpected message '%s'",
                      err_msg());
                printf("  embedding id %d -> %s\n", ids[N - 1], err_msg());
                pair_free(&id);
            }
            pair_free(&table);
            pair_free(&out);
        }
    return 0;
}

// ---- softmax, logsoftmax_gather ----

static int test_softmax(void) {
    const int64_t shapes[][2] = {{1, 151}, {37, 1000}, {3, 5000}};
    for (int s = 0; s < 3; s++)
        for (int t = 0; t < n_dtypes(); t++) {
            dtype_t dt = dtypes[t];
            pair_t x;
            OK(pair_rand(&x, dt, 2, shapes[s], -15, 15));
            OK(op_softmax(&x.ref));
            OK(op_softmax(&x.dev));
            char what[128];
            snprintf(what, sizeof what, "softmax (%lld, %lld) %s", (long long)shapes[s][0],
                     (long long)shapes[s][1], dtype_name(dt));
            if (compare(what, &x.dev, &x.ref, dt == DTYPE_BF16 ? TOL_BF16 : TOL_EXACT)) return 1;
            pair_free(&x);

            const float temps[] = {1.0f, 0.7f};
            for (int k = 0; k < 2; k++) {
                int64_t N = shapes[s][0], V = shapes[s][1];
                int32_t ids[37];
                for (int64_t n = 0; n < N; n++)
                    ids[n] = (int32_t)(rng_u32() % V);
                ids[0] = (int32_t)(V - 1);
                pair_t l, id, out;
                OK(pair_rand(&l, dt, 2, shapes[s], -15, 15));
                OK(pair_i32(&id, 1, &N, ids));
                OK(pair_rand(&out, DTYPE_F32, 1, &N, 0, 0));
                OK(op_logsoftmax_gather(&out.ref, &l.ref, &id.ref, temps[k]));
                OK(op_logsoftmax_gather(&out.dev, &l.dev, &id.dev, temps[k]));
                snprintf(what, sizeof what, "logsoftmax_gather (%lld, %lld) %s T=%.1f",
                         (long long)N, (long long)V, dtype_name(dt), temps[k]);
                if (compare(what, &out.dev, &out.ref, TOL_EXACT)) return 1;
                pair_free(&id);
                ids[N - 1] = (int32_t)V;
                OK(pair_i32(&id, 1, &N, ids));
                err_clear();
                CHECK(op_logsoftmax_gather(&out.dev, &l.dev, &id.dev, temps[k]) != 0,
                      "logsoftmax_gather: id %d was accepted", ids[N - 1]);
                CHECK(strstr(err_msg(), "outside") != NULL, "logsoftmax_gather: message '%s'",
                      err_msg());
                pair_free(&l);
                pair_free(&id);
                pair_free(&out);
            }
        }
    return 0;
}

// ---- kv_store ----

static int test_kv_store(void) {
    const int64_t P = 8, S = 16, Hkv = 2, D = 64, N = 37;
    int64_t pshape[4] = {P, S, Hkv, D}, kshape[3] = {N, Hkv, D};
    for (int t = 0; t < n_dtypes(); t++) {
        dtype_t dt = dtypes[t];
        int32_t perm[128], slots[37];
        for (int i = 0; i < 128; i++)
            perm[i] = i;
        for (int i = 127; i > 0; i--) { // shuffle
            int j = (int)(rng_u32() % (uint32_t)(i + 1)), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        memcpy(slots, perm, sizeof slots);
        slots[0] = 127; // the last slot
        for (int i = 1; i < 37; i++)
            if (slots[i] == 127) slots[i] = perm[37];
        pair_t kp, vp, k, v, sl;
        OK(pair_rand(&kp, dt, 4, pshape, -1, 1)); // old contents outside the slots must survive
        OK(pair_rand(&vp, dt, 4, pshape, -1, 1));
        OK(pair_rand(&k, dt, 3, kshape, -1, 1));
        OK(pair_rand(&v, dt, 3, kshape, -1, 1));
        OK(pair_i32(&sl, 1, &N, slots));
        OK(op_kv_store(&kp.ref, &vp.ref, &k.ref, &v.ref, &sl.ref));
        OK(op_kv_store(&kp.dev, &vp.dev, &k.dev, &v.dev, &sl.dev));
        char what[128];
        snprintf(what, sizeof what, "kv_store k_pool P=%lld S=%lld Hkv=%lld D=%lld N=%lld %s",
                 (long long)P, (long long)S, (long long)Hkv, (long long)D, (long long)N,
                 dtype_name(dt));
        if (compare(what, &kp.dev, &kp.ref, TOL_EXACT)) return 1;
        snprintf(what, sizeof what, "kv_store v_pool %s", dtype_name(dt));
        if (compare(what, &vp.dev, &vp.ref, TOL_EXACT)) return 1;
        pair_free(&sl);
        for (int k2 = 0; k2 < 2; k2++) {
            slots[5] = k2 ? -1 : (int32_t)(P * S);
            OK(pair_i32(&sl, 1, &N, slots));
            err_clear();
            CHECK(op_kv_store(&kp.dev, &vp.dev, &k.dev, &v.dev, &sl.dev) != 0,
                  "kv_store: slot %d was accepted", slots[5]);
            CHECK(strstr(err_msg(), "outside") != NULL, "kv_store: message '%s'", err_msg());
            printf("  kv_store slot %d -> %s\n", slots[5], err_msg());
            pair_free(&sl);
        }
        pair_free(&kp);
        pair_free(&vp);
        pair_free(&k);
        pair_free(&v);
    }
    return 0;
}

// ---- attention ----

// one batch layout: B sequences of (q_len, kv_len); N = sum of q_len
typedef struct {
    const char *name;
    int B;
    int32_t q_len[4], kv_len[4];
} batch_t;

// Runs one layout with the kernel variant `variant` ("rows", "flash" or NULL = the op's own
// choice; kernels/cuda/attention.cu reads TRUSTEE_CUDA_ATTENTION). Pages of S = 16; the page table
// holds just enough pages for the longest sequence; pages are shuffled in the pool.
static int case_attention(const batch_t *bt, int64_t Hq, int64_t Hkv, int64_t D, dtype_t dt,
                          const char *variant) {
    const int64_t S = 16;
    int64_t B = bt->B, N = 0, max_kv = 0;
    for (int b = 0; b < B; b++)
        if (bt->kv_len[b] > max_kv) max_kv = bt->kv_len[b];
    const int64_t MP = max_kv <= 64 ? 4 : (max_kv + S - 1) / S, P = B * MP + 4;
    int32_t seq[4][3];
    int32_t *pages = malloc((size_t)(B * MP) * sizeof *pages), *perm = malloc((size_t)P * sizeof *perm);
    for (int b = 0; b < B; b++) {
        seq[b][0] = (int32_t)N;
        seq[b][1] = bt->q_len[b];
        seq[b][2] = bt->kv_len[b];
        N += bt->q_len[b];
    }
    for (int i = 0; i < P; i++)
        perm[i] = i;
    for (int i = (int)P - 1; i > 0; i--) { // pages in a shuffled order, no two sequences share one
        int j = (int)(rng_u32() % (uint32_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int b = 0; b < B; b++)
        for (int c = 0; c < MP; c++)
            pages[b * MP + c] = perm[b * MP + c];
    int64_t qshape[3] = {N, Hq, D}, pshape[4] = {P, S, Hkv, D}, sshape[2] = {B, 3},
            tshape[2] = {B, MP};
    pair_t q, kp, vp, out, si, pt;
    OK(pair_rand(&q, dt, 3, qshape, -2, 2));
    OK(pair_rand(&kp, dt, 4, pshape, -2, 2)); // slots past kv_len hold values that must be ignored
    OK(pair_rand(&vp, dt, 4, pshape, -1, 1));
    OK(pair_rand(&out, DTYPE_F32, 3, qshape, 0, 0));
    OK(pair_i32(&si, 2, sshape, &seq[0][0]));
    OK(pair_i32(&pt, 2, tshape, pages));
    if (variant) setenv("TRUSTEE_CUDA_ATTENTION", variant, 1);
    OK(op_attention(&out.ref, &q.ref, &kp.ref, &vp.ref, &si.ref, &pt.ref));
    OK(op_attention(&out.dev, &q.dev, &kp.dev, &vp.dev, &si.dev, &pt.dev));
    char what[160];
    snprintf(what, sizeof what, "attention %s N=%lld Hq=%lld Hkv=%lld D=%lld %s %s", bt->name,
             (long long)N, (long long)Hq, (long long)Hkv, (long long)D, dtype_name(dt),
             variant ? variant : "auto");
    int rc = compare(what, &out.dev, &out.ref, TOL_EXACT);

    // a page id outside the pool, a kv_len beyond the page table, overlapping rows: errors
    if (!rc && bt->B >= 2) {
        int32_t bad_seq[4][3];
        int32_t *bad_pages = malloc((size_t)(B * MP) * sizeof *bad_pages);
        memcpy(bad_pages, pages, (size_t)(B * MP) * sizeof *pages);
        bad_pages[1 * MP + (bt->kv_len[1] - 1) / S] = (int32_t)P; // the last page the sequence uses
        pair_t bpt, bsi;
        OK(pair_i32(&bpt, 2, tshape, bad_pages));
        err_clear();
        CHECK(op_attention(&out.dev, &q.dev, &kp.dev, &vp.dev, &si.dev, &bpt.dev) != 0,
              "attention: page %lld was accepted", (long long)P);
        printf("  attention bad page -> %s\n", err_msg());
        memcpy(bad_seq, seq, sizeof seq);
        bad_seq[0][2] = (int32_t)(MP * S + 1);
        OK(pair_i32(&bsi, 2, sshape, &bad_seq[0][0]));
        err_clear();
        CHECK(op_attention(&out.dev, &q.dev, &kp.dev, &vp.dev, &bsi.dev, &pt.dev) != 0,
              "attention: kv_len %d was accepted", bad_seq[0][2]);
        printf("  attention bad kv_len -> %s\n", err_msg());
        pair_free(&bsi);
        memcpy(bad_seq, seq, sizeof seq);
        bad_seq[1][0] = 0; // sequence 1 starts on sequence 0's rows
        OK(pair_i32(&bsi, 2, sshape, &bad_seq[0][0]));
        err_clear();
        CHECK(op_attention(&out.dev, &q.dev, &kp.dev, &vp.dev, &bsi.dev, &pt.dev) != 0,
              "attention: overlapping rows were accepted");
        printf("  attention overlapping rows -> %s\n", err_msg());
        pair_free(&bsi);
        pair_free(&bpt);
        free(bad_pages);
    }
    if (variant) unsetenv("TRUSTEE_CUDA_ATTENTION");
    pair_free(&q);
    pair_free(&kp);
    pair_free(&vp);
    pair_free(&out);
    pair_free(&si);
    pair_free(&pt);
    free(pages);
    free(perm);
    return rc;
}

static int test_attention(void) {
    const batch_t batches[] = {
        {"decode", 1, {1}, {33}},
        {"decode x2", 2, {1, 1}, {1, 64}},
        {"mixed", 3, {1, 20, 16}, {50, 20, 45}}, // decode, prefill, chunked prefill: N = 37
        {"prefill", 1, {37}, {37}},
        // longer prefills: several 32-row query tiles and 32-key tiles, tiles straddling
        // sequences, chunked prefill on top of a cache, lengths not multiples of 16 or 32
        {"long prefill", 1, {300}, {300}},
        {"prefill x3", 3, {70, 1, 129}, {70, 200, 300}},
        {"chunked prefill", 2, {45, 33}, {1100, 33}},
    };
    // (Hq, Hkv, D): GQA ratios 1, 2, 4; head dims 64 and 128
    const int64_t heads[][3] = {{4, 4, 64}, {8, 4, 128}, {8, 2, 64}, {4, 1, 128}};
    // every layout under the op's own choice, and then forced onto each kernel (on the CPU
    // reference the variable changes nothing, so --self-check runs the same cases)
    const char *variants[] = {NULL, "rows", "flash"};
    for (int v = 0; v < 3; v++)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
            for (int h = 0; h < 4; h++)
                for (int t = 0; t < n_dtypes(); t++)
                    if (case_attention(&batches[b], heads[h][0], heads[h][1], heads[h][2],
                                       dtypes[t], variants[v]))
                        return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--self-check") == 0) {
        self_check = 1;
        dut = DEVICE_CPU;
    } else if (!kernels_backend_available(DEVICE_CUDA)) {
#ifdef TRUSTEE_CUDA
        printf("SKIP: no usable CUDA device (%s)\n", cuda_unavailable_reason());
#else
        printf("SKIP: no usable CUDA device (built without CUDA)\n");
#endif
        return 77;
    }
    printf("device under test: %s; reference: CPU\n", self_check ? "CPU (--self-check)" : "CUDA");
    struct {
        const char *name;
        int (*fn)(void);
    } tests[] = {{"matmul", test_matmul},       {"rmsnorm", test_rmsnorm},
                 {"rope", test_rope},           {"add/swiglu", test_elementwise},
                 {"embedding", test_embedding}, {"softmax/logsoftmax_gather", test_softmax},
                 {"kv_store", test_kv_store},   {"attention", test_attention}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        printf("%s\n", tests[i].name);
        if (tests[i].fn()) {
            test_failures++;
            fprintf(stderr, "%s: stopped at a setup error\n", tests[i].name);
        }
    }
    return test_exit("test_cuda_ops");
}
