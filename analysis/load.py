"""Loading answers: one row per answer, from a database URL or from the CSV export.

The table returned (``Answers.df``) has the columns of the CSV export of
docs/contracts.md §6, with proper types:

``experiment, participant, population, trial, trial_order, condition, subset, pair,
catch (bool), chosen_position (1..5), true_position (1..5), correct (bool),
rt_ms (float, NaN where unknown), received_at, hit_id, assignment_id, worker_id``
and one ``machine:<key>`` column per feature set (nullable Int64, 1-based position that
feature set would choose, <NA> where it has none).

The database is read with plain SQL through SQLAlchemy Core (never the server's models),
so an analyst needs only the URL.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import N_CANDIDATES
from analysis.errors import AnalysisError
from spreadsheet import unquote

BASE_COLUMNS = ["experiment", "participant", "population", "trial", "trial_order",
                "condition", "subset", "pair", "catch", "chosen_position", "true_position",
                "correct", "rt_ms", "received_at", "hit_id", "assignment_id", "worker_id",
                # Provenance (analysis/counting.py counts by it); absent from old exports.
                "platform", "environment", "external_participant_id", "external_session_id",
                "external_study_id", "submission_status",
                # Non-empty for a participant who withdrew (counting rule "withdrawn").
                "withdrawn_at"]
# Without these an analysis cannot be made; the rest may be absent from hand-made CSVs.
REQUIRED_CSV_COLUMNS = ["experiment", "participant", "population", "trial", "condition",
                        "subset", "pair", "catch", "chosen_position", "true_position",
                        "correct", "rt_ms"]
MACHINE_PREFIX = "machine:"
KNOWN_POPULATIONS = ("lab", "mturk", "simulated")
DB_TABLES = ("experiments", "trials", "participants", "responses")


@dataclass
class Answers:
    """Answers of one experiment: ``df`` (one row per answer), the machine feature-set
    keys (sorted), where they came from, and the catch-trial policy applied later."""

    df: pd.DataFrame
    experiment: str
    source: str
    machine_keys: list[str] = field(default_factory=list)
    # The design's condition -> feature-set key that built its distractors (experiment
    # file `design.feature_sets`), where the source keeps it (the database does).
    condition_features: dict[str, str] = field(default_factory=dict)
    # What was counted and what each rule excluded (analysis/counting.py).
    counting: object = None
    # The database URL when read from one (item analysis reads the images there too).
    url: str | None = None

    @property
    def populations(self) -> list[str]:
        """Populations present, in a stable order (lab, mturk, simulated, then labels)."""
        return order_populations(self.df["population"].unique())

    def without_catch(self) -> pd.DataFrame:
        """Answers to ordinary trials only (what accuracy, agreement and position use)."""
        return self.df[~self.df["catch"]]

    def catch_only(self) -> pd.DataFrame:
        """Answers to catch trials only."""
        return self.df[self.df["catch"]]


def order_populations(pops) -> list[str]:
    """Return populations with the known ones first (lab, mturk, simulated), then labels."""
    pops = [str(p) for p in pops]
    known = [p for p in KNOWN_POPULATIONS if p in pops]
    return known + sorted(p for p in set(pops) if p not in KNOWN_POPULATIONS)


# --------------------------------------------------------------------------- public API
def load_answers(db: str | None = None, csv: str | Path | None = None,
                 experiment: str | None = None,
                 populations: list[str] | None = None,
                 environments: list[str] | None = None,
                 statuses: list[str] | None = None,
                 json_export: str | Path | None = None,
                 include_withdrawn: bool = False) -> Answers:
    """Read the answers of one experiment that count (analysis/counting.py: never those
    of participants who withdrew unless ``include_withdrawn``; by default lab and
    simulated as recorded, MTurk submitted/approved in production; ``environments`` /
    ``statuses`` choose otherwise); ``Answers.counting`` (and ``df.attrs["counting"]``)
    says what was counted and what each rule excluded.

    Parameters
    ----------
    db : str, optional
        Database URL, any form the server accepts (``sqlite:////abs/server.sqlite3``,
        ``postgres://``, ``postgresql://``, ``postgresql+psycopg://``).
    csv : str or Path, optional
        The CSV answers export (docs/contracts.md §6).
    experiment : str, optional
        Experiment name; may be omitted when the source holds exactly one.
    populations : list of str, optional
        Keep only these populations (an unknown one is an error).
    json_export : str or Path, optional
        The JSON export ``{"experiment", "trials", "answers"}``. Give exactly one of
        ``db``, ``csv`` and ``json_export``.

    Returns
    -------
    Answers
        ``.df`` has one row per answer and the columns of the CSV export (see the module
        docstring), ``.machine_keys`` the feature sets, ``.condition_features`` the
        design's condition -> feature set where the source keeps it.

    Raises
    ------
    AnalysisError
        One line per problem: unreadable source, missing columns, non-integer or
        out-of-range positions, negative response times, duplicate answers, rows of one
        trial that disagree on its true position, condition, subset, pair or machine
        choices.

    Examples
    --------
    >>> answers = load_answers(csv="answers.csv")  # doctest: +SKIP
    >>> answers.df[["trial", "chosen_position", "correct"]].head()  # doctest: +SKIP
    """
    if sum(x is not None for x in (db, csv, json_export)) != 1:
        raise AnalysisError("give exactly one of --db URL, --csv FILE or --json FILE")
    if db is not None:
        answers = _from_db(db, experiment)
    elif csv is not None:
        answers = _from_csv(Path(csv), experiment)
    else:
        answers = _from_json(Path(json_export), experiment)
    check_consistency(answers.df, answers.source)
    from analysis.counting import count_answers
    answers.df, answers.counting = count_answers(answers.df, environments, statuses,
                                                 include_withdrawn=include_withdrawn)
    if populations:
        present = answers.populations
        unknown = [p for p in populations if p not in present]
        if unknown:
            raise AnalysisError(*[f"unknown population {p!r}: experiment "
                                  f"{answers.experiment!r} has answers from "
                                  f"{', '.join(present) or 'nobody'}" for p in unknown])
        attrs = answers.df.attrs
        answers.df = answers.df[answers.df["population"].isin(populations)].reset_index(drop=True)
        answers.df.attrs = attrs
    return answers


def machine_columns(df: pd.DataFrame) -> list[str]:
    """Return the ``machine:<key>`` column names of an answers table, sorted by key."""
    return sorted(c for c in df.columns if c.startswith(MACHINE_PREFIX))


# --------------------------------------------------------------------------- CSV
def _from_csv(path: Path, experiment: str | None) -> Answers:
    if not path.is_file():
        raise AnalysisError(f"CSV file not found: {path}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"{path}: the file is empty (expected the answers export "
                            f"with a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not a readable CSV file ({str(exc).strip()})") from None
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise AnalysisError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)} (the answers export of docs/contracts.md "
                            f"§6 has {', '.join(BASE_COLUMNS)}, then machine:<key> columns)")
    raw = raw.apply(lambda col: col.map(_unquote_formula))
    names = sorted(set(raw["experiment"]))
    if not names:
        raise AnalysisError(f"{path}: no answers (the file has a header row only)")
    name = _pick_experiment(names, experiment, where=str(path))
    raw = raw[raw["experiment"] == name]
    df = _typed(raw, where=str(path))
    keys = [c[len(MACHINE_PREFIX):] for c in machine_columns(df)]
    return Answers(df=df, experiment=name, source=f"CSV {path}", machine_keys=keys)


def _unquote_formula(cell: str) -> str:
    # The export writes "'=x" for a text cell "=x" (a spreadsheet would run it as a
    # formula; docs/contracts.md §6): read back the value the server stored.
    return unquote(cell)


def _typed(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Convert the string columns of a CSV export to the types of ``Answers.df``."""
    df = pd.DataFrame(index=range(len(raw)))
    raw = raw.reset_index(drop=True)
    problems: list[str] = []
    for col in BASE_COLUMNS:
        if col not in raw.columns:
            df[col] = pd.NA if col != "rt_ms" else np.nan
            continue
        s = raw[col].str.strip()
        if col in ("chosen_position", "true_position", "trial_order"):
            num = pd.to_numeric(s.replace("", None), errors="coerce")
            bad = num.isna() if col != "trial_order" else (num.isna() & (s != ""))
            # 2.5 is no position: refuse it rather than truncate it to 2
            bad |= num.notna() & (num != num.round())
            if col != "trial_order":
                bad |= ~num.between(1, N_CANDIDATES)
            if bad.any():
                problems.append(f"{where}: column {col}: {int(bad.sum())} row(s) with a value "
                                f"that is not a position 1..{N_CANDIDATES} (first: "
                                f"row {int(np.flatnonzero(bad)[0]) + 2}, {s[bad].iloc[0]!r})")
                continue
            df[col] = num.round().astype("Int64") if col == "trial_order" else num.astype(int)
        elif col in ("catch", "correct"):
            low = s.str.lower()
            ok = low.isin(["0", "1", "true", "false"])
            if not ok.all():
                problems.append(f"{where}: column {col}: {int((~ok).sum())} row(s) not 0/1 "
                                f"(first: {s[~ok].iloc[0]!r})")
                continue
            df[col] = low.isin(["1", "true"])
        elif col == "rt_ms":
            num = pd.to_numeric(s.replace("", None), errors="coerce")
            bad = num.isna() & (s != "")
            if bad.any():
                problems.append(f"{where}: column rt_ms: {int(bad.sum())} row(s) not a number "
                                f"(first: {s[bad].iloc[0]!r})")
                continue
            df[col] = num.astype(float)
        else:
            df[col] = s.replace("", None).astype(object)
    for col in machine_columns(raw):
        s = raw[col].str.strip()
        num = pd.to_numeric(s.replace("", None), errors="coerce")
        bad = ((num.isna() & (s != "")) | (num.notna() & ~num.between(1, N_CANDIDATES))
               | (num.notna() & (num != num.round())))
        if bad.any():
            problems.append(f"{where}: column {col}: {int(bad.sum())} row(s) with a value that "
                            f"is not a position 1..{N_CANDIDATES} or empty")
            continue
        df[col] = num.astype("Int64")
    if problems:
        raise AnalysisError(*problems)
    # `correct` is what the participant did; recompute it so that the two cannot disagree.
    df["correct"] = df["chosen_position"] == df["true_position"]
    return df


# --------------------------------------------------------------------------- JSON
def _from_json(path: Path, experiment: str | None) -> Answers:
    """The JSON export: the same rows as the CSV under "answers", plus the experiment's
    design (condition -> feature set) and its feature sets."""
    if not path.is_file():
        raise AnalysisError(f"JSON file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("answers"), list):
        raise AnalysisError(f"{path}: not an answers export (expected a JSON object with "
                            f"\"experiment\", \"trials\" and \"answers\")")
    exp = doc.get("experiment") if isinstance(doc.get("experiment"), dict) else {}
    rows = doc["answers"]
    if not all(isinstance(r, dict) for r in rows):
        raise AnalysisError(f"{path}: \"answers\" must be a list of objects")
    declared = [str(k) for k in exp.get("feature_sets") or []]
    raw = pd.DataFrame(rows)
    for key in declared:
        if MACHINE_PREFIX + key not in raw.columns:
            raw[MACHINE_PREFIX + key] = ""
    if raw.empty:
        name = str(exp.get("name") or "")
        if experiment is not None and name and experiment != name:
            _pick_experiment([name], experiment, where=str(path))
        raw = pd.DataFrame(columns=REQUIRED_CSV_COLUMNS)
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise AnalysisError(f"{path}: answers lack field{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)}")
    raw = raw.map(lambda v: "" if v is None else (str(int(v)) if isinstance(v, bool)
                                                  else str(v)))
    names = sorted(set(raw["experiment"])) or [str(exp.get("name") or "")]
    name = _pick_experiment(names, experiment, where=str(path))
    raw = raw[raw["experiment"] == name]
    df = _typed(raw, where=str(path))
    keys = sorted({c[len(MACHINE_PREFIX):] for c in machine_columns(df)})
    design = exp.get("design") if isinstance(exp.get("design"), dict) else {}
    fs = design.get("feature_sets") if isinstance(design.get("feature_sets"), dict) else {}
    return Answers(df=df, experiment=name, source=f"JSON {path}", machine_keys=keys,
                   condition_features={str(c): str(k) for c, k in fs.items() if k in keys})


# --------------------------------------------------------------------------- checks
# Columns that describe a trial, not an answer: every row of one trial must agree on them.
TRIAL_COLUMNS = ["true_position", "condition", "subset", "pair", "catch"]


def check_consistency(df: pd.DataFrame, where: str) -> None:
    """Raise AnalysisError, one line per problem, when answers contradict each other:
    negative response times, the same participant answering a trial twice, or rows of one
    trial that disagree on what the trial is (true position, condition, subset, pair,
    catch, machine choices). Returns None when the answers are consistent."""
    problems: list[str] = []
    if df.empty:
        return
    neg = df["rt_ms"] < 0
    if neg.any():
        first = df[neg].iloc[0]
        problems.append(f"{where}: column rt_ms: {int(neg.sum())} negative response time(s) "
                        f"(first: participant {first['participant']}, trial {first['trial']}, "
                        f"{first['rt_ms']:g} ms)")
    dup = df.duplicated(["participant", "trial"], keep="first")
    if dup.any():
        first = df[dup].iloc[0]
        problems.append(f"{where}: {int(dup.sum())} duplicate answer row(s): the same "
                        f"participant answered the same trial twice (first: participant "
                        f"{first['participant']}, trial {first['trial']})")
    for col in TRIAL_COLUMNS + machine_columns(df):
        values = df[col].astype(object).where(df[col].notna(), None)
        n = values.groupby(df["trial"]).nunique(dropna=False)
        bad = n[n > 1]
        if len(bad):
            t = bad.index[0]
            seen = sorted(map(str, values[df["trial"] == t].unique()))
            problems.append(f"{where}: {len(bad)} trial(s) whose rows disagree on {col} "
                            f"(first: trial {t} has {', '.join(seen)})")
    if problems:
        raise AnalysisError(*problems)


# --------------------------------------------------------------------------- database
def normalise_database_url(url: str) -> str:
    """Return ``url`` rewritten as the server rewrites it (server/config.py):
    ``postgres://`` and ``postgresql://`` use psycopg 3, the driver the project installs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise AnalysisError(f"not a database URL: {url!r} (e.g. sqlite:////abs/path/server.sqlite3 "
                            f"or postgresql+psycopg://user@host/db)") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        # SQLite would silently create an empty file: say the file is missing instead.
        if not db or db == ":memory:" or not Path(db).is_file():
            raise AnalysisError(f"database file not found: {db or '(none given)'} "
                                f"(URL {url}); run the server once or check the path")
    try:
        return create_engine(url)
    except Exception as exc:  # unknown dialect, missing driver
        raise AnalysisError(f"cannot use database URL {url!r}: {exc}") from None


def _from_db(url: str, experiment: str | None) -> Answers:
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    url = normalise_database_url(url)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            missing = [t for t in DB_TABLES if t not in tables]
            if missing:
                if not tables & set(DB_TABLES):
                    raise AnalysisError(f"database {_safe(url)} is empty: no experiment tables "
                                        f"(is it the server's database? create it with "
                                        f"`flask --app server db upgrade`)")
                raise AnalysisError(f"database {_safe(url)} lacks table(s) "
                                    f"{', '.join(missing)}")
            exps = pd.read_sql(text("SELECT id, name FROM experiments ORDER BY name"), conn)
            if exps.empty:
                raise AnalysisError(f"database {_safe(url)} holds no experiments yet "
                                    f"(load one with the server's admin page or CLI)")
            name = _pick_experiment(list(exps["name"]), experiment, where=_safe(url))
            exp_id = int(exps.loc[exps["name"] == name, "id"].iloc[0])
            trials = pd.read_sql(text("SELECT machine_choices FROM trials "
                                      "WHERE experiment_id = :e"), conn, params={"e": exp_id})
            declared = _declared_feature_sets(conn, exp_id)
            by_condition = _condition_features(conn, exp_id)
            have = {c["name"] for c in inspect(conn).get_columns("participants")}
            # A database not yet upgraded to 0002_recruitment has no provenance columns.
            prov = ", ".join(f"p.{c} AS {c}" if c in have else f"NULL AS {c}"
                             for c in _PROVENANCE_DB)
            rows = pd.read_sql(text(_ANSWERS_SQL.replace("{provenance}", prov)), conn,
                               params={"e": exp_id})
    except SQLAlchemyError as exc:
        raise AnalysisError(f"cannot read database {_safe(url)}: "
                            f"{str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    keys = sorted({k for mc in trials["machine_choices"] for k in _json(mc)} | declared)
    return Answers(df=_db_frame(rows, name, keys), experiment=name,
                   source=f"database {_safe(url)}", machine_keys=keys,
                   condition_features={c: k for c, k in by_condition.items() if k in keys},
                   url=url)


def _declared_feature_sets(conn, exp_id: int) -> set[str]:
    """The experiment's feature-set keys where the server keeps them (experiments.
    feature_sets, JSON list): a feature set that never chose still gets its machine row,
    as in the CSV export. Absent column: the keys seen in trials.machine_choices only."""
    from sqlalchemy import inspect, text
    cols = {c["name"] for c in inspect(conn).get_columns("experiments")}
    if "feature_sets" not in cols:
        return set()
    value = conn.execute(text("SELECT feature_sets FROM experiments WHERE id = :e"),
                         {"e": exp_id}).scalar()
    try:
        keys = json.loads(value or "[]")
    except ValueError:
        return set()
    return {str(k) for k in keys} if isinstance(keys, list) else set()


def _condition_features(conn, exp_id: int) -> dict[str, str]:
    """The design's {condition: feature-set key} (experiments.design JSON,
    `feature_sets`), or {} where the server does not keep it."""
    from sqlalchemy import inspect, text
    if "design" not in {c["name"] for c in inspect(conn).get_columns("experiments")}:
        return {}
    value = conn.execute(text("SELECT design FROM experiments WHERE id = :e"),
                         {"e": exp_id}).scalar()
    try:
        fs = (json.loads(value or "{}") or {}).get("feature_sets") or {}
    except (ValueError, AttributeError):
        return {}
    return {str(c): str(k) for c, k in fs.items()} if isinstance(fs, dict) else {}


_PROVENANCE_DB = ("platform", "environment", "external_session_id", "external_study_id",
                  "submission_status", "withdrawn_at")
_ANSWERS_SQL = """
SELECT p.id AS participant_id, p.population AS population,
       t.key AS trial, r.trial_order AS trial_order, t.condition AS condition,
       t.subset AS subset, t.pair AS pair, t.catch AS catch,
       r.chosen_index AS chosen_index, t.true_index AS true_index, r.rt_ms AS rt_ms,
       r.received_at AS received_at, p.hit_id AS hit_id, p.assignment_id AS assignment_id,
       p.worker_id AS worker_id, t.machine_choices AS machine_choices, {provenance}
