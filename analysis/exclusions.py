"""Declared participant exclusions: off unless the analyst names them, and counted.

Each rule drops whole participants (all their answers, catch trials included), judged on
participant_table over every answer loaded:
- ``failed-catch``: failed at least one catch trial;
- ``position-bias``: flagged for a position preference among their wrong answers;
- ``fast``: median response time below FAST_MS (``--fast-ms``), too fast to have looked at
  six images.
What each rule removed is added to "what was counted" (Counting.notes), so the report
says how many participants and answers each exclusion took.
"""
from __future__ import annotations

import dataclasses

from analysis.errors import AnalysisError
from analysis.participants import participant_table

FAST_MS = 500.0
RULES = {
    "failed-catch": "participants who failed a catch trial",
    "position-bias": "participants flagged for a position preference",
    "fast": "participants whose median response time is below {ms:g} ms",
}


def exclude_participants(answers, rules: list[str] | None, fast_ms: float = FAST_MS):
    """Return a copy of ``answers`` (analysis.load.Answers) without the participants the
    named ``rules`` (keys of RULES) pick, each rule's count of participants and answers
    added to its counting notes; ``answers`` itself when no rule is named.

    Raises
    ------
    AnalysisError
        An unknown rule, or a fast_ms that is not positive.
    """
    if not rules:
        return answers
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise AnalysisError(*[f"unknown exclusion {r!r} (one of {', '.join(RULES)})"
                              for r in unknown])
    if not fast_ms > 0:
        raise AnalysisError(f"--fast-ms must be positive, got {fast_ms}")
    ptab = participant_table(answers.df).set_index("participant")
    picks = {"failed-catch": ptab["failed_catch"].astype(bool),
             "position-bias": ptab["position_bias"].astype(bool),
             "fast": ptab["median_rt_ms"] < fast_ms}
    df = answers.df
    gone: set = set()
    notes = []
    for rule in dict.fromkeys(rules):
        who = set(picks[rule][picks[rule]].index) - gone
        n = int(df["participant"].isin(who).sum())
        gone |= who
        notes.append(f"declared exclusion {rule!r} ({RULES[rule].format(ms=fast_ms)}): "
                     f"{len(who)} participant(s), {n} answer(s) removed")
    kept = df[~df["participant"].isin(gone)].copy()
    counting = answers.counting
    if counting is not None:
        counting = dataclasses.replace(counting, counted=counting.counted - (len(df) - len(kept)),
                                       notes=[*counting.notes, *notes])
    return dataclasses.replace(answers, df=kept, counting=counting)
