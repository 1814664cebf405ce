"""Smoke test of `python -m experiments demo` (what `make demo` runs before the server),
on a copy of the demo study so the features are already cached."""
from __future__ import annotations

import json
import shutil

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
    for name in ("TLL_d", "TLL_obj", "TLL_obj_notebook", "TLL_obj_strict"):
        assert (work / "subsets" / f"{name}.json").is_file()
    assert (work / "evaluation" / "TLL_d" / "index.html").is_file()
    exp = work / "experiments" / "demo.json"
    doc = json.loads(exp.read_text())
    conditions = {t["condition"] for t in doc["trials"]}
    assert conditions == {"random", "generic", "face", "face_generic", "catch"}
    assert sum(t["catch"] for t in doc["trials"]) == 1
    assert len(doc["hits"]) == -(-len(doc["trials"]) // doc["design"]["trials_per_hit"])
    _, root, problems = read_experiment_file(exp)
    assert problems == [] and root == work.resolve()
    # Same study and seed, same file (a rerun of the last step, without the features).
    run_cli("experiments", "build", str(work), "--design", "custom", "--spec",
            str(_spec(work, doc)), "--seed", str(doc["seed"]), "--out", str(exp.with_name("again.json")))
    assert exp.with_name("again.json").read_bytes() == exp.read_bytes()


def _spec(work, doc):
    path = work / "demo-spec.json"
    d = doc["design"]
    path.write_text(json.dumps({"name": d["name"], "conditions": d["conditions"],
                                "trials_per_hit": d["trials_per_hit"],
                                "catch_trials": d["catch_trials"]}))
    return path
