# Fits many small studies in one R process, for the coverage tests: the model
# y ~ 0 + x... + (1 | trial) by glmer (Laplace, bobyqa) on each study of one CSV.
# Usage: Rscript glmm_batch.R IN.csv OUT.csv
# IN.csv: columns study, trial, y and the fixed-effect columns x1, x2, ...
# OUT.csv: one row per study and column: study, x, estimate, se, n_trials, singular.
args <- commandArgs(trailingOnly = TRUE)
for (pkg in c("lme4")) {
  if (!requireNamespace(pkg, quietly = TRUE)) {
    cat("missing R package:", pkg, "\n", file = stderr())
    quit(status = 3)
  }
}
suppressPackageStartupMessages(library(lme4))
d <- read.csv(args[1], stringsAsFactors = FALSE, colClasses = c(trial = "character"))
xs <- grep("^x[0-9]+$", names(d), value = TRUE)
form <- as.formula(paste("y ~ 0 +", paste(xs, collapse = " + "), "+ (1 | trial)"))
rows <- lapply(split(d, d$study), function(s) {
  s$trial <- factor(s$trial)
  # convergence warnings and singular fits are part of what the coverage measures: the fit
  # stands as glmer left it (isSingular goes into the result)
  fit <- suppressMessages(suppressWarnings(glmer(form, data = s, family = binomial, nAGQ = 1,
                                control = glmerControl(optimizer = "bobyqa"))))
  beta <- fixef(fit)
  data.frame(study = s$study[1], x = names(beta), estimate = unname(beta),
             se = sqrt(diag(as.matrix(vcov(fit)))), n_trials = nlevels(s$trial),
             singular = isSingular(fit))
})
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
