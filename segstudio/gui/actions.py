"""The main window's actions, declared once as a table (DESIGN rule 10): text, shortcut, icon, menu, tool bar.

The table holds no handlers: whoever builds the actions passes a mapping from action name to a callable of the
controller that owns the behaviour (the window composes that mapping). ``arg`` (when set) is passed to the
callable, so one callable serves a family of actions (tools, review states, view modes). ``group`` makes checkable
actions exclusive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import qtawesome as qta
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QWidget

Key = str | QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    name: str
    text: str
    menu: str
    shortcuts: tuple[Key, ...] = ()
    icon: str | None = None
    tip: str = ""
    checkable: bool = False
    toolbar: str | None = None  # "main" or "tools"
    arg: object = None
    group: str | None = None
    separator_before: bool = False


_SK = QKeySequence.StandardKey

ACTIONS: tuple[ActionSpec, ...] = (
    # File
    ActionSpec("open_folder", "&Open Dataset Folder…", "&File", (_SK.Open,),
               "fa5s.folder-open", "Open a dataset folder (format detected)", toolbar="main"),
    ActionSpec("open_file", "Open &Annotation File…", "&File", ("Ctrl+Shift+O",),
               "fa5s.file-code", "Open a COCO / labelme JSON or another annotation file"),
    ActionSpec("open_predictions", "Open &Predictions Folder…", "&File", (),
               "fa5s.robot", "Show a folder of predicted masks as the prediction layer"),
    ActionSpec("open_sample", "Open the Bundled &Sample", "&File", (), "fa5s.lungs"),
    ActionSpec("start_screen", "Start S&creen", "&File", (), "fa5s.home",
               "Recent datasets and workspaces with their review progress; open a folder, a file or the sample"),
    ActionSpec("save", "&Save Correction", "&File", (_SK.Save,), "fa5s.save",
               "Save the mask as a new version now (it also saves by itself every 10 s and on image change)",
               toolbar="main", separator_before=True),
    ActionSpec("export", "&Export…", "&File", ("Ctrl+E",), "fa5s.file-export",
               "Export the dataset with its corrections in a format another tool trains on (Ctrl+E)",
               separator_before=True),
    ActionSpec("writeback", "&Write Back to Dataset…", "&File", (), "fa5s.file-import",
               "Replace the dataset's own GT files with the corrected masks, after a confirmation; the originals "
               "are kept in a backup"),
    ActionSpec("restore_backup", "Restore &Backup…", "&File", (), "fa5s.history",
               "Put the GT files a write-back replaced back from its backup"),
    ActionSpec("quit", "&Quit", "&File", ("Ctrl+Q",), "fa5s.power-off", separator_before=True),
    # Edit
    ActionSpec("undo", "&Undo", "&Edit", ("Ctrl+Z",), "fa5s.undo", "Undo (Ctrl+Z)", toolbar="tools"),
    ActionSpec("redo", "&Redo", "&Edit", ("Ctrl+Shift+Z", "Ctrl+Y"), "fa5s.redo",
               "Redo (Ctrl+Shift+Z)", toolbar="tools"),
    ActionSpec("accept_prediction", "Accept &Prediction (Whole Image)", "&Edit", ("Ctrl+Shift+A",), "fa5s.check-double", "Copy the prediction into the mask (one undoable step)",
               toolbar="tools", separator_before=True),
    ActionSpec("fill_holes", "&Fill Holes in Class", "&Edit", (), "fa5s.fill", arg="fill_holes",
               separator_before=True),
    ActionSpec("remove_islands", "Remove &Islands Smaller Than…", "&Edit", (), "fa5s.broom",
               arg="remove_islands"),
    ActionSpec("keep_largest", "&Keep Largest Components…", "&Edit", (), "fa5s.object-group",
               arg="keep_largest"),
    ActionSpec("dilate", "&Dilate Class…", "&Edit", (), "fa5s.expand-arrows-alt", arg="dilate"),
    ActionSpec("erode", "&Erode Class…", "&Edit", (), "fa5s.compress-arrows-alt", arg="erode"),
    ActionSpec("replace_class", "Re&place Class…", "&Edit", (), "fa5s.exchange-alt",
               arg="replace_class"),
    ActionSpec("refine_edge", "Refine &Edge of Class…", "&Edit", ("Ctrl+Shift+E",), "fa5s.crosshairs",
               "Propose the selected class's outline moved onto the nearest strong image edge within a radius "
               "(Enter accepts, Esc rejects)", arg="refine_edge"),
    ActionSpec("smooth_outline", "&Smooth Outline of Class…", "&Edit", (), "fa5s.circle-notch",
               "Propose the selected class with a smoothed outline (Enter accepts, Esc rejects)",
               arg="smooth_outline"),
    # Tools
    ActionSpec("preferences", "Pre&ferences…", "&Edit", ("Ctrl+,",), "fa5s.cog",
               "Colours, opacity, autosave, device and threads, workspace location, reviewer, shortcuts",
               separator_before=True),
    ActionSpec("tool_pan", "&Pan / Zoom", "&Tools", ("H",), "fa5s.hand-paper", "Pan and zoom (H)",
               True, "tools", "pan", "tool"),
    ActionSpec("tool_brush", "&Brush", "&Tools", ("B",), "fa5s.paint-brush",
               "Brush (B): paint the selected class; right button erases; [ and ] size", True, "tools", "brush",
               "tool"),
    ActionSpec("tool_eraser", "&Eraser", "&Tools", ("E",), "fa5s.eraser", "Eraser (E)", True,
               "tools", "eraser", "tool"),
    ActionSpec("tool_polygon", "P&olygon", "&Tools", ("P",), "fa5s.draw-polygon",
               "Polygon (P): click vertices, double-click or Enter closes; Shift erases", True, "tools", "polygon",
               "tool"),
    ActionSpec("tool_lasso", "&Lasso", "&Tools", ("L",), "fa5s.bezier-curve",
               "Lasso (L): draw a freehand outline to fill", True, "tools", "lasso", "tool"),
    ActionSpec("tool_fill", "&Flood Fill", "&Tools", ("K",), "fa5s.fill-drip",
               "Flood fill (K): the clicked region takes the selected class", True, "tools", "fill", "tool"),
    ActionSpec("tool_rectangle", "&Rectangle", "&Tools", ("M",), "fa5s.vector-square",
               "Rectangle (M)", True, "tools", "rectangle", "tool"),
    ActionSpec("tool_grabcut", "&GrabCut Box", "&Tools", ("Shift+G",), "fa5s.object-group",
               "GrabCut (Shift+G): drag a box around an object; its segmentation is proposed for the selected "
               "class — Enter accepts, Esc rejects", True, "tools", "grabcut", "tool"),
    ActionSpec("tool_livewire", "Live-&Wire", "&Tools", ("Shift+W",), "fa5s.route",
               "Live-wire (Shift+W): click anchors around an object, the outline follows the image's edges; "
               "double-click or Enter closes it into a proposal — Enter accepts, Esc rejects", True, "tools",
               "livewire", "tool"),
    ActionSpec("tool_predict_here", "Predict &Here", "&Tools", ("Shift+P",), "fa5s.bullseye",
               "Predict here (Shift+P): drag a box, or click, and the current model's answer for the selected class "
               "there is proposed — Enter accepts, Esc rejects", True, "tools", "predict-here", "tool"),
    ActionSpec("tool_sam", "Cli&ck to Segment (SAM)", "&Tools", ("Shift+S",), "fa5s.mouse-pointer",
               "Click to Segment (Shift+S): a SAM model proposes the clicked object for the selected class; click "
               "again to refine (Shift+click or right-click: not the object), drag a box — Enter accepts, Esc "
               "rejects. Choose the model with Model → Load Promptable Model", True, "tools", "sam", "tool"),
    ActionSpec("tool_accept_lasso", "Accept Prediction &Inside Lasso", "&Tools", ("Shift+L",),
               "fa5s.magic", "Draw a lasso; the prediction inside it is copied into the mask (Shift+L)", True,
               "tools", "accept-lasso", "tool"),
    ActionSpec("brush_smaller", "Brush &Smaller", "&Tools", ("[",), None, arg=-1,
               separator_before=True),
    ActionSpec("brush_larger", "Brush &Larger", "&Tools", ("]",), None, arg=+1),
    ActionSpec("brush_shape", "Square Brush", "&Tools", ("Shift+B",), "fa5s.square",
               checkable=True),
    ActionSpec("finish_shape", "Close Polygon / Accept Proposal", "&Tools", ("Return", "Enter"), None),
    ActionSpec("cancel_shape", "Cancel Shape / Reject Proposal", "&Tools", ("Esc",), None),
    # Navigate
    ActionSpec("prev", "&Previous Image", "&Navigate", ("Left", "PgUp", "Backspace"),
               "fa5s.arrow-left", "Previous sample in the list's order (←)", toolbar="main"),
    ActionSpec("next", "&Next Image", "&Navigate", ("Right", "PgDown", "N", "Space"),
               "fa5s.arrow-right", "Next sample in the list's order (→, Space)", toolbar="main"),
    ActionSpec("next_unreviewed", "Next &Unreviewed", "&Navigate", ("Ctrl+Right",),
               "fa5s.forward"),
    # Review
    ActionSpec("next_in_queue", "Next to Re&view (Queue)", "&Navigate", ("Q",),
               "fa5s.list-ol", "The next sample of the review queue: most uncertain, most disagreement, changed "
               "most, or confident unlabelled (pseudo-labels), as chosen in the Review panel (Q)"),
    ActionSpec("review_accept", "&Accept", "&Review", ("A",), "fa5s.check",
               "Accept this sample (A)", toolbar="main", arg="accepted"),
    ActionSpec("review_reject", "&Reject", "&Review", ("R",), "fa5s.times",
               "Reject this sample (R)", toolbar="main", arg="rejected"),
    ActionSpec("review_flag", "&Flag", "&Review", ("F",), "fa5s.flag",
               "Flag this sample for a second look (F)", toolbar="main", arg="flagged"),
    ActionSpec("review_clear", "&Clear Decision", "&Review", ("U",), "fa5s.circle",
               arg="unreviewed"),
    # Review: label quality (gui.loop.quality.QualityController)
    ActionSpec("quality_rank", "Rank Labels by &Suspicion", "&Review", ("Ctrl+Shift+Q",), "fa5s.sort-amount-down",
               "Rank every label by how likely it is wrong (parts, side, area, position, edges, specks, holes; the "
               "current model's predictions too when it has predicted the images): a Suspicion column, the reasons "
               "in the Review panel, and the \"Most suspicious label\" queue (Ctrl+Shift+Q)", separator_before=True),
    ActionSpec("quality_rank_folds", "Rank Labels with &Out-of-Fold Models…", "&Review", (), "fa5s.layer-group",
               "Train one model per fold, each on the other folds' labels, and rank every label with the predictions "
               "of the model that did not see it: the model checks without the leniency of a model that learned "
               "these labels (minutes; Stop is in the status bar)"),
    ActionSpec("bulk_flag", "Flag Selected Samples", "&Review", (), "fa5s.flag",
               "Flag every sample selected in the sample list (Ctrl/Shift-click) for a second look, in one step; "
               "they leave the review queue"),
    ActionSpec("bulk_reject", "Reject Selected Labels", "&Review", (), "fa5s.times",
               "Reject the labels of every sample selected in the sample list, in one step: they leave the review "
               "queue, the export leaves them out by default, and training and retraining leave them out until "
               "they are corrected"),
    # View
    ActionSpec("fit", "&Fit to Window", "&View", ("Ctrl+0", "Home"), "fa5s.expand",
               "Fit the image (Ctrl+0)", toolbar="main", separator_before=True),
    ActionSpec("zoom_1to1", "Actual &Size (1:1)", "&View", ("Ctrl+1",), "fa5s.search"),
    ActionSpec("zoom_in", "Zoom &In", "&View", (_SK.ZoomIn, "+", "="), "fa5s.search-plus"),
    ActionSpec("zoom_out", "Zoom &Out", "&View", (_SK.ZoomOut, "-"), "fa5s.search-minus"),
    ActionSpec("toggle_gt", "Show &GT / Correction", "&View", ("G",), "fa5s.layer-group",
               "Show or hide the GT / correction overlay (G)", True, "main", separator_before=True),
    ActionSpec("toggle_pred", "Show P&rediction", "&View", ("V",), "fa5s.robot",
               "Show or hide the prediction overlay (V)", True, "main"),
    ActionSpec("toggle_error", "Show &Error Map", "&View", ("X",), "fa5s.not-equal",
               "Show or hide the error map: FP red (predicted, not in GT), FN blue (in GT, missed), wrong class yellow (X)", True, "main"),
    ActionSpec("toggle_uncertainty", "Show &Uncertainty", "&View", ("Shift+V",), "fa5s.fire", "Show or hide the model's per-pixel uncertainty as a heat map (Shift+V)",
               True),
    ActionSpec("contour_mode", "&Contours Only", "&View", ("C",), "fa5s.draw-polygon",
               "Draw masks as outlines (C)", True),
    ActionSpec("view_single", "Single View", "&View", ("Alt+1",), "fa5s.square", "", True,
               None, "single", "view", True),
    ActionSpec("view_gt_pred", "Split: GT | Prediction", "&View", ("Alt+2",), "fa5s.columns",
               "", True, "main", "gt|pred", "view"),
    ActionSpec("view_before_after", "Split: Before | After", "&View", ("Alt+3",),
               "fa5s.history", "", True, None, "before|after", "view"),
    ActionSpec("invert", "&Invert Image", "&View", ("I",), "fa5s.adjust", checkable=True,
               separator_before=True),
    ActionSpec("view.reset_display", "&Reset Window/Level", "&View", ("Ctrl+R",), "fa5s.undo-alt"),
    # Train
    ActionSpec("train_start", "&Start Training", "&Train", ("Ctrl+T",), "fa5s.play",
               "Train a model on this dataset in the background with the Training panel's settings (Ctrl+T)"),
    ActionSpec("train_stop", "S&top Training", "&Train", ("Ctrl+Shift+T",),
               "fa5s.stop", "Stop the run after the current batch; its last checkpoint is kept"),
    ActionSpec("train_retrain", "&Retrain on Corrections", "&Train", ("Ctrl+Shift+R",),
               "fa5s.redo-alt", "Fine-tune the current model on GT and corrections, compare before/after on the "
               "same validation images; the promotion gate decides (Ctrl+Shift+R)"),
    ActionSpec("train_report", "Re&port on Runs…", "&Train", (), "fa5s.file-alt",
               "Score this dataset's runs on their validation images and write one HTML report: curves, per-class "
               "table, worst images, comparison (segstudio report)"),
    ActionSpec("train_sweep", "Run S&weep…", "&Train", (), "fa5s.th",
               "Train a grid of configs (architectures × losses × augmentations) from a sweep file into the workspace, "
               "one run after another in the background; resumable, with one report (segstudio sweep)"),
    ActionSpec("train_add_sweep", "Add Sweep &Folder…", "&Train", (), "fa5s.folder-plus",
               "List a sweep trained elsewhere (segstudio sweep --out DIR, here or on a cluster) in the run history, "
               "by reference: nothing is copied"),
    ActionSpec("train_export_bundle", "E&xport Run Bundle…", "&Train", (), "fa5s.file-export",
               "Write the Training panel's settings and the open dataset as a folder that trains with torchrun on this "
               "computer's GPUs or a cluster's nodes: config, dataset reference, launch script, SLURM template"),
    ActionSpec("train_import_run", "&Import Run Folder…", "&Train", (), "fa5s.file-import",
               "Copy a finished run folder (a run bundle's, or segstudio train --out) into the run history with its "
               "curves, metrics and checkpoints; Use This Model then makes it the workspace's model"),
    ActionSpec("train_panel", "Show the Training &Panel", "&Train", (), "fa5s.chart-line",
               separator_before=True),
    # Model (gui.predictions_view.PredictionsController)
    ActionSpec("predict_current", "Predict &Current Image", "&Model", ("Ctrl+P",),
               "fa5s.magic", "Predict this image with the current model now (Ctrl+P)"),
    ActionSpec("predict_all", "Predict &All Images", "&Model", ("Ctrl+Shift+P",),
               "fa5s.play-circle", "Predict every image with the current model in the background (Ctrl+Shift+P)"),
    ActionSpec("predict_selected", "Predict &Selected Images", "&Model", ("Ctrl+Alt+P",), "fa5s.tasks",
               "Predict the images selected in the sample list (Ctrl/Shift-click) in the background (Ctrl+Alt+P)"),
    ActionSpec("accept_pseudo_labels", "Accept Predictions as &Labels (Unlabelled)", "&Model", ("Ctrl+Alt+A",), "fa5s.tags",
               "Pseudo-labels: the predictions of the selected unlabelled images become their labels and train "
               "the next round; labelled or corrected images are left alone (Ctrl+Alt+A)", separator_before=True),
    ActionSpec("predict_stop", "S&top Predicting", "&Model", ("Ctrl+.",), "fa5s.stop-circle",
               "Stop the prediction run after the current batch; what is predicted stays (Ctrl+.)"),
    ActionSpec("metrics_dashboard", "&Metrics Dashboard…", "&Model", ("Ctrl+Shift+D",), "fa5s.table",
               "Score the open predictions against the ground truth or the corrections: per class, per image, "
               "Dice histogram, confusion matrix (Ctrl+Shift+D)", separator_before=True),
    ActionSpec("load_promptable_model", "Load Promptable &Model (SAM)…", "&Model", (), "fa5s.mouse-pointer",
               "Choose the SAM checkpoint (.pth) or ONNX encoder/decoder pair that Click to Segment uses; it is "
               "remembered. Nothing is downloaded", separator_before=True),
    # Help
    ActionSpec("shortcuts", "&Keyboard Shortcuts", "&Help", ("F1",), "fa5s.keyboard"),
    ActionSpec("tour", "Getting Started &Tour", "&Help", (), "fa5s.route",
               "Five steps through the window: open, compare, correct, retrain, export"),
    ActionSpec("about", "&About segstudio", "&Help", (), "fa5s.info-circle"),
    ActionSpec("open_logs", "Open &Log Folder", "&Help", (), "fa5s.file-alt"),
)


def build_actions(parent: QWidget, handlers: Mapping[str, Callable[..., object]],
                  specs: tuple[ActionSpec, ...] = ACTIONS) -> dict[str, QAction]:
    """Create a QAction per spec, parented to ``parent`` and wired to ``handlers[spec.name]``: called with
    ``spec.arg`` when the spec has one, with the checked state when it is checkable, else with nothing. Every
    spec needs a handler and every handler a spec (a typo is an error here, not a dead menu entry)."""
    missing = [s.name for s in specs if s.name not in handlers]
    unknown = sorted(set(handlers) - {s.name for s in specs})
    if missing or unknown:
        raise ValueError(f"actions without a handler: {missing}; handlers without an action: {unknown}")
    out: dict[str, QAction] = {}
    groups: dict[str, QActionGroup] = {}
    for spec in specs:
        act = QAction(spec.text, parent)
        act.setObjectName(f"action_{spec.name}")
        if spec.icon:
            act.setIcon(qta.icon(spec.icon, color="#d0d0d0", color_active="#ffffff"))
        if spec.shortcuts:
            act.setShortcuts([QKeySequence(s) for s in spec.shortcuts])
        tip = spec.tip or spec.text.replace("&", "").rstrip("…")
        act.setToolTip(tip)
        act.setStatusTip(tip)
        act.setCheckable(spec.checkable)
        if spec.group:
            groups.setdefault(spec.group, QActionGroup(parent)).addAction(act)
        handler = handlers[spec.name]
        if spec.group or spec.arg is not None:
            act.triggered.connect(lambda _c=False, h=handler, a=spec.arg: h(a))
        elif spec.checkable:
            act.toggled.connect(handler)
        else:
            act.triggered.connect(lambda _c=False, h=handler: h())
        out[spec.name] = act
    return out


def shortcut_rows(specs: tuple[ActionSpec, ...] = ACTIONS) -> list[tuple[str, str, str]]:
    """(menu, action, keys) for the shortcuts dialog and the docs, generated from the table."""
    rows = []
    for s in specs:
        if not s.shortcuts:
            continue
        keys = ", ".join(QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in s.shortcuts)
        rows.append((s.menu.replace("&", ""), s.text.replace("&", "").rstrip("…"), keys))
    return rows
