"""What the participant reads, written by the researcher: texts rendered from Markdown
safely, defaults correct for the experiment, look-alike practice whose feedback agrees
with the catch trials, the message catalogue (English, German) chosen per experiment or
by the browser, and withdrawal from every page."""
from __future__ import annotations

import html.parser
import re
import subprocess
import sys

import pytest
from sqlalchemy import select

from server.loader import apply_settings, load_experiment, validate_settings
from server.models import AuditEntry, Experiment, Image, Participant, Response, db
from server.recording import get_experiment
from server.texts import OLD_DEFAULT_CONSENT, render_markdown
from tests.server.conftest import (
    ROOT,
    answer_trials,
    csrf_from,
    lab_post,
    make_app,
    serving,
    set_settings,
    wait_images,
    write_experiment,
)

# Images of the 14-pair study that no trial shows (trials use L00000-5, R00000-9).
PRACTICE_SET = ["L00010", "R00010", "L00011", "L00012", "L00013", "R00011"]
EVIL = ("# Hi <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "[a](javascript:alert(1)) [b](JaVaScRiPt:alert(2)) [c](jav&#x09;ascript:alert(3)) "
        "[d](data:text/html;base64,PHNjcmlwdD4=) [ok](https://example.org/info)\n\n"
        "<a href=\"javascript:alert(4)\">x</a> **bold**")


class _Tags(html.parser.HTMLParser):
    """Collect (tag, attributes) of every element in a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _unsafe(page: str) -> list:
    """Return the elements of `page` that could run script."""
    bad = []
    for tag, attrs in _Tags(page).tags:
        if tag == "script" and attrs.get("src", "").startswith("/static/"):
            continue  # the page's own script
        if tag in ("script", "iframe", "object", "embed"):
            bad.append((tag, attrs))
        bad += [(tag, k, v) for k, v in attrs.items() if k.startswith("on")]
        bad += [(tag, k, v) for k, v in attrs.items() if k in ("href", "src")
                and re.sub(r"\s", "", v or "").lower().startswith(("javascript:", "data:text"))]
    return bad


@pytest.fixture(scope="module")
def practice_study(tmp_path_factory):
    """A 6-trial study (the last a catch trial) with 14 pairs, so images no trial shows
    can be named as a practice set."""
    return write_experiment(tmp_path_factory.mktemp("practice-study"), n_pairs=14)


def _app(tmp_path, study, **settings):
    app = make_app(tmp_path)
    with app.app_context():
        load_experiment(study, name="s", settings={"trial_order": "fixed", **settings})
    return app


def _start(client, name="s"):
    r = lab_post(client, f"/lab/{name}/start", {"generate": "1"})
    assert r.status_code == 303
    r = lab_post(client, f"/lab/{name}/consent", {"agree": "yes"})
    assert r.status_code == 303


def test_markdown_is_rendered_safely(client):
    out = render_markdown(EVIL)
    assert _unsafe(f"<div>{out}</div>") == []
    assert '<a href="https://example.org/info">ok</a>' in out and "<strong>bold</strong>" in out
    assert "&lt;script&gt;" in out  # shown as text, not lost
    # The same through the pages: every text the researcher writes.
    app = client.application
    with app.app_context():
        apply_settings(get_experiment("small"), {"texts": {"welcome": EVIL, "instructions": EVIL,
                                                            "debriefing": EVIL,
                                                            "contact": "[me](javascript:x)"},
                                                  "consent_text": EVIL})
        db.session.commit()
    landing = client.get("/lab/small/").get_data(as_text=True)
    assert 'id="welcome"' in landing and _unsafe(landing) == []
    _start(client, "small")
    for path in ("/lab/small/consent", "/lab/small/instructions"):
        page = client.get(path).get_data(as_text=True)
        assert "&lt;script&gt;" in page and _unsafe(page) == [], path


def test_defaults_follow_the_experiment(client, tmp_path):
    page = client.get("/lab/small/").get_data(as_text=True)
    assert "A study on how people compare images" in page
    assert "6 trials and takes about 3 minutes" in page  # (6 x 8 s + 120 s) / 60, rounded up
    _start(client, "small")
    consent = client.get("/lab/small/consent").get_data(as_text=True)
    assert "10 to 20 minutes" not in consent
    assert "You will see 6 trials" in consent and "about 3 minutes" in consent
    assert "1 trial is an attention check" in consent
    instr = client.get("/lab/small/instructions").get_data(as_text=True)
    assert "very same picture" in instr and "no candidate is identical" not in instr
    # The seconds per trial set by the researcher; a consent stored by an older version
    # (the fixed "10 to 20 minutes") counts as unset.
    with client.application.app_context():
        exp = get_experiment("small")
        apply_settings(exp, {"seconds_per_trial": 60.0, "consent_text": OLD_DEFAULT_CONSENT})
        db.session.commit()
    consent = client.get("/lab/small/consent").get_data(as_text=True)
    assert "about 8 minutes" in consent and "10 to 20" not in consent
    # Without catch trials, none are mentioned.
    study = write_experiment(tmp_path / "nocatch", catch=False)
    app = _app(tmp_path / "db", study)
    c = app.test_client()
    _start(c)
    text = c.get("/lab/s/consent").get_data(as_text=True) + \
        c.get("/lab/s/instructions").get_data(as_text=True)
    assert "attention check" not in text and "very same picture" not in text


def test_researcher_texts_on_the_pages(client):
    app = client.application
    set_settings(app, "small", texts={"title": "Faces in things", "researcher": "Dr. A. Lab, Uni X",
                                     "contact": "[a.lab@uni-x.example](mailto:a.lab@uni-x.example)",
                                     "welcome": "Welcome to *our* study.",
                                     "instructions": "Pick the **look-alike**.",
                                     "debriefing": "We study pareidolia."},
                consent_text="I agree to _everything_.")
    landing = client.get("/lab/small/").get_data(as_text=True)
    assert '<h1 id="study-title">Faces in things</h1>' in landing
    assert "Dr. A. Lab, Uni X" in landing and 'href="mailto:a.lab@uni-x.example"' in landing
    assert "Welcome to <em>our</em> study." in landing
    _start(client, "small")
    assert "I agree to <em>everything</em>." in client.get("/lab/small/consent").get_data(
        as_text=True)
    assert "Pick the <strong>look-alike</strong>." in client.get(
        "/lab/small/instructions").get_data(as_text=True)
    for n in range(1, 7):
        lab_post(client, "/lab/small/answer", {"n": str(n), "choice": "0"})
    done = client.get("/lab/small/done").get_data(as_text=True)
    assert "We study pareidolia." in done and 'id="withdraw-link"' in done


def test_text_settings_are_checked():
    assert validate_settings({"texts": {"title": "two\nlines"}}) == \
        ["text 'title' must be one line of at most 200 characters"]
    assert validate_settings({"texts": {"welcome": "x" * 20_001}}) == \
        ["text 'welcome' has 20001 characters (at most 20000)"]
    assert validate_settings({"texts": {"motto": "x"}})[0].startswith("unknown text 'motto'")
    assert validate_settings({"language": "fr"}) == \
        ["language must be one of en, de ('' = the browser's), not 'fr'"]
    assert validate_settings({"practice_images": [["a", "b", "c"]]})[0].startswith(
        "practice set 1 must be six different image ids")
    assert validate_settings({"language": "", "texts": {"title": "T"},
                              "practice_images": [PRACTICE_SET]}) == []


def test_cli_texts_options(tmp_path, practice_study):
    app = make_app(tmp_path)
    runner = app.test_cli_runner()
    (tmp_path / "welcome.md").write_text("Hello **there**.\n", encoding="utf-8")
    (tmp_path / "consent.md").write_text("My consent.\n", encoding="utf-8")
    (tmp_path / "latin1.md").write_bytes("Gr\xfc\xdfe".encode("latin-1"))
    r = runner.invoke(args=["load-experiment", str(practice_study), "--name", "s",
                            "--title", "Look-alikes", "--researcher", "Lab X",
                            "--text", f"welcome={tmp_path / 'welcome.md'}",
                            "--text", f"consent={tmp_path / 'consent.md'}",
                            "--language", "de", "--practice-trials", "2",
                            "--no-practice-feedback", "--seconds-per-trial", "12",
                            "--practice-set", ",".join(PRACTICE_SET)])
    assert r.exit_code == 0, r.output
    with app.app_context():
        exp = get_experiment("s")
        assert (exp.text("title"), exp.text("researcher"), exp.text("welcome"),
                exp.consent_text, exp.language, exp.practice_trials, exp.practice_feedback,
                exp.seconds_per_trial) == ("Look-alikes", "Lab X", "Hello **there**.",
                                           "My consent.", "de", 2, False, 12.0)
        keys = set(db.session.execute(select(Image.key).where(
            Image.experiment_id == exp.id)).scalars())
        assert set(PRACTICE_SET) <= keys
        before = (exp.texts, exp.consent_text, exp.language, exp.practice_images)
    r = runner.invoke(args=["experiment-settings", "s"])
    assert r.exit_code == 0 and "title: Look-alikes; language=de practice_trials=2" in r.output
    assert "practice_sets=1" in r.output and "consent: My consent." in r.output
    bad = [
        (["--text", f"motto={tmp_path / 'welcome.md'}"], "unknown text 'motto' in --text"),
        (["--text", "welcome"], "--text must be NAME=FILE"),
        (["--text", f"welcome={tmp_path / 'missing.md'}"], "cannot read the welcome text file"),
        (["--text", f"debriefing={tmp_path / 'latin1.md'}"], "is not UTF-8 text"),
        (["--language", "fr"], "language must be one of en, de"),
        (["--practice-trials", "11"], "practice trials must be a number 0..10"),
        (["--title", "a\nb"], "text 'title' must be one line"),
        (["--practice-set", "L00000,R00000,L00001,L00002,L00003,R00001"],
         "practice image 'L00001' is shown in the experiment's trials"),
        (["--practice-set", "L00006,R00012,L00007,L00008,L00009,R00013"],
         "practice image 'L00006' was not loaded"),
        (["--practice-set", "a,b"], "practice set 1 must be six different image ids"),
    ]
    for args, message in bad:
        r = runner.invoke(args=["experiment-settings", "s", *args])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
        assert "Traceback" not in r.output
    # Loading: practice images must be in the file and shown by no trial.
    r = runner.invoke(args=["load-experiment", str(practice_study), "--name", "t",
                            "--practice-set", "L00000,R00010,L00011,L00012,L00013,nope"])
    assert r.exit_code == 2
    assert "practice image 'L00000' is shown in the experiment's trials" in r.output
    assert "practice image 'nope' is not among the experiment file's images" in r.output
    with app.app_context():
        exp = get_experiment("s")
        assert (exp.texts, exp.consent_text, exp.language, exp.practice_images) == before
        assert db.session.execute(select(Experiment).where(Experiment.name == "t")) \
            .scalar_one_or_none() is None
    # '-' returns a text and the language to their defaults.
    r = runner.invoke(args=["experiment-settings", "s", "--text", "welcome=-", "--title", "-",
                            "--language", "browser"])
    assert r.exit_code == 0, r.output
    with app.app_context():
        exp = get_experiment("s")
        assert exp.text("welcome") == "" and exp.text("title") == "" and exp.language == ""
        assert exp.text("researcher") == "Lab X"


def _imgs(page: str) -> list[str]:
    return [a["src"] for t, a in _Tags(page).tags if t == "img"]


def test_practice_from_named_images_with_a_catch_trial(tmp_path, practice_study):
    app = _app(tmp_path, practice_study, practice_images=[PRACTICE_SET], practice_trials=2)
    with app.app_context():
        exp = get_experiment("s")
        token = dict(db.session.execute(select(Image.key, Image.token).where(
            Image.experiment_id == exp.id)).all())
        trial_tokens = {token[k] for k in token if k not in PRACTICE_SET}
    url = {k: f"/i/{token[k]}" for k in PRACTICE_SET}
    c = app.test_client()
    _start(c)
    assert c.get("/lab/s/go").headers["Location"].endswith("/instructions")
    page = c.get("/lab/s/instructions").get_data(as_text=True)
    imgs = _imgs(page)
    assert "Practice trial 1 of 2" in page
    assert imgs[0] == url["L00010"] and sorted(imgs[1:]) == sorted(url[k] for k in PRACTICE_SET[1:])
    assert not any(i.rsplit("/", 1)[1] in trial_tokens for i in imgs)
    right = imgs[1:].index(url["R00010"])
    wrong = (right + 1) % 5
    r = lab_post(c, "/lab/s/instructions", {"k": "0", "choice": str(wrong)})
    fb = r.get_data(as_text=True)
    assert r.status_code == 200 and 'class="feedback wrong"' in fb
    assert f"Candidate {right + 1} was the look-alike" in fb
    assert "very same picture" in fb and "no candidate is identical" not in fb
    assert 'id="next-practice"' in fb and 'id="begin"' not in fb
    # Not done with practice: the flow comes back to it.
    assert c.get("/lab/s/go").headers["Location"].endswith("/instructions")
    # The second (last) practice trial is a catch trial: the query again among the five.
    page = c.get("/lab/s/instructions").get_data(as_text=True)
    imgs = _imgs(page)
    assert "Practice trial 2 of 2" in page and "attention check" in page
    same = imgs[1:].index(imgs[0])
    fb = lab_post(c, "/lab/s/instructions", {"k": "1", "choice": str(same)}).get_data(as_text=True)
    assert 'class="feedback right"' in fb and "very same picture" in fb and 'id="begin"' in fb
    assert c.get("/lab/s/go").headers["Location"].endswith("/trial")
    # Bad practice answers are refused with a reason.
    for form in ({"k": "2", "choice": "0"}, {"k": "x", "choice": "0"}, {"k": "0", "choice": "5"}):
        r = lab_post(c, "/lab/s/instructions", form)
        assert r.status_code == 400, form


def test_builtin_practice_and_no_feedback(client):
    _start(client, "small")
    page = client.get("/lab/small/instructions").get_data(as_text=True)
    imgs = _imgs(page)
    assert imgs[0] == "/static/practice/p1.png"
    assert sorted(imgs[1:]) == [f"/static/practice/p{i}.png" for i in range(2, 7)]
    for src in imgs:
        r = client.get(src)
        assert r.status_code == 200 and r.mimetype == "image/png"
    right = imgs[1:].index("/static/practice/p2.png")
    fb = lab_post(client, "/lab/small/instructions", {"choice": str(right)}).get_data(as_text=True)
    assert f"Right: candidate {right + 1} is the look-alike" in fb
    # One practice trial: no catch practice; the instructions still name the catch trials.
    assert "attention check" in fb
    # Without feedback the answer goes straight on.
    set_settings(client.application, "small", practice_feedback=False, practice_trials=3)
    c = client.application.test_client()
    _start(c, "small")
    for k in range(3):
        page = c.get("/lab/small/instructions").get_data(as_text=True)
        assert f"Practice trial {k + 1} of 3" in page
        r = lab_post(c, "/lab/small/instructions", {"k": str(k), "choice": "0"})
        assert r.status_code == 303 and "feedback" not in r.get_data(as_text=True)
        assert r.headers["Location"].endswith("/trial" if k == 2 else "/instructions")


def test_instructions_without_practice(client):
    """With practice off, the researcher's instructions are still shown once."""
    set_settings(client.application, "small", practice=False)
    _start(client, "small")
    assert client.get("/lab/small/go").headers["Location"].endswith("/trial")
    set_settings(client.application, "small", texts={"instructions": "Trust your *eyes*."})
    c = client.application.test_client()
    _start(c, "small")
    assert c.get("/lab/small/go").headers["Location"].endswith("/instructions")
    page = c.get("/lab/small/instructions").get_data(as_text=True)
    assert "Trust your <em>eyes</em>." in page and 'id="begin"' in page
    assert "<form" not in page.split('id="instructions"')[1]  # no practice trial
    assert c.get("/lab/small/go").headers["Location"].endswith("/trial")
    assert lab_post(c, "/lab/small/instructions", {"choice": "0"}).status_code == 400


def test_language_by_setting_and_by_browser(client):
    de = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
    page = client.get("/lab/small/", headers=de).get_data(as_text=True)
    assert '<html lang="de">' in page and "Teilnahmecode" in page and "Einen erzeugen" in page
    page = client.get("/lab/small/", headers={"Accept-Language": "fr-FR"}).get_data(as_text=True)
    assert '<html lang="en">' in page and "Participant code" in page
    set_settings(client.application, "small", language="en")
    page = client.get("/lab/small/", headers=de).get_data(as_text=True)
    assert '<html lang="en">' in page and "Participant code" in page
    set_settings(client.application, "small", language="de")
    _start(client, "small")
    consent = client.get("/lab/small/consent").get_data(as_text=True)
    assert "Sie sehen 6 Durchgänge" in consent and "etwa 3 Minuten" in consent
    assert "Von der Studie zurücktreten" in consent
    fb = lab_post(client, "/lab/small/instructions", {"choice": "0"}).get_data(as_text=True)
    assert "Kandidat" in fb and "Aufmerksamkeitsprüfung" in fb


def test_catalogue_is_complete_and_compiled(tmp_path):
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    "babel.cfg", "--no-location", "-o", str(pot), "."], cwd=ROOT, check=True,
                   capture_output=True)
    with open(pot, "rb") as f:
        wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}
    folder = ROOT / "translations" / "de" / "LC_MESSAGES"

    def entries(cat):
        return {m.id if isinstance(m.id, str) else m.id[0]:
                m.string if isinstance(m.string, str) else tuple(m.string) for m in cat if m.id}

    with open(folder / "messages.po", "rb") as f:
        po = entries(read_po(f))
    with open(folder / "messages.mo", "rb") as f:
        mo = entries(read_mo(f))
    assert wanted - set(po) == set(), "strings missing from the catalogue: run pybabel update"
    assert not [k for k, v in po.items() if not v or (isinstance(v, tuple) and not all(v))]
    assert mo == po, "messages.mo is older than messages.po: run pybabel compile -d translations"


