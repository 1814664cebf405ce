"""Commands of the data stage: `demo-data` (the bundled demo pair set) and `ingest`
(image pairs into a study's work directory)."""
from __future__ import annotations

from pathlib import Path

import click

from experiments.cli_base import ExperimentsError


@click.command("demo-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def demo_data(out_dir: Path) -> None:
    """Write the demo pair set (TLL layout: OUT_DIR/left, OUT_DIR/right, 200x245 JPEGs)
    made offline from photographs that scikit-image, matplotlib and scikit-learn ship."""
    from experiments.demo_data import DemoDataError, write_demo_data

    if out_dir.exists() and not out_dir.is_dir():
        raise ExperimentsError(f"{out_dir} exists and is not a folder")
    try:
        rows = write_demo_data(out_dir)
    except DemoDataError as exc:
        raise ExperimentsError(str(exc)) from None
    except OSError as exc:
        raise ExperimentsError(f"cannot write the demo pairs into {out_dir}: {exc}") from None
    faces = sum(r["kind"] == "face" for r in rows)
    click.echo(f"wrote {len(rows)} demo pairs ({faces} with a face on both sides) to "
               f"{out_dir}/left and {out_dir}/right; provenance in {out_dir}/provenance.csv")
    click.echo(f"next: python -m experiments ingest {out_dir} --workdir STUDY_DIR")


@click.command("ingest")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--workdir", "-w", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The study's work directory (created if needed).")
@click.option("--layout", type=click.Choice(["auto", "tll", "combined", "csv"]),
              default="auto", show_default=True,
              help="tll: SOURCE/left and SOURCE/right; combined: the website's combined "
                   "pictures; csv: a CSV file left,right[,up,down][,id].")
@click.option("--votes", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV id,wins,fails joined to the pairs by id.")
@click.option("--strict", is_flag=True,
              help="Stop if any input is bad (every problem is listed); write nothing.")
@click.option("--crop-width", type=click.IntRange(min=1), default=200, show_default=True,
              help="combined: width of each half.")
@click.option("--caption-rows", type=click.IntRange(min=0), default=26, show_default=True,
              help="combined: rows of caption text dropped at the bottom.")
@click.option("--drop-columns", type=click.IntRange(min=0), default=1, show_default=True,
              help="combined: columns dropped at the right edge.")
def ingest(source: Path, workdir: Path, layout: str, votes: Path | None, strict: bool,
           crop_width: int, caption_rows: int, drop_columns: int) -> None:
    """Ingest the image pairs of SOURCE into the study's work directory: manifest.json
    (pair ids, pixel sha256, sizes, votes) and the study's copy of each image under
    images/left and images/right. Bad pairs are listed and skipped (--strict: nothing is
    written). Re-ingesting replaces the manifest and keeps the features."""
    from experiments.ingest import CombinedGeometry, IngestError, summary
    from experiments.ingest import ingest as run_ingest

    try:
        result = run_ingest(source, workdir, layout=layout, votes=votes, strict=strict,
                            geometry=CombinedGeometry(crop_width, caption_rows, drop_columns))
    except IngestError as exc:
        raise ExperimentsError(str(exc)) from None
    except OSError as exc:
        raise ExperimentsError(f"ingest failed: {exc}") from None
    text = summary(result, workdir)
    *problems, last = text.split("\n")
    if problems:
        click.echo("\n".join(problems), err=True)
    click.echo(last)


COMMANDS = [demo_data, ingest]
