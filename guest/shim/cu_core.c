/*
 * libcuda.so.1's core: the configuration, the log, the one connection to the mediator, calls,
 * and the device ranges the guest knows of.
 *
 * Theory of operation:
 *  - Configuration never needs the environment (Ollama's runner strips it): the transport is the
 *    first ivshmem-doorbell device (PCI 1af4:1110) unless /etc/vgpu/guest.conf says otherwise.
 *    The file is `key = value` lines (`#` comments): `socket = PATH` uses the Unix-socket backend
 *    (a host, for tests), `device = dddd:bb:dd.f` picks one of several PCI devices, `log = stderr |
 *    off | PATH`, `trace = 1` logs every call. VGPU_GUEST_CONF names another file (tests only).
 *  - The connection opens on the first call that needs the host, once (pthread_once); a failure
 *    is remembered and every later call answers the same CUresult. Each process claims a channel of
 *    its own (its own rings, and its own context on the host, as a process has on a GPU); when
 *    every channel of the VM is held by other processes the connection fails with
 *    CUDA_ERROR_DEVICE_UNAVAILABLE (cudaErrorDevicesUnavailable) and the log says so.
 *  - At exit (a destructor, after the program's atexit handlers and the runtime's module unloads)
 *    the channel is closed, so the host frees what the process still held at once; a process that
 *    dies without exiting gives it back when its heartbeat stops (the host's lease). A channel the
 *    host closed (the lease expired while the process was stopped, or its connection ended) makes
 *    every later call answer CUDA_ERROR_DEVICE_UNAVAILABLE, logged once with the reason.
 *  - Errors of posted calls come back from the host as the LATCHED status of the next call that
 *    waits. The host latches raw statuses; when the failed call was a cuBLAS one (its ASYNC_ERROR
 *    completion, kept by the transport, names it) its cublasStatus_t becomes the CUresult that
 *    means the same, since the call reporting it speaks CUresult.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "vgpu_protocol.h"
#include "vgpu_transport.h"

#define DEFAULT_CONF "/etc/vgpu/guest.conf"

static struct {
    char socket[256];
    char device[64];
    char log[256];
    int trace;
} conf = {.log = "stderr"};

static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_once_t connect_once = PTHREAD_ONCE_INIT;
static struct cuda_transport *transport;
static int connect_error; /* CUresult when the connection failed */

/* -- configuration and log --------------------------------------------------------------------- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* Problems in the file, logged once the log it configures is open (the log cannot log yet). */
static char config_notes[1024];

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    size_t used = strlen(config_notes);
    if (used + 2 >= sizeof config_notes)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(config_notes + used, sizeof config_notes - used - 1, fmt, ap);
    va_end(ap);
    strcat(config_notes, "\n");
}

static void set_text(char *dst, size_t cap, const char *value, const char *key)
{
    if (strlen(value) >= cap)
        note("guest.conf: %s is longer than %zu bytes, ignored", key, cap - 1);
    else
        snprintf(dst, cap, "%s", value);
}

static void read_config(void)
{
    const char *path = getenv("VGPU_GUEST_CONF");
    if (!path || !*path)
        path = DEFAULT_CONF;
    FILE *f = fopen(path, "re");
    if (!f)
        return; /* no file: the defaults */
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *text = trim(line);
        if (!*text)
            continue;
        char *eq = strchr(text, '=');
        if (!eq) {
            note("%s:%d: expected `key = value`, ignored", path, lineno);
            continue;
        }
        *eq = '\0';
        char *key = trim(text), *value = trim(eq + 1);
        if (!strcmp(key, "socket"))
            set_text(conf.socket, sizeof conf.socket, value, key);
        else if (!strcmp(key, "device"))
            set_text(conf.device, sizeof conf.device, value, key);
        else if (!strcmp(key, "log"))
            set_text(conf.log, sizeof conf.log, value, key);
        else if (!strcmp(key, "trace"))
            conf.trace = !strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "true");
        else
            note("%s:%d: unknown key `%s`, ignored", path, lineno, key);
    }
    fclose(f);
}

static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static void open_log(void)
{
    read_config();
    if (!strcmp(conf.log, "off"))
        log_file = NULL;
    else if (!strcmp(conf.log, "stderr") || !conf.log[0])
        log_file = stderr;
    else if (!(log_file = fopen(conf.log, "ae")))
        log_file = stderr;
    for (char *line = config_notes, *end; log_file && (end = strchr(line, '\n')); line = end + 1)
        fprintf(log_file, "[vgpu-shim %d] %.*s\n", (int)getpid(), (int)(end - line), line);
}

