/*
 * nvidia-smi for the guest, on the shim's libnvidia-ml.so.1: the queries people and scripts use.
 *
 *   nvidia-smi                       the summary table
 *   nvidia-smi -L                    one line per GPU: index, name, UUID
 *   nvidia-smi --query-gpu=F[,F…] --format=csv[,noheader][,nounits]   [-i INDEX]
 *   nvidia-smi --query-compute-apps=F[,F…] --format=csv[,noheader][,nounits]   the VM's CUDA processes
 *
 * The field names, headers, units and value formats are nvidia-smi's; a value the library answers
 * NVML_ERROR_NOT_SUPPORTED (utilization, temperature, power: what a virtual GPU's guest cannot know)
 * prints as "[N/A]", as nvidia-smi prints it. An unknown field is refused, exit status 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvml_api.h"

#define MiB (1024ull * 1024ull)

struct opts {
    int list, header, units, index;
    const char *query, *apps;
};

/* One field's header, unit and how its value is written for one device. */
typedef nvmlReturn_t (*render_fn)(nvmlDevice_t dev, unsigned int index, char *out, size_t cap);

static nvmlReturn_t r_index(nvmlDevice_t dev, unsigned int index, char *out, size_t cap)
{
    (void)dev;
    snprintf(out, cap, "%u", index);
    return NVML_SUCCESS;
}
static nvmlReturn_t r_count(nvmlDevice_t dev, unsigned int index, char *out, size_t cap)
{
    (void)dev, (void)index;
    unsigned int n;
    nvmlReturn_t st = nvmlDeviceGetCount_v2(&n);
    if (!st)
        snprintf(out, cap, "%u", n);
    return st;
}
static nvmlReturn_t r_name(nvmlDevice_t dev, unsigned int index, char *out, size_t cap)
{
    (void)index;
    return nvmlDeviceGetName(dev, out, (unsigned int)cap);
}
static nvmlReturn_t r_uuid(nvmlDevice_t dev, unsigned int index, char *out, size_t cap)
{
    (void)index;
    return nvmlDeviceGetUUID(dev, out, (unsigned int)cap);
}
static nvmlReturn_t r_driver(nvmlDevice_t dev, unsigned int index, char *out, size_t cap)
{
    (void)dev, (void)index;
    return nvmlSystemGetDriverVersion(out, (unsigned int)cap);
}
static nvmlReturn_t r_pci(nvmlDevice_t dev, int which, char *out, size_t cap)
{
    nvmlPciInfo_t pci;
    nvmlReturn_t st = nvmlDeviceGetPciInfo_v3(dev, &pci);
    if (st)
        return st;
    switch (which) {
    case 0: snprintf(out, cap, "%s", pci.busId); break;
    case 1: snprintf(out, cap, "0x%08X", pci.pciDeviceId); break;
    case 2: snprintf(out, cap, "0x%08X", pci.pciSubSystemId); break;
    case 3: snprintf(out, cap, "0x%04X", pci.domain); break;
    case 4: snprintf(out, cap, "0x%02X", pci.bus); break;
    default: snprintf(out, cap, "0x%02X", pci.device); break;
    }
    return NVML_SUCCESS;
}
static nvmlReturn_t r_bus_id(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_pci(d, 0, o, c); }
static nvmlReturn_t r_dev_id(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_pci(d, 1, o, c); }
static nvmlReturn_t r_sub_id(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_pci(d, 2, o, c); }
static nvmlReturn_t r_domain(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_pci(d, 3, o, c); }
static nvmlReturn_t r_bus(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_pci(d, 4, o, c); }
static nvmlReturn_t r_slot(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_pci(d, 5, o, c); }
static nvmlReturn_t r_memory(nvmlDevice_t dev, int which, char *out, size_t cap)
{
    nvmlMemory_t m;
    nvmlReturn_t st = nvmlDeviceGetMemoryInfo(dev, &m);
    if (!st)
        snprintf(out, cap, "%llu", (which == 0 ? m.total : which == 1 ? m.used : m.free) / MiB);
    return st;
}
static nvmlReturn_t r_mem_total(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_memory(d, 0, o, c); }
static nvmlReturn_t r_mem_used(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_memory(d, 1, o, c); }
static nvmlReturn_t r_mem_free(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_memory(d, 2, o, c); }
static nvmlReturn_t r_cc(nvmlDevice_t dev, unsigned int index, char *out, size_t cap)
{
    (void)index;
    int major, minor;
    nvmlReturn_t st = nvmlDeviceGetCudaComputeCapability(dev, &major, &minor);
    if (!st)
        snprintf(out, cap, "%d.%d", major, minor);
    return st;
}
static nvmlReturn_t r_clock(nvmlDevice_t dev, int type, char *out, size_t cap)
{
    unsigned int mhz;
    nvmlReturn_t st = nvmlDeviceGetMaxClockInfo(dev, type, &mhz);
    if (!st)
        snprintf(out, cap, "%u", mhz);
    return st;
}
static nvmlReturn_t r_clk_gr(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_clock(d, NVML_CLOCK_GRAPHICS, o, c); }
static nvmlReturn_t r_clk_sm(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_clock(d, NVML_CLOCK_SM, o, c); }
static nvmlReturn_t r_clk_mem(nvmlDevice_t d, unsigned int i, char *o, size_t c) { (void)i; return r_clock(d, NVML_CLOCK_MEM, o, c); }
static nvmlReturn_t r_mode(nvmlDevice_t dev, unsigned int index, char *out, size_t cap)
{
    (void)index;
    int mode;
    nvmlReturn_t st = nvmlDeviceGetComputeMode(dev, &mode);
    if (!st)
        snprintf(out, cap, "%s", mode == NVML_COMPUTEMODE_DEFAULT ? "Default"
                                 : mode == NVML_COMPUTEMODE_PROHIBITED ? "Prohibited"
                                 : mode == NVML_COMPUTEMODE_EXCLUSIVE_PROCESS ? "Exclusive_Process" : "Unknown");
    return st;
}
/* What the guest cannot know: the library says so, and so does the table. */
static nvmlReturn_t r_unknown(nvmlDevice_t dev, unsigned int index, char *out, size_t cap)
{
    (void)dev, (void)index, (void)out, (void)cap;
    return NVML_ERROR_NOT_SUPPORTED;
}

