"""The HTTP client of Prolific's API, on `requests`.

Why requests: the commands are synchronous and make a handful of calls, `requests` was
already in the project (the tests drive pages with it) and its `urllib3.Retry` gives safe
retries for reads and idempotent calls without our own loop; httpx would add a
dependency for async and HTTP/2 that nothing here uses, and no maintained generated client
of Prolific's API exists on PyPI. Creating a study and paying a bonus are never retried
automatically (Prolific has no idempotency key for them): publishing and bonus records in
the database make a rerun finish the job instead.

The token comes from `PROLIFIC_TOKEN` or a file (`PROLIFIC_TOKEN_FILE`, `--token-file`)
and is only ever put in the Authorization header: it is never printed or logged, and
`repr(client)` does not show it.
"""
from __future__ import annotations

import os
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import shapes

TIMEOUT_S = 30


class ProlificFailure(Exception):
    """Prolific (or the local endpoint) refused a call or could not be reached: the
    message is one line without the token; `status` the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class TokenError(ValueError):
    """No usable API token."""


def read_token(token_file: str | os.PathLike | None = None) -> str:
    """Return the API token from `token_file`, else PROLIFIC_TOKEN_FILE, else
    PROLIFIC_TOKEN; TokenError (without the token) when none is usable."""
    path = token_file or os.environ.get("PROLIFIC_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise TokenError(f"cannot read the token file {str(path)!r}: {e.strerror}") from None
        where = f"the token file {str(path)!r}"
    else:
        token = os.environ.get("PROLIFIC_TOKEN", "").strip()
        where = "PROLIFIC_TOKEN"
    if not token:
        raise TokenError("no Prolific API token: set PROLIFIC_TOKEN or give --token-file "
                         "(create a token in Prolific's settings, API tokens)")
    if any(c.isspace() or not c.isprintable() for c in token) or len(token) > 512:
        raise TokenError(f"the token in {where} is not usable (spaces or control characters)")
    return token


class Client:
    """Prolific's API at `api_url` (scheme and host; `/api/v1` is added)."""

    def __init__(self, token: str, api_url: str = shapes.DEFAULT_API_URL,
                 retries: int = 3, backoff: float = 0.5):
        self.api_url = api_url.rstrip("/")
        self.base = self.api_url + shapes.API_PATH
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"
        self.http.headers["Accept"] = "application/json"
        # Reads and Prolific's idempotent transitions are retried on 429/5xx and lost
        # connections; POSTs are retried only where the caller says so (`retry=True`).
        retry = Retry(total=retries, backoff_factor=backoff, allowed_methods=None,
                      status_forcelist=(429, 502, 503, 504), raise_on_status=False,
                      respect_retry_after_header=True)
        self._retrying = HTTPAdapter(max_retries=retry)
        self._once = HTTPAdapter(max_retries=0)

    def __repr__(self) -> str:
        return f"Client({self.api_url!r})"

    @property
    def local(self) -> bool:
        """True when the API is on this machine (the local endpoint: a rehearsal)."""
        host = requests.utils.urlparse(self.api_url).hostname or ""
        return host in ("127.0.0.1", "localhost", "::1")

    def call(self, method: str, path: str, json=None, params=None, retry: bool | None = None):
        """Return the decoded JSON of `method path` (None for 204); ProlificFailure on an
        error answer or no answer."""
        url = path if path.startswith("http") else self.base + path
        retry = method == "GET" if retry is None else retry
        self.http.mount("http://", self._retrying if retry else self._once)
        self.http.mount("https://", self._retrying if retry else self._once)
        try:
            r = self.http.request(method, url, json=json, params=params, timeout=TIMEOUT_S)
        except requests.RequestException as e:
            raise ProlificFailure(f"{method} {path}: no answer from {self.api_url} "
                                  f"({type(e).__name__})") from None
        if r.status_code == 204 or (r.status_code < 300 and not r.content.strip()):
            return None
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code >= 400:
            msg = shapes.error_message(body) if body is not None else r.reason
            raise ProlificFailure(f"{method} {path}: {r.status_code} {msg}", r.status_code)
        if body is None and method == "GET":
            raise ProlificFailure(f"{method} {path}: the answer is not JSON", r.status_code)
        return body

    def pages(self, path: str, params=None) -> list:
        """Return every item of a paginated list (following `_links.next`)."""
        out, url, seen = [], path, 0
        while url and seen < 10_000:
            items, url = shapes.results(self.call("GET", url, params=params))
            params = None  # the next link carries them
            out.extend(items)
            seen += 1
        return out

    # ------------------------------------------------------------------ the calls used
    def workspaces(self) -> list:
        return self.pages("/workspaces/")

    def balance(self, workspace_id: str) -> dict:
        return self.call("GET", f"/workspaces/{workspace_id}/balance/")

    def studies(self) -> list[shapes.Study]:
        return [shapes.parse_study(s) for s in self.pages("/studies/")]

    def study(self, study_id: str) -> shapes.Study:
        return shapes.parse_study(self.call("GET", f"/studies/{study_id}/"))

    def create_study(self, body: dict) -> shapes.Study:
        return shapes.parse_study(self.call("POST", "/studies/", json=body, retry=False))

    def transition_study(self, study_id: str, action: str) -> shapes.Study:
        return shapes.parse_study(self.call("POST", f"/studies/{study_id}/transition/",
                                            json={"action": action}, retry=False))

    def delete_study(self, study_id: str) -> None:
        self.call("DELETE", f"/studies/{study_id}/", retry=True)

    def submissions(self, study_id: str) -> list[shapes.Submission]:
        return [shapes.parse_submission(s)
                for s in self.pages(f"/studies/{study_id}/submissions/")]

    def transition_submission(self, submission_id: str, body: dict) -> shapes.Submission:
        # Prolific documents this transition as idempotent: safe to retry.
        return shapes.parse_submission(self.call(
            "POST", f"/submissions/{submission_id}/transition/", json=body, retry=True))

    def bulk_approve(self, study_id: str, submission_ids: list[str]) -> None:
        self.call("POST", "/submissions/bulk-approve/",
                  json={"study_id": study_id, "submission_ids": submission_ids}, retry=True)

    def set_up_bonus(self, study_id: str, rows: list[tuple[str, int]]) -> dict:
        return self.call("POST", "/submissions/bonus-payments/",
                         json={"study_id": study_id, "csv_bonuses": shapes.bonus_csv(rows)},
                         retry=False)

    def pay_bonus(self, bulk_id: str) -> None:
        self.call("POST", f"/bulk-bonus-payments/{bulk_id}/pay/", retry=False)
