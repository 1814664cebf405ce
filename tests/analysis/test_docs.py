"""docs/analysis.md is executed: its python blocks run in order, in one namespace, in an
empty folder, so the walk-through cannot go stale."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_analysis_walkthrough_runs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "analysis.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        # the documentation's own code, run as an analyst would paste it
        exec(compile(block, f"docs/analysis.md block {i + 1}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "report" / "report.html").is_file()
    assert (tmp_path / "fig4.png").is_file()
