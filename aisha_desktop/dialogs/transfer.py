"""What the CSV dialogs share: a transfer's progress bar, its line of text and its cancel
button (shown only while data moves), and byte counts in words."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton

PROGRESS_MAX = 2**31 - 1


def human_size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / 1024 / 1024:.1f} MB"


class Transfer:
    def __init__(self, on_cancel: Callable[[], None]) -> None:
        self.bar = QProgressBar()
        self.bar.setObjectName("progress")
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(14)
        self.label = QLabel()
        self.label.setStyleSheet("color: #555;")
        self.cancel_button = QPushButton("Cancel transfer")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.clicked.connect(on_cancel)
        self.finish()

    def start(self, text: str, *, steps: int = 0, cancel: str = "Cancel transfer") -> None:
        """Show the transfer; `steps` 0: busy until `step` says how far it is; `cancel` is
        what the cancel button says it stops."""
        self.cancel_button.setText(cancel)
        self.bar.setRange(0, steps)
        self.bar.setValue(0)
        self.label.setText(text)
        for widget in (self.bar, self.label, self.cancel_button):
            widget.show()

    def step(self, done: int, total: int, text: str) -> None:
        """`total` 0: how far is not known (busy)."""
        if total > PROGRESS_MAX:  # a progress bar counts in C ints
            done, total = done * 1000 // total, 1000
        self.bar.setRange(0, total)
        self.bar.setValue(min(done, total))
        self.label.setText(text)

    def finish(self) -> None:
        for widget in (self.bar, self.label, self.cancel_button):
            widget.hide()

    def button_row(self, *buttons: QPushButton) -> QHBoxLayout:
        """The dialog's buttons: the transfer's text on the left, cancel before `buttons`."""
        row = QHBoxLayout()
        row.addWidget(self.label)
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        for button in buttons:
            row.addWidget(button)
        return row
