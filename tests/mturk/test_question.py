"""ExternalQuestion XML and the hosts that may frame the task and receive the submit."""
import pytest

from server.mturk.question import (
    QuestionError,
    checked_submit_to,
    external_question,
    frame_ancestors,
    parse_external_question,
)

NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"


def test_round_trip_escapes_the_url():
    url = "https://tll.example.org/mturk/task/paper/h0001?a=1&b=2"
    xml = external_question(url, 600)
    assert "&amp;" in xml and NS in xml
    assert parse_external_question(xml) == (url, 600)


@pytest.mark.parametrize("xml, why", [
    (external_question("http://tll.example.org/x"), "HTTPS"),
    (external_question("http://127.0.0.1:5000/x"), "HTTPS"),
    (external_question("https:///nohost"), "absolute"),
    (external_question("https://a.example/x").replace(NS, "urn:other"), "namespace"),
    (external_question("https://a.example/x").replace("<FrameHeight>0", "<FrameHeight>x"),
     "integer"),
    (external_question("https://a.example/x", -5), "between"),
    ('<ExternalQuestion xmlns="%s"><ExternalURL>https://a/</ExternalURL></ExternalQuestion>'
     % NS, "FrameHeight"),
    ("<ExternalQuestion", "well-formed"),
    ("", "1 to 131072"),
])
def test_invalid_questions(xml, why):
    with pytest.raises(QuestionError, match=why):
        parse_external_question(xml)


def test_http_loopback_only_with_the_switch():
    xml = external_question("http://127.0.0.1:5000/x")
    assert parse_external_question(xml, allow_http_localhost=True)[0].startswith("http://127")
    with pytest.raises(QuestionError):
        parse_external_question(external_question("http://10.0.0.1/x"), True)


def test_submit_hosts():
    assert checked_submit_to("https://www.mturk.com") == "https://www.mturk.com"
    assert checked_submit_to("https://workersandbox.mturk.com/") == \
        "https://workersandbox.mturk.com"
    for bad in ("https://evil.example", "https://www.mturk.com.evil.example",
                "https://www.mturk.com@evil.example", "http://www.mturk.com",
                "https://www.mturk.com/x", "https://www.mturk.com?x=1", None, ""):
        assert checked_submit_to(bad) is None, bad
    # A local endpoint counts only when configured and on a loopback address.
    assert checked_submit_to("http://127.0.0.1:5050", "http://127.0.0.1:5050") == \
        "http://127.0.0.1:5050"
    assert checked_submit_to("http://127.0.0.1:5051", "http://127.0.0.1:5050") is None
    assert checked_submit_to("https://evil.example", "https://evil.example") is None


def test_frame_ancestors():
    assert frame_ancestors() == ("frame-ancestors https://worker.mturk.com "
                                 "https://www.mturk.com https://workersandbox.mturk.com")
    assert frame_ancestors("http://127.0.0.1:5050/").endswith(" http://127.0.0.1:5050")
    assert "evil" not in frame_ancestors("https://evil.example")
