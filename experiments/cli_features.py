"""`python -m experiments features`: the feature-extraction stage."""
from __future__ import annotations

import click

from experiments.cli_base import ExperimentsError, slurm_options, submit_slurm
from experiments.conditions import FEATURE_KINDS as KINDS

MODELS = ("efficientnet_lite0", "alexnet", "vgg16", "resnet18", "resnet50", "resnet152",
          "densenet121", "densenet169", "densenet201")
DETECTORS = ("hog", "cnn")


@click.command("features")
@click.argument("study_dir", type=click.Path(file_okay=False, dir_okay=True))
@click.option("--kind", type=click.Choice(KINDS), required=True,
              help="generic: CNN features of each image; face: dlib face boxes and 128-d "
                   "descriptors; face_generic: the CNN on each face crop (computes the face "
                   "set of the detector first when it is missing or out of date).")
@click.option("--model", type=click.Choice(MODELS), default="efficientnet_lite0",
              show_default=True, help="Generic backbone (generic and face_generic).")
@click.option("--detector", type=click.Choice(DETECTORS), default="hog", show_default=True,
              help="dlib face detector (face and face_generic).")
@click.option("--upsample", type=click.IntRange(0, 4), default=None,
              help="Times the detector upsamples the image [default: 1 for hog, 0 for cnn, "
                   "or what the existing face set used].")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=None,
              help="Images per forward pass; results are saved after each batch [default: "
                   "8 on the CPU, on a GPU 64 per 10 GiB of its memory, 32 to 512].")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Weights file of the backbone instead of the packaged one / the torch "
                   "hub cache (torchvision's ImageNet state dict).")
@click.option("--workers", type=click.IntRange(0, 64), default=None,
              help="CNN: DataLoader processes that decode ahead of the model (default 0 "
                   "on up to 4 cores, where they slow it down); face: dlib processes "
                   "(default: one per CPU).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where the CNN runs: auto uses CUDA when torch sees a "
              "GPU, else the CPU.")
@click.option("--precision", type=click.Choice(["float32", "float16", "bfloat16"]),
              default="float32", show_default=True,
              help="CNN arithmetic; half precision is checked against float32 on the first "
                   "images (cosine >= 0.999) and refused otherwise.")
@click.option("--max-side", type=click.IntRange(64), default=2048, show_default=True,
              help="Face detection on images scaled down to this longest side, boxes mapped "
                   "back to the full image.")
@click.option("--shard", default=None, metavar="I/N",
              help="Compute only the I-th of N shares of the images (decided by each image's "
                   "hash) into the same store, e.g. one per SLURM array task; the shard that "
                   "completes the set writes it.")
@click.option("--allow-tf32", is_flag=True,
              help="Let a GPU compute float32 products in TF32 (faster, about 3 significant "
                   "digits less); off by default, so GPU features match CPU ones.")
@click.option("--autocast", is_flag=True,
              help="Run the CNN under torch.autocast (float16 on a GPU, bfloat16 on the CPU).")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="torch threads [default: one per usable core]; recorded with the results.")
@click.option("--deterministic", is_flag=True,
              help="One image per forward pass: no feature depends on the other images of "
                   "its batch (slower on a GPU; byte-identical shards for a fixed --threads).")
@click.option("--mixed-settings", type=click.Choice(["refuse", "allow", "recompute"]),
              default="refuse", show_default=True,
              help="When cached results were computed under other settings (device, dtype, "
                   "TF32, autocast, library versions): refuse, allow both in one set "
                   "(meta.json lists each), or recompute them under this run's.")
@slurm_options(" with these settings, plus a finalize job that runs after all of them succeed "
               "(afterok), assembles the set and verifies it.",
               "--slurm: CPUs per task; also every task's --threads.",
               "--partition=gpu --sbatch-arg --time=2:00:00")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def features(study_dir, kind, model, detector, upsample, batch_size, weights, workers, device,
             precision, max_side, shard, allow_tf32, autocast, threads, deterministic,
             mixed_settings, slurm, tasks, cpus_per_task, sbatch_args, no_submit, quiet):
    """Compute one feature set of STUDY_DIR into STUDY_DIR/features/<kind>/<name>/.

    Only images that are new or changed since the last run (by pixel sha256) are
    computed, so an interrupted run resumes where it stopped."""
    from experiments.features import extract
    from experiments.features.weights import WeightsError
    from experiments.manifest import ManifestError
    from experiments.store import StoreError

    try:
        shard = extract.parse_shard(shard)
    except ValueError as exc:
        raise ExperimentsError(str(exc)) from None
    if slurm:
        _submit_slurm(study_dir, kind, model, detector, upsample, batch_size, weights, device,
                      precision, max_side, allow_tf32, autocast, tasks, cpus_per_task,
                      list(sbatch_args), no_submit, shard)
        return
    opts = extract.ComputeOptions(allow_tf32=allow_tf32, autocast=autocast, threads=threads,
                                  deterministic=deterministic, on_mixed=mixed_settings)
    try:
        if kind == "generic":
            summaries = [extract.extract_generic(study_dir, model=model, weights=weights,
                                                 batch_size=batch_size, workers=workers,
                                                 progress=not quiet, device=device,
                                                 precision=precision, shard=shard,
                                                 opts=opts)]
        elif kind == "face":
            summaries = [extract.extract_faces(study_dir, detector=detector, upsample=upsample,
                                               batch_size=batch_size, workers=workers,
                                               progress=not quiet, max_side=max_side,
                                               shard=shard, opts=opts)]
        else:
            summaries = extract.extract_face_generic(
                study_dir, model=model, detector=detector, upsample=upsample, weights=weights,
                batch_size=batch_size, workers=workers, progress=not quiet, device=device,
                precision=precision, max_side=max_side, shard=shard, opts=opts)
    except (ManifestError, WeightsError, StoreError) as exc:
        raise ExperimentsError(str(exc)) from None
    except OSError as exc:  # an image the manifest names is gone or unreadable
        raise ExperimentsError(f"{exc.__class__.__name__}: {exc} (re-run "
                               "`python -m experiments ingest` if the study's images moved)") from None
    for s in summaries:
        click.echo(s.line())


