"""The whole lab flow in a real Chromium (Playwright): consent, instructions with the
practice trial, every trial by click and by keyboard, completion; once with JavaScript
off (plain forms); and a lost connection that the page retries."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from server.models import Participant, db

pytestmark = pytest.mark.browser


def _stored(app, code):
    with app.app_context():
        p = db.session.execute(select(Participant).where(Participant.code == code)).scalar_one()
        return p, [(r.trial_order, r.chosen_index, r.rt_ms) for r in p.responses]


def _begin(page, base, code, shots, tag):
    page.goto(f"{base}/lab/small/")
    page.screenshot(path=str(shots / f"{tag}-1-landing.png"))
    page.fill("#code", code)
    page.click("#start")
    page.wait_for_url("**/consent")
    page.screenshot(path=str(shots / f"{tag}-2-consent.png"))
    page.check("#agree")
    page.click("#consent")
    page.wait_for_url("**/instructions")
    page.screenshot(path=str(shots / f"{tag}-3-instructions.png"))
    page.click("button.candidate >> nth=0")
    page.wait_for_selector("#feedback")
    page.click("#begin")
    page.wait_for_url("**/trial")


def test_lab_flow_click_and_keyboard(app, live_server, page, artifacts_dir):
    shots = artifacts_dir / "server"
    shots.mkdir(exist_ok=True)
    _begin(page, live_server, "CHROME1", shots, "js")
    choices = []
    for n in range(1, 7):
        page.wait_for_selector(f'input[name="n"][value="{n}"]', state="attached")
        assert page.locator("#progress-text").inner_text() == f"{n - 1} of 6 answered"
        # Every candidate is shown at the same size.
        boxes = [page.locator("button.candidate img").nth(i).bounding_box() for i in range(5)]
        assert len({(round(b["width"]), round(b["height"])) for b in boxes}) == 1
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(shots / f"js-4-trial{n}.png"))
        choice = (n * 3) % 5
        choices.append(choice)
        if n <= 3:
            page.click(f"button.candidate >> nth={choice}")
        else:
            page.keyboard.press(str(choice + 1))
        if n < 6:
            page.wait_for_selector(f'input[name="n"][value="{n + 1}"]', state="attached")
    page.wait_for_url("**/done")
    page.screenshot(path=str(shots / "js-5-done.png"))
    assert "Thank you" in page.inner_text("h1")
    p, rows = _stored(app, "CHROME1")
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r[1] for r in rows] == choices
    assert all(r[2] is not None and 0 < r[2] < 60000 for r in rows)  # performance.now() times
    assert p.completed_at is not None
    # Reloading the finished study shows the completion page, stores nothing.
    page.goto(f"{live_server}/lab/small/go")
    page.wait_for_url("**/done")
    assert len(_stored(app, "CHROME1")[1]) == 6


def test_lab_flow_without_javascript(app, live_server, browser, artifacts_dir):
    shots = artifacts_dir / "server"
    shots.mkdir(exist_ok=True)
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
    page = ctx.new_page()
    try:
        _begin(page, live_server, "NOJS", shots, "nojs")
        for n in range(1, 7):
            page.wait_for_selector(f'input[name="n"][value="{n}"]', state="attached")
            if n == 1:
                page.screenshot(path=str(shots / "nojs-4-trial1.png"))
            page.click(f"button.candidate >> nth={n % 5}")
        page.wait_for_url("**/done")
        page.screenshot(path=str(shots / "nojs-5-done.png"))
    finally:
        ctx.close()
    _, rows = _stored(app, "NOJS")
    assert [(r[0], r[1]) for r in rows] == [(n, n % 5) for n in range(1, 7)]
    assert all(r[2] is None for r in rows)  # no script, no page-measured time


def test_lost_connection_is_retried(app, live_server, page, artifacts_dir):
    shots = artifacts_dir / "server"
    shots.mkdir(exist_ok=True)
    _begin(page, live_server, "FLAKY", shots, "flaky")
    failures = {"left": 2}

    def flaky(route):
        if failures["left"] > 0:
            failures["left"] -= 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/lab/small/answer", flaky)
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    page.keyboard.press("2")
    page.wait_for_selector("#status.lost")
    assert "connection to the server is lost" in page.inner_text("#status")
    page.screenshot(path=str(shots / "flaky-lost.png"))
    page.wait_for_selector('input[name="n"][value="2"]', state="attached", timeout=15000)
    # The page goes on normally once the connection is back (keys work once its script ran).
    page.wait_for_selector("#trial-form[data-ready]")
    page.keyboard.press("3")
    page.wait_for_selector('input[name="n"][value="3"]', state="attached")
    _, rows = _stored(app, "FLAKY")
    assert failures["left"] == 0
    assert [(r[0], r[1]) for r in rows] == [(1, 1), (2, 2)]


def test_stale_tab_of_another_participant_is_refused(app, live_server, page, artifacts_dir):
    """A shared browser: Alice leaves her trial open in one tab; Bob takes the browser over
    in another ("I am someone else") and answers his first trial; Alice's old tab then
    answers. The answer is refused with a message, and stored for nobody."""
    shots = artifacts_dir / "server"
    shots.mkdir(exist_ok=True)
    _begin(page, live_server, "ALICE", shots, "stale-a")
    page.wait_for_selector("#trial-form[data-ready]")
    page.keyboard.press("1")
    # Alice's tab now shows her trial 2, the trial Bob will be at too.
    page.wait_for_selector('input[name="n"][value="2"]', state="attached")
    page.wait_for_selector("#trial-form[data-ready]")
    bob = page.context.new_page()
    bob.goto(f"{live_server}/lab/small/")
    assert bob.inner_text("#returning-code") == "ALICE"
    bob.click("#someone-else")
    bob.wait_for_selector("#code")
    _begin(bob, live_server, "BOB", shots, "stale-b")
    bob.wait_for_selector("#trial-form[data-ready]")
    bob.keyboard.press("5")
    bob.wait_for_selector('input[name="n"][value="2"]', state="attached")
    before = _stored(app, "BOB")[1]
    assert [(r[0], r[1]) for r in before] == [(1, 4)]
    # Alice's tab, still showing her trial 2, answers it.
    page.bring_to_front()
    page.keyboard.press("3")
    page.wait_for_selector("#status.lost")
    text = page.inner_text("#status")
    page.screenshot(path=str(shots / "stale-refused.png"))
    assert "not accepted" in text and "another participant" in text, text
    assert _stored(app, "BOB")[1] == before
    assert [(r[0], r[1]) for r in _stored(app, "ALICE")[1]] == [(1, 0)]
