"""Database models (SQLAlchemy 2 typed style) for experiments, images, trials,
participants, responses, admin users, and the MTurk HIT / assignment / bonus records.

Table and column names listed in docs/contracts.md §6 are read with plain SQL by
`analysis --db`: keep them. Schema changes go through Alembic (`migrations/`).
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship

# Named constraints so that Alembic migrations (batch mode on SQLite) stay reproducible.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Objects stay usable after commit without a reload (fewer queries per answer).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso_utc(dt: datetime | None) -> str:
    """Return `dt` as ISO 8601 UTC with milliseconds and a Z ('' for None); naive values
    (SQLite hands them back) are UTC as stored."""
    if dt is None:
        return ""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.isoformat(timespec="milliseconds") + "Z"


class Experiment(db.Model):
    """One loaded experiment file plus its per-experiment settings."""
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    source_path: Mapped[str] = mapped_column(Text, default="")
    file_sha256: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The experiment file's `design` and `feature_sets`, kept as JSON text.
    design: Mapped[str] = mapped_column(Text, default="{}")
    feature_sets: Mapped[str] = mapped_column(Text, default="[]")
    image_width: Mapped[int] = mapped_column(Integer, default=200)
    image_height: Mapped[int] = mapped_column(Integer, default=245)
    # Settings (flask experiment-settings NAME ...)
    consent_text: Mapped[str] = mapped_column(Text, default="")
    trial_order: Mapped[str] = mapped_column(String(10), default="random")  # random|fixed
    # Repeat policy (server.recruitment.REPEATS): none | per-hit | allow.
    repeats: Mapped[str] = mapped_column(String(10), default="none")
    break_every: Mapped[int] = mapped_column(Integer, default=0)  # 0 = no breaks
    practice: Mapped[bool] = mapped_column(Boolean, default=True)
    # What the participant reads, written by the researcher (JSON: title, researcher,
    # contact, welcome, instructions, debriefing; Markdown). Consent is consent_text.
    texts: Mapped[str] = mapped_column(Text, default="{}")
    language: Mapped[str] = mapped_column(String(16), default="")  # "" = the browser's
    practice_trials: Mapped[int] = mapped_column(Integer, default=1)
    practice_feedback: Mapped[bool] = mapped_column(Boolean, default=True)
    practice_images: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    seconds_per_trial: Mapped[float | None] = mapped_column(Float, nullable=True)
    # JSON {platform: {setting: value}}: a link panel's id parameter, redirect and code.
    platform_settings: Mapped[str] = mapped_column(Text, default="{}")
    # Kiosk: a shared lab computer; the browser forgets the participant at completion and
    # after KIOSK_IDLE_S seconds without a page (server/lab.py).
    kiosk: Mapped[bool] = mapped_column(Boolean, default=False)
    # Smallest viewport (CSS px) that shows the query and five candidates in one row;
    # None = derived from the image size (min_viewport()).
    min_viewport_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    min_viewport_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    trials: Mapped[list[Trial]] = relationship(back_populates="experiment",
                                               order_by="Trial.position",
                                               cascade="all, delete-orphan")
    images: Mapped[list[Image]] = relationship(back_populates="experiment",
                                               cascade="all, delete-orphan")
    participants: Mapped[list[Participant]] = relationship(back_populates="experiment",
                                                           cascade="all, delete-orphan")
    hits: Mapped[list[Hit]] = relationship(back_populates="experiment",
                                           cascade="all, delete-orphan")

    def platform_setting(self, platform: str) -> dict:
        """Return this experiment's settings for `platform` ({} when none)."""
        return dict(json.loads(self.platform_settings or "{}").get(platform, {}))

    def text(self, name: str) -> str:
        """Return the researcher's text `name` (Markdown; '' when not written)."""
        return json.loads(self.texts or "{}").get(name, "")

    def feature_set_keys(self) -> list[str]:
        """Return the experiment's machine feature-set keys, sorted."""
        return sorted(json.loads(self.feature_sets or "[]"))

    @property
    def allow_repeats(self) -> bool:
        """True when the repeat policy is `allow` (the setting before `repeats`)."""
        return self.repeats == "allow"

    @allow_repeats.setter
    def allow_repeats(self, value: bool) -> None:
        self.repeats = "allow" if value else "none"

    def min_viewport(self) -> tuple[int, int]:
        """Return the smallest (width, height) in CSS px that shows this experiment's
        trial page whole: the query above five candidates in one row at image size
        (style.css: 4 px padding + 3 px border per side, 8 px gaps, 16 px page margins and
        a scrollbar; progress bar and prompt above). The experiment's setting wins."""
        w, h = self.image_width, self.image_height
        width = 5 * (w + 2 * 4 + 2 * 3) + 4 * 8 + 2 * 16 + 16
        height = (h + 6) + (h + 14) + 90  # + progress bar, prompt, margins
        return (self.min_viewport_width or width, self.min_viewport_height or height)


