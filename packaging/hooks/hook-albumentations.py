"""albumentations and albucore check their own and their dependencies' versions through importlib.metadata at
import time; the metadata of the whole closure is copied by the spec, the submodules (transforms registered by
name for serialisation) here."""

from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules("albumentations", filter=lambda name: ".tests" not in name)
