"""Commands of the trials stage: `subsets`, `evaluate`, `build` and `demo` (the whole
machine side of `make demo`)."""
from __future__ import annotations

from pathlib import Path

import click

from experiments.cli_base import STUDY, clean_errors, slurm_options, submit_slurm


# --------------------------------------------------------------------------- subsets
def run_subsets(study_dir: Path, obj_definition: str = "notebook", model: str | None = None,
                detector: str | None = None, within_cosine: float = 0.10,
                cross_cosine: float = 0.15, within_face: float = 0.4,
                cross_face: float = 0.4, face_rule: str = "notebook") -> dict:
    """Compute and write the subsets of a study; print one line per subset; return them."""
    from experiments.subsets import SubsetParams, compute_subsets
    from experiments.summaries import subsets_summary

    params = SubsetParams(within_cosine, cross_cosine, within_face, cross_face, obj_definition,
                          face_rule)
    docs = compute_subsets(study_dir, params, model=model, detector=detector)
    click.echo(subsets_summary(docs, params, study_dir))
    return docs


@click.command("subsets")
@STUDY
@click.option("--obj-definition", type=click.Choice(["notebook", "strict"]), default="notebook",
              show_default=True, help="TLL_obj: notebook drops pairs whose larger face count "
              "is exactly 1; strict drops every pair with a face.")
@click.option("--face-rule", type=click.Choice(["notebook", "distance"]), default="notebook",
              show_default=True, help="TLL_d's face de-duplication: notebook compares the "
              "argmin INDEX of each within-side face-distance row (faceless rows 10^9) with "
              "--within-face, as the authors' notebook did (the paper's 1,828 pairs); "
              "distance applies the stated rule to the distances.")
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
def subsets(study_dir, obj_definition, face_rule, model, detector, within_cosine, cross_cosine,
            within_face, cross_face):
    """Write the near-duplicate subsets TLL_d and TLL_obj (both definitions) of a study,
    each with the reason for every dropped pair, to STUDY_DIR/subsets/."""
    run_subsets(study_dir, obj_definition, model, detector, within_cosine, cross_cosine,
                within_face, cross_face, face_rule)


# --------------------------------------------------------------------------- evaluate
def run_evaluate(study_dir: Path, subset: str | None = None, out: Path | None = None,
                 ties: str = "mean", repetitions: int = 10, seed: int = 0, gallery: int = 3,
                 face_denominator: str = "faces", associative: str = "exact",
                 device: str = "auto", chunk: int | None = None,
                 shard: tuple[int, int] | None = None, from_shards: int | None = None):
    """Evaluate every feature set on a subset, write the results, print Table 1 (with
    ``shard``: compute that shard's distance pass only and print its file)."""
    from experiments.evaluate import evaluate_study
    from experiments.summaries import evaluation_summary

    ev = evaluate_study(study_dir, subset, out, ties=ties, repetitions=repetitions, seed=seed,
                        gallery=gallery, face_denominator=face_denominator,
                        associative=associative, device=device, chunk=chunk, shard=shard,
                        from_shards=from_shards)
    if shard is not None:
        click.echo(f"shard {shard[0]}/{shard[1]}: {ev}")
        return ev
    click.echo(evaluation_summary(ev, ties))
    return ev


def _evaluate_slurm(study_dir: Path, args: list[str], tasks: int, cpus_per_task: int,
                    sbatch_args: list[str], no_submit: bool, subset: str | None) -> None:
    """Write (and submit) the Slurm job of a sharded evaluate; print what was done."""
    from experiments.cli_base import ExperimentsError
    from experiments.manifest import ManifestError, load_manifest
    from experiments.subsets import subsets_dir

    try:
        load_manifest(study_dir)
    except ManifestError as exc:
        raise ExperimentsError(str(exc)) from None
    if subset is None:  # fixed now, so no task depends on when subsets were computed
        subset = "TLL_d" if (subsets_dir(study_dir) / "TLL_d.json").is_file() else "all"
        args = ["--subset", subset] + args
    key = f"evaluate/{Path(subset).stem}"
    submit_slurm(study_dir, key, args, tasks, cpus_per_task, sbatch_args, no_submit, command="evaluate")


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    from experiments.cli_base import ExperimentsError
    from experiments.features.extract import parse_shard

    try:
        return parse_shard(value)
    except ValueError as exc:
        raise ExperimentsError(str(exc)) from None


@click.command("evaluate")
@STUDY
@click.option("--subset", default=None, help="Subset name (all, TLL_d, TLL_obj, ...) or a file "
              "of pair ids [default: TLL_d if computed, else all].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: STUDY_DIR/evaluation/<subset>].")
@click.option("--ties", type=click.Choice(["mean", "optimistic", "pessimistic"]), default="mean",
              show_default=True, help="How distances equal to the true match's count.")
@click.option("--face-denominator", type=click.Choice(["faces", "subset", "notebook"]),
              default="faces", show_default=True,
              help="Face and face-generic rows of Tables 1 and 2a: faces counts the subset's "
              "pairs with a face on both sides; subset every pair of the subset; notebook "
              "is the authors' cell 53 as it ran: the whole set's pairs with a face on both "
              "sides ranked among all its right images, R@1,5,10,20 being its printed "
              "recall at 2,6,11,21 (each row says so in recall_at).")
