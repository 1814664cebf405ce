"""The one exception the command line turns into a clear message and exit status 2."""
from __future__ import annotations


class AnalysisError(Exception):
    """Bad input (missing file, unknown experiment, missing columns, no answers ...).

    `problems` holds one line per problem; the CLI prints each and exits with status 2.
    """

    def __init__(self, *problems: str):
        self.problems = [p for p in problems if p]
        super().__init__("\n".join(self.problems))