class Image(db.Model):
    """An image as served: re-encoded bytes without metadata, behind an opaque token."""
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("experiment_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                               index=True)
    key: Mapped[str] = mapped_column(String(100))  # "L00018" from the experiment file
    token: Mapped[str] = mapped_column(String(64), unique=True)
    pair: Mapped[str] = mapped_column(String(100), default="")
    side: Mapped[str] = mapped_column(String(10), default="")
    source_path: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))  # of the source FILE bytes
    mime: Mapped[str] = mapped_column(String(40), default="image/jpeg")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary))

    experiment: Mapped[Experiment] = relationship(back_populates="images")


class Trial(db.Model):
    """A five-choice trial: query image and candidates in recorded display order."""
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("experiment_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                               index=True)
    key: Mapped[str] = mapped_column(String(100))  # "t0001"
    position: Mapped[int] = mapped_column(Integer)  # 0-based order in the file
    condition: Mapped[str] = mapped_column(String(50))
    subset: Mapped[str] = mapped_column(String(100), default="")
    pair: Mapped[str] = mapped_column(String(100), default="")
    catch: Mapped[bool] = mapped_column(Boolean, default=False)
    true_index: Mapped[int] = mapped_column(Integer)  # 0-based display position
    machine_choices: Mapped[str] = mapped_column(Text, default="{}")  # JSON text
    hit_key: Mapped[str] = mapped_column(String(100), default="")  # "h0001"
    query_image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    # JSON list of the five candidate image ids (images.id), in display order.
    candidate_image_ids: Mapped[str] = mapped_column(Text)

    experiment: Mapped[Experiment] = relationship(back_populates="trials")
    query_image: Mapped[Image] = relationship(foreign_keys=[query_image_id])

    def candidate_ids(self) -> list[int]:
        """Return the candidate image ids (images.id) in display order."""
        return json.loads(self.candidate_image_ids)


class Participant(db.Model):
    """A lab participant (code), an MTurk worker on one assignment, or a simulated one,
    with the provenance of their answers (platform, environment, external ids, status)."""
    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("experiment_id", "code", "attempt"),
        # The experiment's repeat policy, enforced by the database (NULL = no limit).
        UniqueConstraint("experiment_id", "repeat_key"),
        Index("ix_participants_mturk", "experiment_id", "assignment_id", "worker_id",
              unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                               index=True)
    code: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    population: Mapped[str] = mapped_column(String(40), default="lab")
    # Opaque secret that identifies the participant's session (cookie / API URL).
    token: Mapped[str] = mapped_column(String(64), unique=True)
    assignment_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    hit_id: Mapped[str | None] = mapped_column(String(100), nullable=True)  # MTurk HIT id
    hit_record_id: Mapped[int | None] = mapped_column(ForeignKey("hits.id"), nullable=True)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sequence: Mapped[str] = mapped_column(Text)  # JSON list of trials.id, in order shown
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    consented_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    # Provenance (server.recruitment): the generic form of population / worker / HIT.
    platform: Mapped[str] = mapped_column(String(20), default="lab")
    environment: Mapped[str] = mapped_column(String(20), default="lab")
    external_participant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    external_session_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    external_study_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    submission_status: Mapped[str] = mapped_column(String(20), default="recorded")
    status_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    repeat_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    viewport_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    viewport_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    screen_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    screen_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set when the participant withdraws: their answers leave every export and analysis.
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)

    experiment: Mapped[Experiment] = relationship(back_populates="participants")
    responses: Mapped[list[Response]] = relationship(back_populates="participant",
                                                     order_by="Response.trial_order",
                                                     cascade="all, delete-orphan")

    def trial_ids(self) -> list[int]:
        """Return this participant's trial sequence (trials.id) in the order shown."""
        return json.loads(self.sequence)


