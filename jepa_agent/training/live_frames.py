"""Live frames for the online learner: what is usable, in the form the replay buffer stores (uint8 at model size).

The offline data path refuses the same things (data/quality.py, data/stream.py); this check also holds the frames
to the joint limits of the checkpoint being trained, which a live stream knows nothing about.
"""
from __future__ import annotations

import numpy as np
import torch

from jepa_agent.data.episodes import FrameError
from jepa_agent.data.quality import LIMIT_MARGIN_RAD, constant_images
from jepa_agent.model.images import to_model_image


class LiveFrameCheck:
    """Turns a live frame into replay-buffer form or raises FrameError: wrong shapes, non-finite values, joints
    beyond the checkpoint's limits (metadata 'lower'/'upper') by more than LIMIT_MARGIN_RAD, constant images."""

    def __init__(self, image_size: int, n_joints: int, metadata: dict):
        self.image_size, self.n_joints = image_size, n_joints
        self.lower, self.upper = _joint_limits(metadata, n_joints)

    def __call__(self, image: np.ndarray, qpos: np.ndarray, target: np.ndarray,
                 stamp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image (3, S, S) uint8, qpos (J,), target (J,) float32) of a usable frame."""
        j = self.n_joints
        qpos, target = np.asarray(qpos, np.float32), np.asarray(target, np.float32)
        if qpos.shape != (j,) or target.shape != (j,):
            raise FrameError(f'expected {j} joint positions and targets, got {qpos.shape} and {target.shape}')
        if not (np.all(np.isfinite(qpos)) and np.all(np.isfinite(target)) and np.isfinite(stamp)):
            raise FrameError('frame has non-finite joint positions, targets or time')
        self._check_limits(qpos, target)
        chw = self._model_image(image)
        if constant_images(chw.transpose(1, 2, 0)[None])[0]:
            raise FrameError(f'constant image (every pixel {chw[:, 0, 0].tolist()})')
        return chw, qpos, target

    def _check_limits(self, qpos: np.ndarray, target: np.ndarray) -> None:
        """FrameError if joint positions or targets lie beyond the checkpoint's limits by more than the tolerance."""
        def listed(values):
            return None if values is None else np.round(values, 3).tolist()
        for name, values in (('joint positions', qpos), ('targets', target)):
            low = self.lower is not None and np.any(values < self.lower - LIMIT_MARGIN_RAD)
            high = self.upper is not None and np.any(values > self.upper + LIMIT_MARGIN_RAD)
            if low or high:
                raise FrameError(f'{name} {listed(values)} beyond the joint limits of the model (lower '
                                 f'{listed(self.lower)}, upper {listed(self.upper)}) by more than '
                                 f'{LIMIT_MARGIN_RAD} rad')

    def _model_image(self, image: np.ndarray) -> np.ndarray:
        """(3, S, S) uint8 at the model's image size."""
        size = self.image_size
        image = np.asarray(image)
        if image.dtype == np.uint8 and image.shape == (size, size, 3):
            return image.transpose(2, 0, 1)
        try:
            return (to_model_image(image, size) * 255).round().to(torch.uint8).numpy()
        except ValueError as exc:
            raise FrameError(str(exc)) from exc


def _joint_limits(metadata: dict, n_joints: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The checkpoint's joint limits (metadata 'lower'/'upper'), or None where it has none."""
    limits = []
    for key in ('lower', 'upper'):
        value = metadata.get(key)
        if value is not None:
            value = np.asarray(value, np.float32)
            if value.shape != (n_joints,) or not np.all(np.isfinite(value)):
                raise ValueError(f'checkpoint metadata {key} must hold {n_joints} finite joint limits, got {value}')
        limits.append(value)
    return limits[0], limits[1]
