# Generates, from exports.tsv, for one library (-v lib=cuda|cudart|cublas):
#   -v what=map    its version script (cudart and cublas version their symbols by soname, as
#                  NVIDIA's libraries do; libcuda's are unversioned)
#   -v what=stubs  C definitions of its "unsupported" functions
#   -v what=procs  (cuda only) the name -> function table cuGetProcAddress searches; the input
#                  must be sorted by symbol (the Makefile sorts it)
BEGIN { FS = "\t"; n = 0 }
/^#/ || NF < 3 { next }
$1 != lib { next }
{ sym[n] = $2; status[n] = $3; n++ }
END {
    if (what == "map") {
        node = lib == "cudart" ? "libcudart.so.13 " : lib == "cublas" ? "libcublas.so.13 " : ""
        print node "{\n  global:"
        for (i = 0; i < n; i++) print "    " sym[i] ";"
        print "  local:\n    *;\n};"
    } else if (what == "stubs") {
        code = lib == "cublas" ? 15 : 801  # CUBLAS_STATUS_NOT_SUPPORTED / CUDA_ERROR_NOT_SUPPORTED
        print "/* GENERATED from exports.tsv by gen_exports.awk: the functions " lib " exports but does not serve. */"
        print "#include \"shim.h\""
        for (i = 0; i < n; i++) if (status[i] == "unsupported") {
            print "int " sym[i] "(void);"
            print "int " sym[i] "(void) { static int once; return vgpu_shim_unsupported(\"lib" lib "\", \"" sym[i] "\", &once, " code "); }"
        }
    } else if (what == "procs") {
        print "/* GENERATED from exports.tsv by gen_exports.awk: what cuGetProcAddress resolves. */"
        print "#include <stddef.h>"
        print "struct proc { const char *name; void *fn; };"
        for (i = 0; i < n; i++) if (status[i] != "internal") print "extern char " sym[i] ";"
        print "const struct proc vgpu_procs[] = {"
        m = 0
        for (i = 0; i < n; i++) if (status[i] != "internal") { print "    {\"" sym[i] "\", &" sym[i] "},"; m++ }
        print "};"
        print "const size_t vgpu_nprocs = " m ";"
    }
}
