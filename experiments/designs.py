"""Designs: which conditions, on which subsets, how many trials, how trials group into
HITs, catch trials, and the build of an experiment from a study.

``paper``: TLL_obj x {random, generic} and TLL_d x {random, face, face_generic, generic},
20 trials each (120 pairs, none used twice), one trial per HIT, no catch trials.

``custom``: a JSON spec::

    {"name": "pilot",
     "conditions": [{"condition": "random", "subset": "TLL_d", "count": 10}, ...],
     "trials_per_hit": 1,        # or K: blocks of K trials per HIT
     "catch_trials": 0,          # trials whose candidates include the query itself
     "disjoint": true,           # no pair is the query of two trials (default)
     "feature_sets": {"generic": "generic/densenet121"}}   # optional overrides

``subset`` is a subset name (``all``, ``TLL_d``, ...) or the path of a file of pair ids.

Randomness: every draw comes from ``numpy.random.default_rng([seed, stage])``: queries
(stage 1, the conditions with the fewest eligible pairs first, so a disjoint design
fits when it can), candidates and display order (stage 2, in design order), trial order
and catch-trial places (stage 3), and the true image's display position in each cell
(stage 5 and the cell's index: every position equally often, the remainder at distinct
random positions). Trials are shuffled across conditions before they are
cut into HITs; catch trials (condition ``catch``, subset of the first condition) take
random places among them.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from experiments import conditions, distractors, retrieval
from experiments import distance_sources as ds
from experiments import experiment_file as ef
from experiments.manifest import file_sha256

DESIGNS = ("paper", "custom")
# The paper's six cells (§4.3), subset -> conditions, in the order of Table 2b.
PAPER_CELLS = {"TLL_obj": ("random", "generic"),
               "TLL_d": ("random", "face", "face_generic", "generic")}


class DesignError(Exception):
    """A design cannot be built from this study; one line per problem."""


@dataclass(frozen=True)
class ConditionSpec:
    """One sub-experiment: ``count`` trials of ``condition`` on ``subset``."""

    condition: str
    subset: str
    count: int


@dataclass
class Design:
    """What to build: the sub-experiments, HIT grouping, catch trials, feature overrides."""

    name: str
    conditions: list[ConditionSpec]
    trials_per_hit: int = 1
    catch_trials: int = 0
    disjoint: bool = True
    feature_sets: dict[str, str] = field(default_factory=dict)

    def to_json(self, feature_sets: dict[str, str]) -> dict:
        """Return the design as the experiment file records it (with resolved keys)."""
        return {"name": self.name,
                "conditions": [{"condition": c.condition, "subset": c.subset, "count": c.count}
                               for c in self.conditions],
                "trials_per_hit": self.trials_per_hit, "catch_trials": self.catch_trials,
                "disjoint": self.disjoint, "feature_sets": dict(sorted(feature_sets.items()))}


def paper_design(per_condition: int = 20) -> Design:
    """Return the design of paper §4.3: its six cells (subset x condition) with
    ``per_condition`` trials each (the paper's 20: 120 pairs), one trial per HIT."""
    if not isinstance(per_condition, int) or isinstance(per_condition, bool) or per_condition < 1:
        raise DesignError(f"--per-condition must be a positive integer, not {per_condition!r}")
    conds = [ConditionSpec(c, subset, per_condition)
             for subset, names in PAPER_CELLS.items() for c in names]
    return Design("paper", conds)


def design_from_spec(spec: dict, where: str = "spec") -> Design:
    """Return the Design of a custom JSON spec; raise DesignError listing every problem."""
    problems: list[str] = []
    if not isinstance(spec, dict):
        raise DesignError(f"{where}: a design spec is a JSON object with `conditions`")
    conds = spec.get("conditions")
    if not isinstance(conds, list) or not conds:
        problems.append(f"{where}: `conditions` must be a non-empty list of "
                        "{condition, subset, count}")
        conds = []
    out: list[ConditionSpec] = []
    for i, c in enumerate(conds):
        if not isinstance(c, dict):
            problems.append(f"{where}: conditions[{i}] is not an object")
            continue
        cond, subset, count = c.get("condition"), c.get("subset", "all"), c.get("count")
        try:
            conditions.get(cond)
        except conditions.UnknownConditionError as exc:
            problems.append(f"{where}: conditions[{i}]: {exc}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            problems.append(f"{where}: conditions[{i}]: count must be a positive integer")
        if not isinstance(subset, str) or not subset:
            problems.append(f"{where}: conditions[{i}]: subset must be a name or a path")
        out.append(ConditionSpec(str(cond), str(subset), count if isinstance(count, int) else 0))
    tph, catch = spec.get("trials_per_hit", 1), spec.get("catch_trials", 0)
    if not isinstance(tph, int) or isinstance(tph, bool) or tph < 1:
        problems.append(f"{where}: trials_per_hit must be a positive integer")
    if not isinstance(catch, int) or isinstance(catch, bool) or catch < 0:
        problems.append(f"{where}: catch_trials must be a non-negative integer")
    fsets = spec.get("feature_sets", {}) or {}
    if not isinstance(fsets, dict) or any(k not in conditions.FEATURE_CONDITIONS for k in fsets):
        problems.append(f"{where}: feature_sets maps {'/'.join(conditions.FEATURE_CONDITIONS)} "
                        "to store keys")
        fsets = {}
    for cond, key in fsets.items():
        kind = conditions.get(cond).feature_kind
        if not str(key).startswith(kind + "/"):
            problems.append(f"{where}: feature_sets.{cond} must be a {kind}/... key")
    if problems:
        raise DesignError("\n".join(problems))
    return Design(str(spec.get("name", "custom")), out, tph, catch,
                  bool(spec.get("disjoint", True)), {k: str(v) for k, v in fsets.items()})


def load_design(kind: str, spec_path: str | None, per_condition: int | None = None) -> Design:
    """Return the paper design (``per_condition`` trials per cell, default the paper's
    20), or the custom design read from ``spec_path``."""
    if kind == "paper":
        if spec_path:
            raise DesignError("--spec is for --design custom; the paper design has no spec")
        return paper_design(20 if per_condition is None else per_condition)
    if kind != "custom":
        raise DesignError(f"unknown design {kind!r} (use paper or custom)")
    if per_condition is not None:
        raise DesignError("--per-condition is for --design paper; a custom spec gives each "
                          "condition its own count")
    if not spec_path:
        raise DesignError("--design custom needs --spec FILE (a JSON design spec)")
    try:
        spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DesignError(f"{spec_path}: cannot read the design spec ({exc})") from None
    return design_from_spec(spec, str(spec_path))


# --------------------------------------------------------------------------- building
def resolve_feature_sets(design: Design, keys: Sequence[str],
                         generic_model: str | None = None) -> dict[str, str]:
    """Return ``{condition: feature-set key}`` for the feature conditions of ``design``,
    from its overrides or the store's defaults; raise DesignError naming the `features`
    command for what is missing."""
    used = {c.condition for c in design.conditions if conditions.get(c.condition).uses_features}
    out: dict[str, str] = {}
    problems: list[str] = []
    for cond in sorted(used):
        kind = conditions.get(cond).feature_kind
        try:
            if cond in design.feature_sets:
                key = design.feature_sets[cond]
                if key not in keys:
                    raise ds.FeatureAccessError(ds.missing_set(keys, key))
            else:
                key = ds.default_key(kind, keys, generic_model)
            out[cond] = key
        except ds.FeatureAccessError as exc:
            problems.append(f"condition {cond}: {exc}")
    if problems:
        raise DesignError("\n".join(problems))
    return out


def eligible_queries(condition: str, subset_ids: Sequence[str], fs) -> list[str]:
    """Return the pairs of a subset that can be queries of ``condition``: all for random
    and generic; for face kinds, pairs whose own distance is finite (a face both sides)."""
    if not conditions.get(condition).needs_faces or fs is None:
        return list(subset_ids)
    rows = ds.rows_for(fs, subset_ids)
    ok = ds.has_feature(fs, "left", rows) & ds.has_feature(fs, "right", rows)
    return [pid for pid, k in zip(subset_ids, ok) if k]


def _cell(spec: ConditionSpec) -> str:
    return f"condition {spec.condition} on {spec.subset}"


def _flow(design: Design, eligible: list[list[str]], pairs: list[str]):
    """Maximum flow from the cells (capacity: their counts) through their suitable pairs
    (capacity 1, in the order of ``pairs``) to a sink: the most trials that can get a
    distinct query at once, and one assignment that reaches it."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    col = {p: i for i, p in enumerate(pairs)}
    n_cells = len(design.conditions)
    source, sink = 0, 1 + n_cells + len(pairs)
    rows, cols, caps = [], [], []
    for i, (spec, el) in enumerate(zip(design.conditions, eligible), start=1):
        rows.append(source)
        cols.append(i)
        caps.append(spec.count)
        for p in el:
            rows.append(i)
            cols.append(1 + n_cells + col[p])
            caps.append(1)
    for j in range(len(pairs)):
        rows.append(1 + n_cells + j)
        cols.append(sink)
        caps.append(1)
    graph = csr_matrix((np.asarray(caps, dtype=np.int32), (rows, cols)),
                       shape=(sink + 1, sink + 1))
    result = maximum_flow(graph, source, sink)
    flow = result.flow.tocsr()
    assigned = [[pairs[j - 1 - n_cells] for j, f in zip(flow[i].indices, flow[i].data)
                 if f > 0 and j > n_cells] for i in range(1, n_cells + 1)]
    return int(result.flow_value), assigned


def max_distinct_queries(design: Design, eligible: list[list[str]]) -> int:
    """Return the most trials of ``design`` that can get a query at once: with
    ``disjoint`` no pair may serve two trials, so this is a maximum flow from the cells
    (capacity: their counts) through their suitable pairs (capacity 1) to the sink."""
    if not design.disjoint:
        return sum(min(c.count, len(e)) for c, e in zip(design.conditions, eligible))
    return _flow(design, eligible, sorted({p for e in eligible for p in e}))[0]


def shortfall(design: Design, eligible: list[list[str]]) -> str:
    """Return the refusal of a design that cannot be built: per cell the suitable pairs of
    its subset and the trials needed, then (no pair used twice) how many distinct pairs
    the cells need together and the most their subsets can give."""
    lines = []
    for spec, el in zip(design.conditions, eligible):
        extra = " with a face on both sides" if conditions.get(spec.condition).needs_faces else ""
        short = f": short by {spec.count - len(el)}" if len(el) < spec.count else ""
        lines.append(f"{_cell(spec)}: {len(el)} suitable pairs{extra}, {spec.count} needed{short}")
    need = sum(c.count for c in design.conditions)
    most = max_distinct_queries(design, eligible)
    if design.disjoint and most < need:
        lines.append(f"together the cells need {need} distinct pairs (no pair is the query "
                     f"of two trials) and their subsets can give at most {most}: "
                     f"short by {need - most}")
    return "\n".join(lines)


def select_queries(design: Design, eligible: list[list[str]], seed: int) -> list[list[str]]:
    """Return the query pairs of each condition (same order as ``design.conditions``);
    raise DesignError with the ``shortfall`` (per cell: suitable pairs, needed) when
    they cannot all be filled.

    Each cell draws at random from the suitable pairs the cells before it left (fewest
    suitable pairs first). When that draw leaves a cell short although distinct queries
    for every trial exist (cells sharing pairs), a maximum flow over the pairs in a
    seeded random order assigns them instead."""
    if any(len(e) < c.count for c, e in zip(design.conditions, eligible)):
        raise DesignError(shortfall(design, eligible))
    rng = np.random.default_rng([seed, 1])
    order = sorted(range(len(design.conditions)), key=lambda i: (len(eligible[i]), i))
    used: set[str] = set()
    chosen: list[list[str]] = [[] for _ in design.conditions]
    for i in order:
        spec = design.conditions[i]
        avail = [p for p in eligible[i] if not (design.disjoint and p in used)]
        if len(avail) < spec.count:
            return _select_by_flow(design, eligible, seed)
        pick = sorted(rng.choice(len(avail), spec.count, replace=False).tolist())
        chosen[i] = [avail[j] for j in pick]
        used.update(chosen[i])
    return chosen


def _select_by_flow(design: Design, eligible: list[list[str]], seed: int) -> list[list[str]]:
    pairs = sorted({p for e in eligible for p in e})
    shuffled = [pairs[i] for i in np.random.default_rng([seed, 4]).permutation(len(pairs))]
    value, assigned = _flow(design, eligible, shuffled)
    if value < sum(c.count for c in design.conditions):
        raise DesignError(shortfall(design, eligible))
    # in the subset's order, like a draw
    return [[p for p in el if p in set(got)] for el, got in zip(eligible, assigned)]


def _machine_choices(feature_sets: dict, rows: dict, query: str,
                     candidates: Sequence[tuple[str, str]]) -> dict:
    """``{key: position}`` of the candidate nearest the query for every feature set."""
    out = {}
    for key, fs in feature_sets.items():
        metric = ds.default_metric(fs.kind)
        q = ds.image_vectors(fs, "left", rows[key][query])
        d = [retrieval.set_distance(q, ds.image_vectors(fs, side, rows[key][pid]), metric)
             for pid, side in candidates]
        out[key] = distractors.machine_choice(d)
    return out


def build_trials(design: Design, seed: int, subsets: dict[str, list[str]],
                 feature_sets: dict, condition_keys: dict[str, str],
                 content_keys: dict[tuple[str, str], str]) -> tuple[list[dict], list[dict]]:
    """Return ``(trials, hits)`` of the experiment file.

    ``subsets``: subset name -> pair ids (manifest order); ``feature_sets``: every feature
    set of the store by key; ``condition_keys``: the feature set of each feature
    condition; ``content_keys``: (pair, side) -> content hash, so that no image appears
    twice among a trial's candidates."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise DesignError(f"the seed must be a non-negative integer (0, 1, 2, ...), not {seed!r}")
    all_ids = sorted({p for ids in subsets.values() for p in ids})
    rows = {key: dict(zip(all_ids, ds.rows_for(fs, all_ids).tolist()))
            for key, fs in feature_sets.items()}
    eligible, problems = [], []
    for spec in design.conditions:
        fs = feature_sets.get(condition_keys.get(spec.condition, ""))
        el = eligible_queries(spec.condition, subsets[spec.subset], fs)
        if conditions.get(spec.condition).needs_faces and not el:
            problems.append(f"condition {spec.condition} on {spec.subset}: no pair of the subset "
                            f"has a face on both sides in {fs.key}; a face condition needs faces")
        if len(subsets[spec.subset]) < distractors.N_CANDIDATES:
            problems.append(f"subset {spec.subset} holds {len(subsets[spec.subset])} pairs; "
                            f"a trial needs {distractors.N_CANDIDATES} candidates")
        eligible.append(el)
    if problems:
        raise DesignError("\n".join(problems))
    queries = select_queries(design, eligible, seed)

    rng = np.random.default_rng([seed, 2])
    trials: list[dict] = []
    for cell, (spec, qs) in enumerate(zip(design.conditions, queries)):
        places = distractors.balanced_positions(len(qs), np.random.default_rng([seed, 5, cell]))
        pool = subsets[spec.subset]
        col = {p: j for j, p in enumerate(pool)}
        keys = [content_keys[(p, "right")] for p in pool]
        dist = None
        if conditions.get(spec.condition).uses_features:
            key = condition_keys[spec.condition]
            fs = feature_sets[key]
            block = ds.block_for(fs, ds.rows_for(fs, qs), ds.rows_for(fs, pool))
            dist = block(np.arange(len(qs))) if qs else None
        for i, q in enumerate(qs):
            try:
                shown, true_index = distractors.choose_candidates(
                    spec.condition, len(pool), col[q], rng,
                    None if dist is None else dist[i], keys, true_position=places[i])
            except distractors.DistractorError as exc:
                raise DesignError(f"condition {spec.condition} on {spec.subset}: {exc}") from None
            cands = [(pool[j], "right") for j in shown]
            trials.append(_trial(spec, q, cands, true_index, False,
                                 condition_keys.get(spec.condition), feature_sets, rows))

    rng_order = np.random.default_rng([seed, 3])
    trials = [trials[i] for i in rng_order.permutation(len(trials))]
    if design.catch_trials:
        trials = _insert_catch(design, trials, subsets, queries, feature_sets, rows,
                               content_keys, rng_order)
    for n, t in enumerate(trials, 1):
        t["id"] = f"t{n:04d}"
    k = design.trials_per_hit
    hits = [{"id": f"h{n:04d}", "trials": [t["id"] for t in trials[s:s + k]]}
            for n, s in enumerate(range(0, len(trials), k), 1)]
    return trials, hits


def _trial(spec: ConditionSpec, query: str, cands: list[tuple[str, str]], true_index: int,
           catch: bool, key: str | None, feature_sets: dict, rows: dict) -> dict:
    return {"id": "", "condition": conditions.CATCH if catch else spec.condition, "subset": spec.subset,
            "pair": query, "query": ef.image_id(query, "left"),
            "candidates": [ef.image_id(p, s) for p, s in cands], "true_index": true_index,
            "catch": catch, "feature_set": key,
            "machine_choices": _machine_choices(feature_sets, rows, query, cands)}


def _insert_catch(design, trials, subsets, queries, feature_sets, rows, content_keys, rng):
    """Put ``design.catch_trials`` attention checks at random places: the query image
    itself among four random right images of the first condition's subset."""
    spec = design.conditions[0]
    pool = subsets[spec.subset]
    used = {p for qs in queries for p in qs}
    fresh = [p for p in pool if p not in used] or list(pool)
    picks = [fresh[i] for i in rng.choice(len(fresh), design.catch_trials,
                                          replace=design.catch_trials > len(fresh))]
    col = {p: j for j, p in enumerate(pool)}
    catch = []
    for q in picks:
        keys = [content_keys[(p, "right")] for p in pool]
        keys[col[q]] = content_keys[(q, "left")]
        cands = distractors.random_candidates(len(pool), col[q], rng, keys)
        shown, true_index = distractors.shuffle_display(cands, col[q], rng)
        pairs = [(q, "left") if j == col[q] else (pool[j], "right") for j in shown]
        catch.append(_trial(spec, q, pairs, true_index, True, None, feature_sets, rows))
    total = len(trials) + len(catch)
    places = set(rng.choice(total, len(catch), replace=False).tolist())
    out, it_r, it_c = [], iter(trials), iter(catch)
    for pos in range(total):
        out.append(next(it_c) if pos in places else next(it_r))
    return out


# --------------------------------------------------------------------------- from a study
def build_experiment(workdir: str | os.PathLike, design: Design, seed: int,
                     out: str | os.PathLike, generic_model: str | None = None,
                     sha256_of: Callable[[Path], str] = file_sha256) -> dict:
    """Build the experiment document of ``design`` from a study (manifest, store,
    subsets) with ``seed``; nothing is written. Raise DesignError (or the store's,
    manifest's or subsets' errors) on bad input."""
    from experiments.manifest import load_manifest
    from experiments.store import FeatureStore
    from experiments.subsets import load_subset

    workdir = Path(workdir)
    manifest = load_manifest(workdir)
    store = FeatureStore(workdir)
    keys = store.keys()
    condition_keys = resolve_feature_sets(design, keys, generic_model)
    subsets: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for spec in design.conditions:
        if spec.subset not in names:
            names[spec.subset], ids = load_subset(workdir, spec.subset, manifest.ids)
            subsets[names[spec.subset]] = ids
    # A subset given as a file is recorded by its name, so the file stays portable.
    design = replace(design, conditions=[ConditionSpec(c.condition, names[c.subset], c.count)
                                         for c in design.conditions])
    feature_sets = {key: store.load(key) for key in keys}
    by_id = manifest.by_id()
    content = {(p.id, side): p.side(side).sha256 for p in manifest.pairs
               for side in ("left", "right")}
    trials, hits = build_trials(design, seed, subsets, feature_sets, condition_keys, content)
    used = sorted({(t["pair"], "left") for t in trials}
                  | {(iid[1:], "left" if iid[0] == "L" else "right")
                     for t in trials for iid in t["candidates"]})
    images = []
    for pid, side in used:
        ref = by_id[pid].side(side)
        path = ref.abspath(workdir)
        if not path.is_file():
            raise DesignError(f"image {ref.path} of pair {pid} is missing from {workdir}: "
                              f"run `python -m experiments ingest` again")
        images.append({"id": ef.image_id(pid, side), "path": ref.path,
                       "sha256": sha256_of(path), "pair": pid, "side": side})
    return ef.make_document(seed=seed, image_root=ef.relative_root(workdir, out),
                            manifest_sha256=manifest.sha256,
                            design=design.to_json(condition_keys), feature_sets=list(keys),
                            images=images, trials=trials, hits=hits)
