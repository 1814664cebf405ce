"""`subsets`, `evaluate` and `build` on the demo study, through the real CLI: the
experiment file, its determinism, and every bad input (exit 2, one message, no file)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from experiments.manifest import file_sha256
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def study(demo_study, tmp_path_factory) -> Path:
    """A copy of the demo study with its subsets computed (read-only for the tests)."""
    work = tmp_path_factory.mktemp("build") / "study"
    shutil.copytree(demo_study, work)
    proc = run_cli("experiments", "subsets", str(work))
    assert "TLL_d" in proc.stdout and "TLL_obj_strict" in proc.stdout
    return work


@pytest.fixture(scope="module")
def faces(study):
    """Pair ids with a face on both sides, and pair ids with no face at all (HOG)."""
    from experiments.manifest import load_manifest
    from experiments.store import FeatureStore

    ids = load_manifest(study).ids
    fs = FeatureStore(study).load("face/dlib_hog")
    rows = {p: i for i, p in enumerate(fs.ids)}
    both = [p for p in ids if fs.left.has_face[rows[p]] and fs.right.has_face[rows[p]]]
    none = [p for p in ids if not fs.left.has_face[rows[p]] and not fs.right.has_face[rows[p]]]
    return both, none


def spec_file(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def fails(args: list[str], out: Path, *needles: str) -> str:
    proc = run_cli("experiments", *args, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
    assert not out.exists()
    return proc.stderr


def test_subset_files(study, faces):
    doc = json.loads((study / "subsets" / "TLL_d.json").read_text())
    assert set(doc) >= {"name", "params", "feature_sets", "ids", "dropped"}
    assert doc["params"]["within_cosine"] == 0.10 and doc["params"]["cross_face"] == 0.4
    strict = json.loads((study / "subsets" / "TLL_obj_strict.json").read_text())
    both, none = faces
    # Strict TLL_obj keeps no pair with a face.
    assert not set(strict["ids"]) & set(both)
    assert {r["rule"] for r in strict["dropped"]} <= {"left_duplicate", "right_duplicate", "face"}
    for r in doc["dropped"]:
        assert r["id"] not in doc["ids"] and r["rule"]
    obj = json.loads((study / "subsets" / "TLL_obj.json").read_text())
    nb = json.loads((study / "subsets" / "TLL_obj_notebook.json").read_text())
    assert obj["ids"] == nb["ids"]


def test_build_is_byte_identical_and_loadable(study, tmp_path, faces):
    from server.loader import read_experiment_file

    spec = spec_file(tmp_path, {"name": "t", "conditions": [
        {"condition": "random", "subset": "TLL_d", "count": 4},
        {"condition": "generic", "subset": "all", "count": 4},
        {"condition": "face", "subset": "all", "count": 3},
        {"condition": "face_generic", "subset": "all", "count": 3}],
        "trials_per_hit": 5, "catch_trials": 1})
    a, b = tmp_path / "out" / "a.json", tmp_path / "b.json"
    for out in (a, b):
        run_cli("experiments", "build", str(study), "--design", "custom", "--spec", str(spec),
                "--seed", "5", "--out", str(out))
    doc = json.loads(a.read_text())
    # image_root differs with the folder; everything else is the same bytes.
    other = json.loads(b.read_text())
    assert other["image_root"] != doc["image_root"]
    other["image_root"] = doc["image_root"]
    assert json.dumps(other, sort_keys=True, indent=2) + "\n" == a.read_text()
    c = tmp_path / "out" / "c.json"
    run_cli("experiments", "build", str(study), "--design", "custom", "--spec", str(spec),
            "--seed", "5", "--out", str(c))
    assert c.read_bytes() == a.read_bytes()
    d = tmp_path / "out" / "d.json"
    run_cli("experiments", "build", str(study), "--design", "custom", "--spec", str(spec),
            "--seed", "6", "--out", str(d))
    assert d.read_bytes() != a.read_bytes()

    assert (a.parent / doc["image_root"]).resolve() == study.resolve()
    assert len(doc["trials"]) == 15 and [len(h["trials"]) for h in doc["hits"]] == [5, 5, 5]
    assert doc["feature_sets"] == sorted(["generic/efficientnet_lite0", "face/dlib_hog",
                                          "face_generic/efficientnet_lite0_hog"])
    for im in doc["images"]:
        assert file_sha256(study / im["path"]) == im["sha256"]
    both, _ = faces
    for t in doc["trials"]:
        assert set(t["machine_choices"]) == set(doc["feature_sets"])
        if t["catch"]:
            assert t["candidates"][t["true_index"]] == t["query"]
        else:
            assert t["candidates"][t["true_index"]] == "R" + t["pair"]
        if t["condition"] in ("face", "face_generic"):
            assert t["pair"] in both
    _, root, problems = read_experiment_file(a)
    assert problems == [] and root == study.resolve()


def test_evaluate_writes_tables_and_plots(study, tmp_path):
    out = tmp_path / "ev"
    proc = run_cli("experiments", "evaluate", str(study), "--subset", "all", "--out", str(out),
                   "--repetitions", "2")
    assert "| efficientnet_lite0 | cosine |" in proc.stdout and "R@100" in proc.stdout
    assert "face/dlib_hog" in proc.stdout and "face_generic/efficientnet_lite0_hog" in proc.stdout
    for name in ("table1.csv", "table1.md", "table2a.csv", "table2a.md", "votes.md",
                 "recall_curves.png", "recall_zoom.png", "cosine_minus_euclidean.png",
                 "index.html", "ranks.csv"):
        assert (out / name).is_file(), name
    import pandas as pd
    t1 = pd.read_csv(out / "table1.csv")
    ranks = pd.read_csv(out / "ranks.csv")
    g = ranks["generic/efficientnet_lite0"].to_numpy()
    row = t1[t1.feature_set == "efficientnet_lite0"].iloc[0]
    assert row["R@1"] == round(100 * np.mean(g <= 1), 2) and row["N"] == len(g)
    # The demo set's pairs look alike: generic features beat chance (1/N) clearly.
    assert row["R@5"] > 100 * 5 / len(g) * 2


def test_face_rule_and_face_denominator_through_the_cli(study, tmp_path, faces):
    """subsets --face-rule and evaluate --face-denominator: the default (notebook) TLL_d is
    pairs with a face on both sides minus duplicates; the tables say which rules made them."""
    import pandas as pd

    both, _ = faces
    work = tmp_path / "study"
    shutil.copytree(study, work)
    nb = json.loads((work / "subsets" / "TLL_d.json").read_text())
    assert nb["face_rule"] == "notebook" and set(nb["ids"]) <= set(both)
    proc = run_cli("experiments", "subsets", str(work), "--face-rule", "distance")
    assert "face rule distance" in proc.stdout
    dist = json.loads((work / "subsets" / "TLL_d.json").read_text())
    assert dist["face_rule"] == "distance" and len(dist["ids"]) > len(nb["ids"])
    assert not {r["rule"] for r in dist["dropped"]} & {"face_left_argmin", "face_right_argmin"}
    rows = {}
    for fd in ("faces", "subset", "notebook"):
        out = tmp_path / fd
        proc = run_cli("experiments", "evaluate", str(work), "--subset", "all", "--out", str(out),
                       "--face-denominator", fd)
        assert f"face rows over: {fd}" in proc.stdout
        t1 = pd.read_csv(out / "table1.csv").set_index("feature_set")
        t2 = pd.read_csv(out / "table2a.csv").set_index("feature_set")
        face = "face/dlib_hog"
        assert t1.loc[face, "face_denominator"] == fd == t2.loc[face, "face_denominator"]
        rows[fd] = t1.loc["face/dlib_hog"]
    # `faces` counts the pairs with a face on both sides, `subset` every pair; on the whole
    # set `notebook` counts the same pairs as `faces`, but prints recall at 2, 6, 11, 21
    assert rows["faces"]["queries"] == len(both) and rows["subset"]["queries"] == len(dist["ids"]) + len(
        {r["id"] for r in dist["dropped"]})
    subset_hits = rows["subset"]["R@1"] * rows["subset"]["queries"]
    assert rows["faces"]["R@1"] * len(both) == pytest.approx(subset_hits, abs=1)
    assert rows["notebook"]["queries"] == len(both) and rows["notebook"]["recall_at"] == "2,6,11,21"
    assert rows["notebook"]["R@1"] >= rows["faces"]["R@1"] and pd.isna(rows["notebook"]["R@50"])
    proc = run_cli("experiments", "evaluate", str(work), "--out", str(tmp_path / "d"))
    assert "subset face rule: distance" in proc.stdout
    assert (pd.read_csv(tmp_path / "d" / "table1.csv")["face_rule"] == "distance").all()


def test_bad_inputs(study, tmp_path, faces):
    out = tmp_path / "x.json"
    base = ["build", str(study), "--seed", "1", "--out", str(out)]
    fails(base + ["--design", "paper"], out, "condition", "short by")
    big = spec_file(tmp_path, {"conditions": [{"condition": "random", "subset": "all", "count": 10_000}]})
    fails(base + ["--design", "custom", "--spec", str(big)], out,
          "condition random on all: ", " suitable pairs, 10000 needed: short by ")
    fails(["build", str(study), "--design", "paper", "--seed", "-5", "--out", str(out)], out,
          "--seed", "-5 is not in the range x>=0")
    bad = spec_file(tmp_path, {"conditions": [{"condition": "colour", "subset": "all", "count": 2}]})
    fails(base + ["--design", "custom", "--spec", str(bad)], out, "unknown condition 'colour'")
    ok = spec_file(tmp_path, {"conditions": [{"condition": "generic", "subset": "all", "count": 2}]})
    fails(base + ["--design", "custom", "--spec", str(ok), "--generic-model", "resnet50"], out,
          "python -m experiments features", "--model resnet50")
    fails(base + ["--design", "custom"], out, "--spec")
    fails(base + ["--design", "custom", "--spec", str(ok), "--per-condition", "5"], out,
          "--per-condition is for --design paper")
    _, none = faces
    nofaces = tmp_path / "nofaces.txt"
    nofaces.write_text("\n".join(none) + "\n")
    nf = spec_file(tmp_path, {"conditions": [{"condition": "face", "subset": str(nofaces), "count": 2}]})
    fails(base + ["--design", "custom", "--spec", str(nf)], out, "no pair of the subset has a face")
    unknown = spec_file(tmp_path, {"conditions": [{"condition": "random", "subset": "TLL_x", "count": 2}]})
    fails(base + ["--design", "custom", "--spec", str(unknown)], out, "unknown subset 'TLL_x'")


def test_missing_features_and_subsets(demo_study, copy_study, tmp_path):
    work = copy_study(demo_study)
    out = tmp_path / "y.json"
    spec = spec_file(tmp_path, {"conditions": [{"condition": "random", "subset": "TLL_d", "count": 2}]})
    fails(["build", str(work), "--design", "custom", "--spec", str(spec), "--seed", "0",
           "--out", str(out)], out, "python -m experiments subsets")
    run_cli("experiments", "subsets", str(work), "--obj-definition", "strict",
            "--within-cosine", "0.05")
    obj = json.loads((work / "subsets" / "TLL_obj.json").read_text())
    strict = json.loads((work / "subsets" / "TLL_obj_strict.json").read_text())
    assert obj["ids"] == strict["ids"] and obj["params"]["obj_definition"] == "strict"
    assert obj["params"]["within_cosine"] == 0.05
    shutil.rmtree(work / "subsets")
    shutil.rmtree(work / "features" / "face_generic")
    fg = spec_file(tmp_path, {"conditions": [{"condition": "face_generic", "subset": "all", "count": 2}]})
    fails(["build", str(work), "--design", "custom", "--spec", str(fg), "--seed", "0",
           "--out", str(out)], out, "python -m experiments features", "--kind face_generic")
    shutil.rmtree(work / "features" / "face")
    proc = run_cli("experiments", "subsets", str(work), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--kind face" in proc.stderr
    assert not (work / "subsets").exists()


def test_stale_and_incomplete_sets_name_the_set_and_the_command(demo_study, copy_study, tmp_path):
    work = copy_study(demo_study)
    out = tmp_path / "z.json"

    def edit_meta(key, **changes):
        path = work / "features" / key / "meta.json"
        meta = json.loads(path.read_text())
        meta.update(changes)
        path.write_text(json.dumps(meta))

    def build(condition):
        spec = spec_file(tmp_path, {"conditions": [{"condition": condition, "subset": "all",
                                                    "count": 2}]})
        return fails(["build", str(work), "--design", "custom", "--spec", str(spec), "--seed",
                      "0", "--out", str(out)], out)

    edit_meta("generic/efficientnet_lite0", complete=False)   # an interrupted run
    err = build("generic")
    assert ("feature set generic/efficientnet_lite0 is incomplete (its run was interrupted): "
            f"run `python -m experiments features {work} --kind generic --model "
            "efficientnet_lite0`") in err
    meta = json.loads((work / "features" / "face/dlib_hog" / "meta.json").read_text())
    edit_meta("face/dlib_hog", left_sha256=["0" * 64] + meta["left_sha256"][1:])  # stale
    err = build("face")
    assert ("feature set face/dlib_hog is out of date (the pair manifest changed since): "
            f"run `python -m experiments features {work} --kind face --detector hog`") in err
    # evaluate: every set out of date says so and names the commands, not "empty"
    for key in ("generic/efficientnet_lite0", "face_generic/efficientnet_lite0_hog"):
        meta = json.loads((work / "features" / key / "meta.json").read_text())
        edit_meta(key, complete=True, left_sha256=["0" * 64] + meta["left_sha256"][1:])
    proc = run_cli("experiments", "evaluate", str(work), "--subset", "all", "--out",
                   str(tmp_path / "ev"), check=False)
    assert proc.returncode == 2 and "empty" not in proc.stderr
    assert proc.stderr.startswith(f"Error: no usable feature set in {work}: ")
    assert ("face/dlib_hog is out of date (the pair manifest changed since): run "
            f"`python -m experiments features {work} --kind face --detector hog`") in proc.stderr
    assert "generic/efficientnet_lite0 is out of date" in proc.stderr
