"""Accuracy: the share of answers choosing the true match, by subset x condition x
population, with 95 % Wilson intervals, plus one machine row per feature set on the same
trials (paper Table 2b)."""
from __future__ import annotations

import pandas as pd

from analysis.load import MACHINE_PREFIX, machine_columns, order_populations
from analysis.stats import wilson_interval

# The paper's column order: TLL_obj {random, generic}, TLL_d {random, face, face_generic,
# generic}; other subsets and conditions follow alphabetically.
SUBSET_ORDER = ["TLL_obj", "TLL_d", "all"]
CONDITION_ORDER = ["random", "face", "face_generic", "generic"]
# The pooled cell's labels; "all" alone is a real subset name (every pair), contracts §4.
POOLED = ("all subsets", "all conditions")


def _order(values, preferred) -> list[str]:
    values = list(dict.fromkeys(str(v) for v in values))
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def cells(df: pd.DataFrame) -> list[tuple[str, str]]:
    """Return the (subset, condition) cells present in an answers table, in paper order."""
    pairs = set(zip(df["subset"].astype(str), df["condition"].astype(str)))
    out = []
    for s in _order([p[0] for p in pairs], SUBSET_ORDER):
        for c in _order([p[1] for p in pairs if p[0] == s], CONDITION_ORDER):
            out.append((s, c))
    return out


def _row(group: str, kind: str, subset: str, condition: str, k: int, n: int,
         no_choice: int | None = None) -> dict:
    lo, hi = wilson_interval(k, n)
    return {"row": group, "kind": kind, "subset": subset, "condition": condition,
            "n": n, "correct": k, "accuracy": k / n if n else float("nan"),
            "ci_low": lo, "ci_high": hi, "no_choice": no_choice}


PAPER_MACHINE_ROW = "machine: the condition's own features"


def condition_machine_choice(trials: pd.DataFrame, condition_features: dict[str, str]
                             ) -> pd.Series:
    """Return, per trial row, the position chosen by the feature set that built that
    trial's distractors (condition_features[condition]); `random` trials, which no
    feature set built, use the `generic` one. <NA> where there is none."""
    out = pd.Series(pd.NA, index=trials.index, dtype="Int64")
    for cond, idx in trials.groupby("condition").groups.items():
        key = condition_features.get(cond) or condition_features.get("generic")
        col = MACHINE_PREFIX + key if key else None
        if col and col in trials.columns:
            out.loc[idx] = trials.loc[idx, col]
    return out


def accuracy_long(df: pd.DataFrame, condition_features: dict[str, str] | None = None
                  ) -> pd.DataFrame:
    """Return one row per (row, subset, condition): human populations and machine feature
    sets, with n, correct, accuracy (0..1), Wilson 95 % interval (ci_low, ci_high).

    ``df`` holds the answers to analyse (catch trials already removed). A human row counts
    answers; a machine row counts each distinct trial those answers cover once
    (machine correct = machine position == true position). ``no_choice`` is how many of
    those trials the feature set could not rank (no face found): they count as wrong, as
    the machine did not rank the true match highest. The cell POOLED ("all subsets",
    "all conditions") pools everything.
    With ``condition_features`` (the design's condition -> feature set) one more row,
    PAPER_MACHINE_ROW, is the paper's single "machine" row: each column judged by the
    features that built its distractors (random: the generic ones).
    """
    rows: list[dict] = []
    trials = df.drop_duplicates("trial")
    grid = [(s, c, False) for s, c in cells(df)] + [(*POOLED, True)]
    for pop in order_populations(df["population"].unique()):
        d = df[df["population"] == pop]
        for s, c, pooled in grid:
            sel = d if pooled else d[(d["subset"] == s) & (d["condition"] == c)]
            rows.append(_row(pop, "human", s, c, int(sel["correct"].sum()), len(sel)))
    machines = [(f"machine: {col[len(MACHINE_PREFIX):]}", trials[col])
                for col in machine_columns(df)]
    if condition_features:
        machines.append((PAPER_MACHINE_ROW,
                         condition_machine_choice(trials, condition_features)))
    for label, choices in machines:
        for s, c, pooled in grid:
            sel = trials if pooled else trials[(trials["subset"] == s) & (trials["condition"] == c)]
            choice = choices.loc[sel.index]
            k = int((choice == sel["true_position"]).fillna(False).sum())
            rows.append(_row(label, "machine", s, c, k, len(sel),
                             no_choice=int(choice.isna().sum())))
    out = pd.DataFrame(rows, columns=["row", "kind", "subset", "condition", "n", "correct",
                                      "accuracy", "ci_low", "ci_high", "no_choice"])
    out["no_choice"] = out["no_choice"].astype("Int64")
    return out


def accuracy_table(long: pd.DataFrame, what: str = "percent") -> pd.DataFrame:
    """Return the Table 2b layout of ``accuracy_long``: rows = populations then machine
    rows, columns = (subset, condition) MultiIndex, values per ``what``:
    ``percent`` (accuracy in %, 1 decimal), ``n`` (counts) or ``text``
    ("83.3 [71.9, 90.7] n=60")."""
    if long.empty:
        return pd.DataFrame()
    rows = list(dict.fromkeys(long["row"]))
    cols = list(dict.fromkeys(zip(long["subset"], long["condition"])))
    long = long.set_index(["row", "subset", "condition"])
    data = {}
    for s, c in cols:
        vals = []
        for r in rows:
            x = long.loc[(r, s, c)]
            if what == "percent":
                vals.append(round(100 * x["accuracy"], 1) if x["n"] else float("nan"))
            elif what == "n":
                vals.append(int(x["n"]))
            else:
                vals.append(f"{100 * x['accuracy']:.1f} [{100 * x['ci_low']:.1f}, "
                            f"{100 * x['ci_high']:.1f}] n={int(x['n'])}" if x["n"] else "–")
        data[(s, c)] = vals
    table = pd.DataFrame(data, index=pd.Index(rows, name="row"))
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["subset", "condition"])
    return table


def catch_summary(catch: pd.DataFrame) -> pd.DataFrame:
    """Return, per population, answers to catch trials, how many were correct, the share
    and its Wilson interval, and how many participants failed at least one."""
    rows = []
    for pop in order_populations(catch["population"].unique()):
        d = catch[catch["population"] == pop]
        k, n = int(d["correct"].sum()), len(d)
        lo, hi = wilson_interval(k, n)
        failed = d.loc[~d["correct"], "participant"].nunique()
        rows.append({"population": pop, "answers": n, "correct": k,
                     "accuracy": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi,
                     "participants": d["participant"].nunique(),
                     "participants_failed": failed})
    return pd.DataFrame(rows, columns=["population", "answers", "correct", "accuracy",
                                       "ci_low", "ci_high", "participants",
                                       "participants_failed"])
