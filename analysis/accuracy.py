"""Accuracy: the share of answers choosing the true match, by subset x condition x
population, with the 95 % interval the design calls for (analysis/intervals.py) and
Wilson's, plus one machine row per feature set on the same trials (paper Table 2b)."""
from __future__ import annotations

import pandas as pd

from analysis import intervals
from analysis.load import MACHINE_PREFIX, machine_columns, order_populations
from analysis.stats import wilson_interval

DEFAULT_RESAMPLES = 2000

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


def _row(group: str, kind: str, subset: str, condition: str, answers: pd.DataFrame,
         n_resamples: int, seed: int, no_choice: int | None = None) -> dict:
    """One cell; answers has columns trial, participant, correct (one row per answer)."""
    k, n = int(answers["correct"].sum()), len(answers)
    lo, hi = wilson_interval(k, n)
    dlo, dhi, design = intervals.share_interval(answers, n_resamples, seed)
    return {"row": group, "kind": kind, "subset": subset, "condition": condition,
            "n": n, "trials": answers["trial"].nunique(), "correct": k,
            "accuracy": k / n if n else float("nan"),
            "low": dlo, "high": dhi, "interval": design, "ci_low": lo, "ci_high": hi,
            "no_choice": no_choice}


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


def accuracy_long(df: pd.DataFrame, condition_features: dict[str, str] | None = None,
                  n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Accuracy per population and machine feature set, per subset x condition cell.

    Parameters
    ----------
    df : DataFrame
        Answers to analyse (``Answers.without_catch()``), columns as ``Answers.df``.
    condition_features : dict, optional
        The design's condition -> feature set; adds PAPER_MACHINE_ROW (each column judged
        by the features that built its distractors; random: the generic ones).
    n_resamples : int
        Bootstrap resamples where the design needs them (CLI ``--bootstrap``).
    seed : int
        Seed of the bootstrap (CLI ``--seed``).

    Returns
    -------
    DataFrame
        One row per (row, subset, condition), the pooled cell POOLED last: row (population
        or ``machine: <key>``), kind (human | machine), subset, condition, n (answers; a
        machine counts each trial once), trials, correct, accuracy (0..1), low, high (the
        default 95 % interval, chosen from the cell's design), interval (which one:
        intervals.DESIGNS), ci_low, ci_high (Wilson 95 %, assuming independent answers),
        no_choice (machine rows: trials it could not rank; they count as wrong).

    Examples
    --------
    >>> long = accuracy_long(answers.without_catch(), answers.condition_features)  # doctest: +SKIP
    >>> long[["row", "condition", "accuracy", "low", "high", "interval"]]  # doctest: +SKIP
    """
    rows: list[dict] = []
    trials = df.drop_duplicates("trial")
    grid = [(s, c, False) for s, c in cells(df)] + [(*POOLED, True)]
    for pop in order_populations(df["population"].unique()):
        d = df[df["population"] == pop]
        for s, c, pooled in grid:
            sel = d if pooled else d[(d["subset"] == s) & (d["condition"] == c)]
            rows.append(_row(pop, "human", s, c, sel[["trial", "participant", "correct"]],
                             n_resamples, seed))
    machines = [(f"machine: {col[len(MACHINE_PREFIX):]}", trials[col])
                for col in machine_columns(df)]
    if condition_features:
        machines.append((PAPER_MACHINE_ROW,
                         condition_machine_choice(trials, condition_features)))
    for label, choices in machines:
        for s, c, pooled in grid:
            sel = trials if pooled else trials[(trials["subset"] == s) & (trials["condition"] == c)]
            choice = choices.loc[sel.index]
            hit = (choice == sel["true_position"]).fillna(False).astype(bool)
            # a machine answers each trial once: independent answers, Wilson
            answers = pd.DataFrame({"trial": sel["trial"].to_numpy(),
                                    "participant": sel["trial"].to_numpy(),
                                    "correct": hit.to_numpy()})
            rows.append(_row(label, "machine", s, c, answers, n_resamples, seed,
                             no_choice=int(choice.isna().sum())))
    out = pd.DataFrame(rows, columns=["row", "kind", "subset", "condition", "n", "trials",
                                      "correct", "accuracy", "low", "high", "interval",
                                      "ci_low", "ci_high", "no_choice"])
    out["no_choice"] = out["no_choice"].astype("Int64")
    return out


def _no_choice_at_all(x) -> bool:
    """A machine that ranked none of the cell's trials has no accuracy to show."""
    return x["kind"] == "machine" and not pd.isna(x["no_choice"]) and x["no_choice"] == x["n"]


def accuracy_table(long: pd.DataFrame, what: str = "percent") -> pd.DataFrame:
    """The Table 2b layout of ``accuracy_long``.

    Parameters
    ----------
    long : DataFrame
        From accuracy_long.
    what : {"percent", "n", "text", "wilson"}
        ``percent``: accuracy in % with two decimals as in the paper (68.25); ``n``:
        answers; ``text``: "68.25 [44.80, 72.30] n=80" with the design's interval (``low``,
        ``high``; ``intervals_used`` names them); ``wilson``: the same with Wilson's.

    Returns
    -------
    DataFrame
        Rows = populations then machine rows, columns = (subset, condition) MultiIndex. A
        machine with no choice on any trial of a cell shows "—" (NaN in ``percent``).

    Examples
    --------
    >>> accuracy_table(accuracy_long(df), "text")  # doctest: +SKIP
    """
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
            empty = not x["n"] or _no_choice_at_all(x)
            if what == "percent":
                vals.append(float("nan") if empty else round(100 * x["accuracy"], 2))
            elif what == "n":
                vals.append(int(x["n"]))
            else:
                lo, hi = (("low", "high") if what == "text"
                          else ("ci_low", "ci_high"))
                vals.append("—" if empty else
                            f"{100 * x['accuracy']:.2f} [{100 * x[lo]:.2f}, "
                            f"{100 * x[hi]:.2f}] n={int(x['n'])}")
        data[(s, c)] = vals
    table = pd.DataFrame(data, index=pd.Index(rows, name="row"))
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["subset", "condition"])
    return table


def intervals_used(long: pd.DataFrame) -> str:
    """Return the sentence a table prints under it: which interval each kind of row has
    and why (intervals.DESCRIPTIONS)."""
    parts = []
    for design, d in long.groupby("interval", sort=False):
        rows = ", ".join(dict.fromkeys(d["row"]))
        parts.append(f"{rows}: {intervals.DESCRIPTIONS[design]}")
    return "95 % intervals — " + "; ".join(parts) + "."


def catch_summary(catch: pd.DataFrame) -> pd.DataFrame:
    """Catch-trial results per population.

    Parameters
    ----------
    catch : DataFrame
        Answers to catch trials (``Answers.catch_only()``).

    Returns
    -------
    DataFrame
        population, answers, correct, accuracy, ci_low, ci_high (Wilson), participants,
        participants_failed (who failed at least one).

    Examples
    --------
    >>> catch_summary(answers.catch_only())  # doctest: +SKIP
    """
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
