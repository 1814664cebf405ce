"""Smoke test of `python -m experiments demo` (what `make demo` runs before the server),
on a copy of the demo study so the features are already cached."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import pandas as pd

from analysis.accuracy import POOLED, accuracy_long, accuracy_table
from tests.conftest import run_cli


def test_demo_pipeline_end_to_end(demo_study, demo_images, copy_study):
    from server.loader import read_experiment_file

    work = copy_study(demo_study)
    shutil.copytree(demo_images, work / "source")   # step 1 is skipped when present
    proc = run_cli("experiments", "demo", str(work))
    out = proc.stdout
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert step in out
    assert "kept" in out                            # the demo pairs were not rewritten
    assert "Table 1: recall@k (%) on subset TLL_d" in out
    assert "| efficientnet_lite0 | cosine |" in out
    assert "Option matrix: TLL_d face rule x face rows of Table 1" in out
    for name in ("TLL_d", "TLL_obj", "TLL_obj_notebook", "TLL_obj_strict"):
        assert (work / "subsets" / f"{name}.json").is_file()
    assert (work / "evaluation" / "TLL_d" / "index.html").is_file()
    exp = work / "experiments" / "demo.json"
    doc = json.loads(exp.read_text())
    # the paper's design: six cells with the same number of trials, at least 5 each
    cells = Counter((t["subset"], t["condition"]) for t in doc["trials"])
    assert set(cells) == set(PAPER_CELLS)
    n = doc["design"]["conditions"][0]["count"]
    assert n >= 5 and set(cells.values()) == {n}
    assert f"the paper's design with {n} trials per cell" in out
    assert doc["design"]["name"] == "paper" and not any(t["catch"] for t in doc["trials"])
    assert len({t["pair"] for t in doc["trials"]}) == 6 * n          # no pair used twice
    # the largest the demo set allows: one more per cell is refused, cell by cell
    more = run_cli("experiments", "build", str(work), "--design", "paper", "--per-condition",
                   str(n + 1), "--seed", str(doc["seed"]), "--out", str(work / "more.json"),
                   check=False)
    assert more.returncode == 2 and "short by" in more.stderr
    assert more.stderr.count(f"{n + 1} needed") == 6
    _, root, problems = read_experiment_file(exp)
    assert problems == [] and root == work.resolve()
    # Same study and seed, same file (a rerun of the last step, without the features).
    run_cli("experiments", "build", str(work), "--design", "paper", "--per-condition", str(n),
            "--seed", str(doc["seed"]), "--out", str(exp.with_name("again.json")))
    assert exp.with_name("again.json").read_bytes() == exp.read_bytes()
    # The report's Table 2b has the paper's columns in the paper's order (then the pool).
    table = accuracy_table(accuracy_long(_answers(doc)))
    assert list(table.columns) == PAPER_CELLS + [POOLED]


def test_option_matrix_on_the_demo(demo_study):
    """`option-matrix`: every face rule x face-row mode x face feature set, from the store
    without writing; the notebook mode is the same whatever the rule (it ignores the
    subset), counts the whole set's pairs with a face on both sides and says its labels
    are recall at 2, 6, 11, 21; on the demo its printed "R@1" for dlib faces is 75 %."""
    before = sorted(p.relative_to(demo_study) for p in demo_study.rglob("*"))
    out = run_cli("experiments", "option-matrix", str(demo_study)).stdout
    assert sorted(p.relative_to(demo_study) for p in demo_study.rglob("*")) == before
    lines = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(head, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]
    combos = {(r["face_rule"], r["face_rows"]) for r in rows}
    assert combos == {(rule, mode) for rule in ("notebook", "distance")
                      for mode in ("faces", "subset", "notebook")}
    nb = [r for r in rows if r["face_rows"] == "notebook"]
    by_rule = {rule: [(r["feature_set"], r["R@1"], r["queries"]) for r in nb
                      if r["face_rule"] == rule] for rule in ("notebook", "distance")}
    assert by_rule["notebook"] == by_rule["distance"]
    assert all(r["recall_at"] == "2,6,11,21" and r["N"] == "83" for r in nb)
    assert all(r["recall_at"] == "k" and r["N"] == r["TLL_d"] for r in rows if r not in nb)
    dlib = {r["face_rule"]: r for r in nb if r["feature_set"] == "face/dlib_hog"}
    assert dlib["notebook"]["R@1"] == "75.0"
    # the distance rule keeps more pairs than the notebook's face rule
    tll = {r["face_rule"]: int(r["TLL_d"]) for r in rows}
    assert tll["distance"] > tll["notebook"]


PAPER_CELLS = [("TLL_obj", "random"), ("TLL_obj", "generic"), ("TLL_d", "random"),
               ("TLL_d", "face"), ("TLL_d", "face_generic"), ("TLL_d", "generic")]


def _answers(doc) -> pd.DataFrame:
    """One participant who always picks the first candidate, as analysis.load types it."""
    rows = [{"participant": "p1", "population": "lab", "trial": t["id"], "subset": t["subset"],
             "condition": t["condition"], "catch": False, "chosen_position": 1,
             "true_position": t["true_index"] + 1, "correct": t["true_index"] == 0}
            for t in doc["trials"]]
    return pd.DataFrame(rows)
