"""Publishing an experiment's HITs and managing them afterwards (status, expire, extend,
delete), with every HIT recorded in the database. Call inside an app context.

A HIT is recorded only once MTurk has it, and it is created with a UniqueRequestToken
that is a function of (deployment, experiment, HIT key, environment): a publish that is
interrupted and run again finds what exists and creates only the rest, and a second
deployment publishing an experiment of the same name never adopts the first one's HITs.
A HIT found again whose ExternalURL is not this deployment's task page is refused.
"""
from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

from sqlalchemy import select

from ..models import Experiment, Hit, Trial, db
from .fees import Cost, publish_cost
from .question import QuestionError, external_question, is_loopback_url, parse_external_question
from .requester import MTurkFailure, Requester, as_utc, qualification_requirements, request_token

TASK_PATH = "/mturk/task/{name}/{key}"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class PublishError(ValueError):
    """Settings that cannot be published; `problems` holds one message per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(text) -> int:
    """Return seconds for '90', '30m', '2h', '7d' or '1w'; raise ValueError otherwise."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 3600, 30m, 2h, 7d)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


@dataclass
class HitSettings:
    """What every HIT of a publish shares."""
    base_url: str
    reward: Decimal = Decimal("0.05")
    assignments: int = 20
    lifetime: int = 7 * 86400
    duration: int = 3600
    auto_approval: int = 3 * 86400
    title: str = "Which picture looks most like this one?"
    description: str = ("Look at one picture and choose, among five others, the one that "
                        "looks most like it.")
    keywords: str = "image, similarity, picture, compare, research"
    masters: bool = False
    min_approval_rate: int | None = None
    min_approved: int | None = None
    locales: list = field(default_factory=list)
    frame_height: int = 0
    exclusion_qualification: str | None = None   # HITs require it DoesNotExist

    def requirements(self, environment: str) -> list[dict]:
        """Return the QualificationRequirements every HIT carries."""
        from .exclusion import requirement
        reqs = qualification_requirements(environment, self.masters, self.min_approval_rate,
                                          self.min_approved, self.locales)
        if self.exclusion_qualification:
            reqs.append(requirement(self.exclusion_qualification))
        return reqs

    def type_fields(self, environment: str) -> dict:
        """Return the HIT type fields (what CreateHITType takes) of these settings."""
        return dict(Title=self.title, Description=self.description, Keywords=self.keywords,
                    Reward=f"{self.reward:.2f}", AssignmentDurationInSeconds=self.duration,
                    AutoApprovalDelayInSeconds=self.auto_approval,
                    QualificationRequirements=self.requirements(environment))


def deployment() -> str:
    """Return this deployment's identity (kept in its database)."""
    from ..recruitment.deployment import deployment_id
    return deployment_id()


def hit_groups(experiment: Experiment) -> OrderedDict[str, list[str]]:
    """Return {HIT key: [trial keys]} in the experiment file's order."""
    groups: OrderedDict[str, list[str]] = OrderedDict()
    rows = db.session.execute(select(Trial.hit_key, Trial.key)
                              .where(Trial.experiment_id == experiment.id)
                              .order_by(Trial.position)).all()
    for hit_key, trial_key in rows:
        groups.setdefault(hit_key or "", []).append(trial_key)
    return groups


def task_url(base_url: str, experiment: str, hit_key: str) -> str:
    """Return the ExternalURL of one HIT of an experiment."""
    return base_url.rstrip("/") + TASK_PATH.format(name=quote(experiment, safe=""),
                                                   key=quote(hit_key, safe=""))


def annotation(experiment: Experiment, hit_key: str) -> str:
    """Return the RequesterAnnotation that names the HIT and its deployment (seen by the
    requester only)."""
    return f"tll:{deployment()[:16]}:{experiment.name}:{hit_key}"[:255]


def hit_token(experiment: Experiment, hit_key: str, label: str) -> str:
    """Return the UniqueRequestToken of one HIT of this deployment."""
    return request_token("tll-hit", deployment(), experiment.name, hit_key, label)


def external_url(hit: dict) -> str | None:
    """Return the ExternalURL of an MTurk HIT structure (None when not an
    ExternalQuestion)."""
    try:
        return parse_external_question(hit.get("Question") or "", True)[0]
    except QuestionError:
        return None


