"""Retrieval maths on plain numpy arrays: distances, ranks of the true match, recall@k,
associative recall and the votes correlation (paper §3.2, §4.2).

Everything here is a pure function of arrays; nothing reads the store. A *distance
block* is a function ``block(rows) -> ndarray`` giving the distances from the left
images ``rows`` (an index array) to every right image; ranks and nearest neighbours are
computed block by block so memory stays about ``chunk x N`` whatever N is.

Tie rule. The rank of a left image's own right image is ``1 + (number of right images
strictly closer)`` when ties are counted in its favour (``optimistic``),
``(number strictly closer) + (number at the same distance, itself included)`` when they
count against it (``pessimistic``), and the average of the two (``mean``, the default:
the expected rank under a random tie break). A pair with an infinite own distance (a
face set where either side has no face) ties with every other infinite distance.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

TIE_RULES = ("optimistic", "pessimistic", "mean")
METRICS = ("cosine", "euclidean")
DEFAULT_KS = (1, 5, 10, 20, 50, 100)
DEFAULT_MS = (1, 2, 3, 4, 5, 10, 20, 50, 100)

DistanceBlock = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- distances
def _as_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def unit_rows(a: np.ndarray) -> np.ndarray:
    """Return ``a`` with every row scaled to unit L2 norm (zero rows stay zero)."""
    a = _as_float(a)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norms > 0, norms, 1)


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the ``len(a) x len(b)`` cosine distances ``1 - cos`` (one matmul; equals
    ``scipy.spatial.distance.cdist(a, b, 'cosine')`` up to rounding)."""
    return 1.0 - unit_rows(a) @ unit_rows(b).T


def euclidean_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the ``len(a) x len(b)`` Euclidean distances (matmul formulation, clipped
    at 0 before the square root so rounding never gives NaN)."""
    a, b = _as_float(a), _as_float(b)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0, out=sq), out=sq)


def distances(a: np.ndarray, b: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Return the ``len(a) x len(b)`` matrix of ``metric`` distances."""
    if metric == "cosine":
        return cosine_distances(a, b)
    if metric == "euclidean":
        return euclidean_distances(a, b)
    raise ValueError(f"unknown metric {metric!r} (use one of {', '.join(METRICS)})")


