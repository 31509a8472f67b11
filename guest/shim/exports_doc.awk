# Renders exports.tsv as the Markdown tables of docs/guest.md ("The exported functions"), one per
# library, each closed by the count of NVIDIA's other public functions (public.tsv, read first)
# that the library exports as not supported.
BEGIN {
    FS = "\t"
    title["cuda"] = "libcuda.so.1 (driver API)"
    title["cudart"] = "libcudart.so.13 (runtime API)"
    title["cublas"] = "libcublas.so.13 (cuBLAS)"
    title["cublasLt"] = "libcublasLt.so.13 (cuBLASLt)"
    title["nvml"] = "libnvidia-ml.so.1 (NVML)"
    word["served"] = "served"; word["local"] = "answered locally"; word["unsupported"] = "not supported"
}
/^#/ || NF < 3 { next }
FNR == NR { public[$1, $2] = 1; total[$1]++; next }
$3 == "internal" { next }
{
    if ($1 != current) {
        close_table()
        current = $1
        print "#### " title[$1]
        print ""
        print "| function | status | how |"
        print "| --- | --- | --- |"
    }
    if (($1, $2) in public) listed[$1]++
    printf "| `%s` | %s | %s |\n", $2, word[$3], $4
}
function close_table() {
    if (current == "") return
    print ""
    printf "and %d more of NVIDIA's public functions (`guest/shim/public.tsv`), each not supported.\n", \
        total[current] - listed[current]
    print ""
}
END { close_table() }
