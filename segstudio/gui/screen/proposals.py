"""What an assisted tool offers before it changes anything: the :class:`Proposal` (a class's pixels inside a
region), how it is drawn over the image, and the names of the tools that make one. The editor
(``gui.screen.editor.EditorController``) shows, accepts (one undo step) and rejects it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GRABCUT", "LIVEWIRE", "PREDICT_HERE", "PREDICT_HERE_CLICK_PX", "PROPOSAL_LAYER", "SAM", "Proposal",
           "proposal_rgba"]

#: the proposal an assisted tool offers (GrabCut, refine edge, smoothing): drawn above everything, not in the label
PROPOSAL_LAYER = "proposal"
#: the tool that proposes GrabCut's segmentation of a dragged box
GRABCUT = "grabcut"
#: intelligent scissors: clicked anchors joined along the image's edges, closed into a proposal
LIVEWIRE = "livewire"
#: the current model on a dragged box (or a click's neighbourhood), its answer for the selected class proposed
PREDICT_HERE = "predict-here"
#: the side of the box a plain click asks the model about
PREDICT_HERE_CLICK_PX = 256
#: click to segment: a SAM-family model's mask from clicked points and a dragged box (``gui.screen.sam_tool``)
SAM = "sam"


@dataclass(frozen=True)
class Proposal:
    """What an assisted tool offers for ``class_id``: inside ``region`` (bool, the image's shape) the class's
    pixels become ``plane``; nothing changes until it is accepted (Enter), as one undo step."""

    plane: np.ndarray
    region: np.ndarray
    class_id: int
    tool: str


def proposal_rgba(plane: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """The proposal as an overlay: a light fill striped every 6 px (so that it never reads as the label) and a
    solid outline, in the class's colour."""
    import cv2

    h, w = plane.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    if not plane.any():
        return rgba
    u8 = plane.view(np.uint8) if plane.dtype == np.bool_ else plane.astype(np.uint8)
    yy, xx = np.ogrid[:h, :w]
    stripes = ((xx + yy) % 6) < 2
    fill = plane & stripes
    rgba[..., :3][plane] = colour
    rgba[..., 3][plane] = 70
    rgba[..., 3][fill] = 170
    edge = u8.astype(bool) & ~cv2.erode(u8, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                                        borderValue=0).astype(bool)
    edge = cv2.dilate(edge.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    rgba[..., :3][edge] = (255, 255, 255)
    rgba[..., 3][edge] = 255
    return rgba