class Response(db.Model):
    """One answer: unique per (participant, trial), committed before the server says OK."""
    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("participant_id", "trial_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"),
                                          index=True)
    trial_order: Mapped[int] = mapped_column(Integer)  # 1-based position in the sequence
    chosen_index: Mapped[int] = mapped_column(Integer)  # 0-based display position
    rt_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    participant: Mapped[Participant] = relationship(back_populates="responses")
    trial: Mapped[Trial] = relationship()


class Setting(db.Model):
    """A key/value setting of this deployment (e.g. `deployment_id`)."""
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AuditEntry(db.Model):
    """One admin action kept for the record (e.g. a participant's data deleted for good):
    who, when, what, on which experiment and subject."""
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    experiment: Mapped[str] = mapped_column(String(100), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class AdminUser(db.Model):
    """An admin account (password hash from werkzeug.security)."""
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    # Part of every admin session cookie; replaced at logout and password change, which
    # ends every copy of the sessions issued before (server-side revocation).
    session_token: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --------------------------------------------------------------------------- MTurk
class Hit(db.Model):
    """A HIT published (or to be published) for one experiment-file HIT (`h0001`)."""
    __tablename__ = "hits"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                               index=True)
    key: Mapped[str] = mapped_column(String(100))  # "h0001" from the experiment file
    mturk_hit_id: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    hit_type_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    environment: Mapped[str] = mapped_column(String(20), default="sandbox")  # sandbox|production|local
    reward: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("0.05"))
    max_assignments: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(40), default="new")
    unique_request_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    experiment: Mapped[Experiment] = relationship(back_populates="hits")
    assignments: Mapped[list[Assignment]] = relationship(back_populates="hit",
                                                         cascade="all, delete-orphan")


class Assignment(db.Model):
    """One worker's assignment on a HIT. MTurk reuses an assignment id after a return,
    so the key is (mturk_assignment_id, worker_id) (psiTurk #184)."""
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("mturk_assignment_id", "worker_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mturk_assignment_id: Mapped[str] = mapped_column(String(100), index=True)
    hit_id: Mapped[int] = mapped_column(ForeignKey("hits.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[str] = mapped_column(String(100))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"),
                                                       nullable=True)
    status: Mapped[str] = mapped_column(String(40), default="accepted")
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rejected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    hit: Mapped[Hit] = relationship(back_populates="assignments")
    participant: Mapped[Participant | None] = relationship()
    bonuses: Mapped[list[Bonus]] = relationship(back_populates="assignment",
                                                cascade="all, delete-orphan")


class Bonus(db.Model):
    """A bonus paid (or to be paid) on an assignment."""
    __tablename__ = "bonuses"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"),
                                               index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    reason: Mapped[str] = mapped_column(Text, default="")
    unique_request_token: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(40), default="pending")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    assignment: Mapped[Assignment] = relationship(back_populates="bonuses")


class MturkQualification(db.Model):
    """The MTurk qualification type that keeps an experiment's past (or excluded) workers
    out of its HITs, one per (experiment, requester environment label)."""
    __tablename__ = "mturk_qualifications"
    __table_args__ = (UniqueConstraint("experiment_id", "environment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                               index=True)
    environment: Mapped[str] = mapped_column(String(20))
    qualification_type_id: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ThrottleCounter(db.Model):
    """A fixed-window counter of the throttling (server/throttle.py): shared by every
    worker and node through the database."""
    __tablename__ = "throttle_counters"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float)  # Unix seconds
