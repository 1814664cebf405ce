"""What the participant reads: the researcher's texts (Markdown, rendered safely), the
defaults that are correct for the experiment (duration from its trial count, catch trials
mentioned when it has some), and the language of the participant pages (Flask-Babel; the
message catalogue is translations/<lang>/LC_MESSAGES/messages.po).

Markdown goes through markdown-it-py with raw HTML disabled: any tag the researcher
writes is shown as text (so no <script>, no onerror=), and its link validator refuses
javascript:, vbscript:, file: and data: links. A parser that never emits HTML from its
input is safer than one that emits it and a sanitiser that cleans it afterwards."""
from __future__ import annotations

import functools
import math
import statistics

from flask import g, has_request_context, request
from flask_babel import Babel, get_locale, gettext, ngettext
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import func, select

from .models import Experiment, Participant, Response, Trial, db

# The languages of the message catalogue: "en" is the source language of the strings.
LANGUAGES = ("en", "de")
# The time one five-choice trial takes, in seconds, before anything is measured: an
# estimate (looking at six images and clicking one, with the pauses between pages). Once
# an experiment has MEASURE_MIN_INTERVALS answer-to-answer intervals from participants
# who finished, its own median is used instead (`seconds_per_trial`); the researcher's
# --seconds-per-trial wins over both.
SECONDS_PER_TRIAL = 8.0
MEASURE_MIN_INTERVALS = 20
# An interval longer than this is a break, not a trial.
MEASURE_MAX_INTERVAL_S = 300.0
# Reading the welcome, consent and instructions pages and the practice, in seconds.
READING_SECONDS = 120
# Single-line texts (shown in headings) and the Markdown texts the researcher may write;
# consent is kept in experiments.consent_text, the others in experiments.texts.
LINE_TEXTS = ("title", "researcher", "contact")
MARKDOWN_TEXTS = ("welcome", "instructions", "debriefing")
MAX_LINE = 200
MAX_TEXT = 20_000
# The consent every experiment got before the texts were computed: treated as "not set".
OLD_DEFAULT_CONSENT = (
    "You are invited to take part in a study on how people judge the similarity of images. "
    "In each trial you will see one image and five candidates, and choose the candidate "
    "that looks most like it. It takes about 10 to 20 minutes. Your answers are recorded "
    "under a code, not your name, and you may stop at any time without giving a reason.")

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(text: str) -> Markup:
    """Return `text` (Markdown) as HTML safe to put in a page: raw HTML is escaped, links
    other than http(s)/mailto/relative ones are left as text."""
    return Markup(_md.render(text or ""))


def check_texts(texts: dict, consent=None) -> list[str]:
    """Return one message per text that is too long or, for title/researcher/contact,
    not on one line."""
    problems = []
    for name, value in texts.items():
        if name in LINE_TEXTS:
            if "\n" in value.strip() or len(value) > MAX_LINE:
                problems.append(f"text {name!r} must be one line of at most {MAX_LINE} "
                                "characters")
        elif len(value) > MAX_TEXT:
            problems.append(f"text {name!r} has {len(value)} characters (at most {MAX_TEXT})")
    if consent is not None and (not isinstance(consent, str) or len(consent) > MAX_TEXT):
        problems.append(f"the consent text must be text of at most {MAX_TEXT} characters")
    return problems


def check_language(value) -> list[str]:
    """Return a message when `value` is not a language of the catalogue ('' = browser)."""
    if value == "" or value in LANGUAGES:
        return []
    return [f"language must be one of {', '.join(LANGUAGES)} ('' = the browser's), "
            f"not {value!r}"]


def _per_request(fn):
    """Remember `fn(exp)` for the rest of the request (by experiment id): a page's texts,
    practice and duration ask for the same counts several times, and neither the trials
    nor the finished participants' answers change while one page is made."""
    @functools.wraps(fn)
    def memo(exp: Experiment):
        if not has_request_context():
            return fn(exp)
        cache = g.setdefault("_tll_texts_memo", {})
        key = (fn.__name__, exp.id)
        if key not in cache:
            cache[key] = fn(exp)
        return cache[key]
    return memo


