"""Withdrawal on the data side and the admin's participant pages, on SQLite and
PostgreSQL: withdrawn participants leave the export and the analysis by default (an
option includes them, marked), the admin sees withdrawals, a participant's page and CSV,
delete for good with its audit row, and the pseudonym key kept in the instance folder."""
from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from analysis.load import load_answers
from server import export as ex
from server import recording as rec
from server.recruitment import Identity

from .conftest import csrf_from, login

N_TRIALS = 6  # the small experiment: t1..t6, t6 a catch trial


def fill(app) -> dict[str, int]:
    """Three lab participants and one panel participant; GONE1 withdraws. Return
    {code: participant id}."""
    from server.models import Trial, db
    ids = {}
    with app.app_context():
        exp = rec.get_experiment("small")
        true = {t.id: t.true_index for t in db.session.execute(
            select(Trial).where(Trial.experiment_id == exp.id)).scalars()}
        for code, n, identity in (("KEEP1", 6, None), ("GONE1", 6, None), ("KEEP2", 2, None),
                                  (None, 3, Identity(platform="panel", environment="production",
                                                     external_participant_id="SONA-77",
                                                     external_study_id="SONA"))):
            p, _ = rec.start_participant(exp, code=code, consent=True, identity=identity)
            for i in range(1, n + 1):
                tid = p.trial_ids()[i - 1]
                # The catch trial answered wrongly by KEEP1 only.
                choice = true[tid] if not (code == "KEEP1" and i == 6) else (true[tid] + 1) % 5
                rec.record_answer(p, i, choice)
            ids[code or "panel"] = p.id
        rec.withdraw(db.session.get(type(p), ids["GONE1"]))
    return ids


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_and_analysis_leave_withdrawn_out(any_app, tmp_path):
    from server.models import db
    fill(any_app)
    with any_app.app_context():
        exp = rec.get_experiment("small")
        gone = ex.pseudonym("GONE1")
        default = rows_of(ex.to_csv(exp))
        assert len(default) == 6 + 2 + 3
        assert gone not in {r["participant"] for r in default}
        assert all(r["withdrawn_at"] == "" for r in default)
        full = rows_of(ex.to_csv(exp, include_withdrawn=True))
        assert len(full) == 17
        marked = [r for r in full if r["withdrawn_at"]]
        assert len(marked) == 6 and {r["participant"] for r in marked} == {gone}
        assert marked[0]["withdrawn_at"].endswith("Z")  # ISO 8601 UTC like received_at
        js = ex.to_json(exp)
        assert len(js["answers"]) == 11 and js["experiment"]["withdrawn"] == "left out"
        assert len(ex.to_json(exp, include_withdrawn=True)["answers"]) == 17
        path = tmp_path / "with-withdrawn.csv"
        path.write_text(ex.to_csv(exp, include_withdrawn=True))
        url = any_app.config["SQLALCHEMY_DATABASE_URI"]
        db.engine.dispose()
    # Over HTTP: the same default and the same option.
    c = any_app.test_client()
    login(c)
    assert len(rows_of(c.get("/manage/experiments/small/answers.csv").get_data(as_text=True))) == 11
    r = c.get("/manage/experiments/small/answers.csv?withdrawn=include")
    assert len(rows_of(r.get_data(as_text=True))) == 17
    assert "with-withdrawn" in r.headers["Content-Disposition"]
    assert len(c.get("/manage/experiments/small/answers.json?withdrawn=include").json["answers"]) == 17
    # The analysis: rule "withdrawn" first, from the CSV and from the database.
    for kw in ({"csv": path}, {"db": url, "experiment": "small"}):
        a = load_answers(**kw)
        counting = a.counting
        assert (counting.total, counting.counted) == (17, 11), kw
        assert list(counting.excluded)[0] == "withdrawn" and counting.excluded["withdrawn"] == 6
        assert len(a.df) == 11 and a.df["withdrawn_at"].isna().all()
        table = counting.table
        assert int(table.loc[table["decision"] == "excluded: withdrawn", "answers"].sum()) == 6
        assert any("withdrew" in line for line in counting.lines())
        both = load_answers(include_withdrawn=True, **kw)
        assert both.counting.counted == 17 and both.counting.excluded["withdrawn"] == 0
        assert any("included (asked for)" in line for line in both.counting.lines())


def test_admin_sees_withdrawals(any_app):
    ids = fill(any_app)
    c = any_app.test_client()
    login(c)
    dash = c.get("/manage/").get_data(as_text=True)
    assert '<td class="withdrawn">1</td>' in dash
    page = c.get("/manage/experiments/small").get_data(as_text=True)
    assert '<span id="withdrawn-count">1</span>' in page
    withdrawn_rows = [r.split("</tr>", 1)[0] for r in page.split('<tr class="withdrawn">')[1:]]
    assert len(withdrawn_rows) == 1 and ">GONE1</a>" in withdrawn_rows[0]
    prog = c.get("/manage/api/experiments/small/progress").json
    lab = next(g for g in prog["participants"] if g["platform"] == "lab")
    assert (lab["started"], lab["withdrawn"], lab["excluded"]) == (3, 1, 1)
    home = c.get("/manage/home/small").get_data(as_text=True)
    assert "<th>Withdrawn</th>" in home
    p = c.get(f"/manage/experiments/small/participants/{ids['GONE1']}").get_data(as_text=True)
    assert '<td id="status">withdrawn</td>' in p