def generic_block(left: np.ndarray, right: np.ndarray, metric: str = "cosine") -> DistanceBlock:
    """Return a distance block for vector features: ``block(rows)`` gives the distances of
    ``left[rows]`` to every row of ``right``. Normalisation is done once, not per block."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (use one of {', '.join(METRICS)})")
    if metric == "cosine":
        ln, rn = unit_rows(left), unit_rows(right)
        rnt = np.ascontiguousarray(rn.T)
        return lambda rows: 1.0 - ln[rows] @ rnt
    lf, rf = _as_float(left), _as_float(right)
    rsq = (rf * rf).sum(1)
    rft = np.ascontiguousarray(rf.T)

    def block(rows: np.ndarray) -> np.ndarray:
        a = lf[rows]
        sq = (a * a).sum(1)[:, None] + rsq[None, :] - 2.0 * (a @ rft)
        return np.sqrt(np.maximum(sq, 0, out=sq), out=sq)
    return block


# --------------------------------------------------------------------------- face sets
def select_faces(vectors: np.ndarray, offsets: np.ndarray, images: Sequence[int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(vectors, offsets)`` of a face set restricted to ``images`` (in that
    order), in the store's layout: faces of image i are ``vectors[offsets[i]:offsets[i+1]]``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    images = np.asarray(images, dtype=np.int64)
    counts = offsets[images + 1] - offsets[images]
    new_offsets = np.zeros(len(images) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    if counts.sum() == 0:
        return np.zeros((0, vectors.shape[1]), dtype=vectors.dtype), new_offsets
    rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in images])
    return vectors[rows], new_offsets


def _segment_min(d: np.ndarray, offsets: np.ndarray, axis: int) -> np.ndarray:
    """Minimum of ``d`` over each image's segment of faces along ``axis``; +inf for
    images with no face."""
    counts = np.diff(offsets)
    n = len(counts)
    shape = list(d.shape)
    shape[axis] = n
    out = np.full(shape, np.inf, dtype=d.dtype)
    has = counts > 0
    if has.any() and d.shape[axis] > 0:
        # Empty segments in between have zero length, so consecutive starts of the
        # non-empty ones cut exactly each image's faces.
        red = np.minimum.reduceat(d, offsets[:-1][has], axis=axis)
        idx = [slice(None)] * d.ndim
        idx[axis] = has
        out[tuple(idx)] = red
    return out


def face_set_distances(left_vectors: np.ndarray, left_offsets: np.ndarray,
                       right_vectors: np.ndarray, right_offsets: np.ndarray,
                       metric: str = "euclidean") -> np.ndarray:
    """Return the ``N_left x N_right`` image distances of two face sets: the minimum over
    every (left face, right face) pair, +inf where either image has no face."""
    nl, nr = len(left_offsets) - 1, len(right_offsets) - 1
    if len(left_vectors) == 0 or len(right_vectors) == 0:
        return np.full((nl, nr), np.inf)
    d = distances(left_vectors, right_vectors, metric)
    return _segment_min(_segment_min(d, np.asarray(left_offsets), 0), np.asarray(right_offsets), 1)


def face_block(left_vectors: np.ndarray, left_offsets: np.ndarray,
               right_vectors: np.ndarray, right_offsets: np.ndarray,
               metric: str = "euclidean") -> DistanceBlock:
    """Return a distance block for face sets (set minimum, +inf without a face)."""
    def block(rows: np.ndarray) -> np.ndarray:
        v, o = select_faces(left_vectors, left_offsets, rows)
        return face_set_distances(v, o, right_vectors, right_offsets, metric)
    return block


def set_distance(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    """Return the minimum distance between two sets of vectors (+inf if one is empty)."""
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    return float(distances(np.atleast_2d(a), np.atleast_2d(b), metric).min())


# --------------------------------------------------------------------------- ranks
def _chunks(n: int, chunk: int, first: int = 0, stop: int | None = None) -> Iterable[np.ndarray]:
    stop = n if stop is None else stop
    for start in range(first, stop, chunk):
        yield np.arange(start, min(start + chunk, stop))


def shard_rows(n: int, chunk: int, shard: tuple[int, int]) -> tuple[int, int]:
    """Return ``(start, stop)``, the query rows of shard ``(i, k)`` (1-based i of k) of n
    rows: whole row chunks of ``chunk`` rows, the chunks shared out as evenly as they
    go, so each shard computes exactly the blocks an unsharded pass computes for its rows
    (a shard past the number of chunks is empty)."""
    i, k = shard
    if not 1 <= i <= k:
        raise ValueError(f"shard {i}/{k}: I must be between 1 and N")
    chunks = -(-n // chunk)
    return min(n, (i - 1) * chunks // k * chunk), min(n, i * chunks // k * chunk)


def _part(n: int, chunk: int, part: tuple[int, int] | None) -> tuple[int, int]:
    start, stop = part or (0, n)
    if not (0 <= start <= stop <= n and start % chunk == 0 and (stop % chunk == 0 or stop == n)):
        raise ValueError(f"rows {start}:{stop} are not whole chunks of {chunk} of {n} rows")
    return start, stop


def match_stats(block: DistanceBlock, n: int, chunk: int = 1024,
                true_cols: np.ndarray | None = None, part: tuple[int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(closer, ties, own)`` per left image from one pass over ``block``: how many
    right images are strictly closer than its true match, how many others lie at exactly
    the same distance, and the distance to the true match itself (right ``true_cols[i]``,
    default ``i``). NaN counts as +inf. Rows are processed ``chunk`` at a time; no row is
    ever sorted. ``part`` ``(start, stop)`` (whole chunks, see `shard_rows`): only those
    query rows, the arrays then of length ``stop - start``."""
    true_cols = np.arange(n) if true_cols is None else np.asarray(true_cols)
    start, stop = _part(n, chunk, part)
    closer = np.empty(stop - start, dtype=np.int64)
    ties = np.empty(stop - start, dtype=np.int64)
    own_all = np.empty(stop - start, dtype=np.float64)
    for rows in _chunks(n, chunk, start, stop):
        d = block(rows)
        d = np.where(np.isnan(d), np.inf, d) if np.isnan(d).any() else d
        own = d[np.arange(len(rows)), true_cols[rows]][:, None]
        at = rows - start
        closer[at] = np.count_nonzero(d < own, axis=1)
        ties[at] = np.count_nonzero(d == own, axis=1) - 1
        own_all[at] = own[:, 0]
    return closer, ties, own_all


