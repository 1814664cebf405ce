"""The requester's records of Prolific (migration 0006_prolific): the study published for
an experiment on one API (so that rerunning `publish` finishes the same study instead of
making a second), and the bonuses paid (once per submission). Participants themselves
are plain `participants` rows with platform "prolific" (PROLIFIC_PID, SESSION_ID and
STUDY_ID as external participant, session and study ids)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...models import Experiment, db, utcnow


class ProlificStudy(db.Model):
    """One Prolific study of an experiment on one API (`api_url`: production or a local
    endpoint). `status` is "creating" until Prolific has answered, then the study's
    status as last read."""
    __tablename__ = "prolific_studies"
    __table_args__ = (UniqueConstraint("experiment_id", "api_url"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                               index=True)
    environment: Mapped[str] = mapped_column(String(20))   # local-sandbox | production
    api_url: Mapped[str] = mapped_column(String(300))
    internal_name: Mapped[str] = mapped_column(String(300))
    study_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(40), default="creating")
    completion_url: Mapped[str] = mapped_column(String(300))
    completion_code: Mapped[str] = mapped_column(String(64))
    failed_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reward_cents: Mapped[int] = mapped_column(Integer)
    places: Mapped[int] = mapped_column(Integer)
    minutes: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text, default="{}")   # the create request, JSON
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    experiment: Mapped[Experiment] = relationship()


class ProlificBonus(db.Model):
    """A bonus on one submission. `status`: "set-up" (Prolific holds the bulk payment
    `bulk_id`, unpaid), "paying" (the pay call was sent: never sent again automatically,
    since paying is not idempotent), "paid"."""
    __tablename__ = "prolific_bonuses"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_record_id: Mapped[int] = mapped_column(
        ForeignKey("prolific_studies.id", ondelete="CASCADE"), index=True)
    submission_id: Mapped[str] = mapped_column(String(64), unique=True)
    participant_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(Integer)
    bulk_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="set-up")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
