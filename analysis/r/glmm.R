# Fits the mixed logistic model analysis/glmm.py prepared: reads spec.json and data.csv
# from the folder given as the only argument, writes result.json there.
# Exit status 3 (with the package's name on stderr) when a needed R package is missing.
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
for (pkg in c("jsonlite", "lme4")) {
  if (!requireNamespace(pkg, quietly = TRUE)) {
    cat("missing R package:", pkg, "\n", file = stderr())
    quit(status = 3)
  }
}
suppressPackageStartupMessages(library(lme4))
spec <- jsonlite::fromJSON(file.path(dir, "spec.json"))
d <- read.csv(file.path(dir, "data.csv"), stringsAsFactors = FALSE,
              colClasses = c(trial = "character", participant = "character"))
d$trial <- factor(d$trial)
d$participant <- factor(d$participant)
random <- as.character(spec$random)
rhs <- paste(c("0", spec$x), collapse = " + ")
if (length(random)) rhs <- paste(rhs, paste0("(1 | ", random, ")", collapse = " + "), sep = " + ")
form <- as.formula(paste("y ~", rhs))

warns <- character(0)
keep <- function(expr) withCallingHandlers(expr, warning = function(w) {
  warns <<- c(warns, conditionMessage(w))
  invokeRestart("muffleWarning")
})
set.seed(spec$seed)
if (length(random)) {
  fit <- keep(glmer(form, data = d, family = binomial, nAGQ = 1,
                    control = glmerControl(optimizer = "bobyqa")))
  beta <- fixef(fit)
  conv <- c(fit@optinfo$conv$lme4$messages, fit@optinfo$warnings)
  singular <- isSingular(fit)
  sds <- sapply(VarCorr(fit), function(v) attr(v, "stddev"))
  names(sds) <- names(VarCorr(fit))
  loglik <- as.numeric(logLik(fit))
} else {
  fit <- keep(glm(form, data = d, family = binomial))
  beta <- coef(fit)
  conv <- if (fit$converged) character(0) else "glm did not converge"
  singular <- FALSE
  sds <- numeric(0)
  loglik <- as.numeric(logLik(fit))
}
se <- sqrt(diag(as.matrix(vcov(fit))))

prof <- NULL
prof_error <- NULL
if (spec$intervals == "profile") {
  before <- length(warns)
  # the profile refits the model many times: one parameter at a time, stopping at the time
  # limit, so that a large study still gets its Wald intervals and a stated reason
  if (length(random)) {
    np <- length(getME(fit, "theta")) + length(beta)
    start <- proc.time()[["elapsed"]]
    parts <- list()
    for (i in seq_len(np)) {
      if (proc.time()[["elapsed"]] - start > spec$profile_limit_s) {
        prof_error <- sprintf("time limit of %g s reached with %d of %d parameters left",
                              spec$profile_limit_s, np - i + 1, np)
        break
      }
      ci <- tryCatch(keep(confint(fit, parm = i, method = "profile", oldNames = FALSE)),
                     error = function(e) { prof_error <<- conditionMessage(e); NULL })
      if (!is.null(ci)) parts[[length(parts) + 1]] <- ci
    }
    prof <- if (length(parts)) do.call(rbind, parts) else NULL
  } else {
    prof <- tryCatch(keep(confint(fit)),
                     error = function(e) { prof_error <<- conditionMessage(e); NULL })
  }
  if (length(warns) > before) warns[(before + 1):length(warns)] <-
    paste("profile:", warns[(before + 1):length(warns)])
} else if (spec$intervals == "boot") {
  prof <- tryCatch(keep(confint(fit, method = "boot", nsim = spec$nsim, seed = spec$seed,
                                oldNames = FALSE)),
                   error = function(e) { prof_error <<- conditionMessage(e); NULL })
}
interval <- function(name) {
  if (is.null(prof) || !(name %in% rownames(prof))) return(c(NA, NA))
  as.numeric(prof[name, ])
}
fixed <- lapply(names(beta), function(n) {
  iv <- interval(n)
  list(x = n, estimate = unname(beta[n]), se = unname(se[n]), low = iv[1], high = iv[2])
})
var_rows <- lapply(names(sds), function(g) {
  iv <- interval(paste0("sd_(Intercept)|", g))
  list(group = g, sd = unname(sds[g]), low = iv[1], high = iv[2])
})
out <- list(fixed = fixed, random = var_rows, warnings = unique(c(conv, warns)),
            singular = singular, loglik = loglik, nobs = nrow(d),
            profile_error = prof_error,
            engine = paste0("lme4 ", as.character(packageVersion("lme4")), ", ",
                            R.version.string))
jsonlite::write_json(out, file.path(dir, "result.json"), auto_unbox = TRUE, digits = NA,
                     na = "null", null = "null")
