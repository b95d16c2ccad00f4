"""Multi-process training on CPU (gloo): torchrun end to end, and the regularizer's global-batch gradient."""
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from jepa_agent.data.collect import collect_sim
from jepa_agent.model.checkpoint import load_checkpoint
from jepa_agent.model.regularizers import SIGReg, gather_with_grad, world_size
from jepa_agent.sim.arm_env import ArmEnv, ArmEnvConfig

TINY = {'batch_size': 4, 'steps': 4, 'log_every': 2, 'threads': 1, 'warmup_steps': 1, 'predictor_refit_steps': 20,
        'model': {'encoder_width': 8, 'feature_dim': 32, 'projector_hidden': 32, 'latent_dim': 16,
                  'predictor_width': 32, 'predictor_depth': 1},
        'loss': {'rollout_steps': 2, 'sigreg_projections': 32}}


def test_torchrun_two_cpu_processes_train_one_checkpoint(tmp_path):
    data, out = tmp_path / 'data', tmp_path / 'run'
    collect_sim(data, episodes=2, steps=16, seed=0, env=ArmEnv(ArmEnvConfig(image_size=32)))
    config = tmp_path / 'train.yaml'
    config.write_text(yaml.safe_dump({'train': {'ros__parameters': TINY}}))
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')}
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         '-m', 'jepa_agent.cli', 'train', '--data', str(data), '--out', str(out), '--config', str(config),
         '--device', 'cpu', '--no-progress'],
        capture_output=True, text=True, timeout=240, env={**env, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    model, metadata = load_checkpoint(out)
    assert metadata['training']['processes'] == 2
    assert metadata['training']['steps'] == 4
    assert metadata['training']['samples'] == 4 * 4 * 2
    assert metadata['training']['predictor_refit_at_step'] == 4   # the main process refitted the predictor
    assert model.config.latent_dim == 16
    assert len(list((out / 'tensorboard').iterdir())) == 1     # only rank 0 logs


def _rank_gradient(rank: int, world: int, init_file: str, z_full: torch.Tensor, queue) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    z = z_full.chunk(world)[rank].clone().requires_grad_(True)
    loss = SIGReg(32)(gather_with_grad(z), seed=7) * world_size()   # as JEPAObjective scales it
    loss.backward()
    queue.put((rank, float(loss.detach()), z.grad.tolist()))   # plain data: no shared-memory handles
    dist.destroy_process_group()


def test_regularizer_sees_the_global_batch_and_ddp_gets_its_full_gradient(tmp_path):
    torch.manual_seed(0)
    z_full = torch.randn(64, 8) * torch.linspace(0.2, 2.0, 8)
    ctx = mp.get_context('spawn')    # fork deadlocks once earlier tests have started torch's OpenMP threads
    queue = ctx.Queue()
    processes = [ctx.Process(target=_rank_gradient, args=(r, 2, str(tmp_path / 'rendezvous'), z_full, queue))
                 for r in range(2)]
    for p in processes:
        p.start()
    results = dict((rank, (loss, grad)) for rank, loss, grad in (queue.get(timeout=120) for _ in processes))
    for p in processes:
        p.join(timeout=30)
        assert p.exitcode == 0

    reference = z_full.clone().requires_grad_(True)
    full_loss = SIGReg(32)(reference, seed=7)
    full_loss.backward()
    for rank, (loss, grad) in results.items():
        assert loss == pytest.approx(2 * float(full_loss.detach()), rel=1e-5)   # the statistic of the whole batch
        # DDP averages the two ranks' parameter gradients, so 2 × this shard's gradient / 2 = the full gradient
        torch.testing.assert_close(torch.tensor(grad) / 2, reference.grad.chunk(2)[rank], rtol=1e-4, atol=1e-6)
