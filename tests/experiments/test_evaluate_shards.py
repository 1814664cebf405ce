"""`evaluate` sharded by query rows: each shard's distance pass is the unsharded pass's
numbers for its rows, and the tables merged from the shards are the unsharded tables,
byte for byte (synthetic feature sets, no store)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from experiments import evaluate as E
from experiments import retrieval as R

N, CHUNK = 50, 8


def _sets(seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    ids = [f"{i:04d}" for i in range(N)]
    left = rng.standard_normal((N, 24), dtype=np.float32)
    right = left + rng.standard_normal((N, 24), dtype=np.float32)
    right[10] = right[11]                       # a tie in every row's distances
    generic = SimpleNamespace(key="generic/toy", kind="generic", ids=ids, left=left,
                              right=right, meta={"created": "g1"})

    def faces(d: int, stamp: str):
        counts = rng.integers(0, 3, N)          # 0 to 2 faces per image, faceless rows too
        offs = np.concatenate([[0], np.cumsum(counts)])
        lv = rng.standard_normal((offs[-1], d), dtype=np.float32)
        side = SimpleNamespace(vectors=lv, offsets=offs)
        other = SimpleNamespace(vectors=lv + 0.5 * rng.standard_normal(lv.shape, dtype=np.float32),
                                offsets=offs)
        return side, other, stamp

    fl, fr, _ = faces(128, "f1")
    gl, gr, _ = faces(24, "fg1")
    face = SimpleNamespace(key="face/dlib_hog", kind="face", ids=ids, left=fl, right=fr,
                           meta={"created": "f1"})
    face_generic = SimpleNamespace(key="face_generic/toy_dlib_hog", kind="face_generic",
                                   ids=ids, left=gl, right=gr, meta={"created": "fg1"})
    return {s.key: s for s in (generic, face, face_generic)}


def _tables(folder):
    return {name: (folder / name).read_bytes()
            for name in ("table1.csv", "table2a.csv", "votes.csv", "ranks.csv")}


def test_shard_rows_are_whole_chunks_covering_every_row_once():
    for n, chunk, k in ((50, 8, 3), (50, 8, 7), (50, 8, 10), (7, 1024, 2), (1024, 16, 5)):
        parts = [R.shard_rows(n, chunk, (i, k)) for i in range(1, k + 1)]
        assert parts[0][0] == 0 and parts[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        assert all(s % chunk == 0 and (e % chunk == 0 or e == n) for s, e in parts)
    with pytest.raises(ValueError):
        R.shard_rows(10, 2, (3, 2))
    with pytest.raises(ValueError, match="whole chunks"):
        R.match_stats(lambda rows: np.zeros((len(rows), 10)), 10, 4, part=(2, 6))


@pytest.mark.parametrize("tasks", [3, 7, 10])
def test_sharded_evaluation_equals_unsharded_byte_for_byte(tmp_path, tasks):
    sets = _sets()
    ids = sets["generic/toy"].ids
    votes = {pid: {"up": i % 7, "down": 1 + i % 3} for i, pid in enumerate(ids)}
    whole = E.evaluate_feature_sets(sets, ids, votes, chunk=CHUNK)
    E.write_evaluation(whole, tmp_path / "whole")
    for i in range(1, tasks + 1):
        E.evaluate_shard(sets, ids, (i, tasks), tmp_path / "shards", chunk=CHUNK)
    stats = E.merge_shards(sets, ids, tasks, tmp_path / "shards", chunk=CHUNK)
    for key, fs in sets.items():
        ref = E.set_stats(fs, ids, chunk=CHUNK)
        assert set(stats[key]) == set(ref)
        for field, a in ref.items():
            assert stats[key][field].dtype == a.dtype
            assert stats[key][field].tobytes() == a.tobytes(), (key, field)
    merged = E.evaluate_feature_sets(sets, ids, votes, chunk=CHUNK, stats=stats)
    E.write_evaluation(merged, tmp_path / "merged")
    assert _tables(tmp_path / "merged") == _tables(tmp_path / "whole")
    assert (merged.table1["R@1"] < 100).any()   # not a trivial all-hits case


def test_merge_refuses_missing_foreign_or_stale_shards(tmp_path):
    sets = _sets()
    ids = sets["generic/toy"].ids
    folder = tmp_path / "shards"
    for i in (1, 2):
        E.evaluate_shard(sets, ids, (i, 3), folder, chunk=CHUNK)
    with pytest.raises(E.ShardError, match="shard 3/3 missing"):
        E.merge_shards(sets, ids, 3, folder, chunk=CHUNK)
    E.evaluate_shard(sets, ids, (3, 3), folder, chunk=16)
    with pytest.raises(E.ShardError, match="chunk 16, not 8"):
        E.merge_shards(sets, ids, 3, folder, chunk=CHUNK)
    E.evaluate_shard(sets, ids, (3, 3), folder, chunk=CHUNK)
    assert len(E.merge_shards(sets, ids, 3, folder, chunk=CHUNK)["face/dlib_hog"]["own"]) == N
    sets["face/dlib_hog"].meta = {"created": "recomputed"}
    with pytest.raises(E.ShardError, match="other feature sets"):
        E.merge_shards(sets, ids, 3, folder, chunk=CHUNK)
    with pytest.raises(E.ShardError, match="other pairs"):
        E.merge_shards(sets, ids[::-1], 3, folder, chunk=CHUNK)


def test_cli_refuses_what_shards_cannot_do_with_one_line(demo_study, tmp_path):
    from tests.conftest import run_cli

    def fails(*args):
        proc = run_cli("experiments", "evaluate", str(demo_study), "--subset", "all",
                       "--out", str(tmp_path / "ev"), *args, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr.strip().splitlines()[-1]

    assert "shard 1/2 missing" in fails("--from-shards", "2")
    assert "--associative exact" in fails("--shard", "1/2", "--associative", "sampled")
    assert "--associative exact" in fails("--slurm", "--face-denominator", "notebook")
    assert "I must be between 1 and N" in fails("--shard", "3/2")
    assert "give one of the two" in fails("--shard", "1/2", "--from-shards", "2")
    assert not (tmp_path / "ev").exists() and not (demo_study / "slurm").exists()