def foreign(hit: dict, wanted_url: str) -> str | None:
    """Return why `hit` is not this deployment's HIT at `wanted_url`, or None."""
    url = external_url(hit)
    if url == wanted_url:
        return None
    return (f"HIT {hit['HITId']} points at {url or 'no ExternalURL'}, not at this "
            f"deployment's task page {wanted_url}: it belongs to another deployment (or an "
            "earlier base URL). Nothing was adopted; publish under another experiment name "
            "or from the deployment that owns it.")


def recorded_hits(experiment: Experiment, environment: str,
                  keys: list[str] | None = None) -> list[Hit]:
    """Return the experiment's HITs published in `environment` (optionally some keys)."""
    q = select(Hit).where(Hit.experiment_id == experiment.id, Hit.environment == environment,
                          Hit.mturk_hit_id.is_not(None)).order_by(Hit.id)
    rows = list(db.session.execute(q).scalars())
    if keys:
        unknown = sorted(set(keys) - {h.key for h in rows})
        if unknown:
            raise PublishError([f"HIT {k} of {experiment.name!r} is not published in "
                                f"{environment}" for k in unknown])
        rows = [h for h in rows if h.key in set(keys)]
    return rows


@dataclass
class Plan:
    """What a publish would do: the HITs still to create and what they cost."""
    experiment: Experiment
    settings: HitSettings
    todo: list[tuple[str, list[str]]]
    already: list[Hit]
    cost: Cost


def plan_publish(experiment: Experiment, settings: HitSettings, requester: Requester,
                 keys: list[str] | None = None) -> Plan:
    """Check the settings and return the Plan; raise PublishError listing every problem."""
    problems = []
    base = settings.base_url or ""
    if not base:
        problems.append("the server's public base URL is needed (--base-url or "
                        "TLL_PUBLIC_URL), e.g. https://tll.example.org")
    elif not base.startswith("https://") and not (requester.local and is_loopback_url(base)):
        problems.append(f"base URL must be HTTPS (MTurk frames only HTTPS pages): {base}")
    if settings.reward <= 0:
        problems.append("reward must be positive")
    if not 1 <= settings.assignments <= 1000000:
        problems.append("assignments per HIT must be between 1 and 1000000")
    for name, value, lo, hi in (("lifetime", settings.lifetime, 30, 31536000),
                                ("assignment duration", settings.duration, 30, 31536000),
                                ("auto-approval delay", settings.auto_approval, 0, 2592000)):
        if not lo <= value <= hi:
            problems.append(f"{name} must be between {lo} and {hi} seconds, got {value}")
    if not settings.title or len(settings.title) > 128:
        problems.append("title must be 1 to 128 characters")
    if not settings.description or len(settings.description) > 2000:
        problems.append("description must be 1 to 2000 characters")
    if settings.min_approval_rate is not None and not 0 <= settings.min_approval_rate <= 100:
        problems.append("minimum approval rate is a percentage 0..100")
    for loc in settings.locales:
        if not re.fullmatch(r"[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?", loc.strip()):
            problems.append(f"locale {loc!r} is not a country code like US or US-NY")
    groups = hit_groups(experiment)
    if "" in groups:
        problems.append(f"{len(groups['']) } trial(s) of {experiment.name!r} belong to no HIT "
                        "(the experiment file's `hits` must cover every trial)")
    if keys:
        problems += [f"experiment {experiment.name!r} has no HIT {k}" for k in keys
                     if k not in groups]
    if problems:
        raise PublishError(problems)
    done = {h.key: h for h in recorded_hits(experiment, requester.label)}
    todo = [(k, t) for k, t in groups.items() if (not keys or k in keys) and k not in done]
    already = [h for k, h in done.items() if not keys or k in keys]
    cost = publish_cost(settings.reward, settings.assignments, len(todo), settings.masters)
    return Plan(experiment, settings, todo, already, cost)


