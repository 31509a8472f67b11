# Generates, for one library (-v lib=cuda|cudart|cublas|cublasLt|nvml), from public.tsv (every
# public function of NVIDIA's library, read from its headers) and exports.tsv (how the shim answers
# each function it serves, and its private interface), read in that order:
#   -v what=map    its version script: NVIDIA's version node (cudart, cuBLAS and cuBLASLt version
#                  their symbols by soname; libcuda and libnvidia-ml are unversioned)
#   -v what=stubs  C definitions of each exported function that is not served: public.tsv's names
#                  exports.tsv does not list, and its "unsupported" rows
#   -v what=procs  (cuda only) the name -> function table cuGetProcAddress searches
#   -v what=list   "symbol status kind" per exported function (what the docs and tests read)
# A function not served answers what its return type can say: the library's "not supported" status,
# NULL, or 0 (cuBLAS's legacy API, which returns values, reports the status through cublasGetError).
BEGIN { FS = "\t"; n = 0 }
/^#/ || NF < 3 { next }
$1 != lib { next }
FNR == NR { kind[$2] = $3; if (!($2 in seen)) { seen[$2] = 1; pub[np++] = $2 }; next }
{ if (!($2 in row)) { sym[n] = $2; n++ }; row[$2] = $3 }
END {
    for (i = 0; i < np; i++) if (!(pub[i] in row)) { sym[n] = pub[i]; row[pub[i]] = "unsupported"; n++ }
    if (what == "map") {
        node = lib == "cudart" ? "libcudart.so.13 " : lib == "cublas" ? "libcublas.so.13 " : \
               lib == "cublasLt" ? "libcublasLt.so.13 " : ""
        print node "{\n  global:"
        for (i = 0; i < n; i++) print "    " sym[i] ";"
        print "  local:\n    *;\n};"
    } else if (what == "stubs") {
        # CUBLAS_STATUS_NOT_SUPPORTED, NVML_ERROR_NOT_SUPPORTED, CUDA_ERROR_NOT_SUPPORTED
        code = lib ~ /^cublas/ ? 15 : lib == "nvml" ? 3 : 801
        legacy = lib == "cublas" ? " vgpu_cublas_legacy_unsupported();" : ""
        soname = lib == "nvml" ? "libnvidia-ml" : "lib" lib
        print "/* GENERATED from public.tsv and exports.tsv by gen_exports.awk: the functions lib" lib
        print " * exports but does not serve. */"
        print "#include <stddef.h>"
        print "#include \"shim.h\""
        if (legacy != "") print "void vgpu_cublas_legacy_unsupported(void);"
        print "struct vgpu_fp2 { double re, im; }; /* zero in both floating-point return registers */"
        for (i = 0; i < n; i++) if (row[sym[i]] == "unsupported") {
            s = sym[i]; k = (s in kind) ? kind[s] : "status"
            call = "static int once; (void)vgpu_shim_unsupported(\"" soname "\", \"" s "\", &once, " code ");"
            if (k == "status") {
                print "int " s "(void);"
                print "int " s "(void) { static int once; return vgpu_shim_unsupported(\"" soname "\", \"" s "\", &once, " code "); }"
            } else if (k == "void") {
                print "void " s "(void);"
                print "void " s "(void) { " call legacy " }"
            } else if (k == "pointer") {
                print "void *" s "(void);"
                print "void *" s "(void) { " call legacy " return NULL; }"
            } else if (k == "floating") {
                print "struct vgpu_fp2 " s "(void);"
                print "struct vgpu_fp2 " s "(void) { " call legacy " return (struct vgpu_fp2){0, 0}; }"
            } else {
                print "long long " s "(void);"
                print "long long " s "(void) { " call legacy " return 0; }"
            }
        }
    } else if (what == "procs") {
        print "/* GENERATED from public.tsv and exports.tsv by gen_exports.awk: what cuGetProcAddress resolves. */"
        print "#include <stddef.h>"
        print "struct proc { const char *name; void *fn; };"
        m = 0
        for (i = 0; i < n; i++) if (row[sym[i]] != "internal") { names[m++] = sym[i]; print "extern char " sym[i] ";" }
        # sorted by name for the binary search (C locale order)
        for (i = 1; i < m; i++) { v = names[i]; for (j = i - 1; j >= 0 && names[j] > v; j--) names[j + 1] = names[j]; names[j + 1] = v }
        print "const struct proc vgpu_procs[] = {"
        for (i = 0; i < m; i++) print "    {\"" names[i] "\", &" names[i] "},"
        print "};"
        print "const size_t vgpu_nprocs = " m ";"
    } else if (what == "list") {
        for (i = 0; i < n; i++) print sym[i] "\t" row[sym[i]] "\t" ((sym[i] in kind) ? kind[sym[i]] : "-")
    }
}
