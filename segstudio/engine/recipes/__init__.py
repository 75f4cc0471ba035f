"""Training recipes for the seed tasks: JSON files beside this module (package data), one per recipe.

A recipe is a partial ``TrainConfig`` (unspecified keys keep their defaults) plus ``description`` and
``dataset`` lines for humans.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.config import TrainConfig

META_KEYS = ("description", "dataset")


def recipe_names() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def recipe_document(name: str) -> dict[str, Any]:
    if name not in recipe_names():
        raise UnknownKeyError("recipe", name, recipe_names())
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8"))


def load_recipe(name: str) -> TrainConfig:
    doc = recipe_document(name)
    return TrainConfig.from_dict({k: v for k, v in doc.items() if k not in META_KEYS})


def describe(name: str) -> str:
    return str(recipe_document(name).get("description", ""))