def publish(plan: Plan, requester: Requester, progress=None) -> tuple[list[Hit], int]:
    """Create the plan's HITs one by one, recording each as soon as MTurk has it.
    Return (recorded HITs, how many were found already existing through their token).
    An MTurk failure stops the run (MTurkFailure); what exists stays recorded."""
    s, exp = plan.settings, plan.experiment
    quals = s.requirements(requester.environment)
    made, found = [], 0
    items = progress(plan.todo) if progress else plan.todo
    for key, _trials in items:
        token = hit_token(exp, key, requester.label)
        url = task_url(s.base_url, exp.name, key)
        params = dict(MaxAssignments=s.assignments, LifetimeInSeconds=s.lifetime,
                      AssignmentDurationInSeconds=s.duration,
                      AutoApprovalDelayInSeconds=s.auto_approval, Reward=f"{s.reward:.2f}",
                      Title=s.title, Description=s.description, Keywords=s.keywords,
                      Question=external_question(url, s.frame_height),
                      QualificationRequirements=quals)
        created = requester.create_hit(token, annotation(exp, key), **params)
        hit = created.hit
        if created.existed and foreign(hit, url):
            raise PublishError([foreign(hit, url)])
        found += created.existed
        row = Hit(experiment_id=exp.id, key=key, mturk_hit_id=hit["HITId"],
                  hit_type_id=hit.get("HITTypeId"), environment=requester.label,
                  reward=Decimal(hit.get("Reward", f"{s.reward:.2f}")),
                  max_assignments=int(hit.get("MaxAssignments", s.assignments)),
                  status=hit.get("HITStatus", "Assignable"), unique_request_token=token,
                  expires_at=as_utc(hit.get("Expiration")))
        db.session.add(row)
        db.session.commit()
        made.append(row)
    return made, found


@dataclass
class Difference:
    """One setting of a published HIT that differs from the settings asked for now."""
    hit: Hit
    field: str
    published: object
    wanted: object
    applicable: bool = True


def _norm_reqs(reqs) -> list[str]:
    import json
    return sorted(json.dumps(q, sort_keys=True) for q in reqs or [])


def compare_published(plan: Plan, requester: Requester) -> list[Difference]:
    """Read each already-published HIT of the plan from MTurk and return how its settings
    differ from the plan's; raise PublishError when one is not this deployment's."""
    s, out, problems = plan.settings, [], []
    wanted = s.type_fields(requester.environment)
    for h in plan.already:
        hit = requester.hit(h.mturk_hit_id)
        why = foreign(hit, task_url(s.base_url, plan.experiment.name, h.key))
        if why:
            problems.append(f"{h.key}: {why}")
            continue
        pairs = [("reward", hit.get("Reward"), wanted["Reward"]),
                 ("title", hit.get("Title"), s.title),
                 ("description", hit.get("Description"), s.description),
                 ("keywords", hit.get("Keywords", ""), s.keywords),
                 ("assignment duration", hit.get("AssignmentDurationInSeconds"), s.duration),
                 ("auto-approval delay", hit.get("AutoApprovalDelayInSeconds"),
                  s.auto_approval)]
        for name, have, want in pairs:
            if str(have) != str(want):
                out.append(Difference(h, name, have, want))
        if _norm_reqs(hit.get("QualificationRequirements")) != \
                _norm_reqs(wanted["QualificationRequirements"]):
            out.append(Difference(h, "qualifications",
                                  _describe_reqs(hit.get("QualificationRequirements")),
                                  _describe_reqs(wanted["QualificationRequirements"])))
        have_n = int(hit.get("MaxAssignments", h.max_assignments))
        if have_n != s.assignments:
            ok = s.assignments > have_n and not (have_n < 10 <= s.assignments)
            out.append(Difference(h, "assignments", have_n, s.assignments, ok))
    if problems:
        raise PublishError(problems)
    return out


def _describe_reqs(reqs) -> str:
    parts = []
    for q in reqs or []:
        values = q.get("IntegerValues") or [
            "-".join(filter(None, (v.get("Country"), v.get("Subdivision"))))
            for v in q.get("LocaleValues") or []]
        parts.append(f"{q['QualificationTypeId']} {q['Comparator']}"
                     + (f" {','.join(map(str, values))}" if values else ""))
    return "; ".join(parts) or "none"


