"""The recruitment seam's tables: platforms by name, environments, statuses, repeat keys;
every unknown name is an error, never a default."""
from __future__ import annotations

import pytest

from server import recruitment as r


def test_registry_and_tables():
    assert list(r.PLATFORMS) == ["lab", "simulated", "api", "mturk", "panel", "prolific"]
    assert list(r.ENVIRONMENTS) == ["lab", "simulated", "api", "local-sandbox", "sandbox",
                                    "production"]
    assert [e for e, v in r.ENVIRONMENTS.items() if v.rehearsal] == ["api", "local-sandbox",
                                                                      "sandbox"]
    assert r.STATUSES["mturk"] == ("accepted", "submitted", "approved", "rejected",
                                   "returned", "abandoned")
    for plat in r.PLATFORMS.values():
        assert isinstance(plat, r.Platform)
    mturk = r.platform("mturk")
    assert all(r.supports(mturk, op) for op in r.REQUESTER_OPERATIONS)
    assert not any(r.supports(r.platform("lab"), op) for op in r.REQUESTER_OPERATIONS)
    for bad in (lambda: r.platform("qualtrics"), lambda: r.environment("staging"),
                lambda: r.check_status("mturk", "finished"),
                lambda: r.check_status("lab", "submitted"), lambda: r.check_repeats("twice"),
                lambda: r.supports(mturk, "teleport"),
                lambda: mturk.identity(workerId="W", hit_environment="moon")):
        with pytest.raises(r.UnknownName):
            bad()


def test_identity_exit_and_repeat_keys():
    m = r.platform("mturk").identity(workerId="W1", assignmentId="A1", hitId="H1",
                                     hit_environment="local-production")
    assert m == r.Identity("mturk", "local-sandbox", "W1", "A1", "H1")
    lab = r.platform("lab").identity(code="C1")
    assert (lab.platform, lab.environment, lab.external_participant_id) == ("lab", "lab", "C1")
    assert r.repeat_key("none", m) == "mturk:W1"
    assert r.repeat_key("per-hit", m) == "mturk:W1:H1"
    assert r.repeat_key("allow", m) is None
    assert r.repeat_key("none", lab) == "lab:C1"

    class P:
        assignment_id = "A1"
    out = r.platform("mturk").exit_response(None, P(), submit_to="https://www.mturk.com",
                                            experiment="e")
    assert (out.kind, out.url) == ("submit-form", "https://www.mturk.com/mturk/externalSubmit")
    assert out.fields == {"assignmentId": "A1", "experiment": "e"}
    assert r.platform("lab").exit_response(None, None).kind == "page"


def test_deployment_id_is_kept(app):
    from server.recruitment.deployment import deployment_id
    with app.app_context():
        first = deployment_id()
    with app.app_context():
        assert deployment_id() == first and len(first) == 32