static const struct field {
    const char *name, *unit;
    render_fn render;
} fields[] = {
    {"index", NULL, r_index},
    {"count", NULL, r_count},
    {"name", NULL, r_name},
    {"gpu_name", NULL, r_name},
    {"uuid", NULL, r_uuid},
    {"gpu_uuid", NULL, r_uuid},
    {"driver_version", NULL, r_driver},
    {"pci.bus_id", NULL, r_bus_id},
    {"gpu_bus_id", NULL, r_bus_id},
    {"pci.device_id", NULL, r_dev_id},
    {"pci.sub_device_id", NULL, r_sub_id},
    {"pci.domain", NULL, r_domain},
    {"pci.bus", NULL, r_bus},
    {"pci.device", NULL, r_slot},
    {"memory.total", "MiB", r_mem_total},
    {"memory.used", "MiB", r_mem_used},
    {"memory.free", "MiB", r_mem_free},
    {"compute_cap", NULL, r_cc},
    {"clocks.max.graphics", "MHz", r_clk_gr},
    {"clocks.max.gr", "MHz", r_clk_gr},
    {"clocks.max.sm", "MHz", r_clk_sm},
    {"clocks.max.memory", "MHz", r_clk_mem},
    {"clocks.max.mem", "MHz", r_clk_mem},
    {"compute_mode", NULL, r_mode},
    {"utilization.gpu", "%", r_unknown},
    {"utilization.memory", "%", r_unknown},
    {"temperature.gpu", NULL, r_unknown},
    {"power.draw", "W", r_unknown},
    {"fan.speed", "%", r_unknown},
    {"clocks.sm", "MHz", r_unknown},
    {"clocks.mem", "MHz", r_unknown},
};

static const struct field *find_field(const char *name)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!strcmp(fields[i].name, name))
            return &fields[i];
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: nvidia-smi [-L] [-i INDEX] [--query-gpu=FIELD,... | --query-compute-apps=FIELD,... "
                    "--format=csv[,noheader][,nounits]]\n");
    return 2;
}

