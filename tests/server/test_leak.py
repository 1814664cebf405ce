"""Nothing the browser receives tells the true match from the distractors: candidate
markup, URLs, headers, pixel sizes, and byte sizes are compared against the true index
for every trial; no trial key, pair, condition or image name is in the page."""
from __future__ import annotations

import io
import re

from PIL import Image

from server.models import Trial, db
from tests.server.conftest import lab_post


def _candidate_markup(html: str) -> list[str]:
    return re.findall(r'<button type="submit" name="choice".*?</button>', html, re.S)


def test_no_answer_leak(app, client):
    lab_post(client, "/lab/small/start", {"code": "LEAK"})
    lab_post(client, "/lab/small/consent", {"agree": "yes"})
    with app.app_context():
        trials = db.session.query(Trial).order_by(Trial.position).all()
        secrets_in_file = set()
        for t in trials:
            secrets_in_file |= {t.key, t.pair, t.hit_key, t.condition, t.subset}
        true_by_order = [t.true_index for t in trials]  # fixed order in this fixture
        from server.models import Image as Img
        keys = [k for (k,) in db.session.query(Img.key).all()]
    size_rank_of_true, true_header_sets = [], set()
    for n in range(1, 7):
        r = client.get("/lab/small/trial")
        html = r.get_data(as_text=True)
        # No identifier from the experiment file anywhere in the page.
        for s in secrets_in_file | set(keys):
            assert s not in html, s
        assert "true" not in html.lower().replace("true match", "")
        buttons = _candidate_markup(html)
        assert len(buttons) == 5
        urls = [re.search(r'src="([^"]+)"', b).group(1) for b in buttons]
        # The markup of the five candidates is the same apart from position and URL.
        skeletons = {re.sub(r'value="\d"|candidate \d|>\d<|src="[^"]+"', "", b) for b in buttons}
        assert len(skeletons) == 1
        assert len({len(u) for u in urls}) == 1 and all(re.fullmatch(r"/i/[\w-]{32}", u) for u in urls)
        sizes, headers = [], []
        for u in urls:
            im = client.get(u)
            pic = Image.open(io.BytesIO(im.data))
            assert pic.size == (200, 245) and pic.format == "JPEG" and not pic.info.get("exif")
            assert "Set-Cookie" not in im.headers  # nothing time-dependent per image
            sizes.append(len(im.data))
            headers.append(tuple(sorted((k, v) for k, v in im.headers.items()
                                        if k != "Content-Length")))
        assert len(set(headers)) == 1
        true = true_by_order[n - 1]
        true_header_sets.add(headers[true])
        size_rank_of_true.append(sorted(sizes).index(sizes[true]))
        # Catch trials show the query again: it has its own token and its own bytes.
        q = re.search(r'<div class="query"><img src="([^"]+)"', html).group(1)
        assert q not in urls and client.get(q).data not in [client.get(u).data for u in urls]
        lab_post(client, "/lab/small/answer", {"n": str(n), "choice": "0"})
    # Byte size does not single out the true match (it is not always the largest or smallest).
    assert len(set(size_rank_of_true)) > 1
