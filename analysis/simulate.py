"""`python -m analysis simulate`: simulated participants (population ``simulated``) who
answer through the server's real HTTP endpoints, reusing the server's HTTP-only client
``server/simclient.py`` (the only place analysis/ touches server/, and only over HTTP)."""
from __future__ import annotations

import math
import os
import urllib.error

from analysis import N_CANDIDATES
from analysis.errors import AnalysisError

PASSWORD_ENV = "TLL_ADMIN_PASSWORD"
MAX_PARTICIPANTS = 10000


def check_args(participants: int, accuracy: float,
               position_bias: list[float] | None) -> list[str]:
    """Return one line per problem with the simulate arguments (empty when fine)."""
    problems = []
    if not 1 <= participants <= MAX_PARTICIPANTS:
        problems.append(f"--participants must be between 1 and {MAX_PARTICIPANTS}, "
                        f"got {participants}")
    if not (0.0 <= accuracy <= 1.0) or math.isnan(accuracy):
        problems.append(f"--accuracy must be a probability in [0, 1], got {accuracy}")
    if position_bias is not None:
        if len(position_bias) != N_CANDIDATES:
            problems.append(f"--position-bias needs {N_CANDIDATES} weights, "
                            f"got {len(position_bias)}")
        elif any(w < 0 or math.isnan(w) for w in position_bias) or sum(position_bias) <= 0:
            problems.append("--position-bias weights must be non-negative with a positive sum")
    return problems


def simulate(server: str, experiment: str, participants: int, accuracy: float = 0.75,
             position_bias: list[float] | None = None, seed: int = 0,
             admin_password: str | None = None, concurrency: int = 4) -> dict:
    """Run ``participants`` simulated participants against the server at ``server``;
    each chooses the true match with probability ``accuracy``, otherwise a wrong
    position drawn with the ``position_bias`` weights. Returns {"participants" (count),
    "codes", "answers", "correct"}; ``concurrency`` participants answer at a time
    (each participant's choices depend only on the seed, so the result does not). The
    answer key comes from the admin API, so the admin password is needed
    (``--admin-password`` or env TLL_ADMIN_PASSWORD)."""
    problems = check_args(participants, accuracy, position_bias)
    if not 1 <= concurrency <= 64:
        problems.append(f"--concurrency must be between 1 and 64, got {concurrency}")
    if not server.startswith(("http://", "https://")):
        problems.append(f"--server must be an http:// or https:// URL, got {server!r}")
    password = admin_password or os.environ.get(PASSWORD_ENV)
    if not password:
        problems.append(f"the admin password is needed to read the answer key: give "
                        f"--admin-password or set {PASSWORD_ENV} (set it on the server with "
                        f"`flask --app server admin set-password`)")
    if problems:
        raise AnalysisError(*problems)

    from server import simclient  # HTTP only: urllib and json, no models

    try:
        key = simclient.fetch_answer_key(server, experiment, password)
        result = simclient.simulate(server, experiment, participants, key=key,
                                    accuracy=accuracy, position_bias=position_bias,
                                    seed=seed, concurrency=concurrency,
                                    population="simulated", code_prefix="sim")
    except simclient.SimError as exc:
        msg = str(exc)
        if "HTTP 401" in msg or "HTTP 403" in msg:
            msg += " (wrong admin password?)"
        elif "HTTP 429" in msg:
            msg += (" (the server limits the participants one address may start: raise its "
                    "TLL_PARTICIPANT_RATE for a simulation)")
        elif "HTTP 404" in msg:
            msg += f" (is there an experiment named {experiment!r} on {server}?)"
        raise AnalysisError(msg) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AnalysisError(f"cannot reach the server at {server}: {reason} "
                            f"(start it with `make demo` or `flask --app server run`)") from None
    return {"participants": len(result["participants"]), "codes": result["participants"],
            "answers": result["answers"], "correct": result["correct"]}