@_per_request
def trial_counts(exp: Experiment) -> tuple[int, int]:
    """Return (trials, catch trials) of the experiment."""
    n, catch = db.session.execute(
        select(func.count(Trial.id), func.coalesce(func.sum(
            db.case((Trial.catch.is_(True), 1), else_=0)), 0))
        .where(Trial.experiment_id == exp.id)).one()
    return int(n), int(catch)


@_per_request
def measured_seconds_per_trial(exp: Experiment) -> float | None:
    """Return the median time between consecutive answers of the experiment's finished,
    not withdrawn participants (seconds; intervals over MEASURE_MAX_INTERVAL_S are breaks
    and left out), or None with fewer than MEASURE_MIN_INTERVALS intervals."""
    rows = db.session.execute(
        select(Response.participant_id, Response.received_at)
        .join(Participant, Participant.id == Response.participant_id)
        .where(Participant.experiment_id == exp.id, Participant.completed_at.is_not(None),
               Participant.withdrawn_at.is_(None))
        .order_by(Response.participant_id, Response.received_at)).all()
    gaps = [(b.received_at - a.received_at).total_seconds()
            for a, b in zip(rows, rows[1:]) if a.participant_id == b.participant_id]
    gaps = [x for x in gaps if 0 < x <= MEASURE_MAX_INTERVAL_S]
    return statistics.median(gaps) if len(gaps) >= MEASURE_MIN_INTERVALS else None


def seconds_per_trial(exp: Experiment) -> tuple[float, str]:
    """Return (seconds one trial takes, where that figure comes from): the researcher's
    setting, else the experiment's measured median, else SECONDS_PER_TRIAL."""
    if exp.seconds_per_trial:
        return float(exp.seconds_per_trial), "set by the researcher"
    measured = measured_seconds_per_trial(exp)
    if measured is not None:
        return measured, "measured on this experiment's answers"
    return SECONDS_PER_TRIAL, "the default estimate"


def minutes(exp: Experiment, trials: int | None = None) -> int:
    """Return the whole minutes the study takes: its trials (or `trials`) times the
    seconds per trial (`seconds_per_trial`), plus the reading."""
    n = trial_counts(exp)[0] if trials is None else trials
    spt, _ = seconds_per_trial(exp)
    return max(1, math.ceil((n * spt + READING_SECONDS) / 60))


def _line(exp: Experiment, name: str) -> str:
    return exp.text(name).strip()


def title(exp: Experiment) -> str:
    """Return the study's title (the researcher's, or a translated default)."""
    return _line(exp, "title") or gettext("A study on how people compare images")


def attention_checks_sentence() -> str:
    """The sentence, in the page's language, that some trials are attention checks showing
    the very same picture (the consent's and the practice feedback's)."""
    return gettext("A few trials are attention checks that show the very same picture among "
                   "the candidates: in those, choose that picture.")


def default_consent(exp: Experiment, trials: int | None = None, withdraw: bool = True) -> str:
    """Return the default consent (Markdown) for the experiment, in the page's language:
    its duration from the trial count (or the `trials` one participant answers, e.g. an
    MTurk HIT's), the catch trials when it has some, and withdrawal by the link on every
    page (where `withdraw`: the lab flow has it)."""
    n, catch = trial_counts(exp)
    n = n if trials is None else trials
    parts = [
        gettext("You are invited to take part in a study on how people judge the similarity "
                "of images."),
        ngettext("You will see %(num)d trial: one image and five candidates below it; you "
                 "choose the candidate that looks most like the image.",
                 "You will see %(num)d trials, each one image and five candidates below it; "
                 "in each you choose the candidate that looks most like the image.", n),
        gettext("It takes about %(minutes)d minutes.", minutes=minutes(exp, n)),
    ]
    if catch and trials is not None:
        # One participant's share (an MTurk HIT) may hold any number of the checks.
        parts.append(attention_checks_sentence())
    elif catch:
        parts.append(ngettext(
            "%(num)d trial is an attention check that shows the very same picture among the "
            "candidates: then choose that picture.",
            "%(num)d trials are attention checks that show the very same picture among the "
            "candidates: then choose that picture.", catch))
    if withdraw:
        parts.append(gettext("Your answers are recorded under a code, not your name. You "
                             "may stop at any time without giving a reason, and withdraw "
                             "your answers with the link at the bottom of every page."))
    else:
        parts.append(gettext("Your answers are recorded under a code, not your name, and "
                             "you may stop at any time without giving a reason."))
    return " ".join(parts)


