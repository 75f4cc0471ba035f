"""segstudio imports its subcommands, dataset formats and GUI parts by name (importlib), which PyInstaller's
static analysis cannot follow: collect every submodule, plus the JSON recipes beside the engine."""

from PyInstaller.utils.hooks import collect_data_files, collect_submodules

hiddenimports = collect_submodules("segstudio")
datas = collect_data_files("segstudio", includes=["**/*.json", "py.typed"])