def _submit_slurm(study_dir, kind, model, detector, upsample, batch_size, weights, device,
                  precision, max_side, allow_tf32, autocast, tasks, cpus_per_task, sbatch_args,
                  no_submit, shard) -> None:
    """Write (and submit) the Slurm job of one feature set; print what was done."""
    from pathlib import Path

    from experiments.features.compute import DEFAULT_CPU_BATCH
    from experiments.manifest import ManifestError, load_manifest
    from experiments.store import feature_key

    if shard is not None:
        raise ExperimentsError("--slurm chooses the shards itself: leave out --shard")
    try:
        load_manifest(study_dir)
    except ManifestError as exc:
        raise ExperimentsError(str(exc)) from None
    key = feature_key(kind, model=model, detector=detector)
    # every task gets the same explicit settings: nothing is left to a node's defaults
    args = ["--kind", kind, "--device", device, "--precision", precision,
            "--batch-size", str(batch_size or DEFAULT_CPU_BATCH), "--threads", str(cpus_per_task),
            "--deterministic", "--mixed-settings", "refuse", "--max-side", str(max_side),
            "--workers", "0", "--quiet"]
    if kind != "face":
        args += ["--model", model]
    if kind != "generic":
        args += ["--detector", detector]
    if upsample is not None:
        args += ["--upsample", str(upsample)]
    if weights is not None:
        args += ["--weights", str(Path(weights).resolve())]
    args += ["--allow-tf32"] if allow_tf32 else []
    args += ["--autocast"] if autocast else []
    submit_slurm(study_dir, key, args, tasks, cpus_per_task, sbatch_args, no_submit)


@click.group("slurm")
def slurm() -> None:
    """Follow a `features --slurm` or `evaluate --slurm` job: status, resubmit failed
    tasks, finalize."""


def _slurm_call(fn):
    from experiments import slurm as slurm_mod

    try:
        return fn()
    except slurm_mod.SlurmError as exc:
        raise ExperimentsError(str(exc)) from None


@slurm.command("status")
@click.argument("job_dir", type=click.Path(file_okay=False, exists=True))
def slurm_status(job_dir):
    """Print every task's and finalize job's state (sacct, or scontrol where accounting is
    off) and the squeue lines of the jobs still queued."""
    from experiments import slurm as slurm_mod

    click.echo(_slurm_call(lambda: slurm_mod.status_text(job_dir)))


@slurm.command("resubmit")
@click.argument("job_dir", type=click.Path(file_okay=False, exists=True))
def slurm_resubmit(job_dir):
    """Submit only the failed tasks again, with a new finalize job depending on them."""
    from experiments import slurm as slurm_mod

    sub = _slurm_call(lambda: slurm_mod.resubmit_failed(job_dir))
    click.echo(f"resubmitted tasks {sub['tasks']} as job {sub['array']}; finalize job "
               f"{sub['finalize']} (afterok)")


@slurm.command("finalize")
@click.argument("job_dir", type=click.Path(file_okay=False, exists=True))
def slurm_finalize(job_dir):
    """Assemble and verify the feature set, or write the evaluation from its shards,
    once every task succeeded (the finalize job runs this); write finalized.json."""
    from experiments import slurm as slurm_mod

    out = _slurm_call(lambda: slurm_mod.finalize(job_dir))
    if "images" not in out:  # an evaluate job
        click.echo(f"{out['key']}: {out['tasks']} shards merged; {job_dir}/finalized.json\n"
                   f"{out['summary']}")
        return
    click.echo(f"{out['key']}: {out['images']} images of {out['pairs']} pairs, verified "
               f"({', '.join(out['checks'])}); {job_dir}/finalized.json")


COMMANDS = [features, slurm]
