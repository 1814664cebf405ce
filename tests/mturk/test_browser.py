"""Workers in Chromium: the task page inside the local endpoint's iframe, answered with
the mouse or the keyboard, submitted from inside the iframe to turkSubmitTo; and the
frame-ancestors policy keeping the page out of frames from other origins."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from server.models import Participant, Response, db

from .conftest import write_experiment

pytestmark = pytest.mark.browser


@pytest.fixture
def published(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "study", [3, 3], catch_last=True), "block")
    stack.publish("block")
    return stack.hit_ids("block")


def test_worker_in_the_iframe(stack, published, page, artifacts_dir):
    hit_id = published["h0001"]
    page.goto(f"{stack.em}/worker/hits/{hit_id}")
    frame = page.frame_locator("#task")
    frame.locator("#preview-notice").wait_for()
    assert frame.locator("button.candidate").first.is_disabled()
    page.fill("#workerId", "ABROWSERWORKER1")
    page.click("#accept")
    page.wait_for_url(f"{stack.em}/worker/assignments/*")
    aid = page.inner_text("#assignment")
    frame = page.frame_locator("#task")
    for n, choice in enumerate([0, 1, 2], start=1):
        frame.locator("#progress-text").filter(has_text=f"{n - 1} of 3 answered").wait_for()
        frame.locator("button.candidate").nth(choice).click()
    frame.locator("#finished").wait_for()
    page.screenshot(path=str(artifacts_dir / "mturk-iframe-finished.png"))
    frame.locator("#submit-hit").click()
    frame.locator("#message-title").filter(has_text="HIT submitted").wait_for()
    a = stack.emulator.state.assignments[aid]
    assert a.status == "Submitted" and a.worker_id == "ABROWSERWORKER1"
    assert a.fields["answered"] == "3 of 3" and a.fields["hit"] == "h0001"
    with stack.app.app_context():
        rows = db.session.execute(select(Response.chosen_index, Response.rt_ms)
                                  .join(Participant).where(Participant.assignment_id == aid)
                                  .order_by(Response.trial_order)).all()
    assert [c for c, _ in rows] == [0, 1, 2]
    assert all(rt is not None and rt >= 0 for _, rt in rows)  # measured in the page
    assert "0 mismatch" in stack.ok("sync", "block")


def test_keyboard_and_double_click_submit(stack, published, page):
    page.goto(f"{stack.em}/worker/hits/{published['h0002']}")
    page.click("#accept")
    page.wait_for_url(f"{stack.em}/worker/assignments/*")
    aid = page.inner_text("#assignment")
    frame = page.frame_locator("#task")
    for n, key in enumerate("345", start=1):
        frame.locator("#progress-text").filter(has_text=f"{n - 1} of 3 answered").wait_for()
        frame.locator("#progress-text").click()  # focus the frame's document
        page.keyboard.press(key)
    frame.locator("#submit-hit").dblclick()
    frame.locator("#message-title").filter(has_text="HIT submitted").wait_for()
    assert stack.emulator.state.assignments[aid].status == "Submitted"
    assert stack.emulator.state.calls["externalSubmit"] == 0  # not an API call
    with stack.app.app_context():
        chosen = db.session.execute(select(Response.chosen_index).join(Participant)
                                    .where(Participant.assignment_id == aid)
                                    .order_by(Response.trial_order)).scalars().all()
    assert chosen == [2, 3, 4]


def test_other_origins_cannot_frame_the_task(stack, published, page):
    # The same emulator page, reached as localhost instead of the configured
    # 127.0.0.1 origin: the task page's frame-ancestors policy must block the frame.
    other = stack.em.replace("127.0.0.1", "localhost")
    page.goto(f"{other}/worker/hits/{published['h0001']}")
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)
    frames = page.main_frame.child_frames
    assert len(frames) == 1
    # Blocked: the frame holds Chromium's error page, never the task.
    assert not frames[0].url.startswith(stack.server_url), frames[0].url
    assert frames[0].locator("#preview-notice").count() == 0
    page.goto(f"{stack.em}/worker/hits/{published['h0001']}")
    page.frame_locator("#task").locator("#preview-notice").wait_for()
