"""Third-party notice: the licence of every component an installer bundles, read from installed package metadata.

The bundled set is segstudio's runtime dependency closure (``Requires-Dist`` without extras, followed
transitively, markers evaluated for this interpreter) plus the pieces that are not Python distributions (the
CPython runtime). A packaged app has no ``dist-info`` folders to read, so the build writes the notice into the
bundle (``resources/THIRD-PARTY-NOTICES.txt``) and :func:`notice_text` prefers that file when it exists.

Licence policy (issue 9): permissive and weak-copyleft (LGPL, MPL) components may be bundled; GPL and AGPL may
not. A component offered under alternatives (``LGPL-3.0-only OR GPL-3.0-only`` — PySide6; several licence
classifiers) is acceptable when one alternative is, because the distributor picks the alternative.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOT_DISTRIBUTION = "segstudio"
NOTICE_FILE = "THIRD-PARTY-NOTICES.txt"
#: Not Python distributions, yet inside every installer.
RUNTIME_COMPONENTS: tuple[tuple[str, str, str], ...] = (
    ("CPython", "PSF-2.0", "https://www.python.org/"),
)

_STRONG_COPYLEFT = re.compile(r"\bA?GPL|\bGNU (Affero )?General Public", re.IGNORECASE)
_WEAK_COPYLEFT = re.compile(r"\bLGPL|Lesser General Public|Library General Public|\bMPL|Mozilla", re.IGNORECASE)
_LICENCE_CLASSIFIER = "License :: "


@dataclass(frozen=True)
class Component:
    """One bundled component. ``licence``: an SPDX expression where the metadata has one, else the metadata's
    short licence name; ``alternatives``: the licences it is offered under (one entry unless dual-licensed)."""

    name: str
    version: str
    licence: str
    alternatives: tuple[str, ...]
    homepage: str = ""

    @property
    def category(self) -> str:
        """``permissive``, ``weak-copyleft``, ``proprietary`` (redistributable vendor licence: NVIDIA's CUDA
        libraries), ``strong-copyleft`` (GPL/AGPL in every alternative) or ``unknown``."""
        cats = {licence_category(a) for a in self.alternatives}
        for best in ("permissive", "weak-copyleft", "proprietary", "unknown"):
            if best in cats:
                return best
        return "strong-copyleft" if cats else "unknown"


def licence_category(licence: str) -> str:
    """Category of one licence name or SPDX id (no ``OR``): copyleft checks come first because "LGPL" contains
    "GPL"; anything else that names a licence is permissive unless it says it is proprietary."""
    text = licence.strip()
    if not text or text.upper() in {"UNKNOWN", "NONE"}:
        return "unknown"
    if _WEAK_COPYLEFT.search(text):
        return "weak-copyleft"
    if _STRONG_COPYLEFT.search(text):
        return "strong-copyleft"
    if "proprietary" in text.lower():
        return "proprietary"
    return "permissive"


def _split_or(expr: str) -> tuple[str, ...]:
    # SPDX: OR separates alternatives; AND/WITH combine parts that all apply, so they stay one alternative
    parts = [p.strip(" ()") for p in re.split(r"\s+OR\s+", expr)]
    return tuple(p for p in parts if p)


def _licence_of(meta: Any) -> tuple[str, tuple[str, ...]]:
    expr = (meta.get("License-Expression") or "").strip()
    if expr:
        return expr, _split_or(expr)
    classifiers = [
        c.split(" :: ")[-1] for c in (meta.get_all("Classifier") or []) if c.startswith(_LICENCE_CLASSIFIER)
    ]
    field = (meta.get("License") or "").strip()
    # The License field is often the whole licence text; a short one-liner is a name worth showing
    short = field if field and "\n" not in field and len(field) <= 80 else ""
    if short and short.upper() != "UNKNOWN":
        return short, _split_or(short) + tuple(classifiers)
    if classifiers:
        return " OR ".join(classifiers) if len(classifiers) > 1 else classifiers[0], tuple(classifiers)
    if field:
        first = field.splitlines()[0].strip()
        return first[:80], (first[:80],)
    return "UNKNOWN", ()


def _homepage(meta: Any) -> str:
    home = meta.get("Home-page") or ""
    for url in meta.get_all("Project-URL") or []:
        label, _, link = url.partition(",")
        if not home or label.strip().lower() in {"homepage", "home", "source", "repository"}:
            home = home or link.strip()
    return home.strip()


def _requirement(req: str) -> tuple[str, frozenset[str], str]:
    """``"cuda-toolkit[cublas]>=13; sys_platform == 'linux'"`` → (name, requested extras, marker text)."""
    spec, _, marker = req.partition(";")
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", spec)
    if m is None:
        return spec.strip(), frozenset(), marker.strip()
    extras = frozenset(_canonical(e) for e in (m.group(2) or "").split(",") if e.strip())
    return m.group(1), extras, marker.strip()


def _marker_applies(marker: str, extras: frozenset[str]) -> bool:
    """Whether a requirement applies here when its distribution was asked for with ``extras`` (torch asks for
    ``cuda-toolkit[cublas,cudart,...]``, whose libraries are all extras)."""
    if not marker:
        return True
    try:
        from packaging.markers import Marker  # pip's and PyInstaller's dependency; always there at build time
    except ImportError:
        return "extra" not in marker
    try:
        parsed = Marker(marker)
        return any(parsed.evaluate({"extra": e}) for e in ("", *sorted(extras)))
    except Exception:  # an unparsable marker: include the package rather than hide a licence
        return True


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(root: str = ROOT_DISTRIBUTION, *, exclude: Iterable[str] = ()) -> list[md.Distribution]:
    """Installed distributions ``root`` needs at run time (itself excluded; its own extras never), sorted by name.

    Requirements that are not installed are skipped with a warning (an optional platform dependency)."""
    skip = {_canonical(n) for n in exclude}
    # one scan of sys.path instead of one per requirement (md.distribution walks every path entry each time)
    installed: dict[str, md.Distribution] = {}
    for d in md.distributions():
        installed.setdefault(_canonical(_dist_name(d)), d)
    seen: dict[str, md.Distribution] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        key = _canonical(name)
        if (key, extras) in done or key in skip:
            continue
        done.add((key, extras))
        dist = installed.get(key)
        if dist is None:
            log.warning("licences: %s is required but not installed; it is left out of the notice", name)
            continue
        seen[key] = dist
        for req in dist.requires or []:
            dep, dep_extras, marker = _requirement(req)
            if _marker_applies(marker, extras):
                todo.append((dep, dep_extras))
    seen.pop(_canonical(root), None)
    return sorted(seen.values(), key=lambda d: _canonical(d.metadata["Name"]))


def _dist_name(dist: md.Distribution) -> str:
    """The project name, from the ``name-version.dist-info`` folder when there is one: parsing every installed
    METADATA file just to learn names takes a second or more in a full environment."""
    folder = getattr(dist, "_path", None)
    if isinstance(folder, Path) and folder.suffix in {".dist-info", ".egg-info"} and "-" in folder.stem:
        return folder.stem.split("-", 1)[0]
    return dist.metadata["Name"] or ""


def _installs_files(dist: md.Distribution) -> bool:
    """False for a meta-package (only its own ``.dist-info``): it puts nothing into the bundle to licence."""
    record = dist.read_text("RECORD")
    if record is None:
        return True
    tops = {line.split("/", 1)[0] for line in record.splitlines() if line.strip()}
    return any(not t.split(",", 1)[0].endswith((".dist-info", ".egg-info")) for t in tops)


def bundled_components(root: str = ROOT_DISTRIBUTION, *, exclude: Iterable[str] = ()) -> list[Component]:
    """Every third-party component of an installer built from this environment: the closure plus the runtime."""
    out = [
        Component(name=n, version="", licence=lic, alternatives=(lic,), homepage=url)
        for n, lic, url in RUNTIME_COMPONENTS
    ]
    for dist in dependency_closure(root, exclude=exclude):
        if not _installs_files(dist):
            continue
        meta = dist.metadata
        licence, alternatives = _licence_of(meta)
        out.append(
            Component(
                name=meta["Name"],
                version=dist.version,
                licence=licence,
                alternatives=alternatives,
                homepage=_homepage(meta),
            )
        )
    return out


def forbidden_components(components: Iterable[Component]) -> list[Component]:
    """Components that may not be bundled: GPL or AGPL with no LGPL/permissive alternative."""
    return [c for c in components if c.category == "strong-copyleft"]


def render_notice(components: Iterable[Component], *, torch_variant: str = "") -> str:
    """The plain-text notice: a header, then one block per component (name, version, licence, home page)."""
    comps = list(components)
    lines = [
        "segstudio — third-party software notice",
        "",
        "segstudio is licensed under the Apache License 2.0. This installer also contains the components below,",
        "each under its own licence. PySide6 and Qt are used under the GNU LGPL v3: they are shipped as separate",
        "shared libraries that you may replace with your own build (see docs/packaging.md).",
    ]
    if torch_variant:
        lines.append(f"PyTorch variant in this build: {torch_variant}.")
    lines += ["", f"{len(comps)} components", ""]
    for c in comps:
        head = f"{c.name} {c.version}".strip()
        lines.append(head)
        lines.append(f"  licence: {c.licence}")
        if len(c.alternatives) > 1:
            lines.append(f"  offered under: {' | '.join(c.alternatives)}")
        if c.homepage:
            lines.append(f"  home: {c.homepage}")
        lines.append("")
    return "\n".join(lines)


def write_notice(path: str | Path, *, torch_variant: str = "", root: str = ROOT_DISTRIBUTION,
                 exclude: Iterable[str] = ()) -> list[Component]:
    """Generate the notice from this environment into ``path``; raises ``ValueError`` naming any GPL/AGPL
    component, so a build can never ship one."""
    comps = bundled_components(root, exclude=exclude)
    bad = forbidden_components(comps)
    if bad:
        raise ValueError(
            "GPL/AGPL components may not be bundled: " + ", ".join(f"{c.name} ({c.licence})" for c in bad)
        )
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_notice(comps, torch_variant=torch_variant), encoding="utf-8")
    return comps


def notice_text(bundled: Path | None = None, *, torch_variant: str = "") -> str:
    """The notice to show (About dialog): the file written into the bundle at build time when ``bundled`` exists,
    otherwise generated now from the installed packages (a source checkout)."""
    if bundled is not None and bundled.is_file():
        return bundled.read_text(encoding="utf-8")
    return render_notice(bundled_components(), torch_variant=torch_variant)


BUILD_INFO_FILE = "build-info.json"


def torch_variant_tag(version_py: str) -> str:
    """Artifact tag from the text of ``torch/version.py``: ``cu130``, ``rocm6.2`` or ``cpu``."""
    values = dict(re.findall(r"^(cuda|hip)\s*(?::[^=]*)?=\s*'([^']*)'", version_py, re.MULTILINE))
    if values.get("cuda"):
        return "cu" + values["cuda"].replace(".", "")
    if values.get("hip"):
        return "rocm" + values["hip"]
    return "cpu"


def describe_variant(tag: str) -> str:
    """``cu130`` → ``CUDA 13.0``; ``cpu`` → ``CPU``; for people, not file names."""
    if tag.startswith("cu") and tag[2:].isdigit():
        digits = tag[2:]
        return f"CUDA {digits[:-1]}.{digits[-1]}"
    if tag.startswith("rocm"):
        return f"ROCm {tag[4:]}"
    return "CPU" if tag == "cpu" else tag


def installed_torch_variant(resources: Path | None = None) -> str:
    """Human-readable torch variant (``CUDA 13.0`` / ``CPU``) without importing torch (seconds, and ring 1 never
    does): from the bundle's ``build-info.json`` when frozen, else from the text of the installed
    ``torch/version.py``; ``not installed`` when there is no torch."""
    import importlib.util
    import json

    if resources is not None and (resources / BUILD_INFO_FILE).is_file():
        try:
            info = json.loads((resources / BUILD_INFO_FILE).read_text(encoding="utf-8"))
            return describe_variant(str(info["torch_variant"]))
        except (OSError, ValueError, KeyError):
            log.warning("licences: unreadable %s", resources / BUILD_INFO_FILE)
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "not installed"
    for loc in spec.submodule_search_locations:
        version_py = Path(loc) / "version.py"
        if version_py.is_file():
            return describe_variant(torch_variant_tag(version_py.read_text(encoding="utf-8")))
    return "unknown"
