"""Item analysis with real images: the experiment file's study folder, its feature store
(distances for human-likeness), Fig. 4, and the report in Chromium (screenshots in
test-artifacts/)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import items
from analysis.cli import main
from analysis.distances import trial_distances
from analysis.gallery import TrialDrawing, gallery_figure

N_PAIRS = 8


@pytest.fixture(scope="module")
def study(tmp_path_factory, kit):
    """An experiment file with PNGs (6 trials, the last a catch trial), a generic and a
    face feature store in its study folder, and answers to its five ordinary trials."""
    folder = tmp_path_factory.mktemp("gallery-study")
    exp = kit.server_helpers().write_experiment(folder / "study", n_trials=6, n_pairs=N_PAIRS)
    root = folder / "study"
    ids = [f"{k:05d}" for k in range(N_PAIRS)]
    rng = np.random.default_rng(0)
    g = root / "features" / "generic" / "efficientnet_lite0"
    g.mkdir(parents=True)
    left, right = rng.normal(size=(N_PAIRS, 4)), rng.normal(size=(N_PAIRS, 4))
    np.save(g / "left.npy", left.astype(np.float32))
    np.save(g / "right.npy", right.astype(np.float32))
    (g / "meta.json").write_text(json.dumps({"key": "generic/efficientnet_lite0",
                                             "kind": "generic", "ids": ids}))
    f = root / "features" / "face" / "dlib_hog"
    f.mkdir(parents=True)
    counts = [1, 0, 2, 1, 1, 1, 1, 1]  # pair 00001 has no face on either side
    for side in ("left", "right"):
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        np.save(f / f"{side}_offsets.npy", offsets)
        np.save(f / f"{side}_vectors.npy",
                rng.normal(size=(int(offsets[-1]), 3)).astype(np.float32))
        np.save(f / f"{side}_boxes.npy", np.zeros((int(offsets[-1]), 4), np.int32))
    (f / "meta.json").write_text(json.dumps({"key": "face/dlib_hog", "kind": "face",
                                             "ids": ids}))
    doc = json.loads(exp.read_text())
    rows = []
    for i, t in enumerate(doc["trials"]):
        if t["catch"]:
            continue
        votes = [[9, 1, 0, 0, 0], [2, 2, 2, 2, 2], [0, 0, 10, 0, 0], [1, 5, 4, 0, 0],
                 [0, 0, 0, 3, 7]][i % 5]
        machine = {k: (None if v is None else v + 1) for k, v in t["machine_choices"].items()}
        rows += kit.answer_rows(t["id"], votes, t["true_index"] + 1, condition=t["condition"],
                                subset=t["subset"], machine=machine, experiment="small")
    csv = kit.write_csv(rows, folder / "answers.csv")
    return {"exp": exp, "root": root, "csv": csv, "doc": doc, "left": left, "right": right,
            "face": f}


def test_distances_from_the_feature_store(study):
    dist, notes = trial_distances(study["exp"])
    assert notes == []
    t = study["doc"]["trials"][0]
    q = study["left"][int(t["pair"])]
    want = []
    for c in t["candidates"]:
        r = study["right"][int(c[1:])]
        want.append(1 - q @ r / np.linalg.norm(q) / np.linalg.norm(r))
    assert np.allclose(dist["generic/efficientnet_lite0"][t["id"]], want, atol=1e-5)
    # face distances: smallest over face pairs, +inf where a side has no face
    face = dist["face/dlib_hog"]
    t1 = study["doc"]["trials"][1]  # query L00001 has no face
    assert all(np.isinf(face[t1["id"]]))
    lv = np.load(study["face"] / "left_vectors.npy")
    rv = np.load(study["face"] / "right_vectors.npy")
    lo = np.load(study["face"] / "left_offsets.npy")
    t2 = study["doc"]["trials"][2]  # query L00002 has two faces
    qv = lv[lo[2]:lo[3]]
    for c, d in zip(t2["candidates"], face[t2["id"]]):
        k = int(c[1:])
        cv = rv[lo[k]:lo[k + 1]]
        want = np.inf if len(cv) == 0 else min(np.linalg.norm(a - b) for a in qv for b in cv)
        assert d == pytest.approx(want, rel=1e-5)


def test_item_table_names_the_images_and_a_missing_one_is_a_grey_box(study, tmp_path):
    images = items.from_experiment_file(study["exp"])
    from analysis.load import load_answers
    df = load_answers(csv=study["csv"]).without_catch()
    table = items.item_table(df, images)
    first = study["doc"]["trials"][0]
    row = table.set_index("trial").loc[first["id"]]
    assert row["query"] == first["query"]
    assert [row[f"candidate_{i}"] for i in range(1, 6)] == first["candidates"]
    drawings = items.drawings(table, images)
    assert all(d.query is not None and all(c is not None for c in d.candidates)
               for d in drawings)
    # one image gone from the study folder: drawn as a grey box, no error
    images.paths[first["candidates"][0]] = tmp_path / "gone.png"
    d = items.drawings(table[table["trial"] == first["id"]], images)[0]
    assert d.candidates[0] is None
    fig = gallery_figure([d])
    assert len(fig.findobj(lambda a: type(a).__name__ == "AxesImage")) == 5  # query + 4
    box = fig.axes[1]  # the first candidate's: the grey box says so, its id is under it
    assert [t.get_text() for t in box.texts][0] == "missing"
    assert any(t.get_text().endswith(f"\n{first['candidates'][0]}") for t in box.texts)


def test_gallery_interface_takes_numpy_and_pil_images():
    from PIL import Image
    arr = np.zeros((245, 200, 3), np.uint8)
    d = TrialDrawing(query=Image.new("RGB", (200, 245)), candidates=[arr, None, arr, arr, arr],
                     marked=2, bars=[0.1, 0.2, 0.5, 0.1, 0.1], labels=list("abcde"),
                     highlight=0, title="t")
    fig = gallery_figure([d, d], title="two rows")
    assert len(fig.findobj(lambda a: type(a).__name__ == "AxesImage")) == 10
    texts = [t.get_fontsize() for t in fig.findobj(lambda a: type(a).__name__ == "Text")
             if t.get_text()]
    assert texts and min(texts) >= 9


def test_fig4_command_draws_the_extremes(study, tmp_path, capsys):
    out = tmp_path / "fig4"
    assert main(["fig4", "--csv", str(study["csv"]), "--experiment-file", str(study["exp"]),
                 "--out", str(out), "--trials", "1", "--dpi", "60"]) == 0
    assert "images: experiment file" in capsys.readouterr().out
    for ext in ("png", "pdf", "svg"):
        assert (out / f"fig4.{ext}").stat().st_size > 1000
    picked = pd.read_csv(out / "fig4.csv")
    # trial 3 (10 of 10 on one candidate) and trial 2 (2 on each) are the extremes
    assert list(zip(picked["end"], picked["trial"])) == [("highest", "t0003"),
                                                          ("lowest", "t0002")]


@pytest.mark.browser
def test_report_with_images_in_chromium(study, tmp_path, page, artifacts_dir):
    out = tmp_path / "report"
    assert main(["report", "--csv", str(study["csv"]), "--experiment-file", str(study["exp"]),
                 "--out", str(out), "--dpi", "72", "--bootstrap", "100",
                 "--majority", "half", "--model-intervals", "wald"]) == 0
    likeness = pd.read_csv(out / "likeness.csv")
    assert set(likeness["feature_set"]) == {"face/dlib_hog", "generic/efficientnet_lite0"}
    assert likeness["spearman_trials"].max() > 0
    page.goto((out / "report.html").as_uri())
    for title in ("What was counted", "Tests of the paper's comparisons",
                  "Item analysis and galleries", "Fig. 4", "How human-like is each model"):
        assert page.locator("h2", has_text=title).count() == 1
    assert "half or more" in page.inner_text("#agreement")
    broken = page.evaluate("[...document.images].filter(i => !i.complete || "
                           "i.naturalWidth === 0).length")
    assert broken == 0 and page.locator("img").count() >= 10
    page.screenshot(path=str(artifacts_dir / "analysis_report.png"), full_page=True)
    page.locator("#fig4").screenshot(path=str(artifacts_dir / "analysis_report_fig4.png"))
    page.locator("#position").screenshot(path=str(artifacts_dir / "analysis_report_position.png"))
