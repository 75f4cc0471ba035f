"""Command line: ``segstudio [DATASET]`` opens the app; ``segstudio <command> ...`` runs headless.

Subcommands are modules of ``segstudio.commands`` imported only when named (DESIGN rule 14): ``--help`` and
the GUI start never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from segstudio import __version__

#: command name -> (module under segstudio.commands, one-line help). A command whose module is absent is hidden.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "describe a dataset: format, classes, splits, problems"),
    "train": ("train", "train a model on a dataset (recipe or config)"),
    "predict": ("predict", "run a checkpoint over a dataset and write masks"),
    "evaluate": ("evaluate", "score a checkpoint or predictions folder against GT"),
    "export-onnx": ("export_onnx", "export a checkpoint to ONNX with a parity check"),
    "screenshot": ("screenshot", "render the main window offscreen to a PNG"),
    "export": ("export", "export the dataset with its corrections to a format (manifest, change report)"),
    "restore-backup": ("restore_backup", "undo a write-back: put the replaced GT files back"),
    "retrain": ("retrain", "fine-tune the current model on the corrections; the promotion gate judges it"),
    "models": ("models", "the workspace's models and their history; promote, roll back, import a run from elsewhere"),
    "queue": ("queue", "the next images to review, ranked by a strategy"),
    "pseudo-label": ("pseudo_label", "accept confident predictions of unlabelled images as labels"),
    "quality": ("quality", "rank the labels most likely wrong first, with reasons (CSV + JSON)"),
    "report": ("report", "an HTML report of runs: curves, per-class table, worst images, comparison (+ CSV, JSON)"),
    "cv": ("crossval", "cross-validate a recipe: k folds, each scored on images its model never saw"),
    "sweep": ("sweep", "train a grid of configs (architectures × losses × augmentations), resumable, with one report"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {
        name: (mod, help_)
        for name, (mod, help_) in COMMANDS.items()
        if importlib.util.find_spec(f"segstudio.commands.{mod}") is not None
    }


def _command_list(commands: dict[str, tuple[str, str]]) -> str:
    return "commands (segstudio COMMAND --help for each):\n" + "\n".join(
        f"  {name:<15} {help_}" for name, (_, help_) in commands.items()
    )


GUI_EXAMPLES = """examples:
  segstudio                                   # the bundled sample (8 chest X-rays with lung masks)
  segstudio ~/data/lungs                      # a dataset folder (format detected)
  segstudio ~/data/coco/annotations.json --predictions ~/preds/coco
  segstudio info ~/data/lungs --stats         # headless: describe a dataset
