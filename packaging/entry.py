"""Entry point of the frozen app: the same ``segstudio`` command as ``pip install`` gives."""

import multiprocessing

if __name__ == "__main__":
    # DataLoader workers on Windows/macOS re-run this script (spawn); freeze_support lets them reach their task
    multiprocessing.freeze_support()
    from segstudio.cli import entry

    entry()
