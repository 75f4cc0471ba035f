"""Third-party notice: licences read from package metadata, the closure walk, and the no-GPL/AGPL policy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from segstudio.core import licences as L


def _fake_dist(site: Path, name: str, *, version: str = "1.0", licence: str = "", expression: str = "",
               classifiers: tuple[str, ...] = (), requires: tuple[str, ...] = (), files: bool = True) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}"]
    if expression:
        lines.append(f"License-Expression: {expression}")
    if licence:
        lines.append(f"License: {licence}")
    lines += [f"Classifier: {c}" for c in classifiers]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    record = [f"{info.name}/METADATA,,"]
    if files:
        (site / name).mkdir()
        (site / name / "__init__.py").write_text("")
        record.append(f"{name}/__init__.py,,")
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture()
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    return site


@pytest.mark.parametrize(
    ("licence", "category"),
    [
        ("MIT", "permissive"),
        ("BSD-3-Clause", "permissive"),
        ("Apache Software License", "permissive"),
        ("LGPL-3.0-only", "weak-copyleft"),
        ("GNU Lesser General Public License v3 (LGPLv3)", "weak-copyleft"),
        ("MPL-2.0 AND MIT", "weak-copyleft"),
        ("GPL-3.0-or-later", "strong-copyleft"),
        ("GNU General Public License v2 (GPLv2)", "strong-copyleft"),
        ("AGPL-3.0-only", "strong-copyleft"),
        ("GNU Affero General Public License v3", "strong-copyleft"),
        ("LicenseRef-NVIDIA-Proprietary", "proprietary"),
        ("UNKNOWN", "unknown"),
        ("", "unknown"),
    ],
)
def test_licence_category(licence: str, category: str) -> None:
    assert L.licence_category(licence) == category


def test_dual_licence_with_an_lgpl_alternative_is_allowed_but_gpl_only_is_not() -> None:
    pyside = L.Component("PySide6", "6", "LGPL-3.0-only OR GPL-2.0-only", ("LGPL-3.0-only", "GPL-2.0-only"))
    gpl = L.Component("gplthing", "1", "GPL-2.0-only OR GPL-3.0-only", ("GPL-2.0-only", "GPL-3.0-only"))
    assert pyside.category == "weak-copyleft"
    assert L.forbidden_components([pyside, gpl]) == [gpl]


def test_closure_follows_requirements_and_requested_extras_but_not_own_extras(fake_site: Path) -> None:
    _fake_dist(fake_site, "fakeroot", expression="Apache-2.0",
               requires=("fakelib>=1", "fakekit[gpu]; python_version >= '3'", "fakedev; extra == 'dev'"))
    _fake_dist(fake_site, "fakelib", classifiers=("License :: OSI Approved :: MIT License",))
    _fake_dist(fake_site, "fakekit", files=False, requires=("fakegpu; extra == 'gpu'", "fakeother; extra == 'x'"))
    _fake_dist(fake_site, "fakegpu", expression="LicenseRef-Vendor-Proprietary")
    _fake_dist(fake_site, "fakeother", expression="MIT")
    _fake_dist(fake_site, "fakedev", expression="GPL-3.0-only")
    names = [d.metadata["Name"] for d in L.dependency_closure("fakeroot")]
    assert names == ["fakegpu", "fakekit", "fakelib"]
    comps = {c.name: c for c in L.bundled_components("fakeroot")}
    assert "fakekit" not in comps  # a meta-package installs nothing that needs a licence
    assert comps["fakelib"].licence == "MIT License"
    assert comps["fakegpu"].category == "proprietary"
    assert "CPython" in comps


def test_write_notice_refuses_a_gpl_component(fake_site: Path, tmp_path: Path) -> None:
    _fake_dist(fake_site, "fakeroot", expression="Apache-2.0", requires=("fakegpl",))
    _fake_dist(fake_site, "fakegpl", licence="GNU General Public License v3")
    with pytest.raises(ValueError, match="fakegpl"):
        L.write_notice(tmp_path / "n.txt", root="fakeroot")
    assert not (tmp_path / "n.txt").exists()


def test_licence_field_with_full_text_falls_back_to_classifiers(fake_site: Path) -> None:
    _fake_dist(fake_site, "fakeroot", expression="Apache-2.0", requires=("fakelong",))
    _fake_dist(fake_site, "fakelong", licence="Copyright (c) 2001 Someone\n        Redistribution and use in source and binary forms",
               classifiers=("License :: OSI Approved :: BSD License",))
    (comp,) = [c for c in L.bundled_components("fakeroot") if c.name == "fakelong"]
    assert comp.licence == "BSD License"


def test_this_environment_bundles_no_gpl_and_names_every_licence() -> None:
    comps = L.bundled_components()
    by_name = {c.name.lower().replace("_", "-"): c for c in comps}
    for needed in ("torch", "torchvision", "pyside6-essentials", "shiboken6", "numpy", "segmentation-models-pytorch"):
        assert needed in by_name, needed
    assert by_name["pyside6-essentials"].category == "weak-copyleft"
    assert "BSD" in by_name["torchvision"].licence
    assert L.forbidden_components(comps) == []
    assert [c.name for c in comps if c.category == "unknown"] == []
    # dev tools and the build tool are not part of the app
    assert not {"pytest", "pyinstaller", "mypy", "ruff"} & set(by_name)


def test_notice_text_lists_every_component_and_prefers_the_bundled_file(tmp_path: Path) -> None:
    comps = L.bundled_components()
    text = L.render_notice(comps, torch_variant="CUDA 13.0")
    assert f"{len(comps)} components" in text and "PyTorch variant in this build: CUDA 13.0." in text
    for c in comps:
        assert f"{c.name} {c.version}".strip() in text
    bundled = tmp_path / L.NOTICE_FILE
    bundled.write_text("the notice written at build time")
    assert L.notice_text(bundled) == "the notice written at build time"
    assert L.notice_text(tmp_path / "missing.txt").startswith("segstudio — third-party software notice")


def test_torch_variant_from_version_file_text() -> None:
    cuda = "__version__ = '2.14.1+cu130'\ncuda: Optional[str] = '13.0'\nhip: Optional[str] = None\n"
    cpu = "__version__ = '2.14.1+cpu'\ncuda: Optional[str] = None\nhip: Optional[str] = None\n"
    rocm = "cuda: Optional[str] = None\nhip: Optional[str] = '6.2.4'\n"
    assert L.torch_variant_tag(cuda) == "cu130"
    assert L.torch_variant_tag(cpu) == "cpu"
    assert L.torch_variant_tag(rocm) == "rocm6.2.4"
    assert L.describe_variant("cu130") == "CUDA 13.0"
    assert L.describe_variant("cu118") == "CUDA 11.8"
    assert L.describe_variant("cpu") == "CPU"


def test_installed_variant_reads_bundle_info_first(tmp_path: Path) -> None:
    (tmp_path / L.BUILD_INFO_FILE).write_text('{"torch_variant": "cpu"}')
    assert L.installed_torch_variant(tmp_path) == "CPU"
    import torch  # the checkout's torch: the file-based answer must match the imported module

    expected = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
    assert L.installed_torch_variant(tmp_path / "nothing-here") == expected