def tie_counts(block: DistanceBlock, n: int, chunk: int = 1024,
               true_cols: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(closer, ties)`` per left image: how many right images are strictly
    closer than its true match and how many others lie at exactly the same distance
    (see `match_stats`)."""
    closer, ties, _ = match_stats(block, n, chunk, true_cols)
    return closer, ties


def auto_chunk(n: int, budget: int = 16_000_000) -> int:
    """Return a row-chunk size that keeps one ``chunk x n`` float block near ``budget``
    elements (64 MB of float32), between 16 and 1024 rows."""
    return int(min(1024, max(16, budget // max(n, 1))))


def _unit_copy(a: np.ndarray, rows: np.ndarray | None = None, block: int = 8192
               ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(copy of a[rows] with unit rows, the rows' norms)`` making one array of
    that size (norms taken block by block, so no temporary as large as ``a``; row for
    row the same arithmetic as `unit_rows`)."""
    src = np.asarray(a)
    out = np.array(src if rows is None else src[rows], copy=True)
    if out.dtype not in (np.float32, np.float64):
        out = out.astype(np.float64)
    norms = np.empty(len(out), dtype=out.dtype)
    for s in range(0, len(out), block):
        norms[s:s + block] = np.linalg.norm(out[s:s + block], axis=1)
    out /= np.where(norms > 0, norms, 1)[:, None]
    return out, norms


def generic_match_stats(left: np.ndarray, right: np.ndarray, chunk: int | None = None,
                        euclidean: bool = True, rows: np.ndarray | None = None,
                        part: tuple[int, int] | None = None
                        ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return ``{metric: (closer, ties, own)}`` (see `match_stats`) for vector features,
    row i of ``left[rows]`` pairing with row i of ``right[rows]`` (``rows`` default: all;
    the arrays may be read-only memory maps), for cosine and (``euclidean``) Euclidean
    distance from ONE matrix product per row chunk: the cosine block is ``1 - l̂ r̂ᵀ`` as
    in `generic_block`, and the squared Euclidean distance ``|l|² + |r|² - 2 |l| |r| l̂·r̂``
    reuses it (squares rank like distances). Memory: one unit-row copy per side plus a
    few ``chunk x N`` blocks (`auto_chunk`: about 64 MB each). ``part`` ``(start,
    stop)``: only those query rows (whole chunks, see `shard_rows`), the same numbers as
    the whole pass gives them; only those rows of the left side are copied."""
    rn, rnorm = _unit_copy(right, rows)
    n = len(rn)
    chunk = chunk or auto_chunk(n)
    start, stop = _part(n, chunk, part)
    if part is None:
        ln, lnorm = _unit_copy(left, rows)
    else:  # norms are taken row by row: a slice's unit rows are the whole copy's
        ln, lnorm = _unit_copy(left, np.arange(start, stop) if rows is None
                               else np.asarray(rows)[start:stop])
    rnt = rn.T                 # BLAS takes the transposed operand as is: no copy
    metrics = ("cosine", "euclidean") if euclidean else ("cosine",)
    out = {m: (np.empty(stop - start, np.int64), np.empty(stop - start, np.int64),
               np.empty(stop - start, np.float64)) for m in metrics}
    rsq = rnorm * rnorm
    for rws in _chunks(n, chunk, start, stop):
        at = rws - start
        sim = ln[at] @ rnt
        r = np.arange(len(rws))
        for m in metrics:
            if m == "cosine":
                d = np.subtract(1.0, sim, dtype=sim.dtype)
            else:  # in place: one chunk-sized temporary
                ln_r = lnorm[at][:, None]
                d = np.multiply(sim, -2 * ln_r)
                d *= rnorm[None, :]
                d += rsq[None, :]
                d += ln_r * ln_r
            own = d[r, rws][:, None]
            closer, ties, dist = out[m]
            closer[at] = np.count_nonzero(d < own, axis=1)
            ties[at] = np.count_nonzero(d == own, axis=1) - 1
            dist[at] = own[:, 0]
            del d
        del sim
    if euclidean:  # squared above; report the distance itself
        out["euclidean"][2][:] = np.sqrt(np.maximum(out["euclidean"][2], 0))
    return out


def ranks_from_counts(closer: np.ndarray, ties: np.ndarray, rule: str = "mean") -> np.ndarray:
    """Return 1-based ranks (float) from strictly-closer and tie counts under ``rule``."""
    closer = np.asarray(closer, dtype=np.float64)
    ties = np.asarray(ties, dtype=np.float64)
    if rule == "optimistic":
        return closer + 1
    if rule == "pessimistic":
        return closer + 1 + ties
    if rule == "mean":
        return closer + 1 + ties / 2
    raise ValueError(f"unknown tie rule {rule!r} (use one of {', '.join(TIE_RULES)})")


def true_match_ranks(block: DistanceBlock, n: int, ties: str = "mean",
                     chunk: int = 1024) -> np.ndarray:
    """Return the 1-based rank of each left image's own right image among the ``n``
    right images of ``block`` (see the module docstring for the tie rule)."""
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r} (use one of {', '.join(TIE_RULES)})")
    closer, equal = tie_counts(block, n, chunk)
    return ranks_from_counts(closer, equal, ties)


def feature_ranks(left: np.ndarray, right: np.ndarray, metric: str = "cosine",
                  ties: str = "mean", chunk: int = 1024) -> np.ndarray:
    """Return the true-match ranks for vector features (row i of ``left`` pairs with
    row i of ``right``)."""
    return true_match_ranks(generic_block(left, right, metric), len(left), ties, chunk)


def nearest_other(block: DistanceBlock, n: int, chunk: int = 1024,
                  exclude_diagonal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(index, distance)`` of each left row's nearest right column, the column
    with the same index excluded when ``exclude_diagonal`` (used for near-duplicates)."""
    idx = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float64)
    for rows in _chunks(n, chunk):
        d = np.array(block(rows), dtype=np.float64)
        if exclude_diagonal:
            d[np.arange(len(rows)), rows] = np.inf
        if d.shape[1] == 0:
            idx[rows], dist[rows] = -1, np.inf
            continue
        j = np.argmin(d, axis=1)
        idx[rows] = j
        dist[rows] = d[np.arange(len(rows)), j]
    return idx, dist


def pair_distances(block: DistanceBlock, n: int, chunk: int = 1024) -> np.ndarray:
    """Return the distance of each left image to its own right image."""
    out = np.empty(n, dtype=np.float64)
    for rows in _chunks(n, chunk):
        out[rows] = block(rows)[np.arange(len(rows)), rows]
    return out


# --------------------------------------------------------------------------- recall
def recall_at_k(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[int, float]:
    """Return ``{k: share of queries whose true match has rank <= k}`` (0..1)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        return {int(k): float("nan") for k in ks}
    return {int(k): float(np.count_nonzero(ranks <= k)) / len(ranks) for k in ks}


def recall_curve(ranks: np.ndarray, n: int | None = None) -> np.ndarray:
    """Return recall@k for k = 1..n (n defaults to the number of queries) as an array
    whose element ``k-1`` is recall@k."""
    ranks = np.asarray(ranks, dtype=np.float64)
    n = len(ranks) if n is None else n
    if len(ranks) == 0:
        return np.full(n, np.nan)
    # floor(rank) <= k  <=>  rank <= k for integer k; fractional mean ranks count at ceil.
    hist = np.bincount(np.clip(np.ceil(ranks).astype(np.int64), 1, n + 1), minlength=n + 2)
    return np.cumsum(hist[1:n + 1]) / len(ranks)


def cosine_minus_euclidean_curve(left: np.ndarray, right: np.ndarray, ties: str = "mean",
                                 chunk: int = 1024) -> np.ndarray:
    """Return recall@k(cosine) - recall@k(Euclidean) for k = 1..N (paper Fig. 2a)."""
    n = len(left)
    cos = recall_curve(feature_ranks(left, right, "cosine", ties, chunk), n)
    euc = recall_curve(feature_ranks(left, right, "euclidean", ties, chunk), n)
    return cos - euc


def associative_recall(block: DistanceBlock, n: int, ms: Iterable[int] = DEFAULT_MS,
                       repetitions: int = 10, seed: int = 0, ties: str = "mean",
                       chunk: int = 512, queries: np.ndarray | None = None) -> dict[int, float]:
    """Return ``{m: share correct}`` of associative recall (paper Table 2a) by sampling,
    as the authors' notebook did: for each left image a random set of ``m`` right images
    that includes its own; correct when its own is the nearest of the set (ties split by
    ``ties``). Averaged over ``repetitions`` and over the left images where ``queries``
    (a bool mask; default all) is true. Values of ``m`` above ``n`` are left out.
    Deterministic for a given seed and chunk. `associative_recall_exact` gives the
    expectation of this without sampling."""
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r} (use one of {', '.join(TIE_RULES)})")
    ms = sorted({int(m) for m in ms if 1 <= int(m) <= n})
    if not ms:
        return {}
    rng = np.random.default_rng(seed)
    weight = np.ones(n) if queries is None else np.asarray(queries, dtype=np.float64)
    kmax = ms[-1] - 1
    score = {m: 0.0 for m in ms}
    for rows in _chunks(n, chunk):
        d = block(rows)
        d = np.where(np.isnan(d), np.inf, d)
        r = np.arange(len(rows))
        own = d[r, rows][:, None]
        for _ in range(repetitions):
            if kmax == 0:
                closer = np.zeros((len(rows), 0))
                equal = closer
            else:
                # The first kmax entries of a random permutation of the others: every m
                # uses a prefix, so one draw serves all m (sets are nested, like drawing
                # distractors one at a time).
                keys = rng.random((len(rows), d.shape[1]))
                keys[r, rows] = np.inf
                part = np.argpartition(keys, kmax - 1, axis=1)[:, :kmax]
                order = np.argsort(np.take_along_axis(keys, part, 1), axis=1)
                picked = np.take_along_axis(part, order, 1)
                dd = np.take_along_axis(d, picked, 1)
                closer = np.cumsum(dd < own, axis=1)
                equal = np.cumsum(dd == own, axis=1)
            for m in ms:
                if m == 1:
                    score[m] += float(weight[rows].sum())
                    continue
                c, e = closer[:, m - 2], equal[:, m - 2]
                if ties == "optimistic":
                    ok = (c == 0).astype(float)
                elif ties == "pessimistic":
                    ok = ((c == 0) & (e == 0)).astype(float)
                else:
                    ok = np.where(c == 0, 1.0 / (1.0 + e), 0.0)
                score[m] += float((ok * weight[rows]).sum())
    total = weight.sum() * repetitions
    return {m: (score[m] / total if total else float("nan")) for m in ms}


def _log_comb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log C(a, b) elementwise, -inf where b < 0 or b > a (no way to choose)."""
    from scipy.special import gammaln

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = (b >= 0) & (b <= a)
    aa, bb = np.where(ok, a, 0.0), np.where(ok, b, 0.0)
    return np.where(ok, gammaln(aa + 1) - gammaln(bb + 1) - gammaln(aa - bb + 1), -np.inf)


def associative_recall_exact(closer: np.ndarray, ties: np.ndarray, n: int,
                             ms: Iterable[int] = DEFAULT_MS, rule: str = "mean"
                             ) -> dict[int, np.ndarray]:
    """Return ``{m: chance per query}`` of associative recall computed exactly from the
    ranks, in closed form. A query with ``k`` right images strictly closer than its own
    and ``t`` at the same distance, among ``n``, draws ``m - 1`` of the ``n - 1`` others
    at random: it is correct with chance C(n-1-k, m-1) / C(n-1, m-1) (``optimistic``),
    C(n-1-k-t, m-1) / C(n-1, m-1) (``pessimistic``), and, ``mean``, the average of the
    pessimistic chance over the t+1 places of a random tie break, which the hockey-stick
    identity sums to [C(n-k, m) - C(n-1-k-t, m)] / ((t+1) C(n-1, m-1)). Binomials are
    taken in logs (scipy.special.gammaln), so n = 100,000 is no problem. Values of m
    above n are left out."""
    if rule not in TIE_RULES:
        raise ValueError(f"unknown tie rule {rule!r} (use one of {', '.join(TIE_RULES)})")
    k = np.asarray(closer, dtype=np.float64)
    t = np.asarray(ties, dtype=np.float64)
    out: dict[int, np.ndarray] = {}
    for m in sorted({int(m) for m in ms if 1 <= int(m) <= n}):
        if m == 1:
            out[m] = np.ones(len(k))
            continue
        denom = _log_comb(n - 1, m - 1)
        opt = np.exp(_log_comb(n - 1 - k, m - 1) - denom)
        if rule == "optimistic":
            out[m] = opt
        elif rule == "pessimistic":
            out[m] = np.exp(_log_comb(n - 1 - k - t, m - 1) - denom)
        else:
            hi = np.exp(_log_comb(n - k, m) - denom)
            lo = np.exp(_log_comb(n - 1 - k - t, m) - denom)
            out[m] = np.where(t == 0, opt, (hi - lo) / (t + 1))
    return out


# --------------------------------------------------------------------------- votes
def votes_correlation(up: np.ndarray, down: np.ndarray, distance: np.ndarray) -> dict:
    """Return Pearson and Spearman correlations (with two-sided p-values) of up-votes and
    down-votes against each pair's distance, over pairs where all three are finite:
    ``{"n": .., "up": {"pearson_r", "pearson_p", "spearman_r", "spearman_p"}, "down": {...}}``."""
    from scipy import stats

    up = np.asarray(up, dtype=np.float64)
    down = np.asarray(down, dtype=np.float64)
    distance = np.asarray(distance, dtype=np.float64)
    ok = np.isfinite(up) & np.isfinite(down) & np.isfinite(distance)
    out: dict = {"n": int(ok.sum())}
    for name, v in (("up", up), ("down", down)):
        x, y = v[ok], distance[ok]
        if ok.sum() < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            out[name] = {"pearson_r": float("nan"), "pearson_p": float("nan"),
                         "spearman_r": float("nan"), "spearman_p": float("nan")}
            continue
        pr = stats.pearsonr(x, y)
        sr = stats.spearmanr(x, y)
        out[name] = {"pearson_r": float(pr.statistic), "pearson_p": float(pr.pvalue),
                     "spearman_r": float(sr.statistic), "spearman_p": float(sr.pvalue)}
    return out
