"""One form for every code and every participant-reachable number: codes are NFKC
normalised and upper-cased to one documented ASCII alphabet (full-width, composed and
decomposed forms are one code; look-alike letters of other scripts are refused), and
numbers (trial positions, choice, rt_ms, practice answers) are ASCII digits only."""
from __future__ import annotations

import unicodedata

import pytest

from server import recording as rec
from server.models import Participant, Response, db
from tests.server.conftest import api_participant, lab_post


@pytest.mark.parametrize("typed", ["ab12", "AB12", " ab12 ", "\uff21\uff22\uff11\uff12",
                                   "\uff41\uff42\uff11\uff12"])
def test_forms_of_one_code_are_one_code(typed):
    assert rec.clean_code(typed) == "AB12"


def test_composed_and_decomposed_letters_are_refused_alike():
    # "é" composed (NFC) and decomposed (NFD) are one code after NFKC, and that code is
    # outside the ASCII alphabet: both get the same refusal, neither a second participant.
    nfc, nfd = unicodedata.normalize("NFC", "caf\u00e9"), unicodedata.normalize("NFD", "caf\u00e9")
    assert nfc != nfd
    reasons = set()
    for code in (nfc, nfd):
        with pytest.raises(rec.RecordingError) as e:
            rec.clean_code(code)
        assert e.value.status == 400
        reasons.add(e.value.reason)
    assert len(reasons) == 1 and "letters A-Z, digits 0-9" in reasons.pop()


@pytest.mark.parametrize("code", [
    "\u0410\u041212",      # Cyrillic capitals A, B: look like AB12
    "A\u0392C",            # Greek capital beta
    "P\u200b01",           # zero-width space
    "a b", "a/b", "a:b",
])
def test_look_alikes_and_other_characters_are_refused(code):
    with pytest.raises(rec.RecordingError) as e:
        rec.clean_code(code)
    assert e.value.status == 400


@pytest.mark.parametrize("value", ["\u0663", "\u00b2", "\uff11", "1\u0660", " 1", "+1", "-1",
                                   "1.0", "1e0", "0x1", "", True, 1.0, None, [1]])
def test_numbers_are_ascii_digits_only(value):
    with pytest.raises(rec.RecordingError) as e:
        rec.ascii_int(value, "trial position")
    assert e.value.status == 400 and "trial position" in e.value.reason


def test_ascii_int_accepts_digits_and_integers():
    assert rec.ascii_int("17", "n") == 17 and rec.ascii_int(3, "n") == 3
    assert rec.ascii_int(10 ** 400, "n") == 10 ** 400  # the caller's range check refuses it


@pytest.mark.parametrize("value", ["\u0663\u0660\u0660", "\uff13\uff10\uff10", "3\u00b2", "1e3",
                                   "nan", "inf", "-5", float("nan"), float("inf"), -1, 10 ** 400,
                                   1e300, True])
def test_rt_ms_is_an_ascii_number_in_range(value):
    with pytest.raises(rec.RecordingError) as e:
        rec.ascii_number(value, "rt_ms", 1e8)
    assert e.value.status == 400 and "rt_ms" in e.value.reason


def test_rt_ms_accepts_what_the_page_sends():
    assert rec.ascii_number("812.5", "rt_ms", 1e8) == 812.5
    assert rec.ascii_number(900, "rt_ms", 1e8) == 900.0
    assert rec.ascii_number(0.5, "rt_ms", 1e8) == 0.5


def test_full_width_code_resumes_the_same_participant(any_app):
    c = any_app.test_client()
    first = c.post("/api/v1/experiments/small/participants",
                   json={"consent": True, "code": "WIDE1"})
    assert first.status_code == 201
    again = c.post("/api/v1/experiments/small/participants",
                   json={"consent": True, "code": "\uff37\uff29\uff24\uff25\uff11"})
    assert again.status_code == 200 and again.get_json()["participant"] == \
        first.get_json()["participant"]
    other = any_app.test_client()
    assert lab_post(other, "/lab/small/start", {"code": "\uff57ide1"}).status_code == 303
    with any_app.app_context():
        assert db.session.query(Participant).filter_by(code="WIDE1").count() == 1
        assert db.session.query(Participant).count() == 1


def test_non_ascii_numbers_store_nothing(any_app):
    c = any_app.test_client()
    token = api_participant(c, "DIGITS")
    bad = [{"n": "\u0661", "choice": 1}, {"n": 1, "choice": "\u0661"},
           {"n": 1, "choice": 1, "rt_ms": "\u0663\u0660\u0660"},
           {"n": 1, "choice": 1, "rt_ms": "\uff13\uff10\uff10"},
           {"n": 1, "choice": 1, "rt_ms": int("9" * 400)}]
    for body in bad:
        r = c.post(f"/api/v1/participants/{token}/answers", json=body)
        assert r.status_code == 400, (body, r.get_data(as_text=True))
    assert c.get(f"/api/v1/participants/{token}/trials/\u0661").status_code in (400, 404)
    lab = any_app.test_client()
    assert lab_post(lab, "/lab/small/start", {"code": "DIGITS2"}).status_code == 303
    lab_post(lab, "/lab/small/consent", {"agree": "yes"})
    r = lab_post(lab, "/lab/small/answer", {"n": "1", "choice": "1", "rt_ms": "\u0663\u0660\u0660"})
    assert r.status_code == 400 and "rt_ms" in r.get_data(as_text=True)
    r = lab_post(lab, "/lab/small/instructions", {"k": "\u0660", "choice": "0"})
    assert r.status_code == 400
    with any_app.app_context():
        assert db.session.query(Response).count() == 0