def apply_changes(plan: Plan, requester: Requester,
                  diffs: list[Difference]) -> list[tuple[Hit, str | None]]:
    """Bring each differing HIT to the plan's settings: a new HIT type (reward, texts,
    durations, qualifications) and more assignments; return (hit, error or None)."""
    s, out = plan.settings, []
    by_hit: dict[int, list[Difference]] = {}
    for d in diffs:
        by_hit.setdefault(d.hit.id, []).append(d)
    for items in by_hit.values():
        h = items[0].hit
        try:
            if any(d.field != "assignments" for d in items):
                h.hit_type_id = requester.retype(h.mturk_hit_id,
                                                 **s.type_fields(requester.environment))
                h.reward = s.reward
            more = next((d for d in items if d.field == "assignments"), None)
            if more is not None:
                token = request_token("tll-extra", h.mturk_hit_id, str(s.assignments))
                requester.add_assignments(h.mturk_hit_id, s.assignments - more.published,
                                          token)
                h.max_assignments = s.assignments
            out.append((h, None))
        except MTurkFailure as exc:
            out.append((h, str(exc)))
        db.session.commit()
    return out


@dataclass
class HitStatus:
    """One HIT as MTurk reports it, with counts per assignment status."""
    key: str | None
    hit_id: str
    status: str
    expires: datetime | None
    counts: Counter


def status(requester: Requester, experiment: Experiment | None = None) -> tuple[list[HitStatus], int]:
    """Walk every HIT of the account (all NextToken pages) and return (statuses of the
    experiment's HITs, or of all HITs when experiment is None; number of HITs seen).
    Counts: Available, Pending (accepted, not submitted), Submitted, Approved, Rejected."""
    keys = {}
    if experiment is not None:
        keys = {h.mturk_hit_id: h for h in recorded_hits(experiment, requester.label)}
    out, seen = [], 0
    for hit in requester.hits():
        seen += 1
        row = keys.get(hit["HITId"])
        if experiment is not None and row is None:
            continue
        c = Counter(Available=hit.get("NumberOfAssignmentsAvailable", 0),
                    Pending=hit.get("NumberOfAssignmentsPending", 0))
        submitted = hit.get("MaxAssignments", 0) - c["Available"] - c["Pending"]
        if submitted > 0:
            for a in requester.assignments(hit["HITId"]):
                c[a["AssignmentStatus"]] += 1
        for name in ("Submitted", "Approved", "Rejected"):
            c.setdefault(name, 0)
        if row is not None:
            row.status = hit.get("HITStatus", row.status)
            row.expires_at = as_utc(hit.get("Expiration")) or row.expires_at
        out.append(HitStatus(row.key if row else None, hit["HITId"],
                             hit.get("HITStatus", "?"), as_utc(hit.get("Expiration")), c))
    db.session.commit()
    return out, seen


def expire(requester: Requester, hits: list[Hit]) -> list[tuple[Hit, str | None]]:
    """Expire each HIT now (pending assignments may still be submitted); return
    (hit, error or None) per HIT."""
    out = []
    for h in hits:
        try:
            requester.expire(h.mturk_hit_id)
            h.status, h.expires_at = "expired", datetime.now(UTC)
            out.append((h, None))
        except MTurkFailure as exc:
            out.append((h, str(exc)))
        db.session.commit()
    return out


def extend(requester: Requester, hits: list[Hit], seconds: int | None = None,
           assignments: int | None = None) -> list[tuple[Hit, str | None]]:
    """Move each HIT's expiry to now + `seconds` and/or add `assignments` assignments
    (token per HIT and new total, so a rerun adds nothing twice)."""
    out = []
    for h in hits:
        try:
            if seconds:
                when = datetime.now(UTC) + timedelta(seconds=seconds)
                requester.set_expiration(h.mturk_hit_id, when)
                h.expires_at, h.status = when, "Assignable"
            if assignments:
                token = request_token("tll-extra", h.mturk_hit_id,
                                      str(h.max_assignments + assignments))
                requester.add_assignments(h.mturk_hit_id, assignments, token)
                h.max_assignments += assignments
            out.append((h, None))
        except MTurkFailure as exc:
            out.append((h, str(exc)))
        db.session.commit()
    return out


def delete(requester: Requester, hits: list[Hit]) -> list[tuple[Hit, str | None]]:
    """Delete each HIT on MTurk (it must be reviewable with every assignment decided)."""
    out = []
    for h in hits:
        try:
            requester.delete(h.mturk_hit_id)
            h.status = "deleted"
            out.append((h, None))
        except MTurkFailure as exc:
            out.append((h, str(exc)))
        db.session.commit()
    return out