def test_withdrawal_over_http(any_app):
    app = any_app
    c = app.test_client()
    other = app.test_client()
    _start(c, "small")
    _start(other, "small")
    for n in (1, 2):
        lab_post(c, "/lab/small/answer", {"n": str(n), "choice": "1"})
        lab_post(other, "/lab/small/answer", {"n": str(n), "choice": "2"})
    for path in ("/lab/small/consent", "/lab/small/instructions", "/lab/small/trial"):
        assert 'id="withdraw-link" href="/lab/small/withdraw"' in c.get(path).get_data(
            as_text=True), path
    with app.app_context():
        before = sorted((r.participant_id, r.trial_order, r.chosen_index)
                        for r in db.session.execute(select(Response)).scalars())
    confirm = c.get("/lab/small/withdraw").get_data(as_text=True)
    assert 'id="withdraw-confirm"' in confirm and "(2 so far)" in confirm
    # Only a POST with the page's CSRF token withdraws.
    assert c.post("/lab/small/withdraw").status_code == 400
    assert app.test_client().post("/lab/small/withdraw").status_code == 400
    with app.app_context():
        assert db.session.execute(select(Participant.withdrawn_at)).scalars().all() == [None] * 2
    r = c.post("/lab/small/withdraw", data={"csrf_token": csrf_from(confirm)})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and 'id="withdrawn"' in page and "2 answers" in page
    assert 'id="withdraw-link"' not in page
    with app.app_context():
        ps = {p.code: p for p in db.session.execute(select(Participant)).scalars()}
        gone = [p for p in ps.values() if p.withdrawn_at is not None]
        assert len(gone) == 1 and len(ps) == 2
        after = sorted((r.participant_id, r.trial_order, r.chosen_index)
                       for r in db.session.execute(select(Response)).scalars())
        assert after == before  # the answers are kept, marked by their participant
        [entry] = db.session.execute(select(AuditEntry)).scalars().all()
        assert (entry.actor, entry.action, entry.experiment, entry.subject) == \
            ("participant", "withdraw", "small", gone[0].code)
        code = gone[0].code
    # The browser forgot them; their code cannot come back; the other one goes on.
    assert c.get("/lab/small/trial").headers["Location"].endswith("/lab/small/")
    assert c.post("/lab/small/withdraw", data={"csrf_token": csrf_from(confirm)}).status_code == 403
    r = lab_post(app.test_client(), "/lab/small/start", {"code": code})
    assert r.status_code == 409 and "withdrew" in r.get_data(as_text=True)
    assert lab_post(other, "/lab/small/answer", {"n": "3", "choice": "0"}).status_code == 303


