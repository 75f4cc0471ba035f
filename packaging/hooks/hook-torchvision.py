"""torchvision's compiled operators (``_C``, image/video codecs) must ship, or the frozen app dies at import with
``operator torchvision::nms does not exist``. The contrib hook names ``torchvision._C`` only; this one also
collects every shared library the wheel carries (``torchvision.libs`` on Linux, DLLs on Windows)."""

from PyInstaller.utils.hooks import collect_data_files, collect_dynamic_libs, is_module_satisfies

hiddenimports = ["torchvision._C"]
binaries = collect_dynamic_libs("torchvision", search_patterns=["*.so", "*.so.*", "*.dll", "*.dylib", "*.pyd"])
datas = collect_data_files("torchvision", excludes=["**/*.h", "**/*.pyi"])
# TorchScript and torch.fx read the Python source of the modules they script
module_collection_mode = "pyz+py" if is_module_satisfies("PyInstaller >= 6.0") else None