/* --query-compute-apps: one line per process of the VM with a CUDA context, nvidia-smi's fields. */
enum app_field { APP_PID, APP_NAME, APP_MEMORY, APP_UUID, APP_BUS_ID, APP_GPU_NAME };
static const struct { const char *name, *header; enum app_field field; } app_fields[] = {
    {"pid", "pid", APP_PID},
    {"process_name", "process_name", APP_NAME},
    {"name", "process_name", APP_NAME},
    {"used_memory", "used_gpu_memory [MiB]", APP_MEMORY},
    {"used_gpu_memory", "used_gpu_memory [MiB]", APP_MEMORY},
    {"gpu_uuid", "gpu_uuid", APP_UUID},
    {"gpu_bus_id", "gpu_bus_id", APP_BUS_ID},
    {"gpu_name", "gpu_name", APP_GPU_NAME},
};

static void process_name(unsigned int pid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/comm", pid);
    FILE *f = fopen(path, "r");
    snprintf(out, cap, "[N/A]");
    if (f) {
        if (fgets(out, (int)cap, f))
            out[strcspn(out, "\n")] = '\0';
        fclose(f);
    }
}

static int query_apps(const struct opts *o, unsigned int count)
{
    char spec[4096];
    snprintf(spec, sizeof spec, "%s", o->apps);
    int chosen[32], n = 0;
    for (char *save = NULL, *name = strtok_r(spec, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        while (*name == ' ')
            name++;
        int found = -1;
        for (int i = 0; i < (int)(sizeof app_fields / sizeof app_fields[0]) && found < 0; i++)
            if (!strcmp(app_fields[i].name, name))
                found = i;
        if (found < 0) {
            printf("Field \"%s\" is not a valid field to query.\n", name);
            return 2;
        }
        if (n == 32)
            return usage();
        chosen[n++] = found;
    }
    if (o->header) {
        for (int i = 0; i < n; i++) {
            const char *h = app_fields[chosen[i]].header;
            printf("%s%.*s", i ? ", " : "", o->units ? (int)strlen(h) : (int)strcspn(h, " "), h);
        }
        printf("\n");
    }
    for (unsigned int d = 0; d < count; d++) {
        nvmlDevice_t dev;
        nvmlProcessInfo_t procs[256];
        unsigned int np = 256;
        char uuid[96] = "", bus[32] = "", gpu[96] = "";
        nvmlPciInfo_t pci;
        nvmlReturn_t st = nvmlDeviceGetHandleByIndex_v2(d, &dev);
        if (!st)
            st = nvmlDeviceGetComputeRunningProcesses_v3(dev, &np, procs);
        if (!st)
            st = nvmlDeviceGetUUID(dev, uuid, sizeof uuid);
        if (!st)
            st = nvmlDeviceGetName(dev, gpu, sizeof gpu);
        if (!st && !(st = nvmlDeviceGetPciInfo_v3(dev, &pci)))
            snprintf(bus, sizeof bus, "%s", pci.busId);
        if (st) {
            fprintf(stderr, "GPU %u: %s\n", d, nvmlErrorString(st));
            return 15;
        }
        for (unsigned int p = 0; p < np; p++) {
            for (int i = 0; i < n; i++) {
                char value[96];
                switch (app_fields[chosen[i]].field) {
                case APP_PID: snprintf(value, sizeof value, "%u", procs[p].pid); break;
                case APP_NAME: process_name(procs[p].pid, value, sizeof value); break;
                case APP_MEMORY:
                    snprintf(value, sizeof value, o->units ? "%llu MiB" : "%llu", procs[p].usedGpuMemory / MiB);
                    break;
                case APP_UUID: snprintf(value, sizeof value, "%s", uuid); break;
                case APP_BUS_ID: snprintf(value, sizeof value, "%s", bus); break;
                case APP_GPU_NAME: snprintf(value, sizeof value, "%s", gpu); break;
                }
                printf("%s%s", i ? ", " : "", value);
            }
            printf("\n");
        }
    }
    return 0;
}

static int query(const struct opts *o, unsigned int count)
{
    char spec[4096];
    snprintf(spec, sizeof spec, "%s", o->query);
    const struct field *chosen[64];
    int n = 0;
    for (char *save = NULL, *name = strtok_r(spec, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        while (*name == ' ')
            name++;
        const struct field *f = find_field(name);
        if (!f) {
            printf("Field \"%s\" is not a valid field to query.\n", name);
            return 2;
        }
        if (n == 64)
            return usage();
        chosen[n++] = f;
    }
    if (o->header) {
        for (int i = 0; i < n; i++)
            printf(chosen[i]->unit && o->units ? "%s%s [%s]" : "%s%s", i ? ", " : "", chosen[i]->name,
                   chosen[i]->unit);
        printf("\n");
    }
    for (unsigned int d = 0; d < count; d++) {
        if (o->index >= 0 && (unsigned int)o->index != d)
            continue;
        nvmlDevice_t dev;
        nvmlReturn_t st = nvmlDeviceGetHandleByIndex_v2(d, &dev);
        if (st) {
            fprintf(stderr, "GPU %u: %s\n", d, nvmlErrorString(st));
            return 15;
        }
        for (int i = 0; i < n; i++) {
            char value[256] = "";
            st = chosen[i]->render(dev, d, value, sizeof value);
            if (st == NVML_ERROR_NOT_SUPPORTED)
                printf("%s[N/A]", i ? ", " : "");
            else if (st)
                printf("%s[%s]", i ? ", " : "", nvmlErrorString(st));
            else
                printf(chosen[i]->unit && o->units ? "%s%s %s" : "%s%s", i ? ", " : "", value, chosen[i]->unit);
        }
        printf("\n");
    }
    return 0;
}

static int list(unsigned int count)
{
    for (unsigned int d = 0; d < count; d++) {
        nvmlDevice_t dev;
        char name[256] = "", uuid[96] = "";
        nvmlReturn_t st = nvmlDeviceGetHandleByIndex_v2(d, &dev);
        if (!st)
            st = nvmlDeviceGetName(dev, name, sizeof name);
        if (!st)
            st = nvmlDeviceGetUUID(dev, uuid, sizeof uuid);
        if (st) {
            fprintf(stderr, "GPU %u: %s\n", d, nvmlErrorString(st));
            return 15;
        }
        printf("GPU %u: %s (UUID: %s)\n", d, name, uuid);
    }
    return 0;
}

static int table(unsigned int count)
{
    char driver[80] = "N/A";
    int cuda = 0;
    nvmlSystemGetDriverVersion(driver, sizeof driver);
    nvmlSystemGetCudaDriverVersion(&cuda);
    const char *rule = "+-----------------------------------------+------------------------+----------------------+";
    printf("%s\n", rule);
    char top[160];
    snprintf(top, sizeof top, "NVIDIA-SMI (vgpu-mediator guest)                        CUDA Version: %d.%d",
             cuda / 1000, cuda % 1000 / 10);
    printf("| %-88.88s |\n", top);
    snprintf(top, sizeof top, "Driver Version: %s", driver);
    printf("| %-88.88s |\n", top);
    printf("|-----------------------------------------+------------------------+----------------------+\n");
    printf("| GPU  Name                                | Bus-Id                 | Compute M.           |\n");
    printf("|      Compute capability                  |           Memory-Usage |                      |\n");
    printf("|=========================================+========================+======================|\n");
    for (unsigned int d = 0; d < count; d++) {
        nvmlDevice_t dev;
        char name[256] = "", bus[64] = "", cc[16] = "", mode[32] = "", used[32] = "", total[32] = "";
        nvmlReturn_t st = nvmlDeviceGetHandleByIndex_v2(d, &dev);
        if (!st)
            st = r_name(dev, d, name, sizeof name);
        if (!st)
            st = r_bus_id(dev, d, bus, sizeof bus);
        if (!st)
            st = r_cc(dev, d, cc, sizeof cc);
        if (!st)
            st = r_mode(dev, d, mode, sizeof mode);
        if (!st)
            st = r_mem_used(dev, d, used, sizeof used);
        if (!st)
            st = r_mem_total(dev, d, total, sizeof total);
        if (st) {
            fprintf(stderr, "GPU %u: %s\n", d, nvmlErrorString(st));
            return 15;
        }
        char usage_text[64];
        snprintf(usage_text, sizeof usage_text, "%sMiB / %sMiB", used, total);
        printf("| %3u  %-35.35s | %-22s | %-20s |\n", d, name, bus, mode);
        printf("|      %-35s | %22s | %20s |\n", cc, usage_text, "");
        printf("%s\n", rule);
    }
    /* the VM's own processes with a CUDA context (the host's nvidia-smi lists every VM's) */
    printf("\n+------------------------------------------------------------------------------------------+\n");
    printf("| %-88s |\n", "Processes:");
    printf("|  GPU        PID   Type   Process name                                        GPU Memory |\n");
    printf("|==========================================================================================|\n");
    int listed = 0;
    for (unsigned int d = 0; d < count; d++) {
        nvmlDevice_t dev;
        nvmlProcessInfo_t procs[256];
        unsigned int n = 256;
        if (nvmlDeviceGetHandleByIndex_v2(d, &dev) || nvmlDeviceGetComputeRunningProcesses_v3(dev, &n, procs))
            continue;
        for (unsigned int i = 0; i < n; i++, listed++) {
            char comm[64] = "", path[64];
            snprintf(path, sizeof path, "/proc/%u/comm", procs[i].pid);
            FILE *f = fopen(path, "r");
            if (f) {
                if (fgets(comm, sizeof comm, f))
                    comm[strcspn(comm, "\n")] = '\0';
                fclose(f);
            }
            printf("| %4u %10u      C   %-45.45s %12lluMiB |\n", d, procs[i].pid, comm[0] ? comm : "[N/A]",
                   procs[i].usedGpuMemory / MiB);
        }
    }
    if (!listed)
        printf("| %-88s |\n", " No running processes found");
    printf("+------------------------------------------------------------------------------------------+\n");
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.list = 0, .header = 1, .units = 1, .index = -1, .query = NULL};
    int csv = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-L") || !strcmp(a, "--list-gpus"))
            o.list = 1;
        else if (!strncmp(a, "--query-gpu=", 12))
            o.query = a + 12;
        else if (!strcmp(a, "--query-gpu") && i + 1 < argc)
            o.query = argv[++i];
        else if (!strncmp(a, "--query-compute-apps=", 21))
            o.apps = a + 21;
        else if (!strcmp(a, "--query-compute-apps") && i + 1 < argc)
            o.apps = argv[++i];
        else if (!strncmp(a, "--id=", 5))
            o.index = atoi(a + 5);
        else if (!strcmp(a, "-i") && i + 1 < argc)
            o.index = atoi(argv[++i]);
        else if (!strncmp(a, "--format=", 9) || (!strcmp(a, "--format") && i + 1 < argc)) {
            char spec[256];
            snprintf(spec, sizeof spec, "%s", a[8] == '=' ? a + 9 : argv[++i]);
            for (char *save = NULL, *t = strtok_r(spec, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (!strcmp(t, "csv"))
                    csv = 1;
                else if (!strcmp(t, "noheader"))
                    o.header = 0;
                else if (!strcmp(t, "nounits"))
                    o.units = 0;
                else
                    return usage();
            }
        } else
            return usage();
    }
    if ((o.query || o.apps) && !csv)
        return usage(); /* nvidia-smi: a query needs --format=csv */
    nvmlReturn_t st = nvmlInit_v2();
    if (st) {
        printf("NVIDIA-SMI has failed because it couldn't communicate with the vGPU mediator: %s\n",
               nvmlErrorString(st));
        return 9;
    }
    unsigned int count = 0;
    st = nvmlDeviceGetCount_v2(&count);
    int rc = st ? 15 : o.query ? query(&o, count) : o.apps ? query_apps(&o, count) : o.list ? list(count)
                                                                                       : table(count);
    if (st)
        fprintf(stderr, "nvmlDeviceGetCount: %s\n", nvmlErrorString(st));
    nvmlShutdown();
    return rc;
}
