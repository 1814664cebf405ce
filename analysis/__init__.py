"""The analysts' side: read the answers of a human experiment (a database URL, the CSV or
the JSON export of docs/contracts.md §6) into pandas and compute what the paper reports
and what publishing it needs: accuracy by subset x condition x population with clustered
intervals and machine rows (Table 2b), the tests of the paper's comparisons (Holm), a
mixed-effects model, agreement between participants with Fleiss' kappa (Fig. 5a/5b),
position bias against where the true match was, per-participant checks, item analysis
with the paper's galleries (Fig. 4), how human-like each feature set is, and response
times; ``report`` writes them all as CSV/LaTeX tables, PNG/PDF/SVG figures and one
self-contained HTML page. docs/analysis.md walks through every function.

Never imports torch, flask or the server's models: it reads plain SQL, CSV or JSON.

The public functions are importable from here (loaded on first use, so that
``python -m analysis simulate`` does not pay for pandas and matplotlib)::

    from analysis import load_answers, accuracy_long, accuracy_table
"""

N_CANDIDATES = 5

# name -> module holding it; see docs/analysis.md for one example of each
_API = {
    "load_answers": "load", "Answers": "load", "check_consistency": "load",
    "accuracy_long": "accuracy", "accuracy_table": "accuracy", "catch_summary": "accuracy",
    "comparison_table": "comparisons", "mixed_model": "comparisons",
    "trial_distribution": "agreement", "agreement_histogram": "agreement",
    "summarize": "agreement", "fleiss_kappa": "agreement", "kappa_table": "agreement",
    "position_table": "position", "plain_counts": "position",
    "participant_table": "participants",
    "item_table": "items", "from_experiment_file": "items", "from_database": "items",
    "agreement_extremes": "items", "drawings": "items",
    "likeness_table": "likeness", "trial_distances": "distances",
    "rt_table": "response_times",
    "TrialDrawing": "gallery", "gallery_figure": "gallery", "save_gallery": "gallery",
    "write_report": "report",
    "wilson_interval": "stats", "format_p": "stats",
    "share_interval": "intervals", "difference_interval": "intervals", "design_of": "intervals",
}
__all__ = [
    "N_CANDIDATES",
    "Answers",
    "TrialDrawing",
    "accuracy_long",
    "accuracy_table",
    "agreement_extremes",
    "agreement_histogram",
    "catch_summary",
    "check_consistency",
    "comparison_table",
    "design_of",
    "difference_interval",
    "drawings",
    "fleiss_kappa",
    "format_p",
    "from_database",
    "from_experiment_file",
    "gallery_figure",
    "item_table",
    "kappa_table",
    "likeness_table",
    "load_answers",
    "mixed_model",
    "participant_table",
    "plain_counts",
    "position_table",
    "rt_table",
    "save_gallery",
    "share_interval",
    "summarize",
    "trial_distances",
    "trial_distribution",
    "wilson_interval",
    "write_report",
]


def __getattr__(name):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(f"analysis.{_API[name]}"), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
