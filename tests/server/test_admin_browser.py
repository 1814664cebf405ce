"""The admin's settings and participant pages in a real Chromium (Playwright): change
settings through the form, see a bad value refused on the form, see the locked settings
once there are answers, open a withdrawn participant and delete them for good with the
typed confirmation, and find it in the log. Screenshots in test-artifacts/admin/."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from server import recording as rec

from .conftest import browser_login

pytestmark = pytest.mark.browser


def test_settings_and_participant_pages(app, live_server, page, artifacts_dir):
    from server.models import Experiment, db
    shots = artifacts_dir / "admin"
    shots.mkdir(exist_ok=True)
    errors = browser_login(page, live_server)
    page.click('a[href="/manage/experiments/small/settings"]')
    page.wait_for_url("**/manage/experiments/small/settings")

    page.fill("#title", "Which one looks alike?")
    page.select_option("#kiosk", "yes")
    page.fill("#platform__panel__id_param", "SONA_ID")
    page.fill("#break_every", "-2")
    page.click("#save-settings")
    assert "break every must be an integer 0..100000" in page.inner_text("#problems")
    page.screenshot(path=str(shots / "1-settings-refused.png"), full_page=True)
    page.fill("#break_every", "4")
    page.click("#save-settings")
    page.wait_for_selector("#saved")
    with app.app_context():
        exp = db.session.execute(select(Experiment).where(Experiment.name == "small")).scalar_one()
        assert json.loads(exp.texts)["title"] == "Which one looks alike?"
        assert exp.kiosk is True and exp.break_every == 4
        assert exp.platform_setting("panel") == {"id_param": "SONA_ID"}
        p, _ = rec.start_participant(rec.get_experiment("small"), code="GONE7", consent=True)
        rec.record_answer(p, 1, 0)
        rec.withdraw(p)
        pid = p.id

    page.reload()
    assert page.locator("#trial_order").is_disabled()
    assert page.locator("#title").is_enabled()
    assert "Locked" in page.inner_text("#row-practice_trials")
    page.screenshot(path=str(shots / "2-settings-locked.png"), full_page=True)

    page.goto(f"{live_server}/manage/experiments/small")
    assert page.inner_text("#withdrawn-count") == "1"
    page.click("text=GONE7")
    page.wait_for_url(f"**/participants/{pid}")
    assert page.inner_text("#status") == "withdrawn"
    page.screenshot(path=str(shots / "3-participant.png"), full_page=True)
    page.fill("#confirm", "GONE")
    page.click("#delete-button")
    assert "Nothing was deleted" in page.inner_text("#delete-error")
    page.fill("#confirm", "GONE7")
    page.click("#delete-button")
    page.wait_for_selector("#deleted")
    assert "delete-participant" in page.inner_text("#log")
    page.click("#log-link")
    assert "delete-participant" in page.inner_text("#log") and "settings" in page.inner_text("#log")
    page.screenshot(path=str(shots / "4-log.png"), full_page=True)
    # The refused POSTs (400) and the favicon (404) are reported as failed loads; any
    # other console error (a CSP violation, a script error) is a failure.
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []
