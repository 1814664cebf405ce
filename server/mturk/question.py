"""ExternalQuestion XML (build and validate) and the hosts MTurk frames and submits from.

Both the requester side (which builds the question) and the local endpoint (which checks
it as MTurk does) use these functions, so the two cannot drift apart.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

EXTERNAL_QUESTION_NS = ("http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
                        "2006-07-14/ExternalQuestion.xsd")
MAX_QUESTION_CHARS = 131072

# Where MTurk's worker site lives: the values `turkSubmitTo` takes, and the origins that
# frame the task (worker.mturk.com is the production worker site that frames HITs today).
SUBMIT_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
FRAME_HOSTS = ("https://worker.mturk.com", "https://www.mturk.com",
               "https://workersandbox.mturk.com")


class QuestionError(ValueError):
    """An ExternalQuestion MTurk would refuse; the message says why."""


def is_loopback_url(url: str) -> bool:
    """Return True when `url` is http(s) on 127.0.0.1, ::1 or localhost."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def origin(url: str) -> str:
    """Return scheme://host[:port] of `url`, lower-cased, without path or trailing slash."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def external_question(url: str, frame_height: int = 0) -> str:
    """Return the ExternalQuestion XML document that frames `url` (0 = full height)."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_NS}">'
            f"<ExternalURL>{escape(url)}</ExternalURL>"
            f"<FrameHeight>{int(frame_height)}</FrameHeight>"
            "</ExternalQuestion>")


def parse_external_question(xml: str, allow_http_localhost: bool = False) -> tuple[str, int]:
    """Validate an ExternalQuestion as MTurk does; return (ExternalURL, FrameHeight).

    Raise QuestionError when the XML is malformed, in another namespace, lacks either
    element, the URL is not HTTPS (plain http on a loopback host is accepted only with
    `allow_http_localhost`) or the frame height is not an integer in 0..100000."""
    if not xml or len(xml) > MAX_QUESTION_CHARS:
        raise QuestionError("Question must be 1 to 131072 characters of XML")
    try:
        root = ElementTree.fromstring(xml.encode("utf-8"))
    except ElementTree.ParseError as exc:
        raise QuestionError(f"Question is not well-formed XML: {exc}") from None
    if root.tag != f"{{{EXTERNAL_QUESTION_NS}}}ExternalQuestion":
        raise QuestionError("Question root must be ExternalQuestion in namespace "
                            + EXTERNAL_QUESTION_NS)
    children = [c.tag.split("}", 1)[-1] for c in root]
    if children != ["ExternalURL", "FrameHeight"]:
        raise QuestionError("ExternalQuestion must hold ExternalURL then FrameHeight, "
                            f"found {children}")
    url = (root[0].text or "").strip()
    parts = urlsplit(url)
    if not parts.netloc:
        raise QuestionError(f"ExternalURL is not an absolute URL: {url!r}")
    if parts.scheme != "https" and not (allow_http_localhost and parts.scheme == "http"
                                        and is_loopback_url(url)):
        raise QuestionError(f"ExternalURL must use HTTPS: {url!r}")
    try:
        height = int((root[1].text or "").strip())
    except ValueError:
        raise QuestionError("FrameHeight must be an integer") from None
    if not 0 <= height <= 100000:
        raise QuestionError("FrameHeight must be between 0 and 100000")
    return url, height


def allowed_submit_hosts(local_endpoint: str | None = None) -> tuple[str, ...]:
    """Return the origins `turkSubmitTo` may name: MTurk's two, plus a loopback local
    endpoint when one is configured (anything else configured is ignored)."""
    hosts = list(SUBMIT_HOSTS)
    if local_endpoint and is_loopback_url(local_endpoint):
        hosts.append(origin(local_endpoint))
    return tuple(hosts)


def frame_ancestors(local_endpoint: str | None = None) -> str:
    """Return the Content-Security-Policy value that lets only MTurk (and a loopback
    local endpoint, when configured) frame the worker pages."""
    hosts = list(FRAME_HOSTS)
    if local_endpoint and is_loopback_url(local_endpoint):
        hosts.append(origin(local_endpoint))
    return "frame-ancestors " + " ".join(hosts)


def checked_submit_to(turk_submit_to: str | None,
                      local_endpoint: str | None = None) -> str | None:
    """Return the origin to post the finished assignment to, or None when
    `turk_submit_to` is missing or not one of the allowed hosts (never trust it)."""
    if not turk_submit_to:
        return None
    try:
        parts = urlsplit(turk_submit_to.strip())
        candidate = origin(turk_submit_to)
    except ValueError:  # e.g. "https://[": not a URL at all
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return candidate if candidate in allowed_submit_hosts(local_endpoint) else None
