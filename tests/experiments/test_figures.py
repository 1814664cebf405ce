"""Fig. 3 (retrieval galleries) and Fig. 5c (faces per image) from `evaluate`, on the
demo study, checked against the feature store independently; and evaluate's index.html,
rendered from its Jinja2 template, opened in Chromium."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from experiments import figures
from experiments.store import FaceSets, FeatureStore
from tests.conftest import run_cli

GALLERY = 2


@pytest.fixture(scope="module")
def evaluated(demo_study, tmp_path_factory):
    """A copy of the demo study with its subsets, evaluated on TLL_d into OUT."""
    import shutil
    work = tmp_path_factory.mktemp("figures") / "study"
    shutil.copytree(demo_study, work)
    run_cli("experiments", "subsets", str(work))
    out = work / "eval"
    proc = run_cli("experiments", "evaluate", str(work), "--out", str(out), "--gallery",
                   str(GALLERY), "--repetitions", "2")
    return SimpleNamespace(work=work, out=out, stdout=proc.stdout)


def test_fig3_galleries_match_the_ranks_and_the_store(evaluated):
    out = evaluated.out
    store = FeatureStore(evaluated.work)
    keys = store.keys()
    assert len(keys) == 3
    ranks = pd.read_csv(out / "ranks.csv", dtype={"pair": str}).set_index("pair")
    gallery = pd.read_csv(out / "fig3.csv", dtype={"pair": str, **{f"retrieved_{k}": str
                                                                    for k in range(1, 6)}})
    for key in keys:
        stem = key.replace("/", "_")
        for ext in ("png", "svg"):
            assert (out / f"fig3_{stem}.{ext}").stat().st_size > 10_000
        assert (out / f"fig3_{stem}.svg").read_text()[:400].count("<svg") == 1
        g = gallery[gallery["feature_set"] == key]
        assert list(g["group"]) == ["worst"] * GALLERY + ["best"] * GALLERY + ["random"] * GALLERY
        assert g["pair"].nunique() == 3 * GALLERY
        # The rank shown is evaluate's; the worst are no better than any other query and
        # the best no worse.
        assert (g["rank"].to_numpy() == ranks.loc[g["pair"], key].to_numpy()).all()
        all_ranks = sorted(ranks[key])
        assert sorted(g[g["group"] == "best"]["rank"]) == all_ranks[:GALLERY]
        assert sorted(g[g["group"] == "worst"]["rank"]) == all_ranks[-GALLERY:]
        dist = g[[f"distance_{k}" for k in range(1, 6)]].to_numpy()
        assert (dist[:, 1:] >= dist[:, :-1]).all()   # inf where no face: sorted too
    # Generic features have no ties: a true match at rank r <= 5 is the r-th retrieved,
    # and the nearest's distance is the cosine distance recomputed from the store.
    fs = store.load("generic/efficientnet_lite0")
    row = {pid: i for i, pid in enumerate(fs.ids)}
    g = gallery[gallery["feature_set"] == "generic/efficientnet_lite0"]
    subset = list(ranks.index)
    right = fs.right[[row[p] for p in subset]]
    for r in g.itertuples(index=False):
        q = fs.left[row[r.pair]]
        cos = 1 - right @ q / (np.linalg.norm(right, axis=1) * np.linalg.norm(q))
        assert r.retrieved_1 == subset[int(np.argmin(cos))]
        assert r.distance_1 == pytest.approx(cos.min(), abs=1e-5)
        if r.rank <= 5:
            assert getattr(r, f"retrieved_{int(r.rank)}") == r.pair


def test_fig5c_counts_agree_with_the_face_store(evaluated):
    out = evaluated.out
    fs = FeatureStore(evaluated.work).load("face/dlib_hog")
    counts = pd.read_csv(out / "fig5c_counts.csv", dtype={"faces": str})
    agreement = pd.read_csv(out / "fig5c_agreement.csv", dtype={"left_faces": str, "right_faces": str})
    summary = pd.read_csv(out / "fig5c_summary.csv").set_index("scope")
    assert list(summary.index) == ["TLL_d", "all"]
    assert set(counts["feature_set"]) == {"face/dlib_hog"}   # one per detector
    n_all = len(fs.ids)
    assert summary.loc["all", "pairs"] == n_all
    assert summary.loc["TLL_d", "pairs"] == len(pd.read_csv(out / "ranks.csv"))
    al = counts[counts["scope"] == "all"]
    for side in ("left", "right"):
        c = np.minimum(fs.side(side).counts, figures.FACE_COUNT_CAP)
        got = al[al["side"] == side].set_index("faces")["images"]
        assert got.sum() == n_all
        assert got["0"] == int((c == 0).sum()) and got["1"] == int((c == 1).sum())
    a = agreement[agreement["scope"] == "all"]
    assert a["pairs"].sum() == n_all
    same = a[a["left_faces"] == a["right_faces"]]["pairs"].sum()
    lc, rc = (np.minimum(fs.side(s).counts, figures.FACE_COUNT_CAP) for s in ("left", "right"))
    assert same == int((lc == rc).sum())
    assert summary.loc["all", "same_count"] == pytest.approx(same / n_all)
    assert summary.loc["all", "both_with_face"] == pytest.approx(((lc > 0) & (rc > 0)).mean())
    for ext in ("png", "svg"):
        assert (out / f"fig5c_face_dlib_hog.{ext}").stat().st_size > 10_000


def test_face_count_tables_cap_and_disagreement():
    """Several faces and disagreeing counts, which the demo images do not have."""
    def faces(counts):
        off = np.concatenate([[0], np.cumsum(counts)])
        return FaceSets(np.zeros((off[-1], 2), np.float32), off, np.zeros((off[-1], 4), np.int32))
    fs = SimpleNamespace(kind="face", key="face/dlib_x", ids=["a", "b", "c", "d"],
                         left=faces([0, 2, 6, 1]), right=faces([0, 1, 4, 1]))
    counts, agree, summary = figures.face_count_tables(fs, {"all": fs.ids, "two": ["c", "d"]})
    left = counts[(counts["scope"] == "all") & (counts["side"] == "left")].set_index("faces")
    assert left["images"].to_dict() == {"0": 1, "1": 1, "2": 1, "3": 0, "4+": 1}
    grid = agree[agree["scope"] == "all"].set_index(["left_faces", "right_faces"])["pairs"]
    assert grid[("4+", "4+")] == 1 and grid[("2", "1")] == 1 and grid.sum() == 4
    s = summary.set_index("scope")
    assert s.loc["all", "same_count"] == 0.75 and s.loc["all", "same_count_with_face"] == 0.5
    assert s.loc["two", "pairs"] == 2 and s.loc["two", "same_count"] == 1.0


def test_gallery_groups_are_disjoint_and_seeded():
    ranks = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10], dtype=float)
    g = figures.gallery_queries(ranks, 3, seed=1)
    assert g["worst"] == [9, 2, 6] and g["best"] == [1, 5, 3]
    assert len(g["random"]) == 3 and not set(g["random"]) & set(g["worst"] + g["best"])
    assert g == figures.gallery_queries(ranks, 3, seed=1)
    small = figures.gallery_queries(ranks[:4], 3)
    assert sorted(small["worst"] + small["best"] + small["random"]) == [0, 1, 2, 3]


@pytest.mark.browser
def test_evaluate_page_shows_every_figure(evaluated, page, artifacts_dir):
    out = evaluated.out
    page.goto((out / "index.html").as_uri())
    assert page.title() == "Retrieval evaluation: TLL_d"
    assert page.locator("h2#fig3").is_visible() and page.locator("h2#fig5c").is_visible()
    srcs = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
    names = [s for s, _ in srcs]
    for key in FeatureStore(evaluated.work).keys():
        assert f"fig3_{key.replace('/', '_')}.png" in names
    assert "fig5c_face_dlib_hog.png" in names and "recall_curves.png" in names
    assert all(w > 0 for _, w in srcs), srcs          # every image loads
    assert page.locator("table.t").count() >= 3       # Table 1, Table 2a, Fig. 5c summary
    page.screenshot(path=str(artifacts_dir / "evaluate_index.png"), full_page=True)