"""


def _gui_parser(commands: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    epilog = _command_list(commands) + "\n\n" + GUI_EXAMPLES
    p = argparse.ArgumentParser(
        prog="segstudio",
        description="Open a segmentation dataset to review GT against predictions, correct masks and retrain. "
        "With no DATASET the bundled sample (8 chest X-rays with lung masks) opens.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", nargs="?", help="dataset folder or annotation file (format detected)")
    p.add_argument("--format", dest="format", metavar="NAME", help="dataset format, when detection is ambiguous")
    p.add_argument("--predictions", metavar="DIR", help="folder of predicted masks shown as the prediction layer "
                   "(one file per image, named like it; see docs/formats.md)")
    p.add_argument("--sample", metavar="ID", help="sample id to show first")
    p.add_argument("--version", action="version", version=f"segstudio {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console too")
    st = p.add_argument_group("self-test (checks an installation; prints one line, exit 0 when it works)")
    st.add_argument("--selftest", action="store_true",
                    help="open the bundled sample, render the window, build/train/save/reload a small model, exit")
    st.add_argument("--selftest-screenshot", metavar="PNG", help="with --selftest: write the rendered window here")
    st.add_argument("--selftest-device", metavar="DEV", default="auto",
                    help="with --selftest: auto (a GPU when there is one), cpu or cuda (default: auto)")
    return p


#: exit status after the reader of stdout went away (``segstudio info | head``): 128 + SIGPIPE, as a C tool's
EXIT_BROKEN_PIPE = 141


def _broken_pipe() -> int:
    """Stop quietly, as other command-line tools do, when stdout's reader has gone: no traceback, and nothing
    more written (stdout points to /dev/null, so the interpreter's final flush cannot fail again)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def entry() -> None:
    """The process's entry (the ``segstudio`` script, ``python -m segstudio``, the frozen app): :func:`main`, then
    exit without the interpreter's last garbage collection walking every object torch, timm and torchvision made
    (about 1 s of a headless command's exit on a 2-core CPU, 0.2 s without it). ``gc.freeze`` only exempts what
    exists now from cyclic collection: atexit handlers, open files' flushes and reference-counted clean-up still
    run as in any exit."""
    import gc

    rc = main()
    gc.freeze()
    raise SystemExit(rc)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    commands = _available()

    from segstudio.core.logsetup import setup_logging

    if args_list and args_list[0] in commands:
        name = args_list[0]
        module = importlib.import_module(f"segstudio.commands.{commands[name][0]}")
        parser = argparse.ArgumentParser(prog=f"segstudio {name}", description=commands[name][1],
                                         epilog=getattr(module, "EXAMPLES", None),
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(parser)
        ns = parser.parse_args(args_list[1:])
        setup_logging(console=bool(getattr(ns, "verbose", False)))
        # exit codes (docs/cli.md): 0 success, 1 done but some inputs failed (listed), 2 a user error with a
        # message, 130 interrupted, 141 stdout closed by its reader
        try:
            rc = int(module.run(ns) or 0)
            sys.stdout.flush()
            return rc
        except BrokenPipeError:
            return _broken_pipe()
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # a readable message, never a bare traceback, for errors we raise on purpose
            from segstudio.core.errors import SegstudioError

            if isinstance(exc, SegstudioError):
                try:
                    print(f"segstudio {name}: error: {exc}", file=sys.stderr)
                except BrokenPipeError:
                    pass
                return 2
            raise

    if args_list and not args_list[0].startswith("-"):  # `segstudio inof PATH`: the typo, not argparse's complaint
        problem = _missing_path(argparse.Namespace(dataset=args_list[0], predictions=None), commands)
        if problem:
            print(problem, file=sys.stderr)
            return 2
    ns = _gui_parser(commands).parse_args(args_list)
    problem = _missing_path(ns, commands)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    setup_logging(console=ns.verbose)
    if ns.selftest:
        from pathlib import Path

        from segstudio.selftest import run_selftest

        report = run_selftest(
            screenshot=Path(ns.selftest_screenshot) if ns.selftest_screenshot else None,
            device=ns.selftest_device,
        )
        print(report.summary(), flush=True)
        return report.exit_code
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    from segstudio.gui.app import run_app

    return run_app(dataset=ns.dataset, format_name=ns.format, predictions=ns.predictions,
                   sample_id=ns.sample)


def _missing_path(ns: argparse.Namespace, commands: dict[str, tuple[str, str]]) -> str | None:
    """The error for ``segstudio WORD`` when WORD is neither a command nor an existing path (never a window on a
    dataset that is not there); ``None`` when the paths given exist."""
    import difflib
    from pathlib import Path

    if ns.dataset is not None and not Path(ns.dataset).expanduser().exists():
        word = ns.dataset
        close = difflib.get_close_matches(word, list(commands), n=3, cutoff=0.6)
        hint = f"\nDid you mean: {' or '.join(f'segstudio {c}' for c in close)}?" if close else ""
        return (f"segstudio: error: {word!r} is not a command, and there is no file or folder {word!r} "
                f"(looked in {Path.cwd()}).{hint}\n"
                f"Fix: give an existing dataset folder or annotation file, or one of the commands.\n\n"
                f"{_command_list(commands)}\n\nsegstudio --help shows every option.")
    if ns.predictions is not None and not Path(ns.predictions).expanduser().exists():
        return (f"segstudio: error: the predictions folder {ns.predictions!r} does not exist.\n"
                "Fix: give the folder `segstudio predict ... --out DIR` wrote, or leave --predictions out.")
    return None


#: the libraries Qt's xcb platform plugin loads (name -> (soname, Debian/Ubuntu package)): tools/sysdeps.sh
XCB_LIBRARIES: dict[str, tuple[str, str]] = {
    "xcb-cursor": ("libxcb-cursor.so.0", "libxcb-cursor0"),
    "xcb-icccm": ("libxcb-icccm.so.4", "libxcb-icccm4"),
    "xcb-keysyms": ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    "xcb-image": ("libxcb-image.so.0", "libxcb-image0"),
    "xcb-render-util": ("libxcb-render-util.so.0", "libxcb-render-util0"),
    "xcb-shape": ("libxcb-shape.so.0", "libxcb-shape0"),
    "xcb-randr": ("libxcb-randr.so.0", "libxcb-randr0"),
    "xcb-xkb": ("libxcb-xkb.so.1", "libxcb-xkb1"),
    "xcb-xfixes": ("libxcb-xfixes.so.0", "libxcb-xfixes0"),
    "xkbcommon": ("libxkbcommon.so.0", "libxkbcommon0"),
    "xkbcommon-x11": ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    "EGL": ("libEGL.so.1", "libegl1"),
    "GL": ("libGL.so.1", "libgl1"),
    "fontconfig": ("libfontconfig.so.1", "libfontconfig1"),
    "dbus-1": ("libdbus-1.so.3", "libdbus-1-3"),
    "glib-2.0": ("libglib-2.0.so.0", "libglib2.0-0"),
}

_OFFSCREEN_FIX = ("Without a display, `segstudio screenshot --out FILE` renders the window to a PNG, and "
                  "QT_QPA_PLATFORM=offscreen runs it headless (tests, --selftest).")


def display_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why a window cannot open here (a message with the fix), or ``None``. Checked before Qt is imported: Qt
    itself aborts the process (SIGABRT, exit 134) without a display or with its xcb libraries missing.

    Linux only (Windows and macOS always have their platform); ``SEGSTUDIO_SKIP_DISPLAY_CHECK=1`` skips it."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or env.get("SEGSTUDIO_SKIP_DISPLAY_CHECK") == "1":
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if platform not in ("", "xcb"):
        return None  # offscreen, wayland, vnc, eglfs, ...: Qt's own checks are good enough there
    display, wayland = env.get("DISPLAY", ""), env.get("WAYLAND_DISPLAY", "")
    if not display and (platform == "xcb" or not wayland):
        why = ("QT_QPA_PLATFORM=xcb but DISPLAY is not set" if platform == "xcb"
               else "neither DISPLAY nor WAYLAND_DISPLAY is set")
        return (f"segstudio: error: cannot open a window: no display ({why}).\n"
                "Fix: run it in a desktop session (or over `ssh -X`). " + _OFFSCREEN_FIX)
    if platform == "xcb" or not wayland:
        missing = _missing_xcb_libraries()
        if missing:
            pkgs = " ".join(missing.values())
            return ("segstudio: error: cannot open a window: Qt's xcb platform needs libraries that are not installed: "
                    + ", ".join(f"lib{lib} ({pkg})" for lib, pkg in missing.items()) + ".\n"
                    f"Fix (Debian/Ubuntu): sudo apt-get install {pkgs}\n"
                    "  (in a source checkout: sudo tools/sysdeps.sh installs all of them). " + _OFFSCREEN_FIX)
    return None


def _missing_xcb_libraries() -> dict[str, str]:
    """The xcb plugin's libraries the dynamic loader cannot load, as name -> package. ``dlopen`` by soname asks
    what Qt will ask, in-process and in ~10 ms; ``ctypes.util.find_library`` would spawn ldconfig (and gcc for
    each missing one) on every start. Qt loads these libraries next anyway, so loading them early costs nothing."""
    import ctypes

    missing = {}
    for lib, (soname, pkg) in XCB_LIBRARIES.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing[lib] = pkg
    return missing
