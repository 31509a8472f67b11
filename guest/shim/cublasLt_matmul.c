/*
 * libcublasLt.so.13: handles, matmul descriptors, matrix layouts, preferences, heuristics and
 * cublasLtMatmul for what cublasGemmEx expresses, on libcublas.so.13's GEMMs.
 *
 * A cuBLASLt handle holds a cuBLAS handle (the host's); cublasLtMatmul sets its stream when it
 * changes and posts D = alpha op(A) op(B) + beta C as GemmEx (GemmStridedBatchedEx for a batch).
 * Served: column-major layouts of FP32/FP16/BF16, the CUBLAS_COMPUTE_32F family with FP32 scalars
 * in host memory, transposes of A and B, batches with strides, D in place of C or apart from it
 * (C is copied to D first, on the stream, when beta reads it). Not served, CUBLAS_STATUS_NOT_SUPPORTED
 * and logged once: epilogues other than the default (bias, activation, aux outputs), scale and amax
 * pointers, device-resident scalars, row-major or planar layouts, a transposed C. The heuristic
 * offers one algorithm, needing no workspace, for every problem the matmul serves.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "cublas_wrap.h"
#include "shim.h"

#define VGPU_MAGIC_LT 0x744c6c56u        /* "VlLt" */
#define VGPU_MAGIC_LT_DESC 0x63444c56u   /* "VLDc" */
#define VGPU_MAGIC_LT_LAYOUT 0x794c4c56u /* "VLLy" */
#define VGPU_MAGIC_LT_PREF 0x72504c56u   /* "VLPr" */
#define CUBLAS_OP_N 0
#define CUBLASLT_EPILOGUE_DEFAULT 1
#define CUBLAS_GEMM_DEFAULT (-1)
#define CUDA_R_32F 0
#define CUDA_R_16F 2
#define CUDA_R_16BF 14

struct cublasLtContext { uint32_t magic; cublasHandle_t blas; cudaStream_t stream; };
struct vgpu_lt_desc {
    uint32_t magic;
    int32_t compute, scale, pointer_mode, transa, transb, transc, fill_mode;
    uint32_t epilogue;
    uint64_t bias;
    int32_t sm_count_target;
    int8_t fast_accum;
};
struct vgpu_lt_layout {
    uint32_t magic, type;
    int32_t order, batch;
    uint64_t rows, cols;
    int64_t ld, stride;
};
struct vgpu_lt_pref { uint32_t magic, search_mode; uint64_t max_workspace; };
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct vgpu_lt_desc *cublasLtMatmulDesc_t;
typedef struct vgpu_lt_layout *cublasLtMatrixLayout_t;
typedef struct vgpu_lt_pref *cublasLtMatmulPreference_t;

/* libcublas.so.13's (this library links it) */
cublasStatus_t cublasDestroy_v2(cublasHandle_t h);
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t stream);
cublasStatus_t cublasGemmEx(cublasHandle_t h, int transa, int transb, int m, int n, int k, const void *alpha,
                            const void *A, int atype, int lda, const void *B, int btype, int ldb, const void *beta,
                            void *C, int ctype, int ldc, int compute, int algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, int transa, int transb, int m, int n, int k,
                                          const void *alpha, const void *A, int atype, int lda, long long stride_a,
                                          const void *B, int btype, int ldb, long long stride_b, const void *beta,
                                          void *C, int ctype, int ldc, long long stride_c, int batch, int compute,
                                          int algo);

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, int compute, int scale);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, int attr, const void *buf, size_t size);
cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc, int attr, void *buf, size_t size,
                                              size_t *written);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, int type, uint64_t rows, uint64_t cols,
                                          int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout);
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, int attr, const void *buf,
                                                size_t size);
cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t layout, int attr, void *buf, size_t size,
                                                size_t *written);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref, int attr, const void *buf,
                                                    size_t size);
cublasStatus_t cublasLtMatmulPreferenceGetAttribute(cublasLtMatmulPreference_t pref, int attr, void *buf,
                                                    size_t size, size_t *written);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t op,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *returned);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t op, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta,
                              const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_size,
                              cudaStream_t stream);

