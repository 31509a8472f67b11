# Renders exports.tsv as the Markdown tables of docs/guest.md ("The exported functions").
BEGIN {
    FS = "\t"
    title["cuda"] = "libcuda.so.1 (driver API)"
    title["cudart"] = "libcudart.so.13 (runtime API)"
    title["cublas"] = "libcublas.so.13 (cuBLAS)"
    word["served"] = "served"; word["local"] = "answered locally"; word["unsupported"] = "not supported"
}
/^#/ || NF < 3 || $3 == "internal" { next }
{
    if ($1 != current) {
        if (current != "") print ""
        current = $1
        print "#### " title[$1]
        print ""
        print "| function | status | how |"
        print "| --- | --- | --- |"
    }
    printf "| `%s` | %s | %s |\n", $2, word[$3], $4
}
