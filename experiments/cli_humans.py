"""`python -m experiments score-humans`: the answers of a finished human experiment as a
benchmark for every feature set of the study (experiments/score_humans.py)."""
from __future__ import annotations

import math
from pathlib import Path

import click

from experiments.cli_base import ExperimentsError
from experiments.cli_trials import STUDY, clean_errors


@click.command("score-humans")
@STUDY
@click.option("--experiment", "experiment_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The experiment file the answers were given to.")
@click.option("--answers", "answers_csv", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The answers export (CSV, docs/contracts.md §6).")
@click.option("--feature-set", "keys", multiple=True, metavar="KEY",
              help="Feature set to score (repeat for several) [default: every one in the store].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: STUDY_DIR/evaluation/humans/<experiment file name>].")
@click.option("--name", default=None,
              help="Experiment name in the export, when it holds several.")
@click.option("--population", multiple=True, metavar="NAME",
              help="Keep only this population (repeat or comma-separate for several).")
@click.option("--folds", type=int, default=5, show_default=True,
              help="Folds of trials for the held-out log-likelihood.")
@click.option("--epsilon", type=float, default=0.01, show_default=True,
              help="Probability the 'always the true match' baseline leaves to the distractors.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds.")
@clean_errors
def score_humans(study_dir, experiment_path, answers_csv, keys, out, name, population, folds,
                 epsilon, seed):
    """Score feature sets against the people's answers on an experiment's trials: agreement
    of the nearest candidate with the majority and the true match, rank correlation with
    the vote shares, and the held-out log-likelihood of a softmax of distances; a ranked
    table, a plot and index.html."""
    from analysis.errors import AnalysisError
    from experiments.score_humans import ScoreError, score_study

    pops = [p.strip() for v in population for p in v.split(",") if p.strip()] or None
    try:
        s = score_study(study_dir, experiment_path, answers_csv, list(keys) or None, out,
                        folds=folds, seed=seed, epsilon=epsilon, name=name, populations=pops)
    except (AnalysisError, ScoreError) as exc:
        raise ExperimentsError(str(exc)) from None
    click.echo(f"{s.answers_total} answers to {len(s.trials.trials)} trials of experiment "
               f"{s.experiment!r}; feature sets ranked by held-out log-likelihood per answer "
               f"(uniform = {-math.log(5):.4f}):")
    for r in s.table.itertuples(index=False):
        click.echo(f"  {r.rank:>2}. {r.feature_set:<34} {r.loglik_heldout:>8.4f}  "
                   f"T = {r.temperature:.4g}  nearest = majority {100 * r.nearest_is_majority:5.1f} %"
                   f"  = true {100 * r.nearest_is_true:5.1f} %  ({r.trials} trials"
                   + (f", {r.trials_without_query_feature + r.trials_without_candidate_feature}"
                      " without features" if r.trials_without_query_feature
                      + r.trials_without_candidate_feature else "") + ")")
    for note in s.notes:
        click.echo(f"note: {note}")
    click.echo(f"table, plot and index.html in {s.files[0].parent}/")


COMMANDS = [score_humans]