/* -- handles ----------------------------------------------------------------------------------- */

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle)
{
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t st;
    cublasLtHandle_t h = vgpu_blas_wrapper_new(sizeof *h, offsetof(struct cublasLtContext, blas), &st);
    if (!h)
        return st;
    h->magic = VGPU_MAGIC_LT;
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    if (!VGPU_CHECK_HANDLE(h, VGPU_MAGIC_LT))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t st = cublasDestroy_v2(h->blas);
    if (st == CUBLAS_STATUS_SUCCESS) {
        h->magic = VGPU_MAGIC_DEAD;
        free(h);
    }
    return st;
}

/* -- descriptors: each attribute a field of its size ------------------------------------------- */

struct field { int attr; size_t offset, size; };

/* Copy an attribute in or out of a record by the table; unknown attributes are not served. */
static cublasStatus_t set_field(const struct field *fields, size_t n, void *record, int attr, const void *buf,
                                size_t size, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (fields[i].attr == attr) {
            if (!buf || size != fields[i].size)
                return CUBLAS_STATUS_INVALID_VALUE;
            memcpy((char *)record + fields[i].offset, buf, size);
            return CUBLAS_STATUS_SUCCESS;
        }
    VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED, "%s attribute %d is not served", what, attr);
}

static cublasStatus_t get_field(const struct field *fields, size_t n, const void *record, int attr, void *buf,
                                size_t size, size_t *written, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (fields[i].attr == attr) {
            if (written)
                *written = fields[i].size;
            if (size == 0 && written)
                return CUBLAS_STATUS_SUCCESS; /* asking the size */
            if (!buf || size < fields[i].size)
                return CUBLAS_STATUS_INVALID_VALUE;
            memcpy(buf, (const char *)record + fields[i].offset, fields[i].size);
            return CUBLAS_STATUS_SUCCESS;
        }
    VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED, "%s attribute %d is not served", what, attr);
}

#define F(type, attr, member) {attr, offsetof(struct type, member), sizeof(((struct type *)0)->member)}
static const struct field desc_fields[] = {
    F(vgpu_lt_desc, 0, compute), F(vgpu_lt_desc, 1, scale), F(vgpu_lt_desc, 2, pointer_mode),
    F(vgpu_lt_desc, 3, transa), F(vgpu_lt_desc, 4, transb), F(vgpu_lt_desc, 5, transc),
    F(vgpu_lt_desc, 6, fill_mode), F(vgpu_lt_desc, 7, epilogue), F(vgpu_lt_desc, 8, bias),
    F(vgpu_lt_desc, 15, sm_count_target), F(vgpu_lt_desc, 25, fast_accum),
};
static const struct field layout_fields[] = {
    F(vgpu_lt_layout, 0, type), F(vgpu_lt_layout, 1, order), F(vgpu_lt_layout, 2, rows), F(vgpu_lt_layout, 3, cols),
    F(vgpu_lt_layout, 4, ld), F(vgpu_lt_layout, 5, batch), F(vgpu_lt_layout, 6, stride),
};
static const struct field pref_fields[] = {F(vgpu_lt_pref, 0, search_mode), F(vgpu_lt_pref, 1, max_workspace)};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, int compute, int scale)
{
    if (!desc)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_lt_desc *d = calloc(1, sizeof *d);
    if (!d)
        return CUBLAS_STATUS_ALLOC_FAILED;
    *d = (struct vgpu_lt_desc){.magic = VGPU_MAGIC_LT_DESC, .compute = compute, .scale = scale,
                               .transa = CUBLAS_OP_N, .transb = CUBLAS_OP_N, .transc = CUBLAS_OP_N,
                               .epilogue = CUBLASLT_EPILOGUE_DEFAULT};
    *desc = d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    if (!d)
        return CUBLAS_STATUS_SUCCESS;
    if (d->magic != VGPU_MAGIC_LT_DESC)
        return CUBLAS_STATUS_INVALID_VALUE;
    d->magic = VGPU_MAGIC_DEAD;
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, int attr, const void *buf, size_t size)
{
    if (!VGPU_CHECK_HANDLE(d, VGPU_MAGIC_LT_DESC))
        return CUBLAS_STATUS_INVALID_VALUE;
    return set_field(desc_fields, COUNT(desc_fields), d, attr, buf, size, "cublasLtMatmulDesc");
}

cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t d, int attr, void *buf, size_t size,
                                              size_t *written)
{
    if (!VGPU_CHECK_HANDLE(d, VGPU_MAGIC_LT_DESC))
        return CUBLAS_STATUS_INVALID_VALUE;
    return get_field(desc_fields, COUNT(desc_fields), d, attr, buf, size, written, "cublasLtMatmulDesc");
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, int type, uint64_t rows, uint64_t cols,
                                          int64_t ld)
{
    if (!layout)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_lt_layout *l = calloc(1, sizeof *l);
    if (!l)
        return CUBLAS_STATUS_ALLOC_FAILED;
    *l = (struct vgpu_lt_layout){.magic = VGPU_MAGIC_LT_LAYOUT, .type = (uint32_t)type, .batch = 1, .rows = rows,
                                 .cols = cols, .ld = ld};
    *layout = l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    if (!l)
        return CUBLAS_STATUS_SUCCESS;
    if (l->magic != VGPU_MAGIC_LT_LAYOUT)
        return CUBLAS_STATUS_INVALID_VALUE;
    l->magic = VGPU_MAGIC_DEAD;
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, int attr, const void *buf, size_t size)
{
    if (!VGPU_CHECK_HANDLE(l, VGPU_MAGIC_LT_LAYOUT))
        return CUBLAS_STATUS_INVALID_VALUE;
    return set_field(layout_fields, COUNT(layout_fields), l, attr, buf, size, "cublasLtMatrixLayout");
}

cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t l, int attr, void *buf, size_t size,
                                                size_t *written)
{
    if (!VGPU_CHECK_HANDLE(l, VGPU_MAGIC_LT_LAYOUT))
        return CUBLAS_STATUS_INVALID_VALUE;
    return get_field(layout_fields, COUNT(layout_fields), l, attr, buf, size, written, "cublasLtMatrixLayout");
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref)
{
    if (!pref)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_lt_pref *p = calloc(1, sizeof *p);
    if (!p)
        return CUBLAS_STATUS_ALLOC_FAILED;
    p->magic = VGPU_MAGIC_LT_PREF;
    *pref = p;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    if (!p)
        return CUBLAS_STATUS_SUCCESS;
    if (p->magic != VGPU_MAGIC_LT_PREF)
        return CUBLAS_STATUS_INVALID_VALUE;
    p->magic = VGPU_MAGIC_DEAD;
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, int attr, const void *buf,
                                                    size_t size)
{
    if (!VGPU_CHECK_HANDLE(p, VGPU_MAGIC_LT_PREF))
        return CUBLAS_STATUS_INVALID_VALUE;
    return set_field(pref_fields, COUNT(pref_fields), p, attr, buf, size, "cublasLtMatmulPreference");
}

cublasStatus_t cublasLtMatmulPreferenceGetAttribute(cublasLtMatmulPreference_t p, int attr, void *buf, size_t size,
                                                    size_t *written)
{
    if (!VGPU_CHECK_HANDLE(p, VGPU_MAGIC_LT_PREF))
        return CUBLAS_STATUS_INVALID_VALUE;
    return get_field(pref_fields, COUNT(pref_fields), p, attr, buf, size, written, "cublasLtMatmulPreference");
}

/* -- the problem, as GemmEx expresses it ------------------------------------------------------- */

struct problem { int m, n, k, batch; long long stride_a, stride_b, stride_c; };

static size_t elem_size(uint32_t type)
{
    return type == CUDA_R_32F ? 4 : type == CUDA_R_16F || type == CUDA_R_16BF ? 2 : 0;
}

