"""Commands of the data stage: `demo-data` (the bundled demo pair set) and `ingest`
(image pairs into a study's work directory)."""
from __future__ import annotations

from pathlib import Path

import click

from experiments.cli import ExperimentsError


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


COMMANDS = [demo_data]
