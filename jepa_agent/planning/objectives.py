"""Planning objectives: how good an action sequence is, for the CEM planner (one batched call per iteration)."""
from __future__ import annotations

import io
from collections.abc import Callable

import torch

Rollout = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LatentGoalCost:
    """Distance between the world model's predicted latents and the goal latent, weighted over the horizon.

    Uses the model's own rollout (z_hist (N, K, D), actions (N, H, J)) -> (N, H, D), so the whole batch of samples
    is predicted in H batched predictor calls. With a `state_readout` (the model's `decode_state`, latent → joints)
    the joint-space distance it reads between prediction and goal is added, times `state_weight`.
    """

    def __init__(self, rollout: Rollout, z_hist: torch.Tensor, z_goal: torch.Tensor, weights: torch.Tensor,
                 state_readout: Callable[[torch.Tensor], torch.Tensor] | None = None, state_weight: float = 0.0):
        self.rollout = rollout
        self.z_hist = z_hist            # (K, D) latest K frames, oldest first
        self.z_goal = z_goal            # (D,)
        self.weights = weights.to(z_goal.device)    # (H,)
        self.state_readout = state_readout if state_weight > 0 else None
        self.state_weight = state_weight
        self.q_goal = self.state_readout(z_goal) if self.state_readout is not None else None      # (J,)

    def __call__(self, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z_hist = self.z_hist.expand(actions.shape[0], -1, -1)      # (N, K, D)
        z = self.rollout(z_hist, actions.to(z_hist.dtype))         # (N, H, D)
        distance = (z - self.z_goal).norm(dim=-1)                  # (N, H)
        if self.state_readout is not None:
            distance = distance + self.state_weight * (self.state_readout(z) - self.q_goal).norm(dim=-1)
        return distance.float() @ self.weights                     # (N,)


def fast_rollout(model: torch.nn.Module, runtime: str, horizon: int, device: torch.device) -> Rollout:
    """The model's rollout (z_hist (N, K, D), actions (N, `horizon`, J)) -> (N, H, D), run by `runtime`
    (`CEMConfig.runtime`): 'torch' (eager), 'compile' (torch.compile: CUDA graphs on a GPU; on a CPU, inductor
    with the weights frozen into the graph, needs a C++ compiler) or 'onnxruntime' (on a CPU; on a GPU, as
    'compile': the onnxruntime wheel has no GPU provider). Batch sizes stay dynamic, so the shrinking populations
    of one search share one graph."""
    if runtime == 'torch':
        return model.rollout
    if runtime == 'onnxruntime' and device.type == 'cpu':
        return OnnxRollout(model, horizon)
    if device.type == 'cuda':
        return torch.compile(model.rollout, mode='reduce-overhead', dynamic=False)
    return torch.compile(model.rollout, dynamic=True, options={'freezing': True})


class OnnxRollout:
    """The model's rollout over `horizon` steps, exported to ONNX once and run by ONNX Runtime on the CPU threads
    torch uses: one optimized graph per batch instead of a Python loop of small torch ops (the deployed search
    computes a frame in about two thirds of eager torch's time, a little faster than inductor; docs/planning.md)."""

    def __init__(self, model: torch.nn.Module, horizon: int):
        import onnxruntime
        c = model.config
        example = (torch.zeros(2, c.history, c.latent_dim), torch.zeros(2, horizon, c.action_dim))
        graph = io.BytesIO()
        # the TorchScript exporter: 1 s, and no more dependencies (torch's newer one needs onnxscript and takes 7 s)
        torch.onnx.export(_Rollout(model).eval(), example, graph, input_names=['z_hist', 'actions'],
                          output_names=['z'], dynamic_axes={'z_hist': {0: 'n'}, 'actions': {0: 'n'}, 'z': {0: 'n'}},
                          dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        self.session = onnxruntime.InferenceSession(graph.getvalue(), options, providers=['CPUExecutionProvider'])
        self.horizon = horizon

    def __call__(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if actions.shape[1] != self.horizon:
            raise ValueError(f'exported for {self.horizon} steps, got {actions.shape[1]}')
        z, = self.session.run(None, {'z_hist': z_hist.float().contiguous().numpy(),
                                     'actions': actions.float().contiguous().numpy()})
        return torch.from_numpy(z)


class _Rollout(torch.nn.Module):
    """`model.rollout` as a module's forward, which is what the exporter traces."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.model.rollout(z_hist, actions)
