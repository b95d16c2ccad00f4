"""Camera images -> model input: the one preprocessing that training, the online learner and the planner share.

Images are stored and buffered as uint8 (a quarter of the memory) and become float in [0, 1] only on their way
into the encoder, so the scaling lives here and nowhere else.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] from uint8 (scaled by 1/255) or float (taken as already in [0, 1]) ones."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def to_model_image(image: np.ndarray, size: int) -> torch.Tensor:
    """(3, size, size) float image in [0, 1] from an (H, W, 3) or (H, W) uint8 or [0, 1] float array.

    Resizes (antialiased) when the camera and the model disagree; rejects non-finite pixels and odd shapes.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f'expected an (H, W, 3) or (H, W) image, got shape {image.shape}')
    if image.dtype == np.uint8:
        x = to_unit(torch.from_numpy(np.array(image)))                # copy: ROS buffers are read-only
    elif np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError('image has non-finite pixels')
        x = torch.from_numpy(np.clip(image, 0, 1).astype(np.float32))
    else:
        raise ValueError(f'expected a uint8 or float image, got dtype {image.dtype}')
    x = x.permute(2, 0, 1)                                              # (3, H, W)
    if x.shape[1:] != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode='bilinear', antialias=True, align_corners=False)[0]
    return x
