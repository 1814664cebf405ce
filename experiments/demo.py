"""`python -m experiments demo STUDY_DIR`: the machine side of `make demo`, end to end.

Steps (each reuses the command that does it; reruns are quick because `demo-data` is
skipped when STUDY_DIR/source exists and the feature store skips unchanged images):
demo-data -> ingest -> features generic, face, face_generic -> subsets -> evaluate (and the
option matrix: TLL_d face rule x face rows of Table 1) ->
build STUDY_DIR/experiments/demo.json: the paper's design (six cells: TLL_obj x random,
generic; TLL_d x random, face, face_generic, generic) with the largest number of trials
per cell the demo set allows, at least DEMO_MIN_PER_CONDITION.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from experiments.errors import DemoStepError

__all__ = ["DemoStepError", "largest_paper_design", "run_demo"]

DEMO_SEED = 2018
DEMO_MIN_PER_CONDITION = 5


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


def largest_paper_design(study: Path, seed: int, out: Path,
                         most: int = 20, least: int = DEMO_MIN_PER_CONDITION):
    """Return ``(design, document)`` of the paper design with the largest number of
    trials per cell (from ``most`` down to ``least``) that the study's subsets can fill
    with ``seed``; raise DesignError with the refusal for ``least`` when none can."""
    from experiments.designs import DesignError, build_experiment, paper_design

    for n in range(most, least - 1, -1):
        design = paper_design(n)
        try:
            return design, build_experiment(study, design, seed, out)
        except DesignError:
            if n == least:
                raise
    raise ValueError(f"most ({most}) must be at least least ({least})")


def run_demo(study_dir: str | os.PathLike) -> dict:
    """Run the demo pipeline into ``study_dir`` (printing what each step did); return the
    experiment document built. Every step calls the library function its command calls."""
    from experiments.demo_data import write_demo_data
    from experiments.evaluate import evaluate_study
    from experiments.experiment_file import write_experiment
    from experiments.features import extract
    from experiments.ingest import ingest, summary
    from experiments.option_matrix import option_matrix, option_matrix_text
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
    with _failing_step(f"option-matrix {study}"):
        click.echo(option_matrix_text(option_matrix(study)))
    _step("6/6 demo experiment")
    out = study / "experiments" / "demo.json"
    with _failing_step(f"build {study} --design paper --per-condition "
                       f"{DEMO_MIN_PER_CONDITION} --seed {DEMO_SEED}"):
        design, doc = largest_paper_design(study, DEMO_SEED, out)
        write_experiment(out, doc)
    click.echo(f"the paper's design with {design.conditions[0].count} trials per cell, the "
               f"most the demo set allows (the paper had 20): python -m experiments build "
               f"{study} --design paper --per-condition {design.conditions[0].count} "
               f"--seed {DEMO_SEED}")
    click.echo(build_summary(doc, design, DEMO_SEED, out))
    click.echo(f"\ndemo study ready in {study}: evaluation in {study / 'evaluation'}/, "
               f"experiment file {out}")
    return doc