void vgpu_shim_log(const char *fmt, ...)
{
    pthread_once(&config_once, open_log);
    if (!log_file)
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    fprintf(log_file, "[vgpu-shim %d] %s\n", (int)getpid(), text);
    fflush(log_file);
    pthread_mutex_unlock(&log_lock);
}

int vgpu_shim_unsupported(const char *library, const char *name, int *once, int code)
{
    if (!__atomic_exchange_n(once, 1, __ATOMIC_RELAXED))
        vgpu_shim_log("%s: %s is not supported by the vgpu shim (returns %d)", library, name, code);
    return code;
}

/* -- the connection ---------------------------------------------------------------------------- */

static void connect_host(void)
{
    pthread_once(&config_once, open_log);
    int rc = conf.socket[0] ? cuda_transport_init_socket(conf.socket, &transport)
                            : cuda_transport_init_pci(conf.device[0] ? conf.device : NULL, &transport);
    if (rc) {
        vgpu_shim_log("cannot reach the mediator (%s): %s", cuda_transport_strerror(rc),
                      cuda_transport_last_error());
        connect_error = rc == CUDA_TRANSPORT_E_NODEV ? CUDA_ERROR_NO_DEVICE
                        : rc == CUDA_TRANSPORT_E_BUSY || rc == CUDA_TRANSPORT_E_REFUSED ? CUDA_ERROR_DEVICE_UNAVAILABLE
                                                                                        : CUDA_ERROR_NOT_INITIALIZED;
        transport = NULL;
        return;
    }
    if (conf.trace)
        vgpu_shim_log("connected: backend=%s vm_id=%u region=%zu channel=%d of %u", cuda_transport_backend(transport),
                      cuda_transport_vm_id(transport), cuda_transport_region_size(transport),
                      cuda_transport_channel(transport), cuda_transport_channel_count(transport));
}

/* Close the channel at exit: the host frees what the process still holds now, not a lease later. */
__attribute__((destructor)) static void disconnect_host(void)
{
    struct cuda_transport *t = __atomic_load_n(&transport, __ATOMIC_ACQUIRE);
    if (t)
        cuda_transport_shutdown(t); /* not freed: another thread may still be inside a call */
}

static struct cuda_transport *connection(int *err)
{
    pthread_once(&connect_once, connect_host);
    *err = connect_error;
    return transport;
}

struct cuda_transport *vgpu_shim_transport(int *err) { return connection(err); }

CUresult vgpu_shim_cu_status(int rc)
{
    switch (rc) {
    case CUDA_TRANSPORT_E_NODEV: return CUDA_ERROR_NO_DEVICE;
    case CUDA_TRANSPORT_E_GONE: return CUDA_ERROR_DEVICE_UNAVAILABLE;
    case CUDA_TRANSPORT_E_CLOSED: return CUDA_ERROR_DEVICE_UNAVAILABLE;
    case CUDA_TRANSPORT_E_BUSY: return CUDA_ERROR_DEVICE_UNAVAILABLE;
    case CUDA_TRANSPORT_E_REFUSED: return CUDA_ERROR_DEVICE_UNAVAILABLE;
    case CUDA_TRANSPORT_E_TIMEOUT: return CUDA_ERROR_TIMEOUT;
    case CUDA_TRANSPORT_E_INVAL: return CUDA_ERROR_INVALID_VALUE;
    default: return rc < 0 ? CUDA_ERROR_UNKNOWN : rc;
    }
}

