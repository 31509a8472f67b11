/*
 * hold_device PROGRAM [ARGS...]: claim every channel of the guest's ivshmem device (the first 1af4:1110
 * under /sys/bus/pci/devices) as the vgpu transport claims one, with an open-file-description write
 * lock, here on bytes 0..255 of resource2 (one byte per channel, every channel a VM can have), keep it,
 * and exec PROGRAM. The program then finds every channel held by another process, as the 17th CUDA
 * process of a guest with 16 channels would. Built statically by tests/shim/test_vm.py for the VM's
 * initramfs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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
            int fd = open(path, O_RDWR); /* inherited by PROGRAM: the locks stay held */
            struct flock every = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 256};
            if (fd < 0 || fcntl(fd, F_OFD_SETLK, &every) < 0) {
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
