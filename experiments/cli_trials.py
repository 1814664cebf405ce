"""Commands of the trials stage: `subsets`, `evaluate`, `build` and `demo` (the whole
machine side of `make demo`)."""
from __future__ import annotations

import functools
from pathlib import Path

import click

from experiments.cli import ExperimentsError


def _user_errors():
    """The exception types that are the user's to fix (printed cleanly, exit 2)."""
    from experiments.designs import DesignError
    from experiments.distance_sources import FeatureAccessError
    from experiments.distractors import DistractorError
    from experiments.experiment_file import ExperimentFileError
    from experiments.manifest import ManifestError
    from experiments.demo import DemoStepError
    from experiments.subsets import SubsetError
    types = [DesignError, FeatureAccessError, DistractorError, ExperimentFileError,
             ManifestError, SubsetError, DemoStepError]
    try:
        from experiments.store import StoreError
        types.append(StoreError)
    except ImportError:  # pragma: no cover - the store module is always there once merged
        pass
    return tuple(types)


def clean_errors(fn):
    """Turn the library's user errors into ExperimentsError (one message, exit 2)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _user_errors() as exc:
            raise ExperimentsError(str(exc)) from None
        except OSError as exc:  # unreadable input, unwritable output folder, full disk
            raise ExperimentsError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
    return wrapper


STUDY = click.argument("study_dir", type=click.Path(file_okay=False, path_type=Path))


# --------------------------------------------------------------------------- subsets
def run_subsets(study_dir: Path, obj_definition: str = "notebook", model: str | None = None,
                detector: str | None = None, within_cosine: float = 0.10,
                cross_cosine: float = 0.15, within_face: float = 0.4,
                cross_face: float = 0.4) -> dict:
    """Compute and write the subsets of a study; print one line per subset; return them."""
    from experiments.subsets import SubsetParams, compute_subsets, subsets_dir

    params = SubsetParams(within_cosine, cross_cosine, within_face, cross_face, obj_definition)
    docs = compute_subsets(study_dir, params, model=model, detector=detector)
    total = len(docs["TLL_d"]["ids"]) + len({r["id"] for r in docs["TLL_d"]["dropped"]})
    click.echo(f"subsets of {total} pairs from {', '.join(docs['TLL_d']['feature_sets'])} "
               f"(within cosine {within_cosine}, cross cosine {cross_cosine}, "
               f"face {within_face}/{cross_face}):")
    for name, doc in docs.items():
        click.echo(f"  {name:<17} {len(doc['ids']):>6} pairs kept, "
                   f"{len({r['id'] for r in doc['dropped']}):>6} dropped")
    click.echo(f"written to {subsets_dir(study_dir)}/")
    return docs


@click.command("subsets")
@STUDY
@click.option("--obj-definition", type=click.Choice(["notebook", "strict"]), default="notebook",
              show_default=True, help="TLL_obj: notebook drops pairs whose larger face count "
              "is exactly 1; strict drops every pair with a face.")
@click.option("--model", default=None, help="Generic model for the cosine rules "
              "[default: densenet121 if in the store, else efficientnet_lite0].")
@click.option("--detector", type=click.Choice(["hog", "cnn"]), default=None,
              help="Face features for the face rules [default: cnn if in the store, else hog].")
@click.option("--within-cosine", type=float, default=0.10, show_default=True,
              help="Another image of the same side within this cosine distance: duplicate.")
@click.option("--cross-cosine", type=float, default=0.15, show_default=True,
              help="Left image within this cosine distance of another pair's right image.")
@click.option("--within-face", type=float, default=0.4, show_default=True,
              help="Face distance to another image of the same side at most this.")
@click.option("--cross-face", type=float, default=0.4, show_default=True,
              help="Face distance of the left image to another pair's right image at most this.")
@clean_errors
def subsets(study_dir, obj_definition, model, detector, within_cosine, cross_cosine,
            within_face, cross_face):
    """Write the near-duplicate subsets TLL_d and TLL_obj (both definitions) of a study,
    each with the reason for every dropped pair, to STUDY_DIR/subsets/."""
    run_subsets(study_dir, obj_definition, model, detector, within_cosine, cross_cosine,
                within_face, cross_face)


# --------------------------------------------------------------------------- evaluate
def run_evaluate(study_dir: Path, subset: str | None = None, out: Path | None = None,
                 ties: str = "mean", repetitions: int = 10, seed: int = 0, gallery: int = 3):
    """Evaluate every feature set on a subset, write the results, print Table 1."""
    from experiments.evaluate import evaluate_study, markdown_table

    ev = evaluate_study(study_dir, subset, out, ties=ties, repetitions=repetitions, seed=seed,
                        gallery=gallery)
    click.echo(f"Table 1: recall@k (%) on subset {ev.subset} (N = {ev.n}, ties: {ties})")
    cols = ["feature_set", "metric", "pairs_with_feature"] + [c for c in ev.table1.columns
                                                              if c.startswith("R@")]
    click.echo(markdown_table(ev.table1[cols]))
    if ev.votes is None:
        click.echo("votes: none in the manifest for these pairs, no correlation computed")
    out_dir = ev.files[0].parent if ev.files else out
    click.echo(f"tables, plots and index.html in {out_dir}/")
    return ev


@click.command("evaluate")
@STUDY
@click.option("--subset", default=None, help="Subset name (all, TLL_d, TLL_obj, ...) or a file "
              "of pair ids [default: TLL_d if computed, else all].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: STUDY_DIR/evaluation/<subset>].")
@click.option("--ties", type=click.Choice(["mean", "optimistic", "pessimistic"]), default="mean",
              show_default=True, help="How distances equal to the true match's count.")
@click.option("--repetitions", type=click.IntRange(1), default=10, show_default=True,
              help="Repetitions of associative recall (Table 2a).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of associative recall's random sets and of Fig. 3's random queries.")
@click.option("--gallery", type=click.IntRange(0), default=3, show_default=True,
              help="Fig. 3: queries per group (worst, best, random) per feature set; 0: none.")
@clean_errors
def evaluate(study_dir, subset, out, ties, repetitions, seed, gallery):
    """Retrieval of every feature set in the store on a subset: Table 1 (recall@k),
    Table 2a (associative recall), votes correlation, recall plots, Fig. 3 galleries,
    Fig. 5c face counts, index.html."""
    run_evaluate(study_dir, subset, out, ties, repetitions, seed, gallery)


# --------------------------------------------------------------------------- build
def run_build(study_dir: Path, design, seed: int, out: Path,
              generic_model: str | None = None) -> dict:
    """Build the experiment file of ``design`` (a Design), write it, print a summary."""
    from collections import Counter

    from experiments.designs import build_experiment
    from experiments.experiment_file import write_experiment

    doc = build_experiment(study_dir, design, seed, out, generic_model)
    write_experiment(out, doc)
    per = Counter((t["condition"], t["subset"]) for t in doc["trials"])
    click.echo(f"experiment {design.name!r}: {len(doc['trials'])} trials in {len(doc['hits'])} "
               f"HITs of up to {design.trials_per_hit}, {len(doc['images'])} images, seed {seed}")
    for (cond, sub), n in sorted(per.items(), key=lambda kv: (kv[0][0] == "catch", kv[0])):
        click.echo(f"  {cond:<13} on {sub:<12} {n:>4} trials")
    for cond, key in doc["design"]["feature_sets"].items():
        click.echo(f"  {cond} distractors from {key}")
    click.echo(f"written to {out}")
    return doc


@click.command("build")
@STUDY
@click.option("--design", "design_kind", type=click.Choice(["paper", "custom"]), required=True,
              help="paper: the 120 trials of the paper; custom: from --spec.")
@click.option("--spec", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON design spec (for --design custom).")
@click.option("--seed", type=int, required=True, help="Seed of every random draw.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Experiment file [default: STUDY_DIR/experiments/<design name>.json].")
@click.option("--generic-model", default=None, help="Generic model for the generic condition "
              "[default: densenet121 if in the store, else efficientnet_lite0].")
@clean_errors
def build(study_dir, design_kind, spec, seed, out, generic_model):
    """Build an experiment file: the trials of a design (conditions x counts x subsets),
    their candidates, the machine's choices, and the HITs."""
    from experiments.designs import load_design

    design = load_design(design_kind, str(spec) if spec else None)
    out = out or study_dir / "experiments" / f"{design.name}.json"
    run_build(study_dir, design, seed, out, generic_model)


# --------------------------------------------------------------------------- demo
@click.command("demo")
@STUDY
@clean_errors
def demo(study_dir):
    """The machine side of `make demo`: demo pairs, ingest, features, subsets, evaluate and
    the demo experiment (STUDY_DIR/experiments/demo.json). Reruns reuse what is there."""
    from experiments.demo import run_demo

    run_demo(study_dir)


COMMANDS = [subsets, evaluate, build, demo]
