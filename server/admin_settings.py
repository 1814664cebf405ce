"""The experiment's settings in the web admin (/manage/experiments/<name>/settings).

Every change goes through `loader.validate_settings` and `loader.apply_settings`, as the
command line's `experiment-settings` does. A field absent from the form means "leave it
as it is", so a form that shows a locked setting as read-only never changes it.

Once an experiment has answers, the settings that change what was measured are locked
(`LOCKED`, with the reason shown beside each): answers given under one value and answers
given under another would be pooled as if they were one condition. The others change
only what participants read around the task, how they arrive and leave, or estimates.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from flask import redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import FloatField, Form, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from . import recording as rec
from . import recruitment
from .loader import apply_settings, response_count, validate_settings
from .manage import bp, login_required
from .models import AuditEntry, Experiment, db
from .recruitment import REPEATS
from .texts import LINE_TEXTS

# Settings that change what was measured, and why; refused (409) once answers exist.
LOCKED = {
    "trial_order": "the order of the trials shapes order effects and each answer's "
                   "trial_order: answers so far were measured in the current order",
    "repeats": "who may take part again decides whether answers are independent: "
               "participants so far were admitted under the current policy",
    "break_every": "breaks change the fatigue along the sequence the answers so far "
                   "were given under",
    "practice": "the practice is what participants learned before their first measured "
                "trial",
    "practice_trials": "the practice is what participants learned before their first "
                       "measured trial",
    "practice_feedback": "feedback in the practice teaches what a right answer is before "
                         "the measured trials",
    "instructions": "the instructions define the task the answers so far were given to",
    "language": "the language of the instructions and the task the answers so far were "
                "given in",
    "min_viewport_width": "the smallest screen decides at what size the images were seen",
    "min_viewport_height": "the smallest screen decides at what size the images were seen",
}
# Why the other settings stay editable once answers exist.
FREE = {
    "text": "what participants read around the task, not the task itself",
    "kiosk": "how the lab's browser is handed from one participant to the next",
    "seconds_per_trial": "only the duration estimates (texts, platform listings)",
    "platform": "how participants arrive and leave (ids, redirect, completion code)",
}
YES_NO = [SelectChoice("yes"), SelectChoice("no")]
YES_NO_SETTINGS = ("practice", "practice_feedback", "kiosk")  # shown as yes/no, kept as bool
# The texts in page order, and their labels; consent_text is the experiment's own column,
# the others are keys of its texts.
TEXT_ORDER = LINE_TEXTS + ("welcome", "consent_text", "instructions", "debriefing")
TEXT_LABELS = {"title": "Study title", "researcher": "Researcher", "contact": "Contact",
               "welcome": "Welcome text (Markdown)", "consent_text": "Consent (Markdown)",
               "instructions": "Instructions (Markdown)", "debriefing": "Debriefing (Markdown)"}


@dataclass(frozen=True)
class Field:
    """One form field: the setting it edits (`setting`, with `text` or `platform` and
    `key` for the nested ones), its label, and its group on the page."""
    name: str
    label: str
    group: str
    setting: str
    key: str = ""
    platform: str = ""

    @property
    def locked_reason(self) -> str | None:
        return LOCKED.get(self.key if self.setting == "texts" else self.setting)

    @property
    def free_reason(self) -> str:
        if self.setting in ("texts", "consent_text"):
            return FREE["text"]
        if self.setting == "platform_settings":
            return FREE["platform"]
        return FREE.get(self.setting, "")


def platform_settings_names() -> dict[str, tuple[str, ...]]:
    """Return {platform: its setting names} for every registered platform that has
    settings (its `settings` attribute, checked by its `check_settings`)."""
    return {name: tuple(plat.settings) for name, plat in recruitment.PLATFORMS.items()
            if getattr(plat, "settings", ())}


def fields() -> list[Field]:
    """Return the settings form's fields in page order."""
    out = [Field(t, TEXT_LABELS[t], "Texts", "consent_text") if t == "consent_text"
           else Field(t, TEXT_LABELS[t], "Texts", "texts", key=t) for t in TEXT_ORDER]
    out += [Field("language", "Language ('' = the browser's)", "Texts", "language"),
            Field("trial_order", "Trial order", "Trials", "trial_order"),
            Field("repeats", "Repeats", "Trials", "repeats"),
            Field("break_every", "Break every N trials (0 = none)", "Trials", "break_every"),
            Field("seconds_per_trial", "Seconds per trial (blank = default)", "Trials",
                  "seconds_per_trial"),
            Field("practice", "Practice", "Practice", "practice"),
            Field("practice_trials", "Practice trials", "Practice", "practice_trials"),
            Field("practice_feedback", "Practice feedback", "Practice", "practice_feedback"),
            Field("min_viewport_width", "Minimum screen width, CSS px (blank = derived)",
                  "Screen and lab", "min_viewport_width"),
            Field("min_viewport_height", "Minimum screen height, CSS px (blank = derived)",
                  "Screen and lab", "min_viewport_height"),
            Field("kiosk", "Kiosk (shared lab computer)", "Screen and lab", "kiosk")]
    for plat, names in platform_settings_names().items():
        out += [Field(f"platform__{plat}__{k}", f"{plat}: {k.replace('_', ' ')}",
                      f"Platform: {plat}", "platform_settings", key=k, platform=plat)
                for k in names]
    return out


