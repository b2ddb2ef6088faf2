# An external estimator for ibcheck in awk (docs/guides/external.md): the Gaussian estimate
# -0.5 log(1 - r^2) of I(X;Z) in nats for one-dimensional x and z, r their sample correlation,
# from ibcheck's CSV (a header row, then one row a pair: x0, z0). Run as
#     awk -F, -v out=ESTIMATE.json -f docs/examples/gaussian_1d.awk SAMPLE.csv
NR > 1 { n++; sx += $1; sz += $2; sxx += $1 * $1; szz += $2 * $2; sxz += $1 * $2 }
END {
    r = (sxz - sx * sz / n) / sqrt((sxx - sx * sx / n) * (szz - sz * sz / n))
    printf "{\"estimate\": %.17g}\n", -0.5 * log(1 - r * r) > out
}
