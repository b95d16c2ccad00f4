"""World model: shapes, options, frozen pretrained encoder, regularizers (SIGReg prevents collapse, none collapses)."""
import pytest
import torch
from safetensors.torch import save_file

from jepa_agent.model.encoders import CNNEncoder
from jepa_agent.model.regularizers import SIGReg, effective_rank
from jepa_agent.model.world_model import ModelConfig, WorldModel

TINY = dict(image_size=32, encoder_width=8, feature_dim=32, projector_hidden=32, latent_dim=16,
            predictor_width=32, predictor_depth=1)


pytestmark = pytest.mark.usefixtures('torch_one_thread')


@pytest.mark.parametrize('options', [{}, {'encoder': 'vit', 'encoder_width': 32, 'vit_depth': 1},
                                     {'encoder': 'cnn'},
                                     {'predictor': 'transformer'}, {'history': 1}, {'history': 3}])
def test_shapes_of_encode_predict_rollout(options):
    model = WorldModel(ModelConfig(**{**TINY, **options})).eval()
    k = model.config.history
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    z = model.encode(images)
    assert z.shape == (4, 16)
    assert model.encode(images.view(2, 2, 3, 32, 32)).shape == (2, 2, 16)
    z_hist = torch.randn(4, k, 16)
    assert model.predict(z_hist, torch.zeros(4, 3)).shape == (4, 16)
    rolled = model.rollout(z_hist, torch.randn(4, 5, 3))
    assert rolled.shape == (4, 5, 16)
    assert torch.isfinite(rolled).all()


def test_rollout_feeds_predictions_back_as_history():
    model = WorldModel(ModelConfig(**TINY, history=2)).eval()
    z_hist, actions = torch.randn(3, 2, 16), torch.randn(3, 2, 3)
    first = model.predict(z_hist, actions[:, 0])
    second = model.predict(torch.stack([z_hist[:, 1], first], dim=1), actions[:, 1])
    torch.testing.assert_close(model.rollout(z_hist, actions), torch.stack([first, second], dim=1))


def test_uint8_and_float_images_encode_alike():
    model = WorldModel(ModelConfig(**TINY)).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(model.encode(images), model.encode(images.float() / 255))


def test_actions_are_normalized_by_action_scale():
    scaled = WorldModel(ModelConfig(**TINY, action_scale=[0.1, 0.2, 0.5])).eval()
    plain = WorldModel(ModelConfig(**TINY)).eval()
    plain.load_state_dict(scaled.state_dict() | {'action_scale': torch.ones(3)})
    z_hist, action = torch.randn(2, 2, 16), torch.tensor([[0.1, 0.2, 0.5], [-0.05, 0.1, 0.0]])
    torch.testing.assert_close(scaled.predict(z_hist, action), plain.predict(z_hist, action / scaled.action_scale))


def test_wrong_inputs_are_rejected():
    model = WorldModel(ModelConfig(**TINY))
    with pytest.raises(ValueError, match='expected images'):
        model.encode(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match='z_hist'):
        model.predict(torch.zeros(2, 1, 16), torch.zeros(2, 3))
    with pytest.raises(ValueError, match='history'):
        ModelConfig(history=4)
    with pytest.raises(ValueError, match='action_scale'):
        ModelConfig(action_dim=3, action_scale=[1.0, 0.0, 1.0])


def test_repr_reports_parameter_count():
    model = WorldModel(ModelConfig(**TINY))
    count = sum(p.numel() for p in model.parameters())
    assert f'{count / 1e6:.2f}M parameters' in repr(model)


@pytest.mark.parametrize('suffix', ['.safetensors', '.pt'])
def test_frozen_pretrained_encoder_is_loaded_from_a_local_file(tmp_path, suffix):
    pretrained = CNNEncoder(32, 8, 32)
    path = tmp_path / f'encoder{suffix}'
    state = {k: v.contiguous() for k, v in pretrained.state_dict().items()}
    save_file(state, str(path)) if suffix == '.safetensors' else torch.save(state, path)
    model = WorldModel(ModelConfig(**TINY, encoder='cnn', pretrained_encoder=str(path))).train()
    for name, value in pretrained.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[name], value)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.projector.parameters())
    assert not model.encoder.training and model.projector.training


