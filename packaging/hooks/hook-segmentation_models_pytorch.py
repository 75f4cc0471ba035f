"""smp builds encoders from a name registry filled by importing every encoder module; keep them all."""

from PyInstaller.utils.hooks import collect_data_files, collect_submodules

hiddenimports = collect_submodules("segmentation_models_pytorch")
datas = collect_data_files("segmentation_models_pytorch")
