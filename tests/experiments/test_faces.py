"""dlib faces: detection (HOG, CNN), boxes, and 128-d descriptors that tell people apart."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from experiments.features import faces, weights
from experiments.store import FeatureStore


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return np.ascontiguousarray(np.asarray(Image.open(fh).convert("RGB")))


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="module")
def hog():
    return faces.FaceModels("hog")


def _contains(box, x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def test_hog_finds_the_faces_of_astronaut_and_grace_hopper(hog):
    astro = hog.detect(_astronaut())
    # Eileen Collins' face is around (220, 120) in the 512 x 512 picture
    assert any(_contains(b, 220, 120) for b in astro), astro
    grace = _grace_hopper()
    boxes = hog.detect(grace)
    h, w = grace.shape[:2]
    assert len(boxes) >= 1
    # her face is in the upper middle of the portrait, and boxes are inside the image
    assert any(_contains(b, w * 0.5, h * 0.35) for b in boxes), boxes
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert boxes.dtype == np.int32 and boxes.shape[1] == 4


def _face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Min Euclidean distance over all face pairs (the paper's face distance)."""
    return float(np.min(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)))


def test_two_views_of_a_face_are_closer_than_two_people(hog):
    astro = _astronaut()
    # another view: shifted and rescaled crop of the same photograph
    view = np.ascontiguousarray(np.asarray(
        Image.fromarray(astro).crop((100, 20, 400, 330)).resize((240, 248), Image.BILINEAR)))
    va, ba = hog.faces(astro)
    vv, bv = hog.faces(view)
    vg, bg = hog.faces(_grace_hopper())
    assert va.shape[1] == vv.shape[1] == vg.shape[1] == 128
    assert va.dtype == np.float32 and len(vv) >= 1 and len(vg) >= 1
    same, other = _face_distance(va, vv), _face_distance(va, vg)
    assert same < 0.45 < other, (same, other)  # dlib's same-person threshold is 0.6
    assert other > 0.6


def test_descriptors_are_deterministic(hog):
    astro = _astronaut()
    v1, b1 = hog.faces(astro)
    v2, b2 = hog.faces(astro)
    np.testing.assert_array_equal(b1, b2)
    np.testing.assert_array_equal(v1, v2)


def test_cnn_detector_finds_the_astronaut(tmp_path):
    cnn = faces.FaceModels("cnn")
    assert cnn.upsample == 0  # the notebook's setting
    boxes = cnn.detect(_astronaut())
    assert any(_contains(b, 220, 120) for b in boxes), boxes


def test_iter_faces_in_worker_processes_matches_in_process(tmp_path, hog):
    paths = []
    for i, img in enumerate([_astronaut(), _grace_hopper(), np.full((200, 245, 3), 127, np.uint8)]):
        p = tmp_path / f"{i}.png"
        Image.fromarray(img).save(p)
        paths.append(str(p))
    inline = list(faces.iter_faces(paths, "hog", workers=0))
    pooled = list(faces.iter_faces(paths, "hog", workers=2))
    assert [i for i, _, _ in pooled] == [0, 1, 2]
    for (_, v1, b1), (_, v2, b2) in zip(inline, pooled):
        np.testing.assert_array_equal(b1, b2)
        np.testing.assert_allclose(v1, v2, atol=1e-6)
    assert len(inline[2][1]) == 0 and inline[2][1].shape == (0, 128)  # a grey card: no face


def test_dlib_model_files_are_found_without_importing_the_package():
    import sys

    for role in weights.DLIB_FILES:
        assert weights.dlib_model(role).is_file()
    assert "face_recognition_models" not in sys.modules


def test_demo_faces_are_found_on_the_face_pairs(demo_study, demo_images):
    import csv

    face = FeatureStore(demo_study).load("face/dlib_hog")
    with open(demo_images / "provenance.csv", newline="") as fh:
        kinds = {row["id"]: row["kind"] for row in csv.DictReader(fh)}
    both = face.left.has_face & face.right.has_face
    face_pairs = [i for i, pid in enumerate(face.ids) if kinds.get(pid) == "face"]
    other_pairs = [i for i, pid in enumerate(face.ids) if kinds.get(pid) != "face"]
    assert face_pairs, "the demo set should have face pairs"
    assert both[face_pairs].mean() >= 0.8
    assert both[other_pairs].mean() <= 0.2
