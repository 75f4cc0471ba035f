"""Edit → mask operations: ask for the parameter, run the mask-core op on the selected class as one undo step."""

from __future__ import annotations

from PySide6.QtWidgets import QInputDialog, QWidget

from segstudio.core.errors import UnknownKeyError
from segstudio.gui.screen.editor import EditorController
from segstudio.masks import dilate, erode, fill_holes, keep_largest, remove_islands, replace_class

OPS = ("fill_holes", "remove_islands", "keep_largest", "dilate", "erode", "replace_class", "refine_edge",
       "smooth_outline")
#: ops that propose (the assisted tools of ``masks.assist``): nothing changes until Enter accepts
PROPOSING = ("refine_edge", "smooth_outline")


def run(name: str, *, editor: EditorController, parent: QWidget | None) -> bool:
    """Run op ``name`` on the editor's current mask, asking its parameter in a dialog over ``parent``; False when
    cancelled or nothing to do."""
    if name not in OPS:
        raise UnknownKeyError("mask operation", name, OPS)
    mask, target = editor.mask, editor.target
    if mask is None or target is None:
        return False
    cid = editor.context.class_id
    guard = editor.context.guard
    cname = target.schema.by_id(cid).name if target.schema.has_id(cid) else str(cid)
    if name == "fill_holes":
        fill_holes(mask, class_id=cid, guard=guard)
        return True
    if name == "remove_islands":
        n, ok = QInputDialog.getInt(parent, "Remove islands", f"Remove '{cname}' islands smaller than (px):", 50, 1,
                                    10_000_000)
        if ok:
            remove_islands(mask, class_id=cid, min_size=n, guard=guard)
        return ok
    if name == "keep_largest":
        k, ok = QInputDialog.getInt(parent, "Keep largest components", f"Keep the k largest '{cname}' components:",
                                    1, 1, 1000)
        if ok:
            keep_largest(mask, class_id=cid, k=k, guard=guard)
        return ok
    if name in PROPOSING:
        plane = mask.plane(cid)
        if not plane.any():
            editor.sig_proposal_changed.emit(f"{cname} has no pixels here to refine")
            return False
        from segstudio.masks.assist import refine_edge, smooth_outline

        if name == "refine_edge":
            r, ok = QInputDialog.getInt(parent, "Refine edge", f"Move '{cname}''s outline to the image's edge within "
                                        "(px):", editor.refine_radius, 2, 64)
            if ok:
                editor.propose(refine_edge(target.image, plane, radius=r), class_id=cid, tool="Refine edge")
            return ok
        r, ok = QInputDialog.getInt(parent, "Smooth outline", f"Smooth '{cname}''s outline by (px):",
                                    editor.smooth_radius, 1, 50)
        if ok:
            editor.propose(smooth_outline(plane, radius=r), class_id=cid, tool="Smooth outline")
        return ok
    if name in ("dilate", "erode"):
        r, ok = QInputDialog.getInt(parent, name.title(), f"{name.title()} '{cname}' by radius (px):", 2, 1, 200)
        if ok:
            (dilate if name == "dilate" else erode)(mask, class_id=cid, radius=r, guard=guard)
        return ok
    names = [c.name for c in target.schema]
    src, ok = QInputDialog.getItem(parent, "Replace class", "Replace class:", names, names.index(cname), False)
    if not ok:
        return False
    dst, ok = QInputDialog.getItem(parent, "Replace class", f"Replace '{src}' by:", names, 0, False)
    if ok and src != dst:
        ids = {c.name: c.id for c in target.schema}
        replace_class(mask, source=ids[src], target=ids[dst], guard=guard)
    return ok
