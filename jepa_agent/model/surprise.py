"""Surprise: how badly a world model predicted the newest frame, the signal that curiosity explores by.

Surprise is the squared error between the latent predicted from the K latents before it (one model step apart:
`frameskip` frames) and the joint motion over the last step, and the newest frame's latent. Every frame is judged,
also with a frameskip model. A model that does not foresee pushes should be surprised when the block moves; for the
shipped reach_64px the signal is weak (AUC 0.67 for "the block moved" on babbling frames), as the arm's own motion
is mispredicted too.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

from jepa_agent.model.images import to_model_image
from jepa_agent.model.world_model import WorldModel


class LatentSurprise:
    """Feed frames in order with `observe`; `reset` between episodes."""

    def __init__(self, model: WorldModel):
        self.model = model.eval()
        self.step = model.config.frameskip                    # frames per model step
        self.device = model.action_scale.device
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new episode, or the stream was interrupted)."""
        frames = self.model.config.history * self.step        # the K steps before the newest frame
        self._latents: deque[torch.Tensor] = deque(maxlen=frames)                     # (D,) each, oldest first
        self._qpos: deque[np.ndarray] = deque(maxlen=frames)

    @torch.no_grad()
    def observe(self, image: np.ndarray, qpos: np.ndarray) -> float | None:
        """Squared latent prediction error of this frame (camera image, measured joints) given the K frames one model
        step apart before it and the joint motion over the last step; None until K steps of frames have been seen."""
        x = to_model_image(image, self.model.config.image_size).to(self.device)
        z = self.model.encode(x[None])[0]                                                 # (D,)
        qpos = np.asarray(qpos, np.float32)
        surprise = None
        if len(self._latents) == self._latents.maxlen:
            action = torch.as_tensor(qpos - self._qpos[-self.step], device=self.device)[None]      # (1, J)
            history = torch.stack(list(self._latents)[::self.step])                           # (K, D)
            predicted = self.model.predict(history[None], action)[0]
            surprise = float(((predicted - z) ** 2).sum())
        self._latents.append(z)
        self._qpos.append(qpos)
        return surprise
