from __future__ import annotations

import socket

import pytest
import torch
from safetensors.torch import save_file

from segstudio.core.errors import UnknownKeyError
from segstudio.engine import weights as weights_mod
from segstudio.engine.config import ModelConfig
from segstudio.engine.models import architecture_names, build_model
from segstudio.engine.weights import WeightsUnavailableError

# smallest encoder each architecture accepts; PAN's pyramid pooling needs at least 128² at stride 32
TINY = {
    "dpt": dict(encoder="tu-vit_tiny_patch16_224"),
    "segformer": dict(encoder="mit_b0"),
    "segnet": dict(encoder="vgg", params={"width": 0.125}),
}
SIZE = {"pan": 128}


def _cfg(arch: str, **kw) -> ModelConfig:
    base = dict(architecture=arch, encoder="resnet18")
    base.update(TINY.get(arch, {}))
    base.update(kw)
    return ModelConfig(**base)


def test_registry_covers_the_issue():
    assert set(architecture_names()) >= {
        "unet", "unetplusplus", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "linknet", "manet", "pan",
        "upernet", "segformer", "dpt", "fcn", "segnet",
    }


@pytest.mark.parametrize("arch", architecture_names())
def test_architecture_contract(arch):
    """Every architecture: logits of the input's size in eval mode; (logits, aux) only while training with aux."""
    s = SIZE.get(arch, 64)
    model = build_model(_cfg(arch, aux_head=True), out_channels=3)
    x = torch.randn(2, 3, s, s)
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and out[0].shape == (2, 3, s, s)
    assert out[1].shape[:2] == (2, 3)
    (out[0].mean() + out[1].mean()).backward()
    assert any(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 3, s, s)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("arch", ["unet", "fpn", "pspnet", "deeplabv3plus", "linknet", "manet", "unetplusplus"])
@pytest.mark.parametrize("depth", [3, 4, 5])
def test_logits_keep_the_input_size_at_every_encoder_depth(arch, depth):
    """A shallower encoder (model.encoder_depth) still gives logits of the input's size: smp's FPN and PSPNet
    heads upsample by a factor made for their default depth, which the builder adapts."""
    model = build_model(_cfg(arch, encoder_depth=depth), out_channels=3).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 64, 96))
    assert y.shape == (1, 3, 64, 96)


@pytest.mark.parametrize("arch", ["unet", "fcn", "segnet"])
def test_grayscale_input_and_single_output(arch):
    model = build_model(_cfg(arch, in_channels=1), out_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_unknown_architecture_and_encoder_list_options():
    with pytest.raises(UnknownKeyError) as e:
        build_model(ModelConfig(architecture="unet3d"), out_channels=2)
    assert "deeplabv3plus" in str(e.value) and "segnet" in str(e.value)
    with pytest.raises(UnknownKeyError) as e:
        build_model(ModelConfig(encoder="resnet7"), out_channels=2)
    assert "resnet18" in str(e.value)


def test_aliases():
    assert build_model(_cfg("unet++"), out_channels=2).architecture == "unetplusplus"


def _no_network(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return calls


def test_hub_weights_offline_env_fail_fast_without_touching_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = _no_network(monkeypatch)
    with pytest.raises(WeightsUnavailableError) as e:
        build_model(ModelConfig(encoder="resnet18", encoder_weights="imagenet"), out_channels=2)
    assert "encoder_weights=null" in str(e.value)
    assert calls == []


def test_hub_weights_with_no_network_fail_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = _no_network(monkeypatch)
    with pytest.raises(WeightsUnavailableError):
        build_model(ModelConfig(encoder="resnet18", encoder_weights="imagenet"), out_channels=2)
    # one short probe, then the hub runs in offline mode (no retries)
    assert len(calls) == 1


def test_fcn_hub_weights_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    _no_network(monkeypatch)
    with pytest.raises(WeightsUnavailableError):
        build_model(ModelConfig(architecture="fcn", encoder="resnet18", encoder_weights="imagenet"), out_channels=2)


def test_probe_is_what_decides(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights_mod, "host_reachable", lambda host, **kw: False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with weights_mod.hub_mode() as online:
        assert online is False and constants.HF_HUB_OFFLINE is True
    assert constants.HF_HUB_OFFLINE is False  # restored after the block


def test_local_weights_file_loads_into_encoder(tmp_path):
    src = build_model(ModelConfig(encoder="resnet18"), out_channels=2)
    path = tmp_path / "enc.safetensors"
    save_file({f"encoder.{k}": v.contiguous() for k, v in src.net.encoder.state_dict().items()}, str(path))
    dst = build_model(ModelConfig(encoder="resnet18", encoder_weights=str(path)), out_channels=2)
    for k, v in src.net.encoder.state_dict().items():
        assert torch.equal(v, dst.net.encoder.state_dict()[k]), k


def test_missing_or_mismatched_local_weights(tmp_path):
    with pytest.raises(WeightsUnavailableError):
        build_model(ModelConfig(encoder="resnet18", encoder_weights=str(tmp_path / "nope.safetensors")), out_channels=2)
    path = tmp_path / "other.safetensors"
    save_file({"foo": torch.zeros(3)}, str(path))
    with pytest.raises(WeightsUnavailableError):
        build_model(ModelConfig(encoder="resnet18", encoder_weights=str(path)), out_channels=2)
