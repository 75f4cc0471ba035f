"""An ensemble trained as one model (``model.members``): what it predicts, how its members train, how it saves."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from segstudio.engine.checkpoint import load_checkpoint
from segstudio.engine.config import ConfigError, ModelConfig
from segstudio.engine.events import Finished
from segstudio.engine.export import export_onnx
from segstudio.engine.models import EnsembleModel, build_model, combine_logits
from segstudio.engine.predictor import InferenceOptions, Predictor
from segstudio.engine.train import train

from .conftest import make_dataset, tiny_config


def _finished(cfg, ds, run_dir, **kw) -> Finished:
    fin = list(train(cfg, ds, run_dir=run_dir, **kw))[-1]
    assert isinstance(fin, Finished) and fin.last_checkpoint is not None
    return fin


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_sigmoid_outputs_combine_to_the_mean_probability(mode):
    z = torch.randn(3, 2, 4, 5, 5) * 6
    z[0, 0, 0, 0, 0], z[1, 0, 0, 0, 0], z[2, 0, 0, 0, 0] = 90.0, 80.0, -85.0  # saturated sigmoids stay finite
    out = combine_logits(list(z), mode)
    assert out.shape == (2, 4, 5, 5) and torch.isfinite(out).all()
    assert torch.allclose(out.sigmoid(), z.sigmoid().mean(0), atol=1e-6)


def test_softmax_outputs_combine_to_the_mean_probability():
    z = torch.randn(2, 3, 5, 4, 4) * 30
    out = combine_logits(list(z), "multiclass")
    assert torch.allclose(out.softmax(1), z.softmax(2).mean(0), atol=1e-6)


def test_an_ensemble_stacks_its_members_while_training_and_averages_them_in_evaluation():
    torch.manual_seed(0)
    cfg = ModelConfig(architecture="unet", encoder="resnet18", encoder_depth=3, members=3)
    model = build_model(cfg, out_channels=3, mode="multiclass")
    assert isinstance(model, EnsembleModel) and len(model.members) == 3
    w = [m.state_dict()["net.encoder.conv1.weight"] for m in model.members]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])  # each from its own random weights
    x = torch.randn(2, 3, 32, 32)
    model.train()
    stacked = model(x)
    assert stacked.shape == (6, 3, 32, 32)  # member-major along the batch
    model.eval()
    with torch.no_grad():
        alone = [m(x).softmax(1) for m in model.members]
        assert torch.allclose(model(x).softmax(1), sum(alone) / 3, atol=1e-6)


def test_an_auxiliary_head_stacks_too():
    cfg = ModelConfig(architecture="unet", encoder="resnet18", encoder_depth=3, members=2, aux_head=True)
    model = build_model(cfg, out_channels=2, mode="multilabel").train()
    logits, aux = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (6, 2, 32, 32) and aux.shape[0] == 6


def test_an_ensemble_needs_the_task_mode_and_a_sane_size():
    with pytest.raises(ConfigError, match="mode"):
        build_model(ModelConfig(encoder="resnet18", encoder_depth=3, members=2), out_channels=1)  # mode "auto"
    for n in (0, 9):
        with pytest.raises(ConfigError, match="model.members"):
            tiny_config(f"model.members={n}")


def test_each_member_trains_as_it_would_alone(tmp_path):
    """The joint run's first member ends with the weights of a single model trained from the same initial weights
    on the same batches: each member's own loss (a Dice pooled over the stacked batch would couple them) and its
    own gradient clipping give it the gradient it would get alone, untouched by the others."""
    ds = make_dataset(n=6)
    base = ("epochs=2", "lr=0.003", "optim.grad_clip=0.5", "val_fraction=0.34", "seed=3")
    pair = _finished(tiny_config(*base, "model.members=2"), ds, tmp_path / "pair")
    alone = _finished(tiny_config(*base), ds, tmp_path / "alone")
    w_pair = load_file(str(pair.last_checkpoint / "model.safetensors"))
    w_alone = load_file(str(alone.last_checkpoint / "model.safetensors"))
    assert w_alone and all(f"members.0.{k}" in w_pair and f"members.1.{k}" in w_pair for k in w_alone)
    moved = 0
    for k, v in w_alone.items():
        if not v.is_floating_point():
            continue
        assert torch.allclose(w_pair[f"members.0.{k}"], v, atol=2e-5, rtol=1e-4), k
        moved += not torch.allclose(w_pair[f"members.1.{k}"], v)
    assert moved > len(w_alone) // 2  # the second member is a network of its own


def test_an_ensemble_checkpoint_predicts_its_members_mean_and_refuses_a_single_model_to_fine_tune_from(tmp_path):
    ds = make_dataset(n=6)
    fin = _finished(tiny_config("model.members=2", "epochs=1"), ds, tmp_path / "pair")
    path = fin.best_checkpoint or fin.last_checkpoint
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt.model, EnsembleModel) and not ckpt.model.training
    opts = InferenceOptions(device="cpu", backend="torch", tta=())
    image = ds.load_image(ds[0])
    both = Predictor([ckpt], options=opts).probabilities([image])[0]
    alone = []
    for j in range(2):
        member = load_checkpoint(path)
        member.model = member.model.members[j]
        alone.append(Predictor([member], options=opts).probabilities([image])[0])
    assert both.shape[1:] == image.shape[:2] and not torch.allclose(alone[0], alone[1])
    assert torch.allclose(both, (alone[0] + alone[1]) / 2, atol=1e-5)
    report = export_onnx(path, tmp_path / "pair.onnx")  # the mean of the members is one graph, as the app runs it
    assert report.passed and report.max_abs_diff is not None and report.max_abs_diff < 1e-4
    single = _finished(tiny_config("epochs=1"), ds, tmp_path / "single")
    with pytest.raises(ConfigError, match="ensemble of 2"):
        _finished(tiny_config("model.members=2", "epochs=1"), ds, tmp_path / "ft", init_from=single.last_checkpoint)


def test_an_ensemble_averages_its_weights_member_by_member_with_swa(tmp_path):
    """SWA averages an ensemble's weights per member and recomputes each member's batch-norm statistics: the SWA
    checkpoint is an ensemble whose members still differ."""
    ds = make_dataset(n=6)
    fin = _finished(tiny_config("model.members=2", "epochs=3", "swa=true", "swa_start=0.3", "val_fraction=0"), ds,
                    tmp_path / "swa")
    assert fin.model_checkpoint is not None and fin.model_checkpoint.name == "swa"
    model = load_checkpoint(fin.model_checkpoint).model
    assert isinstance(model, EnsembleModel)
    stats = [m.state_dict()["net.encoder.bn1.running_mean"] for m in model.members]
    assert not torch.allclose(stats[0], stats[1]) and all(torch.isfinite(s).all() for s in stats)
