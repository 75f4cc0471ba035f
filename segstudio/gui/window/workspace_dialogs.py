"""Questions and notices about the workspace itself: held by another segstudio, rebuilt, read-only, edits that
could not be saved. Module functions (not methods) so tests can answer them without a modal dialog."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from segstudio.workspace.lock import WorkspaceLockedError
from segstudio.workspace.rebuild import RebuildReport


def ask_open_read_only(parent: QWidget | None, err: WorkspaceLockedError) -> bool:
    """Another segstudio holds the workspace: True to open it read-only, False to cancel."""
    holder = err.holder.describe() if err.holder is not None else "another process (its details could not be read)"
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Workspace in use")
    box.setText(f"This workspace is being edited by another segstudio:\n{holder}.")
    box.setInformativeText(
        "Only one segstudio can save to a workspace at a time. Open it read-only to look at it (nothing you do "
        f"will be saved), or cancel and close the other one first.\n\n{err.path}"
    )
    read_only = box.addButton("Open read-only", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is read_only


def tell_rebuilt(parent: QWidget | None, report: RebuildReport) -> None:
    QMessageBox.warning(parent, "Workspace rebuilt", report.message())


def confirm_close_unsaved(parent: QWidget | None, journaled: bool) -> bool:
    """A save failed as the window closes: True to close anyway."""
    where = ("They are in the recovery journal and will be offered again at the next start." if journaled else
             "They could not be written to the recovery journal either: closing now loses them.")
    answer = QMessageBox.question(
        parent, "Edits not saved", f"The last edits could not be saved. {where}\n\nClose anyway?",
        QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Close