def default_welcome(exp: Experiment) -> str:
    """Return the default welcome text (Markdown): what the study is and how long."""
    n = trial_counts(exp)[0]
    return " ".join([
        gettext("Thank you for your interest in this study."),
        ngettext("It has %(num)d trial and takes about %(minutes)d minutes.",
                 "It has %(num)d trials and takes about %(minutes)d minutes.", n,
                 minutes=minutes(exp, n)),
    ])


def default_instructions(exp: Experiment) -> str:
    """Return the default instructions (Markdown): the look-alike task, the keys, and the
    catch trials when the experiment has some."""
    parts = [gettext(
        "Each trial shows one image at the top and five candidate images below. The "
        "candidates are different pictures: choose the one that *looks most like* the top "
        "image, whether by its shape, its colours, its expression or anything else. Click "
        "it, or press the key 1–5 for its position (1 is the left-most). There is no time "
        "limit, but go with your first impression. Your answer is saved as soon as you "
        "give it.")]
    if trial_counts(exp)[1]:
        parts.append(gettext(
            "A few trials are attention checks: one candidate is the very same picture as "
            "the top image. In those, choose that picture."))
    return "\n\n".join(parts)


def default_debriefing(exp: Experiment) -> str:
    """Return the default debriefing (Markdown): what the study was about."""
    return gettext(
        "The pairs of images in this study were matched by people as looking alike. We "
        "compare your choices with those of other people and with those of computer "
        "vision models, to learn how people judge that two images look alike and how "
        "far machines are from it.")


def consent_markdown(exp: Experiment, trials: int | None = None, withdraw: bool = True) -> str:
    """Return the consent text (Markdown) the participant reads: the researcher's, or the
    default computed for the experiment (see default_consent)."""
    own = (exp.consent_text or "").strip()
    if own and own != OLD_DEFAULT_CONSENT:
        return own
    return default_consent(exp, trials, withdraw)


def page_text(exp: Experiment, name: str, **consent) -> Markup:
    """Return the text `name` (welcome, consent, instructions, debriefing) as safe HTML:
    the researcher's Markdown, or the default for the experiment (`consent` options:
    trials, withdraw, as for default_consent)."""
    if name == "consent":
        return render_markdown(consent_markdown(exp, **consent))
    own = exp.text(name).strip()
    if own:
        return render_markdown(own)
    default = {"welcome": default_welcome, "instructions": default_instructions,
               "debriefing": default_debriefing}[name]
    return render_markdown(default(exp))


def study_header(exp: Experiment) -> dict:
    """Return the title, researcher and contact lines of the study (contact rendered as
    inline Markdown, so an e-mail address or link may be written)."""
    contact = _line(exp, "contact")
    return {"title": title(exp), "researcher": _line(exp, "researcher"),
            "contact": Markup(_md.renderInline(contact)) if contact else ""}


def select_locale() -> str:
    """Return the language of this request: the experiment's, or the browser's best
    match among LANGUAGES (Accept-Language), else English."""
    exp = getattr(g, "exp", None) if has_request_context() else None
    lang = getattr(exp, "language", "") or ""
    if lang in LANGUAGES:
        return lang
    if has_request_context():
        return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]
    return LANGUAGES[0]


def init_app(app) -> None:
    """Set up Flask-Babel (catalogue in translations/) and the template helpers."""
    from . import ROOT

    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(ROOT / "translations"))
    Babel(app, locale_selector=select_locale)

    @app.context_processor
    def _texts():
        return {"page_text": page_text, "study_header": study_header,
                "page_lang": lambda: str(get_locale() or LANGUAGES[0])}