static void log_transport_failure(uint16_t call_id, int rc)
{
    static int closed_once;
    if (rc == CUDA_TRANSPORT_E_CLOSED) { /* for good: said once, every later call answers the same */
        if (!__atomic_exchange_n(&closed_once, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("call %#06x: %s; this and every later call answer CUDA_ERROR_DEVICE_UNAVAILABLE",
                          call_id, cuda_transport_last_error());
        return;
    }
    vgpu_shim_log("call %#06x failed in the transport (%s): %s", call_id, cuda_transport_strerror(rc),
                  cuda_transport_last_error());
}

/* cuBLAS statuses as the CUresult a later synchronizing call reports for a failed posted GEMM. */
static int cublas_as_curesult(int status)
{
    switch (status) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return CUDA_ERROR_INVALID_HANDLE;
    case CUBLAS_STATUS_ALLOC_FAILED: return CUDA_ERROR_OUT_OF_MEMORY;
    case CUBLAS_STATUS_INVALID_VALUE: return CUDA_ERROR_INVALID_VALUE;
    case CUBLAS_STATUS_MAPPING_ERROR: return CUDA_ERROR_ILLEGAL_ADDRESS;
    case CUBLAS_STATUS_EXECUTION_FAILED: return CUDA_ERROR_LAUNCH_FAILED;
    case CUBLAS_STATUS_NOT_SUPPORTED: return CUDA_ERROR_NOT_SUPPORTED;
    default: return CUDA_ERROR_UNKNOWN;
    }
}

/*
 * A synchronizing call reported an earlier posted call's failure (LATCHED). The host latches the
 * raw status, which for a posted GEMM is a cublasStatus_t: the ASYNC_ERROR completion the
 * transport kept names the failed call, and a cuBLAS status becomes the CUresult that means it.
 */
static int latched_status(struct cuda_transport *t, int status)
{
    struct cuda_call_result failed;
    if (!cuda_transport_take_async_error(t, &failed) || (int)failed.status != status)
        return status;
    vgpu_shim_log("an earlier asynchronous call %#06x failed with status %d (reported now)", failed.call_id,
                  status);
    if (failed.call_id >= VGPU_CALL_CUBLAS_CREATE && failed.call_id <= VGPU_CALL_CUBLAS_GEMM_BATCHED_EX)
        return cublas_as_curesult(status);
    return status;
}

int vgpu_shim_call(uint16_t call_id, const void *args, uint32_t nargs, const void *send, size_t send_len,
                   void *results, size_t results_size, void *recv, size_t recv_cap, size_t *recv_len)
{
    int err;
    struct cuda_transport *t = connection(&err);
    if (!t)
        return err == CUDA_ERROR_NO_DEVICE ? CUDA_TRANSPORT_E_NODEV : CUDA_TRANSPORT_E_GONE;
    struct cuda_call_result r;
    int rc = cuda_transport_call(t, call_id, args, nargs, send, send_len, &r, recv, recv_cap, recv_len);
    if (rc < 0)
        log_transport_failure(call_id, rc);
    else if (r.flags & VGPU_COMPLETE_LATCHED)
        rc = latched_status(t, rc);
    else if (results && results_size)
        memcpy(results, r.results, results_size < sizeof r.results ? results_size : sizeof r.results);
    if (conf.trace)
        vgpu_shim_log("call %#06x -> %d%s", call_id, rc, r.flags & 2u ? " (latched)" : "");
    return rc;
}

int vgpu_shim_post(uint16_t call_id, const void *args, uint32_t nargs, const void *send, size_t send_len)
{
    int err;
    struct cuda_transport *t = connection(&err);
    if (!t)
        return err == CUDA_ERROR_NO_DEVICE ? CUDA_TRANSPORT_E_NODEV : CUDA_TRANSPORT_E_GONE;
    int rc = cuda_transport_post(t, call_id, args, nargs, send, send_len);
    if (rc < 0)
        log_transport_failure(call_id, rc);
    if (conf.trace)
        vgpu_shim_log("post %#06x -> %d", call_id, rc);
    return rc;
}

CUresult vgpu_cu_call(uint16_t call_id, const void *args, uint32_t nargs, void *results, size_t results_size)
{
    return vgpu_shim_cu_status(vgpu_shim_call(call_id, args, nargs, NULL, 0, results, results_size, NULL, 0,
                                              NULL));
}

CUresult vgpu_cu_post(uint16_t call_id, const void *args, uint32_t nargs, const void *send, size_t send_len)
{
    return vgpu_shim_cu_status(vgpu_shim_post(call_id, args, nargs, send, send_len));
}

CUresult vgpu_cu_async(uint16_t call_id, const void *args, uint32_t nargs, const void *send, size_t send_len,
                       int wait)
{
    if (!wait)
        return vgpu_cu_post(call_id, args, nargs, send, send_len);
    return vgpu_shim_cu_status(vgpu_shim_call(call_id, args, nargs, send, send_len, NULL, 0, NULL, 0, NULL));
}

CUresult vgpu_cu_release(uint16_t call_id, uint32_t id, uint32_t *magic, void *record)
{
    struct { uint32_t id; uint8_t pad[4]; } a = {id, {0}};
    _Static_assert(sizeof a == sizeof(struct vgpu_args_stream_destroy), "the destroy calls take one u32 id");
    CUresult rc = vgpu_cu_call(call_id, &a, sizeof a, NULL, 0);
    if (rc == CUDA_SUCCESS) {
        *magic = VGPU_MAGIC_DEAD;
        free(record);
    }
    return rc;
}

/*
 * A copy from or to pinned memory names its range by pinned offset: the host moves the bytes itself,
 * when the stream runs the copy. Posted (asynchronous), the guest may not touch the range until it has
 * synchronized the stream, as CUDA's own asynchronous copies of pinned memory require.
 */
static CUresult pinned_copy(uint16_t call_id, uint64_t device, uint64_t offset, uint32_t stream, size_t len,
                            int asynchronous)
{
    struct vgpu_args_memcpy_htod_pinned a = {.dst = device, .offset = offset, .count = len, .stream = stream};
    _Static_assert(sizeof a == sizeof(struct vgpu_args_memcpy_dtoh_pinned) &&
                       offsetof(struct vgpu_args_memcpy_dtoh_pinned, src) == offsetof(struct vgpu_args_memcpy_htod_pinned, dst) &&
                       offsetof(struct vgpu_args_memcpy_dtoh_pinned, offset) ==
                           offsetof(struct vgpu_args_memcpy_htod_pinned, offset),
                   "the two pinned copies share one layout");
    return vgpu_cu_async(call_id, &a, sizeof a, NULL, 0, !asynchronous);
}

CUresult vgpu_shim_htod(uint64_t dst, uint32_t stream, const void *src, size_t len, int asynchronous)
{
    uint64_t offset;
    if (len && vgpu_shim_pinned_lookup(src, len, &offset))
        return pinned_copy(VGPU_CALL_MEMCPY_HTOD_PINNED, dst, offset, stream, len, asynchronous);
    int err;
    struct cuda_transport *t = connection(&err);
    if (!t)
        return err;
    struct cuda_call_result r = {0};
    int rc = cuda_transport_memcpy_htod(t, dst, stream, src, len, asynchronous, &r);
    if (rc < 0)
        log_transport_failure(VGPU_CALL_MEMCPY_HTOD, rc);
    else if (r.flags & VGPU_COMPLETE_LATCHED)
        rc = latched_status(t, rc);
    return vgpu_shim_cu_status(rc);
}

CUresult vgpu_shim_dtoh(void *dst, uint64_t src, uint32_t stream, size_t len)
{
    return vgpu_shim_dtoh_on(dst, src, stream, len, 0);
}

CUresult vgpu_shim_dtoh_on(void *dst, uint64_t src, uint32_t stream, size_t len, int asynchronous)
{
    uint64_t offset;
    if (len && vgpu_shim_pinned_lookup(dst, len, &offset))
        return pinned_copy(VGPU_CALL_MEMCPY_DTOH_PINNED, src, offset, stream, len, asynchronous);
    int err;
    struct cuda_transport *t = connection(&err);
    if (!t)
        return err;
    struct cuda_call_result r = {0};
    int rc = cuda_transport_memcpy_dtoh(t, dst, src, stream, len, &r);
    if (rc < 0)
        log_transport_failure(VGPU_CALL_MEMCPY_DTOH, rc);
    else if (r.flags & VGPU_COMPLETE_LATCHED)
        rc = latched_status(t, rc);
    return vgpu_shim_cu_status(rc);
}

/* -- device ranges ----------------------------------------------------------------------------- */

struct range { uint64_t base, size; int kind; };
static struct range *ranges;
static size_t nranges, ranges_cap;
static pthread_mutex_t ranges_lock = PTHREAD_MUTEX_INITIALIZER;

void vgpu_track_range(uint64_t base, uint64_t size, int kind)
{
    pthread_mutex_lock(&ranges_lock);
    if (nranges == ranges_cap) {
        size_t cap = ranges_cap ? ranges_cap * 2 : 64;
        struct range *grown = realloc(ranges, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&ranges_lock);
            vgpu_shim_log("out of memory tracking device ranges: cudaMemcpyDefault may misjudge %#llx",
                          (unsigned long long)base);
            return;
        }
        ranges = grown;
        ranges_cap = cap;
    }
    ranges[nranges++] = (struct range){base, size, kind};
    pthread_mutex_unlock(&ranges_lock);
}

void vgpu_untrack_range(uint64_t base)
{
    pthread_mutex_lock(&ranges_lock);
    for (size_t i = 0; i < nranges; i++)
        if (ranges[i].base == base) {
            ranges[i] = ranges[--nranges];
            break;
        }
    pthread_mutex_unlock(&ranges_lock);
}

int vgpu_shim_ptr_kind(uint64_t ptr, uint64_t *base, uint64_t *size)
{
    int found = VGPU_PTR_NONE;
    pthread_mutex_lock(&ranges_lock);
    for (size_t i = 0; i < nranges && !found; i++)
        if (ptr >= ranges[i].base && ptr - ranges[i].base < ranges[i].size) {
            found = ranges[i].kind;
            if (base)
                *base = ranges[i].base;
            if (size)
                *size = ranges[i].size;
        }
    pthread_mutex_unlock(&ranges_lock);
    return found;
}
