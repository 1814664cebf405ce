"""Screens in a real Chromium: at the experiment's minimum viewport the query and the
five candidates sit whole in one row at one size and the page records viewport, screen
and user agent; on a phone every participant page (and the MTurk preview) shows the
"use a larger window or another device" notice and no trial can be answered."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from server.models import Participant, db

pytestmark = pytest.mark.browser

PHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")


def _participant(app, code):
    with app.app_context():
        p = db.session.execute(select(Participant).where(Participant.code == code)).scalar_one()
        p.answers = len(p.responses)
        return p


def test_desktop_minimum_viewport_shows_one_row(app, live_server, browser, artifacts_dir):
    from server import recording as rec
    with app.app_context():
        vw, vh = rec.get_experiment("small").min_viewport()
    assert 1000 <= vw <= 1200 and 550 <= vh <= 650  # about 1000 x 600 for 200 x 245 images
    ctx = browser.new_context(viewport={"width": vw, "height": vh})
    page = ctx.new_page()
    try:
        page.goto(f"{live_server}/lab/small/")
        assert not page.is_visible("#too-small")
        page.fill("#code", "WIDE1")
        page.click("#start")
        page.check("#agree")
        page.click("#consent")
        page.click("button.candidate >> nth=0")
        page.click("#begin")
        page.wait_for_url("**/trial")
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(artifacts_dir / "screen-desktop-trial.png"))
        assert not page.is_visible("#too-small")
        boxes = [page.locator("button.candidate img").nth(i).bounding_box() for i in range(5)]
        query = page.locator(".query img").bounding_box()
        sizes = {(round(b["width"]), round(b["height"])) for b in boxes}
        sizes.add((round(query["width"]) - 6, round(query["height"]) - 6))  # 3 px border
        assert len(sizes) == 1, sizes
        assert len({round(b["y"]) for b in boxes}) == 1, "candidates are not in one row"
        assert boxes[0]["y"] >= query["y"] + query["height"]  # below the query
        for b in boxes + [query]:  # whole, without scrolling
            assert b["x"] >= 0 and b["x"] + b["width"] <= vw, b
            assert b["y"] >= 0 and b["y"] + b["height"] <= vh, b
        page.click("button.candidate >> nth=2")
        page.wait_for_selector('input[name="n"][value="2"]', state="attached")
    finally:
        ctx.close()
    p = _participant(app, "WIDE1")
    assert (p.viewport_width, p.viewport_height) == (vw, vh)
    assert p.screen_width >= vw and p.screen_height >= vh
    assert "Chrome" in p.user_agent


def test_phone_is_asked_for_a_larger_window(app, live_server, browser, artifacts_dir):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                              has_touch=True, user_agent=PHONE_UA, device_scale_factor=3)
    page = ctx.new_page()
    try:
        page.goto(f"{live_server}/mturk/task/small/h0001")  # MTurk preview
        assert page.is_visible("#too-small") and not page.is_visible("button.candidate")
        page.goto(f"{live_server}/lab/small/")
        page.screenshot(path=str(artifacts_dir / "screen-phone-landing.png"))
        assert page.is_visible("#too-small")
        assert "larger window or another device" in page.inner_text("#too-small")
        assert not page.is_visible("#start")
        # Even a phone that gets past the notice (form sent by script) never sees a trial
        # and cannot answer one from the keyboard.
        page.evaluate("document.getElementById('code').value = 'PHONE1'; "
                      "document.querySelector('form.panel').submit()")
        page.wait_for_url("**/consent")
        assert page.is_visible("#too-small")
        page.evaluate("document.getElementById('agree').checked = true; "
                      "document.querySelector('form').submit()")
        page.wait_for_url("**/instructions")
        page.goto(f"{live_server}/lab/small/trial")
        assert page.is_visible("#too-small") and not page.is_visible("button.candidate")
        page.keyboard.press("1")
        page.wait_for_timeout(300)
    finally:
        ctx.close()
    p = _participant(app, "PHONE1")
    assert p.answers == 0
    assert (p.viewport_width, p.viewport_height) == (390, 844)
    assert "iPhone" in p.user_agent