def test_pretrained_encoder_with_wrong_shapes_is_refused(tmp_path):
    path = tmp_path / 'encoder.safetensors'
    save_file({k: v.contiguous() for k, v in CNNEncoder(32, 16, 32).state_dict().items()}, str(path))
    with pytest.raises(RuntimeError, match='size mismatch'):
        WorldModel(ModelConfig(**TINY, encoder='cnn', pretrained_encoder=str(path)))


def test_sigreg_is_small_for_gaussians_and_large_for_collapsed_latents():
    sigreg = SIGReg(num_projections=64)
    gaussian = torch.randn(512, 16)
    assert sigreg(gaussian, seed=0) < 2.0
    assert sigreg(gaussian * 0.05, seed=0) > 50 * sigreg(gaussian, seed=0)
    line = torch.randn(512, 1) * torch.ones(1, 16) / 4
    assert sigreg(line, seed=0) > 10 * sigreg(gaussian, seed=0)
    torch.testing.assert_close(sigreg(gaussian, seed=3), sigreg(gaussian, seed=3))


def test_keypoint_encoder_reports_where_its_feature_maps_peak():
    from jepa_agent.model.encoders import KeypointEncoder
    encoder = KeypointEncoder(32, 8, 4)
    # stand-in feature maps: the red channel at the encoder's 16 × 16 resolution, for all 4 keypoints
    encoder.convs = torch.nn.Sequential(torch.nn.AvgPool2d(2), torch.nn.Conv2d(3, 4, 1))
    with torch.no_grad():
        encoder.convs[1].weight.zero_()
        encoder.convs[1].weight[:, 0] = 20.0
        encoder.convs[1].bias.zero_()
    images = torch.zeros(2, 3, 32, 32)
    images[0, 0, 2:6, 2:6], images[1, 0, 26:30, 18:22] = 1.0, 1.0   # blob top-left, then bottom-centre-right
    x, y = encoder(images).chunk(2, dim=1)                           # (2, 4) each, in [-1, 1]
    assert (x[0] < -0.6).all() and (y[0] < -0.6).all()
    assert (x[1] > 0.1).all() and (x[1] < 0.5).all() and (y[1] > 0.6).all()


def test_effective_rank_counts_spread_directions():
    assert effective_rank(torch.randn(2000, 16)) > 14.5
    assert effective_rank(torch.randn(2000, 1) * torch.randn(1, 16)) < 1.1


def _fit_predictor(regularizer: str, steps: int = 80) -> tuple[float, float]:
    """Train encoder + predictor on a toy world (a point moved by actions); (mean latent std, effective rank)."""
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.GELU(), torch.nn.Linear(16, 8))
    predictor = torch.nn.Sequential(torch.nn.Linear(8 + 2, 16), torch.nn.GELU(), torch.nn.Linear(16, 8))
    sigreg = SIGReg(num_projections=16)
    optimizer = torch.optim.Adam([*encoder.parameters(), *predictor.parameters()], lr=1e-2)
    for step in range(steps):
        state = torch.rand(128, 2) * 2 - 1
        action = (torch.rand(128, 2) * 2 - 1) * 0.1
        view = lambda s: torch.cat([s, torch.sin(3 * s)], dim=1)   # noqa: E731  (a nonlinear 'camera')
        z, z_next = encoder(view(state)), encoder(view(state + action))
        loss = (predictor(torch.cat([z, action * 10], 1)) - z_next).square().mean()
        if regularizer == 'sigreg':
            loss = loss + 0.1 * sigreg(torch.cat([z, z_next]), seed=step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        z = encoder(view(torch.rand(1000, 2) * 2 - 1))
    return z.std(0).mean().item(), effective_rank(z)


def test_sigreg_prevents_the_collapse_that_happens_without_a_regularizer():
    std_none, _ = _fit_predictor('none')
    std_sigreg, rank_sigreg = _fit_predictor('sigreg')
    assert std_none < 0.05            # prediction loss alone shrinks every latent to a point
    assert std_sigreg > 0.5 and rank_sigreg > 2.5    # spread over more than the 2 state dimensions
