/*
 * hold_device PROGRAM [ARGS...]: take the flock a vgpu transport takes on the guest's ivshmem
 * device (the first 1af4:1110 under /sys/bus/pci/devices), keep it, and exec PROGRAM. The program
 * then finds the device held by another process, as a second CUDA process of the guest would.
 * Built statically by tests/shim/test_vm.py for the VM's initramfs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int has(const char *dir, const char *file, const char *want)
{
    char path[512], text[32] = "";
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(text, sizeof text, f) && !strncmp(text, want, strlen(want));
    fclose(f);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    DIR *d = opendir("/sys/bus/pci/devices");
    struct dirent *e;
    char dir[512];
    while (d && (e = readdir(d))) {
        snprintf(dir, sizeof dir, "/sys/bus/pci/devices/%s", e->d_name);
        if (has(dir, "vendor", "0x1af4") && has(dir, "device", "0x1110")) {
            char path[600];
            snprintf(path, sizeof path, "%s/resource2", dir);
            int fd = open(path, O_RDONLY); /* inherited by PROGRAM: the lock stays held */
            if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
                perror(path);
                return 2;
            }
            execv(argv[1], argv + 1);
            perror(argv[1]);
            return 2;
        }
    }
    fprintf(stderr, "no ivshmem device\n");
    return 2;
}