def test_participant_page_and_csv(any_app):
    ids = fill(any_app)
    c = any_app.test_client()
    login(c)
    base = "/manage/experiments/small/participants"
    html = c.get(f"{base}/{ids['KEEP1']}").get_data(as_text=True)
    assert '<td id="status">completed</td>' in html
    assert "Catch trials (0 of 1 passed)" in html
    assert '<td id="submission-status">recorded</td>' in html
    assert html.count("<tr><td>") >= N_TRIALS  # one row per answer (and the catch row)
    html = c.get(f"{base}/{ids['panel']}").get_data(as_text=True)
    assert '<td id="external-participant">SONA-77</td>' in html and "SONA" in html
    assert "in progress" in html and "Catch trials (0 of 0 passed)" in html
    r = c.get(f"{base}/{ids['KEEP1']}/answers.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = rows_of(r.get_data(as_text=True))
    assert len(rows) == 6 and [int(x["trial_order"]) for x in rows] == list(range(1, 7))
    assert list(rows[0]) == ex.columns(_exp(any_app))
    with any_app.app_context():
        assert {x["participant"] for x in rows} == {ex.pseudonym("KEEP1")}
    raw = rows_of(c.get(f"{base}/{ids['KEEP1']}/answers.csv?ids=raw").get_data(as_text=True))
    assert {x["participant"] for x in raw} == {"KEEP1"}
    # A withdrawn participant's own CSV is still theirs, marked.
    gone = rows_of(c.get(f"{base}/{ids['GONE1']}/answers.csv").get_data(as_text=True))
    assert len(gone) == 6 and all(x["withdrawn_at"] for x in gone)
    assert c.get(f"{base}/999999").status_code == 404
    assert c.get(f"{base}/999999/answers.csv").status_code == 404
    assert c.get("/manage/experiments/nope/participants/1").status_code == 404


def _exp(app):
    with app.app_context():
        exp = rec.get_experiment("small")
        exp.feature_set_keys()
        return exp


def _counts(app, pid: int) -> tuple[int, int]:
    from server.models import Participant, Response, db
    with app.app_context():
        return (db.session.execute(select(func.count()).select_from(Participant)
                                   .where(Participant.id == pid)).scalar_one(),
                db.session.execute(select(func.count()).select_from(Response)
                                   .where(Response.participant_id == pid)).scalar_one())


def test_delete_for_good_is_confirmed_and_logged(any_app):
    from server.models import AuditEntry, db
    ids = fill(any_app)
    c = any_app.test_client()
    login(c)
    page = f"/manage/experiments/small/participants/{ids['KEEP1']}"
    token = csrf_from(c.get(page).get_data(as_text=True))
    url = page + "/delete"
    # No CSRF token, a wrong confirmation, no confirmation: nothing deleted.
    assert c.post(url, data={"confirm": "KEEP1"}).status_code == 400
    r = c.post(url, data={"csrf_token": token, "confirm": "KEEP"})
    assert r.status_code == 400 and "Nothing was deleted" in r.get_data(as_text=True)
    assert c.post(url, data={"csrf_token": token}).status_code == 400
    assert _counts(any_app, ids["KEEP1"]) == (1, 6)
    with any_app.app_context():
        assert db.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == 0
        subject = f"participant {ex.pseudonym('KEEP1')}"
    r = c.post(url, data={"csrf_token": token, "confirm": "KEEP1"})
    assert r.status_code == 303 and "deleted=6" in r.headers["Location"]
    assert _counts(any_app, ids["KEEP1"]) == (0, 0)
    assert _counts(any_app, ids["KEEP2"]) == (1, 2)  # nobody else touched
    with any_app.app_context():
        entries = db.session.execute(select(AuditEntry)).scalars().all()
        assert [(e.actor, e.action, e.experiment, e.subject) for e in entries] == [
            ("admin", "delete-participant", "small", subject)]
        assert entries[0].detail.startswith("6 answer(s) deleted")
        assert len(ex.export_rows(rec.get_experiment("small"), include_withdrawn=True)) == 11
    after = c.get(r.headers["Location"]).get_data(as_text=True)
    assert "6 answer(s) were deleted for good" in after and subject in after
    log = c.get("/manage/log").get_data(as_text=True)
    assert "delete-participant" in log and subject in log and "KEEP1" not in log
    assert c.get(page).status_code == 404
    assert c.post(url, data={"csrf_token": token, "confirm": "KEEP1"}).status_code == 404


def test_pseudonym_key_kept_in_the_instance_folder(tmp_path):
    """Two app instances with different SECRET_KEYs and one instance folder give the same
    pseudonyms; another instance folder gives others."""
    from server import create_app
    from server.config import legacy_pseudonym_key

    def app_with(secret: str, instance):
        return create_app({"SECRET_KEY": secret,
                           "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"},
                          instance_path=instance)

    dev = app_with("development-secret", tmp_path / "instance")
    prod = app_with("production-secret", tmp_path / "instance")
    other = app_with("development-secret", tmp_path / "elsewhere")
    key_file = tmp_path / "instance" / "pseudonym_key"
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert dev.config["PSEUDONYM_KEY"] == prod.config["PSEUDONYM_KEY"] == \
        key_file.read_text().strip()
    assert dev.config["PSEUDONYM_KEY"] != other.config["PSEUDONYM_KEY"]
    assert dev.config["PSEUDONYM_KEY"] != legacy_pseudonym_key("development-secret")
    names = []
    for app in (dev, prod, other):
        with app.app_context():
            names.append(ex.pseudonym("KEEP1"))
    assert names[0] == names[1] != names[2]
    # An older export's key, written into the file, gives the older pseudonyms back.
    key_file.write_text(legacy_pseudonym_key("development-secret") + "\n")
    old = app_with("production-secret", tmp_path / "instance")
    with old.app_context():
        assert ex.pseudonym("KEEP1") == ex.pseudonym(
            "KEEP1", key=legacy_pseudonym_key("development-secret"))
