// Shared by the shim's test programs: every check prints one line
//     RESULT name=<name> ok=<0|1> value=<free text>
// and the last line is `SELFTEST PASS` or `SELFTEST FAIL <n>` (the format tests/qemu/_support.py
// parses); the exit status is 0 only on PASS.
#pragma once
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

static int g_failures;

static void report(const char* name, bool ok, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(const char* name, bool ok, const char* fmt, ...) {
    char value[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    printf("RESULT name=%s ok=%d value=%s\n", name, ok ? 1 : 0, value);
    fflush(stdout);
    if (!ok) g_failures++;
}

static int finish() {
    if (g_failures) printf("SELFTEST FAIL %d\n", g_failures);
    else printf("SELFTEST PASS\n");
    fflush(stdout);
    return g_failures ? 1 : 0;
}

// A CUDA runtime status as "status=<n> (<name>)".
#define STATUS(e) static_cast<int>(e), cudaGetErrorName(e)
