"""The simulated participant (server/simclient.py) over real HTTP: the answer key from the
admin endpoint, accuracy and position bias honoured, every answer stored once."""
from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from server.models import Participant, db
from server.simclient import SimError, choose, fetch_answer_key, simulate


def test_simulate_accuracy_and_storage(app, live_server):
    key = fetch_answer_key(live_server, "small", "correct horse")
    assert len(key) == 6 and set(key.values()) <= set(range(5))
    right = simulate(live_server, "small", participants=3, key=key, accuracy=1.0, seed=1,
                     concurrency=3)
    assert right["answers"] == 18 and right["correct"] == 18
    wrong = simulate(live_server, "small", participants=2, password="correct horse",
                     accuracy=0.0, seed=2, concurrency=2, population="pilot")
    assert wrong["answers"] == 12 and wrong["correct"] == 0
    with app.app_context():
        ps = db.session.execute(select(Participant)).scalars().all()
        assert len(ps) == 5 and all(p.completed_at is not None for p in ps)
        assert sorted(p.population for p in ps) == ["pilot", "pilot", "simulated", "simulated", "simulated"]
        stored = {p.code: [r.chosen_index == r.trial.true_index for r in p.responses] for p in ps}
    for code in right["participants"]:
        assert all(stored[code])
    for code in wrong["participants"]:
        assert not any(stored[code])
    with pytest.raises(SimError, match="401"):
        fetch_answer_key(live_server, "small", "wrong password")
    with pytest.raises(SimError, match="404"):
        simulate(live_server, "nope", participants=1, key={}, accuracy=0.5)


def test_choose_follows_position_bias():
    rng = random.Random(0)
    bias = [0.6, 0.1, 0.1, 0.1, 0.1]
    picks = [choose(rng, None, 0.0, bias) for _ in range(4000)]
    assert 0.55 < picks.count(0) / 4000 < 0.65
    wrong = [choose(rng, 0, 0.0, bias) for _ in range(2000)]
    assert 0 not in wrong and {1, 2, 3, 4} == set(wrong)
    acc = [choose(rng, 3, 0.8) for _ in range(4000)]
    assert 0.76 < acc.count(3) / 4000 < 0.84
    with pytest.raises(ValueError):
        choose(rng, 1, 0.5, [1, 2])
