"""How features are computed, recorded with them: the device, the dtype, the float32 math
mode (TF32), autocast, the batch size, the threads and the library versions.

Two runs whose *signature* (everything but batch size, threads and batching) differs may
give different features, so a feature set refuses to mix their results unless told to.
Batch size and threads are recorded but not part of the signature: on the CPU they change a
feature by float rounding only, bounded by BATCH_TOLERANCE (measured on EfficientNet-Lite0:
1.7e-7 of the largest component for a batch of one against a batch of eight, 1.0e-6 for one
thread against two); `deterministic` batching (one image per forward pass) makes a feature
independent of its batch altogether, for a given thread count.

Nothing here imports torch at module level, and `device_for("auto")` decides without
torch where no GPU can exist."""
from __future__ import annotations

import glob
import os

# The largest change of a feature (relative to its largest component) that batch
# composition or the thread count may cause; a test holds the backbones to it.
BATCH_TOLERANCE = 1e-5
# Where the NVIDIA driver's device files appear (a test points it at an empty folder).
DEV_DIR = "/dev"
DEFAULT_CPU_BATCH = 8
SIGNATURE_FIELDS = ("kind", "device", "device_name", "precision", "math", "autocast", "versions")


def gpu_possible() -> bool:
    """Return False when no CUDA GPU can be present: no NVIDIA device file under DEV_DIR
    and no CUDA_VISIBLE_DEVICES naming one (decided without importing torch)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() not in ("", "-1"):
        return True
    return bool(glob.glob(os.path.join(DEV_DIR, "nvidia*")))


def device_for(device: str = "auto") -> str:
    """Return the torch device to compute on: ``cpu``, ``cuda``, or for ``auto`` CUDA when
    torch sees a GPU. ``auto`` on a machine where none can exist returns ``cpu`` without
    importing torch (importing it costs about 0.9 GB). Raise ValueError for an unknown
    device and RuntimeError for ``cuda`` without a GPU."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device == "cpu" or (device == "auto" and not gpu_possible()):
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise RuntimeError("--device cuda: torch sees no CUDA GPU on this machine "
                           "(use --device auto or cpu)")
    return "cpu"


def set_math_mode(allow_tf32: bool = False) -> dict:
    """Set torch's float32 math: TF32 off (exact float32 matrix products and convolutions,
    the same as on a CPU) unless ``allow_tf32``; return the mode as recorded."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = bool(allow_tf32)
    torch.backends.cudnn.allow_tf32 = bool(allow_tf32)
    torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
    return {"tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def default_batch_size(device: str) -> int:
    """Return the batch size for ``device``: 8 on the CPU (larger batches gain nothing
    there), on a GPU one scaled to its memory (64 per 10 GiB, 32 to 512)."""
    if device != "cuda":
        return DEFAULT_CPU_BATCH
    import torch

    gib = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
    return int(min(512, max(32, 64 * (gib // 10))))


def device_name(device: str) -> str:
    """Return the name of the compute device (the GPU's, or ``cpu``)."""
    if device != "cuda":
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0)


def settings(kind: str, device: str, precision: str = "float32", math: dict | None = None,
             autocast: bool = False, batch_size: int | None = None, threads: int | None = None,
             deterministic: bool = False, versions: dict | None = None) -> dict:
    """Return the compute settings of one run as recorded with each result."""
    return {"kind": kind, "device": device, "device_name": device_name(device),
            "precision": precision, "math": math or {}, "autocast": bool(autocast),
            "batch_size": batch_size, "threads": threads, "deterministic": bool(deterministic),
            "versions": versions or {}}


def signature(recorded: dict | None) -> dict | None:
    """Return the part of recorded settings two results must share to sit in one feature
    set (None for results recorded without settings)."""
    if not recorded:
        return None
    return {k: recorded.get(k) for k in SIGNATURE_FIELDS}
