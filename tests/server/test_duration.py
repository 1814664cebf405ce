"""The study's duration: the researcher's seconds per trial, else the experiment's own
measured median between answers (once there are enough), else the default estimate; the
participant pages and Prolific's estimated time use the same figure."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from server import recording as rec
from server import texts
from server.models import Experiment, Participant, Response, db, utcnow


def _finish(exp, code, gap_s, withdrawn=False):
    p, _ = rec.start_participant(exp, code=code, consent=True)
    for n in range(1, 7):
        rec.record_answer(p, n, n % 5)
    t0 = utcnow()
    for i, r in enumerate(db.session.execute(select(Response).where(
            Response.participant_id == p.id).order_by(Response.trial_order)).scalars()):
        # one pause of 20 minutes (a break) that must not count as a trial
        r.received_at = t0 + timedelta(seconds=gap_s * i + (1200 if i >= 5 else 0))
    p = db.session.get(Participant, p.id)
    p.completed_at = p.completed_at or utcnow()
    if withdrawn:
        p.withdrawn_at = utcnow()
    db.session.commit()


def test_seconds_per_trial_default_measured_and_set(app):
    from server.recruitment.prolific.publishing import estimated_minutes

    with app.app_context():
        exp = db.session.execute(select(Experiment).where(Experiment.name == "small")).scalar_one()
        assert texts.seconds_per_trial(exp) == (texts.SECONDS_PER_TRIAL, "the default estimate")
        # 6 trials x 8 s + 120 s reading = 168 s -> 3 minutes
        assert texts.minutes(exp) == estimated_minutes(exp) == 3
        # 4 intervals per participant (the fifth is a break): 20 needed, so 5 participants;
        # a withdrawn participant's answers are not measured.
        _finish(exp, "W1", 1.0, withdrawn=True)
        for i in range(4):
            _finish(exp, f"P{i}", 30.0)
        assert texts.measured_seconds_per_trial(exp) is None  # 16 intervals
        _finish(exp, "P9", 30.0)
        assert texts.seconds_per_trial(exp) == (30.0, "measured on this experiment's answers")
        # 6 x 30 s + 120 s = 300 s -> 5 minutes, on the pages and on Prolific alike
        assert texts.minutes(exp) == estimated_minutes(exp) == 5
        exp.seconds_per_trial = 50.0
        assert texts.seconds_per_trial(exp) == (50.0, "set by the researcher")
        assert texts.minutes(exp) == estimated_minutes(exp) == 7
