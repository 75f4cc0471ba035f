"""Moving between samples and keeping the work: next / previous / next unreviewed, saving (on leaving a sample,
every few seconds, on Ctrl+S), review decisions and reverting to an older mask version. A sample is never left
with edits that could not be saved."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from segstudio.core.errors import SegstudioError
from segstudio.gui.common.errors import show_error
from segstudio.gui.panels.review_panel import ReviewPanel
from segstudio.gui.screen.browser import SampleBrowser
from segstudio.gui.screen.editor import EditorController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.session import SessionController
from segstudio.gui.screen.status import StatusController
from segstudio.workspace import MaskVersion, ReviewStatus

AUTOSAVE_MS = 10_000


class NavigationController(QObject):
    def __init__(self, *, session: SessionController, review: ReviewController, editor: EditorController,
                 browser: SampleBrowser, review_panel: ReviewPanel, status: StatusController, autosave_s: int,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.review, self.editor = session, review, editor
        self.browser, self.review_panel, self.status = browser, review_panel, status
        self._autosave_failed = False
        self.autosave = QTimer(self)
        self.autosave.timeout.connect(self._on_autosave_timeout)
        self.autosave.setInterval(max(1, autosave_s) * 1000 if autosave_s else AUTOSAVE_MS)
        if autosave_s != 0:
            self.autosave.start()
        browser.sig_sample_activated.connect(self.go_to_sample)
        review_panel.sig_status_requested.connect(self.set_review_status)
        review_panel.sig_revert_requested.connect(self._on_review_panel_revert_requested)

    def set_autosave(self, seconds: int) -> None:
        """Autosave every ``seconds`` from now on (0: never)."""
        if seconds > 0:
            self.autosave.setInterval(seconds * 1000)
            self.autosave.start()
        else:
            self.autosave.stop()

    # moving -----------------------------------------------------------------------------------------------------
    def go_to_sample(self, sample_id: str) -> None:
        cur = self.session.current
        if cur is not None and cur.sample.id == sample_id:
            return
        self.save_current()
        if self.editor.dirty and not self.review.read_only:
            # The save failed: leaving would drop the edits (or, at the next visit, their journal). Stay.
            self.status.show_message("Stayed on this image: its edits are not saved yet (see the message). "
                                     "Save again with Ctrl+S once the problem is fixed.", 15000)
            return
        self.session.go_to_id(sample_id)

    def go_next(self) -> None:
        cur = self.session.current
        if cur is not None:
            nxt = self.browser.next_id(cur.sample.id)
            if nxt is not None:
                self.go_to_sample(nxt)

    def go_previous(self) -> None:
        cur = self.session.current
        if cur is not None:
            prev = self.browser.previous_id(cur.sample.id)
            if prev is not None:
                self.go_to_sample(prev)

    def go_next_unreviewed(self) -> None:
        cur = self.session.current
        reviews = self.review.reviews()
        ids = self.browser.visible_ids()
        start = ids.index(cur.sample.id) + 1 if cur is not None and cur.sample.id in ids else 0
        for sid in ids[start:] + ids[:start]:
            st = reviews.get(sid)
            if st is None or st.status == ReviewStatus.UNREVIEWED:
                self.go_to_sample(sid)
                return
        self.status.show_message("Every sample is reviewed.", 5000)

    # saving and reviewing ---------------------------------------------------------------------------------------
    def save_current(self, *, quiet: bool = False) -> MaskVersion | None:
        """Autosave on leaving a sample: the mask (when edited) and a changed comment. A failure is a message
        box (``quiet``: the status bar)."""
        cur = self.session.current
        rec = None
        try:
            rec = self.editor.save()
            if cur is not None and not self.review.read_only:
                comment = self.review_panel.comment_text()
                state = self.review.review(cur.sample.id)
                if comment != state.comment:
                    self.review.set_status(cur.sample.id, state.status, comment=comment)
        except (SegstudioError, OSError) as exc:
            where = ("Your edits are still in the recovery journal." if self.editor.journal_ok else
                     "Your edits could NOT be written to the recovery journal either: they exist only in this "
                     "window. Free some space, then save again (Ctrl+S) before closing.")
            if quiet:
                self.status.show_message(f"Could not save: {getattr(exc, 'message', exc)} {where}", 15000)
            else:
                show_error("Could not save", f"{exc}\n\n{where}")
            self.status.show_saved_state()
        return rec

    def save_now(self) -> None:
        if self.save_current() is None and not self.editor.dirty:
            self.status.show_message("Nothing to save.", 3000)

    def set_review_status(self, status: str) -> None:
        cur = self.session.current
        if cur is None:
            return
        if self.review.read_only:
            ws = self.review.workspace
            reason = ws.read_only_reason if ws is not None else ""
            self.status.show_message(f"Not recorded: this workspace is open read-only ({reason}).", 8000)
            return
        self.save_current()
        try:
            self.review.set_status(cur.sample.id, status, comment=self.review_panel.comment_text())
        except SegstudioError as exc:
            show_error("Could not record the review decision", str(exc))

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_review_panel_revert_requested(self, version: int) -> None:
        cur, ws = self.session.current, self.review.workspace
        if cur is None or ws is None:
            return
        if version == 0:
            if cur.gt is None:
                return
            self.editor.replace_mask(cur.gt)
        else:
            self.editor.replace_mask(ws.versions.load(ws.versions.get(cur.sample.id, version)))
        self.status.show_message(f"Reverted to v{version} (undo with Ctrl+Z); it saves as a new version.", 6000)

    def _on_autosave_timeout(self) -> None:
        if self.editor.dirty and not self.editor.gesture_active and not self.review.read_only:
            self.save_current(quiet=self._autosave_failed)
            # a full disk fails every autosave: the dialog once, then the status bar until a save works
            self._autosave_failed = self.editor.dirty
