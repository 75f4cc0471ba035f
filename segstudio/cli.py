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
}


def _available() -> dict[str, tuple[str, str]]:
    return {
        name: (mod, help_)
        for name, (mod, help_) in COMMANDS.items()
        if importlib.util.find_spec(f"segstudio.commands.{mod}") is not None
    }


def _gui_parser(commands: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    epilog = "commands (segstudio COMMAND --help for each):\n" + "\n".join(
        f"  {name:<13} {help_}" for name, (_, help_) in commands.items()
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    commands = _available()

    from segstudio.core.logsetup import setup_logging

    if args_list and args_list[0] in commands:
        name = args_list[0]
        module = importlib.import_module(f"segstudio.commands.{commands[name][0]}")
        parser = argparse.ArgumentParser(prog=f"segstudio {name}", description=commands[name][1])
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

    ns = _gui_parser(commands).parse_args(args_list)
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
    from segstudio.gui.app import run_app

    return run_app(dataset=ns.dataset, format_name=ns.format, predictions=ns.predictions,
                   sample_id=ns.sample)
