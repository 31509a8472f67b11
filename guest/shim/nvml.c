/*
 * libnvidia-ml.so.1: NVML for the guest, answered from the mediator through libcuda.so.1.
 *
 * Every public NVML function is exported (public.tsv); what this file does not define answers
 * NVML_ERROR_NOT_SUPPORTED and logs once (the generated stubs).
 */
#include <stddef.h>

#include "shim.h"

typedef int nvmlReturn_t;

const char *nvmlErrorString(nvmlReturn_t result);

/* NVML's statuses and what NVML says of each. */
static const struct { nvmlReturn_t code; const char *text; } errors[] = {
    {0, "Success"},
    {1, "Uninitialized"},
    {2, "Invalid Argument"},
    {3, "Not Supported"},
    {4, "Insufficient Permissions"},
    {5, "Already Initialized"},
    {6, "Not Found"},
    {7, "Insufficient Size"},
    {8, "Insufficient External Power"},
    {9, "Driver Not Loaded"},
    {10, "Timeout"},
    {11, "Interrupt request issue"},
    {12, "NVML Shared Library Not Found"},
    {13, "Function Not Found"},
    {14, "Corrupted infoROM"},
    {15, "GPU is lost"},
    {16, "GPU requires restart"},
    {17, "The operating system has blocked the request."},
    {18, "RM has detected an NVML/RM version mismatch."},
    {19, "In use by another client"},
    {20, "Insufficient Memory"},
    {21, "No data"},
    {22, "The requested vgpu operation is not available on target device, because ECC is enabled"},
    {23, "Ran out of critical resources, other than memory"},
    {24, "The requested frequency is not supported"},
    {25, "The provided version is invalid/unsupported"},
    {26, "The requested functionality has been deprecated"},
    {27, "The system is not ready for the request"},
    {28, "No GPUs were found"},
    {29, "Resource not in correct state to perform requested operation"},
    {30, "Reset not supported for given device/parameters"},
    {999, "Unknown Error"},
};

const char *nvmlErrorString(nvmlReturn_t result)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == result)
            return errors[i].text;
    return "Unknown Error";
}
