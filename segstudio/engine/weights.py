"""Pretrained-weight access that never hangs offline (DESIGN §6: no network unless asked; offline fails fast).

smp and timm fetch encoder weights from the Hugging Face hub, which retries for ~25 s when the network is down.
Before any download we probe the host with a short TCP connect; when it cannot be reached (or ``HF_HUB_OFFLINE``
is set) the hub is switched to offline mode for the call, so cached weights still load and missing ones fail at
once with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from segstudio.core.errors import SegstudioError

log = logging.getLogger(__name__)

HF_HOST = "huggingface.co"
TORCH_HOST = "download.pytorch.org"
PROBE_TIMEOUT_S = 1.0
WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class WeightsUnavailableError(SegstudioError):
    """Pretrained weights were asked for but cannot be had (offline and not cached, or a missing file)."""


def env_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def host_reachable(host: str, *, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """A TCP connect within ``timeout`` seconds; DNS failure counts as unreachable."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_local_weights(weights: str) -> bool:
    return weights.endswith(WEIGHT_FILE_SUFFIXES) or os.sep in weights or "/" in weights or Path(weights).exists()


def offline_message(weights: str, encoder: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"Pretrained weights {weights!r} for encoder {encoder!r} are not in the local cache and the download "
        "host cannot be reached (offline, or HF_HUB_OFFLINE is set).",
        fix="Connect to the network once to cache them, set model.encoder_weights=null to train from scratch, "
        "or point model.encoder_weights to a local .safetensors/.pth file.",
    )


@contextlib.contextmanager
def hub_mode(*, host: str = HF_HOST) -> Iterator[bool]:
    """Yield True when online. Offline, the Hugging Face hub is forced into offline mode for the block."""
    online = not env_offline() and host_reachable(host)
    if online:
        yield True
        return
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a dependency of smp and timm
        yield False
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield False
    finally:
        constants.HF_HUB_OFFLINE = old


def load_state_dict_file(path: str | Path) -> dict:
    """Tensors from a weights file without unpickling arbitrary objects (safetensors or weights_only)."""
    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsUnavailableError(
            "The weights file does not exist.", path=p, fix="Check model.encoder_weights or set it to null."
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(p), device="cpu"))
        except Exception as e:  # SafetensorError, OSError: damaged, truncated, a pickle in disguise, unreadable
            raise WeightsUnavailableError(
                f"The weights file is not a readable safetensors file ({e}).",
                path=p,
                fix="Use an intact .safetensors file, or set model.encoder_weights=null.",
            ) from None
    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsUnavailableError(
            f"The weights file cannot be read safely ({e}).",
            path=p,
            fix="Use a .safetensors file or a plain tensor state dict saved with torch.save.",
        ) from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise WeightsUnavailableError("The weights file holds no state dict.", path=p, fix="Save model.state_dict().")
    return sd


def load_into(module, state: dict, *, path: str | Path, prefixes: tuple[str, ...] = ("encoder.", "backbone.")) -> int:
    """Load matching tensors of ``state`` into ``module`` (prefixes stripped); returns how many were loaded."""
    own = module.state_dict()
    matched = {}
    for k, v in state.items():
        key = k
        for pre in prefixes:
            if key.startswith(pre) and key[len(pre) :] in own:
                key = key[len(pre) :]
                break
        if key in own and tuple(own[key].shape) == tuple(v.shape):
            matched[key] = v
    if not matched:
        raise WeightsUnavailableError(
            "No tensor of the weights file fits this encoder (names or shapes differ).",
            path=path,
            fix="Use weights saved from the same encoder, or set model.encoder_weights=null.",
        )
    module.load_state_dict(matched, strict=False)
    log.info("loaded %d/%d encoder tensors from %s", len(matched), len(own), path)
    return len(matched)
