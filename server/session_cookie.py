"""The cookie session, opened only where a page uses it.

Flask opens the signed-cookie session on every request and builds a new signing
serializer each time. The JSON API (`/api/...`) identifies participants by the token in
its URLs and never reads or writes the session, so it gets Flask's null session (no
cookie parsed, none written: the session's verification was about 3 % of an answer's CPU);
the pages keep the ordinary signed cookie, with the serializer built once per secret key.
"""
from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface

API_PREFIX = "/api/"


class PageSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session for pages; none for the JSON API."""

    def __init__(self):
        self._serializers: dict = {}

    def get_signing_serializer(self, app):
        """Return the (cached) serializer for the app's current keys, None without a key."""
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        s = self._serializers.get(key)
        if s is None:
            s = super().get_signing_serializer(app)
            if len(self._serializers) > 64:  # keys come and go in tests
                self._serializers.clear()
            self._serializers[key] = s
        return s

    def open_session(self, app, request):
        """Return the null session for the JSON API, the cookie session otherwise."""
        if request.path.startswith(API_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)


def init_app(app) -> None:
    """Install the session interface on `app`."""
    app.session_interface = PageSessionInterface()
