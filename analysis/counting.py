"""Which answers count: explicit rules over the provenance columns of the answers
(platform, environment, submission_status; docs/contracts.md §6), pure pandas.

By default (`DEFAULTS`, the one table of default rules) lab and simulated participants
count as recorded, participants created through the unauthenticated JSON API (platform
`api`) only when named (`--environment api`), and MTurk answers only of submitted or
approved assignments in production. `environments` and `statuses` choose otherwise,
platform by platform: a platform that has one of the named values uses the named ones, the others keep their
defaults (so `--status rejected` changes MTurk's rule and leaves the lab's alone).
Rehearsal environments (local-sandbox, sandbox) therefore never reach a table unless
named. Every answer is either counted or excluded by the first rule it fails, and the
`Counting` says how many each rule excluded.

The first rule is "withdrawn": the answers of a participant who withdrew (a non-empty
`withdrawn_at`, docs/contracts.md §6) never count unless `include_withdrawn` asks for
them; sources without the column (exports made before withdrawal existed) have none.

The tables of platforms, environments and statuses are `provenance`'s, which the server's
`server.recruitment` enforces too, so that an unknown value is an error in both places
(read from there so that the analysis never loads the web side).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.errors import AnalysisError
from provenance import ENVIRONMENTS, PLATFORMS, STATUSES

PROVENANCE = ["platform", "environment", "submission_status"]

# Default rules: per platform, the environments and statuses whose answers count
# (statuses None: every status, i.e. as recorded).
DEFAULTS: dict[str, dict] = {
    "lab": {"environments": ("lab",), "statuses": None},
    "simulated": {"environments": ("simulated",), "statuses": None},
    # Participants the unauthenticated JSON API created: none count unless named
    # (`--environment api`), since anyone could have made them.
    "api": {"environments": (), "statuses": None},
    "mturk": {"environments": ("production",), "statuses": ("submitted", "approved")},
    "panel": {"environments": ("production",), "statuses": None},
    # Prolific: a submission awaiting review has every answer and a completion code (it
    # counts now, as MTurk's submitted); approved ones were kept by the researcher.
    # Rejected, returned and timed-out ones left the study or were thrown out.
    "prolific": {"environments": ("production",), "statuses": ("awaiting-review", "approved")},
}
# The rules in the order they are applied; an answer is excluded by the first it fails.
RULES = {
    "withdrawn": "the participant withdrew their answers (counted only when asked for)",
    "environment": "its environment is not counted (rehearsals count only when named)",
    "status": "its submission status is not counted (e.g. returned, rejected, not submitted)",
}


@dataclass
class Counting:
    """What a load counted: `counted` of `total` answers, answers `excluded` per rule,
    the rules used per platform, and `table`: one row per (platform, environment,
    submission_status) with answers, participants and the decision."""
    total: int
    counted: int
    excluded: dict[str, int]
    rules: dict[str, dict]
    table: pd.DataFrame
    provenance: bool = True
    notes: list[str] = field(default_factory=list)
    include_withdrawn: bool = False

    def lines(self) -> list[str]:
        """Return the summary as text lines (printed before every table)."""
        out = [f"counted {self.counted} of {self.total} answers"]
        if self.include_withdrawn:
            out.append("withdrawn participants' answers included (asked for), rule "
                       "'withdrawn' not applied")
        if not self.provenance:
            out.append("the source has no provenance columns: every answer counted as "
                       "recorded (export again from the server to count by status)")
        for rule, n in self.excluded.items():
            out.append(f"excluded {n} answer(s): {RULES[rule]}")
        for plat, r in self.rules.items():
            st = "any status" if r["statuses"] is None else "status " + "/".join(r["statuses"])
            envs = "/".join(r["environments"]) or "none (counted only when named)"
            out.append(f"rule {plat}: environment {envs}, {st}")
        return out + list(self.notes)

    def as_dict(self) -> dict:
        """Return the summary as plain data (for JSON and df.attrs)."""
        return {"total": self.total, "counted": self.counted, "excluded": dict(self.excluded),
                "include_withdrawn": self.include_withdrawn,
                "rules": {k: {"environments": list(v["environments"]),
                              "statuses": None if v["statuses"] is None else list(v["statuses"])}
                          for k, v in self.rules.items()}}


def _names(values, known: dict | set, what: str) -> list[str] | None:
    if not values:
        return None
    unknown = [v for v in values if v not in known]
    if unknown:
        raise AnalysisError(*[f"unknown {what} {v!r} (one of {', '.join(sorted(known))})"
                              for v in unknown])
    return list(values)


def rules_for(platforms, environments=None, statuses=None) -> dict[str, dict]:
    """Return {platform: {"environments": ..., "statuses": ...}} for the platforms
    present: the defaults, replaced per platform by the named environments / statuses
    that platform has. Unknown names are an AnalysisError."""
    envs = _names(environments, ENVIRONMENTS, "environment")
    all_statuses = {s for v in STATUSES.values() for s in v}
    sts = _names(statuses, all_statuses, "status")
    out = {}
    for plat in platforms:
        if plat not in DEFAULTS:
            raise AnalysisError(f"unknown platform {plat!r} in the answers (one of "
                                f"{', '.join(DEFAULTS)})")
        rule = dict(DEFAULTS[plat])
        p = PLATFORMS[plat]
        mine = [e for e in (envs or []) if e in p.environments]
        if mine:
            rule["environments"] = tuple(mine)
        mine = [s for s in (sts or []) if s in p.statuses]
        if mine:
            rule["statuses"] = tuple(mine)
        out[plat] = rule
    return out


def withdrawn_mask(df: pd.DataFrame) -> pd.Series:
    """Return a boolean Series: True for the answers of participants who withdrew (a
    non-empty `withdrawn_at`; all False when the column is absent)."""
    if "withdrawn_at" not in df.columns:
        return pd.Series(False, index=df.index, dtype=bool)
    w = df["withdrawn_at"]
    return (w.notna() & (w.astype(str).str.strip() != "")).astype(bool)


def count_answers(df: pd.DataFrame, environments=None, statuses=None,
                  include_withdrawn: bool = False) -> tuple[pd.DataFrame, Counting]:
    """Return (the answers that count, Counting). `df` has the answers-export columns.
    Withdrawn participants' answers are excluded first (rule "withdrawn") unless
    `include_withdrawn`; without provenance columns (an old or hand-made CSV) every
    other answer counts as recorded and the Counting says so."""
    total = len(df)
    withdrawn = (pd.Series(False, index=df.index, dtype=bool) if include_withdrawn
                 else withdrawn_mask(df))
    if any(c not in df.columns for c in PROVENANCE) or (total and df["platform"].isna().all()):
        decision = pd.Series("counted (no provenance)", index=df.index, dtype=object)
        decision[withdrawn] = "excluded: withdrawn"
        table = (df.assign(decision=decision)
                 .groupby(["population", "decision"], dropna=False)
                 .agg(answers=("trial", "size"), participants=("participant", "nunique"))
                 .reset_index() if total else pd.DataFrame(columns=["population", "decision",
                                                                    "answers", "participants"]))
        keep = ~withdrawn
        excluded, rules, provenance = {"withdrawn": int(withdrawn.sum())}, {}, False
    else:
        bad = [f"{c}: {int(df[c].isna().sum())} answer(s) without a value" for c in PROVENANCE
               if df[c].isna().any()]
        if bad:
            raise AnalysisError(*[f"provenance column {b}" for b in bad])
        rules = rules_for(sorted(df["platform"].unique()), environments, statuses)
        unknown_env = sorted(set(df["environment"]) - set(ENVIRONMENTS))
        if unknown_env:
            raise AnalysisError(f"unknown environment(s) in the answers: "
                                f"{', '.join(unknown_env)}")
        env_ok = pd.Series([e in rules[p]["environments"]
                            for p, e in zip(df["platform"], df["environment"])],
                           index=df.index, dtype=bool)
        status_ok = pd.Series([rules[p]["statuses"] is None or s in rules[p]["statuses"]
                               for p, s in zip(df["platform"], df["submission_status"])],
                              index=df.index, dtype=bool)
        decision = pd.Series("counted", index=df.index, dtype=object)
        decision[~status_ok] = "excluded: status"
        decision[~env_ok] = "excluded: environment"
        decision[withdrawn] = "excluded: withdrawn"  # the first rule wins
        live = ~withdrawn
        excluded = {"withdrawn": int(withdrawn.sum()),
                    "environment": int((live & ~env_ok).sum()),
                    "status": int((live & env_ok & ~status_ok).sum())}
        table = (df.assign(decision=decision)
                 .groupby(["platform", "environment", "submission_status", "decision"])
                 .agg(answers=("trial", "size"), participants=("participant", "nunique"))
                 .reset_index())
        keep = live & env_ok & status_ok
        provenance = True
    kept = df[keep].reset_index(drop=True)
    counting = Counting(total, len(kept), excluded, rules, table, provenance=provenance,
                        include_withdrawn=include_withdrawn)
    kept.attrs["counting"] = counting.as_dict()
    return kept, counting