def _wtf_field(f: Field):
    if f.setting == "texts" and f.key not in LINE_TEXTS or f.setting == "consent_text":
        return TextAreaField(f.label)
    if f.setting in YES_NO_SETTINGS:
        return SelectField(f.label, choices=YES_NO)
    if f.setting == "trial_order":
        return SelectField(f.label, choices=[SelectChoice("random"), SelectChoice("fixed")])
    if f.setting == "repeats":
        return SelectField(f.label, choices=[SelectChoice(k, f"{k}: {v}")
                                             for k, v in REPEATS.items()])
    if f.setting in ("break_every", "practice_trials"):
        return IntegerField(f.label)
    if f.setting in ("min_viewport_width", "min_viewport_height"):
        return IntegerField(f.label, validators=[Optional()])
    if f.setting == "seconds_per_trial":
        return FloatField(f.label, validators=[Optional()])
    return StringField(f.label)


def settings_form(fs: list[Field], formdata=None, data: dict | None = None) -> Form:
    """Return a WTForms form of the fields `fs`, filled from `formdata` (a POST) or `data`
    (the current values)."""
    cls = type("SettingsForm", (Form,), {f.name: _wtf_field(f) for f in fs})
    return cls(formdata=formdata, data=data)


def current_values(exp: Experiment, fs: list[Field]) -> dict:
    """Return {field name: the experiment's current value, as the form shows it}."""
    out = {}
    for f in fs:
        if f.setting == "texts":
            v = exp.text(f.key)
        elif f.setting == "platform_settings":
            v = exp.platform_setting(f.platform).get(f.key, "")
        else:
            v = getattr(exp, f.setting)
        if isinstance(v, bool):
            v = "yes" if v else "no"
        out[f.name] = "" if v is None else v
    return out


def _value(f: Field, field):
    """The form field's value in the setting's own type."""
    v = field.data
    if f.setting in YES_NO_SETTINGS:
        return v == "yes"
    if isinstance(v, str):
        # Browsers send CRLF in textareas; the CLI's files have LF.
        return v.replace("\r\n", "\n")
    return v


def changes_from(form: Form, exp: Experiment, present,
                 fs: list[Field]) -> tuple[dict, list[Field]]:
    """Return (settings for `validate_settings`, the fields changed): only fields of `fs`
    the POST carried (`present`) whose value differs from the current one."""
    now = current_values(exp, fs)
    settings: dict = {}
    changed = []
    for f in fs:
        if f.name not in present:
            continue
        new = _value(f, getattr(form, f.name))
        old = now[f.name]
        if isinstance(new, bool):
            old = old == "yes"
        if (new if new is not None else "") == old:
            continue
        changed.append(f)
        if f.setting == "texts":
            settings.setdefault("texts", {})[f.key] = new or ""
        elif f.setting == "platform_settings":
            settings.setdefault("platform_settings", {}).setdefault(f.platform, {})[f.key] = \
                new or None
        else:
            settings[f.setting] = new
    return settings, changed


def _render(exp: Experiment, fs: list[Field], form: Form, problems: list[str], status: int,
            saved: bool, answers: int | None = None):
    """Render the page; `answers` is the experiment's response count where the caller
    has it already."""
    if answers is None:
        answers = response_count(exp)
    has_answers = answers > 0
    groups: dict[str, list] = {}
    for f in fs:
        groups.setdefault(f.group, []).append(
            {"f": f, "field": getattr(form, f.name),
             "locked": has_answers and f.locked_reason is not None})
    return render_template("manage/settings.html", exp=exp, groups=groups,
                           problems=problems, has_answers=has_answers, saved=saved,
                           answers=answers), status


@bp.get("/experiments/<name>/settings")
@login_required
def settings(name: str):
    exp = rec.get_experiment(name)
    fs = fields()
    return _render(exp, fs, settings_form(fs, data=current_values(exp, fs)), [], 200,
                   saved=request.args.get("saved") == "1")


@bp.post("/experiments/<name>/settings")
@login_required
def settings_save(name: str):
    exp = rec.get_experiment(name)
    fs = fields()
    form = settings_form(fs, formdata=request.form)
    present = set(request.form)
    conversion = [f"{getattr(form, n).label.text}: {'; '.join(errs)}"
                  for n, errs in form.errors.items() if n in present] if not form.validate() else []
    if conversion:
        return _render(exp, fs, form, conversion, 400, False)
    settings, changed = changes_from(form, exp, present, fs)
    problems, status = [], 400
    answers = response_count(exp) if changed else None
    if answers:
        locked = [f"{f.label} is locked: the experiment has answers and {f.locked_reason}"
                  for f in changed if f.locked_reason]
        if locked:
            problems, status = locked, 409
    problems += validate_settings(settings)
    if problems:
        return _render(exp, fs, form, problems, status, False, answers)
    if changed:
        apply_settings(exp, settings)
        db.session.add(AuditEntry(
            actor=current_user.username, action="settings", experiment=exp.name,
            subject=", ".join(f.name for f in changed),
            detail=json.dumps({f.name: _short(_value(f, getattr(form, f.name)))
                               for f in changed}, sort_keys=True)))
        db.session.commit()
    return redirect(url_for("manage.settings", name=exp.name, saved="1"), 303)


def _short(v, limit: int = 200):
    return v[:limit] + "…" if isinstance(v, str) and len(v) > limit else v
