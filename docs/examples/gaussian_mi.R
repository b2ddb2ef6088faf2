# An external estimator for ibcheck in R (docs/guides/external.md), base R only:
#     Rscript docs/examples/gaussian_mi.R SAMPLE.csv ESTIMATE.json
# The Gaussian estimate 0.5 (log det S_a + log det S_b - log det S) of I(A;B) in nats, from the
# sample covariance S of ibcheck's CSV (columns x0, x1, ... or y0, ..., then z0, z1, ...).
args <- commandArgs(trailingOnly = TRUE)
pairs <- as.matrix(read.csv(args[1]))
a <- !startsWith(colnames(pairs), "z")
s <- cov(pairs)
logdet <- function(m) as.numeric(determinant(m, logarithm = TRUE)$modulus)
estimate <- 0.5 * (logdet(s[a, a, drop = FALSE]) + logdet(s[!a, !a, drop = FALSE]) - logdet(s))
cat(sprintf('{"estimate": %.17g}\n', estimate), file = args[2])
