"""`python -m experiments demo STUDY_DIR`: the machine side of `make demo`, end to end.

Steps (each reuses the command that does it; reruns are quick because `demo-data` is
skipped when STUDY_DIR/source exists and the feature store skips unchanged images):
demo-data -> ingest -> features generic, face, face_generic -> subsets -> evaluate ->
build STUDY_DIR/experiments/demo.json with a design sized to the demo set.
"""
from __future__ import annotations

import os
from pathlib import Path

import click

DEMO_SEED = 2018
DEMO_SUBSET = "all"
DEMO_PER_CONDITION = 5
DEMO_TRIALS_PER_HIT = 7
DEMO_CATCH_TRIALS = 1


class DemoStepError(Exception):
    """A step of the demo pipeline failed; the message names it."""


def _step(title: str) -> None:
    click.echo(click.style(f"\n== {title}", bold=True))


def _run(*args: str) -> None:
    """Run the command `python -m experiments ARGS` in this process (one interpreter for
    every step, so torch is imported once); raise DemoStepError if it fails."""
    from experiments.cli import _register, cli

    if "ingest" not in cli.commands:   # called as a library, not through the CLI
        _register()
    try:
        cli.main(list(args), prog_name="python -m experiments", standalone_mode=False)
    except click.ClickException as exc:
        raise DemoStepError(f"`python -m experiments {' '.join(args)}` failed: "
                            f"{exc.format_message()}") from None
    except SystemExit as exc:  # a command that exits by itself
        if exc.code not in (0, None):
            raise DemoStepError(f"`python -m experiments {' '.join(args)}` failed "
                                f"(exit {exc.code})") from None


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
    """Run the demo pipeline into ``study_dir``; return the experiment document built."""
    from experiments import distance_sources as ds
    from experiments.cli_trials import run_build, run_evaluate, run_subsets
    from experiments.designs import eligible_queries
    from experiments.manifest import load_manifest
    from experiments.store import FeatureStore

    study = Path(study_dir)
    source = study / "source"
    _step("1/6 demo pairs")
    if (source / "left").is_dir() and (source / "right").is_dir():
        click.echo(f"{source} exists: kept")
    else:
        _run("demo-data", str(source))
    _step("2/6 ingest")
    _run("ingest", str(source), "--workdir", str(study))
    _step("3/6 features (generic, face, face_generic; cached per image)")
    for kind in ("generic", "face", "face_generic"):
        _run("features", str(study), "--kind", kind)
    _step("4/6 near-duplicate subsets")
    run_subsets(study)
    _step("5/6 retrieval evaluation")
    run_evaluate(study)
    _step("6/6 demo experiment")
    manifest = load_manifest(study)
    store = FeatureStore(study)
    face = store.load(ds.face_key(store.keys()))
    design = demo_design(len(eligible_queries("face", manifest.ids, face)))
    out = study / "experiments" / "demo.json"
    doc = run_build(study, design, DEMO_SEED, out)
    click.echo(f"\ndemo study ready in {study}: evaluation in {study / 'evaluation'}/, "
               f"experiment file {out}")
    return doc