@click.option("--associative", type=click.Choice(["exact", "sampled"]), default="exact",
              show_default=True, help="Table 2a: exact (closed form from the ranks) or "
              "sampled (the notebook's random sets, --repetitions times).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where generic distances run: auto uses a CUDA GPU "
              "when torch sees one and the features are large.")
@click.option("--repetitions", type=click.IntRange(1), default=10, show_default=True,
              help="Repetitions of sampled associative recall (Table 2a).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of associative recall's random sets and of Fig. 3's random queries.")
@click.option("--gallery", type=click.IntRange(0), default=3, show_default=True,
              help="Fig. 3: queries per group (worst, best, random) per feature set; 0: none.")
@click.option("--chunk", type=click.IntRange(1), default=None,
              help="Query rows per distance block [default: about 16 million distances "
                   "per block, 16 to 1024 rows]; shards are whole blocks.")
@click.option("--shard", default=None, metavar="I/N",
              help="Compute only the distance pass of the I-th of N shares of the query "
                   "rows (whole blocks) into OUT/shards/; the tables come from --from-shards N "
                   "(on the CPU; exact Table 2a; face rows faces or subset).")
@click.option("--from-shards", type=click.IntRange(1), default=None, metavar="N",
              help="Write the evaluation from the N shard files in OUT/shards/ instead of a "
                   "distance pass: the same tables as an unsharded CPU run with this --chunk.")
@slurm_options(", plus a finalize job that runs after all of them succeed (afterok) and "
               "writes the evaluation from the shards.",
               "--slurm: CPUs per task.", "--mem=8G")
@clean_errors
def evaluate(study_dir, subset, out, ties, face_denominator, associative, device, repetitions,
             seed, gallery, chunk, shard, from_shards, slurm, tasks, cpus_per_task, sbatch_args,
             no_submit):
    """Retrieval of every feature set in the store on a subset: Table 1 (recall@k),
    Table 2a (associative recall), votes correlation, recall plots, Fig. 3 galleries,
    Fig. 5c face counts, index.html."""
    from experiments.cli_base import ExperimentsError

    shard = _parse_shard(shard)
    if slurm:
        if shard is not None or from_shards is not None:
            raise ExperimentsError("--slurm chooses the shards itself: leave out --shard "
                                   "and --from-shards")
        if associative != "exact" or face_denominator == "notebook":
            raise ExperimentsError("sharded evaluate computes Table 2a exactly on the "
                                   "subset: use --associative exact and face rows faces "
                                   "or subset")
        # every task and the finalize job get the same explicit options
        args = ([] if subset is None else ["--subset", subset])
        args += [] if out is None else ["--out", str(Path(out).resolve())]
        args += ["--ties", ties, "--face-denominator", face_denominator, "--device", "cpu",
                 "--seed", str(seed), "--gallery", str(gallery)]
        args += [] if chunk is None else ["--chunk", str(chunk)]
        _evaluate_slurm(study_dir, args, tasks, cpus_per_task, list(sbatch_args), no_submit,
                        subset)
        return
    if shard is not None and from_shards is not None:
        raise ExperimentsError("--shard computes one shard, --from-shards merges them: "
                               "give one of the two")
    run_evaluate(study_dir, subset, out, ties, repetitions, seed, gallery, face_denominator,
                 associative, device, chunk, shard, from_shards)


@click.command("option-matrix")
@STUDY
@clean_errors
def option_matrix(study_dir):
    """Print TLL_d's face rule (notebook, distance) against the face rows of Table 1
    (faces, subset, notebook) for the study's face feature sets; writes nothing."""
    from experiments.option_matrix import option_matrix as matrix
    from experiments.option_matrix import option_matrix_text

    click.echo(option_matrix_text(matrix(study_dir)))


# --------------------------------------------------------------------------- build
def run_build(study_dir: Path, design, seed: int, out: Path,
              generic_model: str | None = None) -> dict:
    """Build the experiment file of ``design`` (a Design), write it, print a summary."""
    from experiments.designs import build_experiment
    from experiments.experiment_file import write_experiment
    from experiments.summaries import build_summary

    doc = build_experiment(study_dir, design, seed, out, generic_model)
    write_experiment(out, doc)
    click.echo(build_summary(doc, design, seed, out))
    return doc


@click.command("build")
@STUDY
@click.option("--design", "design_kind", type=click.Choice(["paper", "custom"]), required=True,
              help="paper: the paper's six cells (TLL_obj x random, generic; TLL_d x "
                   "random, face, face_generic, generic), --per-condition trials each; "
                   "custom: from --spec.")
@click.option("--spec", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON design spec (for --design custom).")
@click.option("--per-condition", type=click.IntRange(min=1), default=None,
              help="--design paper: trials in each of the six cells [default: 20, the "
                   "paper's].")
@click.option("--seed", type=click.IntRange(min=0), required=True,
              help="Seed of every random draw (a non-negative integer).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Experiment file [default: STUDY_DIR/experiments/<design name>.json].")
@click.option("--generic-model", default=None, help="Generic model for the generic condition "
              "[default: densenet121 if in the store, else efficientnet_lite0].")
@clean_errors
def build(study_dir, design_kind, spec, per_condition, seed, out, generic_model):
    """Build an experiment file: the trials of a design (conditions x counts x subsets),
    their candidates, the machine's choices, and the HITs."""
    from experiments.designs import load_design

    design = load_design(design_kind, str(spec) if spec else None, per_condition)
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


COMMANDS = [subsets, evaluate, option_matrix, build, demo]