FROM responses r
JOIN participants p ON p.id = r.participant_id
JOIN trials t ON t.id = r.trial_id
WHERE t.experiment_id = :e
ORDER BY p.id, r.trial_order, t.key
"""


def _db_frame(rows: pd.DataFrame, name: str, keys: list[str]) -> pd.DataFrame:
    """Turn the joined rows into the CSV-export shape (1-based positions, pseudonyms)."""
    n = len(rows)
    df = pd.DataFrame({
        "experiment": [name] * n,
        # Database ids, not codes or worker ids: a report gets emailed around.
        "participant": [f"P{int(i):04d}" for i in rows["participant_id"]],
        "population": rows["population"].fillna("unknown").astype(str).to_numpy(),
        "trial": rows["trial"].astype(str).to_numpy(),
        "trial_order": pd.array(rows["trial_order"], dtype="Int64"),
        "condition": rows["condition"].astype(str).to_numpy(),
        "subset": rows["subset"].astype(str).to_numpy(),
        "pair": rows["pair"].astype(str).to_numpy(),
        "catch": rows["catch"].astype(bool).to_numpy(),
        "chosen_position": rows["chosen_index"].astype(int).to_numpy() + 1,
        "true_position": rows["true_index"].astype(int).to_numpy() + 1,
    })
    df["correct"] = df["chosen_position"] == df["true_position"]
    df["rt_ms"] = pd.to_numeric(rows["rt_ms"], errors="coerce").astype(float).to_numpy()
    df["received_at"] = [_iso(v) for v in rows["received_at"]]
    for col in ("hit_id", "assignment_id"):
        df[col] = rows[col].astype(object).where(rows[col].notna(), None).to_numpy()
    # Worker ids identify people; keep only whether there was one, like the pseudonym.
    df["worker_id"] = [None if pd.isna(w) else "W" + f"{int(p):04d}"
                       for w, p in zip(rows["worker_id"], rows["participant_id"])]
    for col in BASE_COLUMNS[BASE_COLUMNS.index("platform"):]:
        if col == "external_participant_id":
            # Like worker_id: whether there was a person id, not who.
            df[col] = [None if pd.isna(w) else "X" + f"{int(p):04d}"
                       for w, p in zip(rows["platform"], rows["participant_id"])]
        elif col == "withdrawn_at":
            df[col] = [_iso(v) for v in rows[col]]
        else:
            df[col] = rows[col].astype(object).where(rows[col].notna(), None).to_numpy()
    choices = [_json(mc) for mc in rows["machine_choices"]]
    for key in keys:
        vals = [c.get(key) for c in choices]
        df[MACHINE_PREFIX + key] = pd.array([None if v is None else int(v) + 1 for v in vals],
                                            dtype="Int64")
    return df


def _json(value) -> dict:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return {}
    if isinstance(value, dict):
        return value
    return json.loads(value) or {}


def _iso(value) -> str | None:
    """ISO 8601 UTC like the CSV export (SQLite hands back naive text, stored as UTC)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return str(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _safe(url: str) -> str:
    """The URL without its password, for messages and reports."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(database)"


def _pick_experiment(names: list[str], experiment: str | None, where: str) -> str:
    """Return the experiment to analyse, or raise naming the ones that exist."""
    if experiment is not None:
        if experiment not in names:
            raise AnalysisError(f"no experiment named {experiment!r} in {where}; "
                                f"experiments there: {', '.join(names)}")
        return experiment
    if len(names) > 1:
        raise AnalysisError(f"{where} holds several experiments; choose one with "
                            f"--experiment: {', '.join(names)}")
    return names[0]


def require_answers(answers: Answers, include_catch: bool = False) -> None:
    """Raise a clear AnalysisError when the experiment has no answers (that count) yet,
    or (unless ``include_catch``) only answers to catch trials, which no table counts.
    Returns None."""
    c = answers.counting
    if answers.df.empty and c is not None and c.total:
        raise AnalysisError(f"none of the {c.total} answers of experiment "
                            f"{answers.experiment!r} counts: " + "; ".join(c.lines()[1:])
                            + " (choose others with --environment / --status)")
    if not answers.df.empty and not include_catch and bool(answers.df["catch"].all()):
        raise AnalysisError(
            f"experiment {answers.experiment!r} has only catch-trial answers "
            f"({len(answers.df)}, {answers.source}): no ordinary trial to analyse "
            f"(add --include-catch to count them anyway)")
    if answers.df.empty:
        raise AnalysisError(
            f"experiment {answers.experiment!r} has no answers yet ({answers.source}); "
            f"answer some trials, or add simulated participants with `python -m analysis "
            f"simulate --server URL --experiment {answers.experiment} --participants 20`")
