/*
 * Loads one library with RTLD_NOW (every reference bound at load, as under LD_BIND_NOW=1) and looks
 * up each name read from stdin, one a line. Prints "missing NAME" for each it cannot find and exits
 * 0 only when the library loaded and every name resolved. Usage: bind_now LIBRARY < names
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("dlopen %s\n", dlerror());
        return 1;
    }
    char name[512];
    int missing = 0, found = 0;
    while (fgets(name, sizeof name, stdin)) {
        name[strcspn(name, "\n")] = 0;
        if (!name[0])
            continue;
        if (dlsym(lib, name)) {
            found++;
        } else {
            printf("missing %s\n", name);
            missing++;
        }
    }
    printf("found %d\n", found);
    return missing ? 1 : 0;
}
