# Compares two storage kinds of one NIAH run cell by cell, from its results.csv (one line per cell,
# RFC 4180 quoting, line breaks inside fields written as \n). POSIX awk (mawk, busybox and gawk).
#   awk -v ref=none -v cand=cuda-f16 -f niah-compare.awk results.csv
# A cell is (policy, budget, mode, length, depth, sample); its output is identical when both kinds
# generated the same text for the same prompt (same KEY and VALUE). Prints the differing cells, then:
#   model on GPU: N/M cells identical output to the none cache; accuracy none X/M, cuda-f16 Y/M
# Reports only: the exit status is 0 whenever the file could be read.

# Splits one CSV line into F[1..n]; returns n.
function parse(line,    n, i, c, f, q, len) {
    n = 0
    f = ""
    q = 0
    len = length(line)
    for (i = 1; i <= len; i++) {
        c = substr(line, i, 1)
        if (q) {
            if (c == "\"") {
                if (substr(line, i + 1, 1) == "\"") {
                    f = f "\""
                    i++
                } else {
                    q = 0
                }
            } else {
                f = f c
            }
        } else if (c == "\"") {
            q = 1
        } else if (c == ",") {
            F[++n] = f
            f = ""
        } else {
            f = f c
        }
    }
    F[++n] = f
    return n
}

BEGIN {
    if (ref == "") ref = "none"
    if (cand == "") cand = "cuda-f16"
    label = (cand ~ /cuda/) ? "model on GPU" : "model, " cand " in place of the GPU storage"
}

{ sub(/\r$/, "") }

NR == 1 {
    n = parse($0)
    for (i = 1; i <= n; i++) col[F[i]] = i
    split("policy budget mode length depth sample quant key expected correct output millis", need, " ")
    for (i = 1; i in need; i++) {
        if (!(need[i] in col)) {
            print label ": results.csv has no column " need[i] "; nothing compared"
            bad = 1
            exit 0
        }
    }
    next
}

{
    parse($0)
    k = F[col["policy"]] " b=" F[col["budget"]] " " F[col["mode"]] " length=" F[col["length"]] \
        " depth=" F[col["depth"]] " sample=" F[col["sample"]]
    q = F[col["quant"]]
    if (q != ref && q != cand) next
    if ((q, k) in out) {
        dup++
        next
    }
    out[q, k] = F[col["output"]]
    prompt[q, k] = F[col["key"]] "=" F[col["expected"]]
    ok[q, k] = (F[col["correct"]] == "true")
    cells[q]++
    acc[q] += ok[q, k]
    millis[q] += F[col["millis"]]
    if (q == ref) order[++nref] = k
}

END {
    if (bad) exit 0
    same = 0
    both = 0
    for (i = 1; i <= nref; i++) {
        k = order[i]
        if (!((cand, k) in out)) {
            missing++
            continue
        }
        both++
        if (prompt[ref, k] != prompt[cand, k]) {
            printf "differs: %s: not the same prompt (%s: %s, %s: %s)\n", k, ref, prompt[ref, k], cand, prompt[cand, k]
        } else if (out[ref, k] != out[cand, k]) {
            printf "differs: %s (needle %s): %s \"%s\" (%s), %s \"%s\" (%s)\n", k, prompt[ref, k], \
                ref, out[ref, k], ok[ref, k] ? "correct" : "wrong", cand, out[cand, k], ok[cand, k] ? "correct" : "wrong"
        } else {
            same++
        }
    }
    extra = cells[cand] - both
    if (missing > 0) printf "%d %s cells have no %s counterpart\n", missing, ref, cand
    if (extra > 0) printf "%d %s cells have no %s counterpart\n", extra, cand, ref
    if (dup > 0) printf "%d repeated cells ignored\n", dup
    printf "%s: %d/%d cells identical output to the %s cache; accuracy %s %d/%d, %s %d/%d\n", label, same, \
        both, ref, ref, acc[ref], cells[ref], cand, acc[cand], cells[cand]
    if (cells[ref] > 0 && cells[cand] > 0) {
        printf "mean time per cell: %s %.0f ms, %s %.0f ms\n", ref, millis[ref] / cells[ref], \
            cand, millis[cand] / cells[cand]
    }
}