def test_withdrawal_after_completion_keeps_the_code(app):
    set_settings(app, "small", platform_settings={"panel": {"id_param": "pid", "code": "DONE-1"}})
    c = app.test_client()
    c.get("/lab/small/via/panel?pid=p-1")
    lab_post(c, "/lab/small/consent", {"agree": "yes"})
    for n in range(1, 7):
        lab_post(c, "/lab/small/answer", {"n": str(n), "choice": "0"})
    done = c.get("/lab/small/done").get_data(as_text=True)
    assert 'id="completion-code">DONE-1<' in done and 'id="withdraw-link"' in done
    confirm = c.get("/lab/small/withdraw").get_data(as_text=True)
    page = c.post("/lab/small/withdraw", data={"csrf_token": csrf_from(confirm)}) \
        .get_data(as_text=True)
    assert 'id="withdrawn"' in page and 'id="completion-code">DONE-1<' in page
    assert app.test_client().get("/lab/small/via/panel?pid=p-1").status_code == 409


@pytest.mark.browser
def test_researcher_study_walked_through_in_chromium(tmp_path, practice_study, page,
                                                     artifacts_dir):
    """A German study with the researcher's texts, two practice trials from named images
    (the second an attention check) with feedback, the trials, the debriefing, and the
    withdrawal; screenshots of each page in test-artifacts/server/study-*.png."""
    texts = {"title": "Gesichter in Dingen", "researcher": "Dr. A. Lab, Universität X",
             "contact": "[a.lab@uni-x.example](mailto:a.lab@uni-x.example)",
             "welcome": "Willkommen! Diese Studie untersucht **Ähnlichkeit**.",
             "instructions": "Wählen Sie das Bild, das *am ähnlichsten* aussieht.",
             "debriefing": "Wir untersuchen, wie Menschen Gesichter in Dingen sehen."}
    app = _app(tmp_path, practice_study, texts=texts, consent_text="Ich willige _freiwillig_ ein.",
               language="de", practice_images=[PRACTICE_SET], practice_trials=2,
               practice_feedback=True)
    shots = artifacts_dir / "server"
    shots.mkdir(exist_ok=True)
    with serving(app) as base:
        page.goto(f"{base}/lab/s/")
        assert page.inner_text("#study-title") == "Gesichter in Dingen"
        assert "Universität X" in page.inner_text("#study-researcher")
        assert page.inner_text("#welcome strong") == "Ähnlichkeit"
        page.screenshot(path=str(shots / "study-welcome.png"))
        page.click("#generate")
        page.wait_for_url("**/consent")
        assert page.inner_text("#consent-text em") == "freiwillig"
        assert page.is_visible("#withdraw-link")
        page.screenshot(path=str(shots / "study-consent.png"))
        page.check("#agree")
        page.click("#consent")
        page.wait_for_url("**/instructions")
        assert "Übungsdurchgang 1 von 2" in page.inner_text("#practice-heading")
        assert page.inner_text("#instructions em") == "am ähnlichsten"
        wait_images(page)
        page.screenshot(path=str(shots / "study-practice.png"))
        page.wait_for_selector("#trial-form[data-ready]")
        page.keyboard.press("1")
        page.wait_for_selector("#feedback")
        assert "Kandidat" in page.inner_text("#feedback")
        page.click("#next-practice")
        page.wait_for_selector("#practice-heading")
        srcs = page.eval_on_selector_all("#trial-form img", "els => els.map(e => e.src)")
        page.click(f"button.candidate >> nth={srcs[1:].index(srcs[0])}")
        page.wait_for_selector("#feedback")
        assert "Richtig" in page.inner_text("#feedback")
        assert "genau dasselbe Bild" in page.inner_text("#feedback")
        page.screenshot(path=str(shots / "study-practice-feedback.png"))
        page.click("#begin")

        def progress(n):
            assert page.inner_text("#progress-text") == f"{n - 1} von 6 beantwortet"
        answer_trials(page, [str(n % 5 + 1) for n in range(1, 7)], progress)
        assert page.inner_text("#done") == "Vielen Dank!"
        assert "Gesichter in Dingen sehen" in page.inner_text("#debriefing")
        page.screenshot(path=str(shots / "study-debriefing.png"))
        page.click("#withdraw-link")
        page.wait_for_selector("#withdraw-confirm")
        page.screenshot(path=str(shots / "study-withdraw.png"))
        page.click("#withdraw-confirm")
        page.wait_for_selector("#withdrawn")
        assert page.inner_text("#withdrawn") == "Ihre Antworten wurden zurückgezogen"
        page.screenshot(path=str(shots / "study-withdrawn.png"))
    with app.app_context():
        p = db.session.execute(select(Participant)).scalar_one()
        assert p.withdrawn_at is not None and len(p.responses) == 6


def test_mturk_preview_shows_the_default_consent(app):
    """The MTurk task page's preview carries the consent computed for one HIT (one trial
    here): its own duration, no promise of a withdraw link it does not have."""
    from server.models import Hit
    with app.app_context():
        exp = get_experiment("small")
        db.session.add(Hit(experiment_id=exp.id, key="h0006", mturk_hit_id="H6",
                           environment="production", max_assignments=20))
        db.session.commit()
    page = app.test_client().get("/mturk/task/small/h0006?assignmentId="
                                 "ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H6").get_data(as_text=True)
    assert 'id="consent-text"' in page and "You will see 1 trial:" in page
    assert "about 3 minutes" in page  # (1 x 8 s + 120 s) / 60, rounded up
    assert "attention checks that show the very same picture" in page  # it has one
    assert "10 to 20" not in page and "link at the bottom" not in page
