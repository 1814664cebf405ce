"""Face detection and 128-d face descriptors with dlib and the model files of
face-recognition-models: the same models and steps as the `face_recognition` library the
authors used (locations trimmed to the image, 5-point landmarks, no jitter).

dlib is imported inside the functions."""
from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence

import numpy as np

from experiments.features import weights as weights_mod

DETECTORS = ("hog", "cnn")
DEFAULT_DETECTOR = "hog"
# The notebook ran the CNN detector without upsampling; for HOG, face_recognition's own
# default of one upsampling finds faces down to ~40 px in 200 x 245 pictures.
DEFAULT_UPSAMPLE = {"hog": 1, "cnn": 0}
DESCRIPTOR_DIM = 128
# Detection runs on the image scaled down to this longest side (boxes are mapped back):
# an 8000 x 8000 photograph took 62 s and 3.1 GB at full size. TLL's 200 x 245 pictures
# are far below it, so their faces are found exactly as before.
DEFAULT_MAX_SIDE = 2048


def default_upsample(detector: str) -> int:
    """Return the default number of upsamplings for `detector`."""
    return DEFAULT_UPSAMPLE[detector]


def model_files(detector: str) -> dict[str, str]:
    """Return the dlib model files `detector` needs, by role (raises WeightsError naming a
    missing file)."""
    files = {"shape_predictor": str(weights_mod.dlib_model("shape_predictor")),
             "face_recognition": str(weights_mod.dlib_model("face_recognition"))}
    if detector == "cnn":
        files["cnn_detector"] = str(weights_mod.dlib_model("cnn_detector"))
    return files


class FaceModels:
    """The dlib detector, 5-point shape predictor and ResNet descriptor model, loaded once
    per process."""

    def __init__(self, detector: str = DEFAULT_DETECTOR, upsample: int | None = None,
                 max_side: int | None = None):
        import dlib

        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, not {detector!r}")
        files = model_files(detector)
        self.detector_name = detector
        self.upsample = default_upsample(detector) if upsample is None else int(upsample)
        self.max_side = None if max_side is None else int(max_side)
        if detector == "cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(files["cnn_detector"])
            self._hog = None
        else:
            self._hog = dlib.get_frontal_face_detector()
            self._cnn = None
        self._shape = dlib.shape_predictor(files["shape_predictor"])
        self._rec = dlib.face_recognition_model_v1(files["face_recognition"])

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Return the face boxes found in an RGB uint8 image, int32 k x 4 as (left, top,
        right, bottom), trimmed to the image like face_recognition's face_locations. An
        image longer than `max_side` is searched scaled down to it and the boxes are
        mapped back to the image's own pixels."""
        h, w = rgb.shape[:2]
        scale = 1.0
        small = rgb
        if self.max_side is not None and max(h, w) > self.max_side:
            from PIL import Image

            scale = self.max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = np.ascontiguousarray(np.asarray(
                Image.fromarray(rgb).resize(size, Image.BILINEAR), dtype=np.uint8))
        if self._cnn is not None:
            rects = [d.rect for d in self._cnn(small, self.upsample)]
        else:
            rects = list(self._hog(small, self.upsample))
        boxes = [(max(round(r.left() / scale), 0), max(round(r.top() / scale), 0),
                  min(round(r.right() / scale), w), min(round(r.bottom() / scale), h))
                 for r in rects]
        return np.asarray(boxes, dtype=np.int32).reshape(-1, 4)

    def describe(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Return the 128-d descriptors (float32 k x 128) of the faces in `boxes`."""
        import dlib

        if len(boxes) == 0:
            return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float32)
        shapes = dlib.full_object_detections()
        for left, top, right, bottom in boxes:
            shapes.append(self._shape(rgb, dlib.rectangle(int(left), int(top),
                                                          int(right), int(bottom))))
        # num_jitters 0: deterministic, like face_recognition's default of 1 (no jitter)
        vecs = self._rec.compute_face_descriptor(rgb, shapes, 0)
        return np.asarray([np.asarray(v) for v in vecs], dtype=np.float32).reshape(-1, DESCRIPTOR_DIM)

    def faces(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (descriptors k x 128, boxes k x 4) of every face found in `rgb`."""
        boxes = self.detect(rgb)
        return self.describe(rgb, boxes), boxes


def load_rgb(path: str) -> np.ndarray:
    """Return the image at `path` as a contiguous RGB uint8 array (what dlib expects)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


# ---------------------------------------------------------------- worker processes
_MODELS: FaceModels | None = None


def _init_worker(detector: str, upsample: int, max_side: int | None = None) -> None:
    global _MODELS
    _MODELS = FaceModels(detector, upsample, max_side)


def _faces_of_path(path: str) -> tuple[np.ndarray, np.ndarray]:
    assert _MODELS is not None
    return _MODELS.faces(load_rgb(path))


def iter_faces(paths: Sequence[str], detector: str = DEFAULT_DETECTOR,
               upsample: int | None = None, workers: int = 1,
               progress=None, max_side: int | None = None
               ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (index, descriptors k x 128, boxes k x 4) for each path, in order, computed
    in `workers` processes (0: in this process). `progress` is a tqdm bar or None;
    `max_side`: detect on images scaled down to this longest side (None: full size)."""
    if not paths:
        return
    up = default_upsample(detector) if upsample is None else int(upsample)
    model_files(detector)  # fail here, with the file's name, not inside a worker
    if workers <= 0 or len(paths) == 1:
        _init_worker(detector, up, max_side)
        for i, p in enumerate(paths):
            vecs, boxes = _faces_of_path(p)
            if progress is not None:
                progress.update(1)
            yield i, vecs, boxes
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(min(workers, len(paths)), initializer=_init_worker,
                  initargs=(detector, up, max_side)) as pool:
        for i, (vecs, boxes) in enumerate(pool.imap(_faces_of_path, list(paths), chunksize=1)):
            if progress is not None:
                progress.update(1)
            yield i, vecs, boxes
