"""qtawesome loads its icon fonts and charmaps from files beside the package at run time."""

from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("qtawesome", includes=["fonts/*.ttf", "fonts/*.json"])
