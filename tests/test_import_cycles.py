"""No import cycle inside ``segstudio/``, of any kind.

The graph is grimp's: every ``import`` a module makes counts, including imports inside functions (the lazy ones)
and those under ``if TYPE_CHECKING:``. A cycle that only type checkers see still ties two modules together (one
cannot be read, moved or tested without the other), so none is allowed. A cycle is a strongly connected component
of more than one module; the failure names one cycle's modules in import order.

The second test builds a throw-away package with a cycle (one leg a function-level import, the other under
``TYPE_CHECKING``) and checks that the finder reports it, so this test cannot pass by finding nothing.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import grimp


def strongly_connected(nodes: Iterable[str], edges: Callable[[str], Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: the package is deeper than Python's recursion limit
    likes); only components of two or more nodes are returned, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def cycle_in(component: list[str], edges: Callable[[str], Iterable[str]]) -> list[str]:
    """One cycle through the component's first module, as a chain ``a, b, …, a`` (breadth-first, so short)."""
    members = set(component)
    start = component[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(edges(node)):
                if nxt not in members:
                    continue
                if nxt == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(prev[chain[-1]])
                    return [start, *reversed(chain[:-1]), start]
                if nxt not in prev:
                    prev[nxt] = node
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return component


def import_cycles(package: str) -> list[list[str]]:
    """Every import cycle inside ``package``, each as a module chain that ends where it starts."""
    graph = grimp.build_graph(package, cache_dir=None)

    def edges(module: str) -> set[str]:
        return graph.find_modules_directly_imported_by(module)

    return [cycle_in(comp, edges) for comp in strongly_connected(graph.modules, edges)]


def test_no_import_cycle_in_segstudio() -> None:
    cycles = import_cycles("segstudio")
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_finder_reports_a_constructed_cycle(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cyclepkg import b\n    return b\n")
    (pkg / "b.py").write_text(textwrap.dedent("""\
        from typing import TYPE_CHECKING

        from cyclepkg import c

        if TYPE_CHECKING:
            from cyclepkg import a
        """))
    (pkg / "c.py").write_text("X = 1\n")
    (pkg / "d.py").write_text("from cyclepkg import c\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cycles = import_cycles("cyclepkg")
    finally:
        for name in [m for m in sys.modules if m == "cyclepkg" or m.startswith("cyclepkg.")]:
            del sys.modules[name]
    assert cycles == [["cyclepkg.a", "cyclepkg.b", "cyclepkg.a"]]