/* What GemmEx can compute, or why not (CUBLAS_STATUS_NOT_SUPPORTED, logged once per reason). */
static cublasStatus_t express(const struct vgpu_lt_desc *op, const struct vgpu_lt_layout *a,
                              const struct vgpu_lt_layout *b, const struct vgpu_lt_layout *c,
                              const struct vgpu_lt_layout *d, struct problem *p)
{
    const struct vgpu_lt_layout *all[4] = {a, b, c, d};
    if (!VGPU_CHECK_HANDLE(op, VGPU_MAGIC_LT_DESC))
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int i = 0; i < 4; i++) {
        if (!VGPU_CHECK_HANDLE(all[i], VGPU_MAGIC_LT_LAYOUT))
            return CUBLAS_STATUS_INVALID_VALUE;
        if (all[i]->order != 0 || !elem_size(all[i]->type) || all[i]->rows > INT32_MAX || all[i]->cols > INT32_MAX ||
            all[i]->ld > INT32_MAX || all[i]->batch != a->batch)
            VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmul: only column-major FP32/FP16/BF16 "
                                 "layouts of one batch count with 32-bit sizes are served");
    }
    if (op->epilogue != CUBLASLT_EPILOGUE_DEFAULT || op->bias)
        VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED,
                             "cublasLtMatmul: epilogue %u is not served (only CUBLASLT_EPILOGUE_DEFAULT)", op->epilogue);
    if (op->pointer_mode != 0 || op->scale != CUDA_R_32F || op->transc != CUBLAS_OP_N)
        VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmul: only FP32 scalars in host memory and an "
                             "untransposed C are served");
    if (c->type != d->type || c->rows != d->rows || c->cols != d->cols || c->ld != d->ld || c->stride != d->stride)
        VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmul: C and D of different layouts are not served");
    int ka = op->transa == CUBLAS_OP_N ? (int)a->cols : (int)a->rows;
    int ma = op->transa == CUBLAS_OP_N ? (int)a->rows : (int)a->cols;
    int kb = op->transb == CUBLAS_OP_N ? (int)b->rows : (int)b->cols;
    int nb = op->transb == CUBLAS_OP_N ? (int)b->cols : (int)b->rows;
    if (ka != kb || ma != (int)d->rows || nb != (int)d->cols)
        return CUBLAS_STATUS_INVALID_VALUE;
    *p = (struct problem){(int)d->rows, (int)d->cols, ka, a->batch, a->stride, b->stride, c->stride};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref,
                                              int requested, cublasLtMatmulHeuristicResult_t results[], int *returned)
{
    if (!VGPU_CHECK_HANDLE(h, VGPU_MAGIC_LT))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!VGPU_CHECK_HANDLE(pref, VGPU_MAGIC_LT_PREF) || requested <= 0 || !results || !returned)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct problem p;
    cublasStatus_t st = express(op, a, b, c, d, &p);
    *returned = 0;
    if (st)
        return st;
    memset(&results[0], 0, sizeof results[0]);
    results[0].state = CUBLAS_STATUS_SUCCESS; /* one algorithm (the host cuBLAS's default), no workspace */
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta,
                              const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_size,
                              cudaStream_t stream)
{
    (void)algo, (void)workspace, (void)workspace_size; /* one algorithm, which needs no workspace */
    if (!VGPU_CHECK_HANDLE(h, VGPU_MAGIC_LT))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    struct problem p;
    cublasStatus_t st = express(op, a, b, c, d, &p);
    if (st)
        return st;
    if (!alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (stream != h->stream) {
        if ((st = cublasSetStream_v2(h->blas, stream)))
            return st;
        h->stream = stream;
    }
    float b0;
    memcpy(&b0, beta, sizeof b0);
    if (D != C && b0 != 0.0f) { /* beta reads C: D starts as a copy of it, on the stream */
        size_t es = elem_size(c->type);
        int dense = c->ld == (int64_t)c->rows && (p.batch <= 1 || c->stride == (int64_t)(c->rows * c->cols));
        if (!dense)
            VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED,
                                 "cublasLtMatmul: D apart from C is served for dense C only (ld == rows)");
        size_t bytes = (size_t)c->rows * c->cols * (size_t)(p.batch > 1 ? p.batch : 1) * es;
        if (cuMemcpyDtoDAsync_v2((CUdeviceptr)(uintptr_t)D, (CUdeviceptr)(uintptr_t)C, bytes, stream))
            return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (p.batch <= 1)
        return cublasGemmEx(h->blas, op->transa, op->transb, p.m, p.n, p.k, alpha, A, (int)a->type, (int)a->ld, B,
                            (int)b->type, (int)b->ld, beta, D, (int)d->type, (int)d->ld, op->compute,
                            CUBLAS_GEMM_DEFAULT);
    return cublasGemmStridedBatchedEx(h->blas, op->transa, op->transb, p.m, p.n, p.k, alpha, A, (int)a->type,
                                      (int)a->ld, p.stride_a, B, (int)b->type, (int)b->ld, p.stride_b, beta, D,
                                      (int)d->type, (int)d->ld, p.stride_c, p.batch, op->compute, CUBLAS_GEMM_DEFAULT);
}
