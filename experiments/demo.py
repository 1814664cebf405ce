"""`python -m experiments demo STUDY_DIR`: the machine side of `make demo`, end to end.

Steps (each reuses the command that does it; reruns are quick because `demo-data` is
skipped when STUDY_DIR/source exists and the feature store skips unchanged images):
demo-data -> ingest -> features generic, face, face_generic -> subsets -> evaluate ->
build STUDY_DIR/experiments/demo.json with a design sized to the demo set.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from experiments.errors import DemoStepError

__all__ = ["DemoStepError", "demo_design", "run_demo"]

DEMO_SEED = 2018
DEMO_SUBSET = "all"
DEMO_PER_CONDITION = 5
DEMO_TRIALS_PER_HIT = 7
DEMO_CATCH_TRIALS = 1


def _step(title: str) -> None:
    click.echo(click.style(f"\n== {title}", bold=True))


@contextlib.contextmanager
def _failing_step(what: str):
    """Turn a user error of one step into DemoStepError naming the step's command."""
    from experiments.errors import user_errors

    try:
        yield
    except user_errors() as exc:
        raise DemoStepError(f"`python -m experiments {what}` failed: {exc}") from None


def demo_design(face_pairs: int):
    """Return the demo's custom design: random, generic, face and face_generic on all
    pairs, a few trials each (face conditions sized to the pairs with faces), blocks of
    seven trials per HIT and one catch trial."""
    from experiments.designs import ConditionSpec, Design

    face_n = min(DEMO_PER_CONDITION, face_pairs // 2)
    conds = [ConditionSpec("random", DEMO_SUBSET, DEMO_PER_CONDITION),
             ConditionSpec("generic", DEMO_SUBSET, DEMO_PER_CONDITION)]
    if face_n:
        conds += [ConditionSpec("face", DEMO_SUBSET, face_n),
                  ConditionSpec("face_generic", DEMO_SUBSET, face_n)]
    return Design("demo", conds, trials_per_hit=DEMO_TRIALS_PER_HIT,
                  catch_trials=DEMO_CATCH_TRIALS)


def run_demo(study_dir: str | os.PathLike) -> dict:
    """Run the demo pipeline into ``study_dir`` (printing what each step did); return the
    experiment document built. Every step calls the library function its command calls."""
    from experiments import distance_sources as ds
    from experiments.demo_data import write_demo_data
    from experiments.designs import build_experiment, eligible_queries
    from experiments.evaluate import evaluate_study
    from experiments.experiment_file import write_experiment
    from experiments.features import extract
    from experiments.ingest import ingest, summary
    from experiments.manifest import load_manifest
    from experiments.store import FeatureStore
    from experiments.subsets import SubsetParams, compute_subsets
    from experiments.summaries import build_summary, evaluation_summary, subsets_summary

    study = Path(study_dir)
    source = study / "source"
    _step("1/6 demo pairs")
    if (source / "left").is_dir() and (source / "right").is_dir():
        click.echo(f"{source} exists: kept")
    else:
        with _failing_step(f"demo-data {source}"):
            rows = write_demo_data(source)
        click.echo(f"wrote {len(rows)} demo pairs to {source}")
    _step("2/6 ingest")
    with _failing_step(f"ingest {source} --workdir {study}"):
        click.echo(summary(ingest(source, study), study))
    _step("3/6 features (generic, face, face_generic; cached per image)")
    with _failing_step(f"features {study} --kind generic"):
        click.echo(extract.extract_generic(study).line())
    with _failing_step(f"features {study} --kind face"):
        click.echo(extract.extract_faces(study).line())
    with _failing_step(f"features {study} --kind face_generic"):
        for s in extract.extract_face_generic(study):
            click.echo(s.line())
    _step("4/6 near-duplicate subsets")
    with _failing_step(f"subsets {study}"):
        params = SubsetParams()
        click.echo(subsets_summary(compute_subsets(study, params), params, study))
    _step("5/6 retrieval evaluation")
    with _failing_step(f"evaluate {study}"):
        click.echo(evaluation_summary(evaluate_study(study), "mean"))
    _step("6/6 demo experiment")
    out = study / "experiments" / "demo.json"
    with _failing_step(f"build {study} --seed {DEMO_SEED}"):
        manifest = load_manifest(study)
        store = FeatureStore(study)
        face = store.load(ds.face_key(store.keys()))
        design = demo_design(len(eligible_queries("face", manifest.ids, face)))
        doc = build_experiment(study, design, DEMO_SEED, out)
        write_experiment(out, doc)
    click.echo(build_summary(doc, design, DEMO_SEED, out))
    click.echo(f"\ndemo study ready in {study}: evaluation in {study / 'evaluation'}/, "
               f"experiment file {out}")
    return doc
