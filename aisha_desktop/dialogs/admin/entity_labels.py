"""Entity labels (guide 6.6): plural and singular names per entity, a live preview, save
(PUT, only the rows that changed) and reset of one entity or all (DELETE, confirmed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.admin.base import AdminDialog
from aisha_desktop.dialogs.common import field_error_label, field_errors

ENTITIES: tuple[str, ...] = ("accounts", "contacts", "leads", "opportunities", "activities")
LABEL_MAX = 100  # the server's limit


@dataclass(frozen=True, slots=True)
class Label:
    plural: str
    singular: str
    default_plural: str
    default_singular: str
    customized: bool

    @classmethod
    def from_json(cls, key: str, data: Any) -> Label:
        item = data.get(key) if isinstance(data, dict) else None
        item = item if isinstance(item, dict) else {}
        default_plural = str(item.get("default_plural") or key.capitalize())
        default_singular = str(item.get("default_singular") or default_plural)
        return cls(
            plural=str(item.get("plural") or default_plural),
            singular=str(item.get("singular") or default_singular),
            default_plural=default_plural,
            default_singular=default_singular,
            customized=bool(item.get("customized")),
        )


def preview(plural: str, singular: str) -> str:
    return f"New {singular}  ·  3 {plural}"


def check_label(plural: str, singular: str, default_plural: str) -> dict[str, str]:
    """Problems with one entity's input, `{"plural"|"singular": message}`."""
    found: dict[str, str] = {}
    if not plural:
        found["plural"] = f"A plural name is required (use Reset to go back to “{default_plural}”)."
    elif len(plural) > LABEL_MAX:
        found["plural"] = f"At most {LABEL_MAX} characters."
    if len(singular) > LABEL_MAX:
        found["singular"] = f"At most {LABEL_MAX} characters."
    return found


class EntityRow:
    """The widgets of one entity: two line edits, a preview, a reset button, an error."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.name = QLabel(key.capitalize())
        self.plural = QLineEdit()
        self.singular = QLineEdit()
        self.preview = QLabel()
        self.preview.setStyleSheet("color: #5f6368;")
        self.preview.setFixedWidth(240)  # long names must not squeeze the inputs
        self.plural.setMinimumWidth(150)
        self.singular.setMinimumWidth(150)
        self.reset = QPushButton("Reset")
        self.reset.setToolTip("Back to the default names for this entity")
        self.error = field_error_label()
        self.loaded: Label | None = None
        self.plural.textChanged.connect(self.refresh_preview)
        self.singular.textChanged.connect(self.refresh_preview)

    def show(self, label: Label) -> None:
        self.loaded = label
        self.name.setText(label.default_plural)
        self.plural.setPlaceholderText(label.default_plural)
        self.singular.setPlaceholderText(label.default_singular)
        self.plural.setText(label.plural)
        self.singular.setText(label.singular)
        self.reset.setToolTip(
            f"Back to “{label.default_plural}” / “{label.default_singular}”"
            if label.customized
            else "Already the default"
        )
        self.refresh_preview()

    def values(self) -> tuple[str, str]:
        return self.plural.text().strip(), self.singular.text().strip()

    def refresh_preview(self) -> None:
        plural, singular = self.values()
        text = preview(
            plural or self.plural.placeholderText(), singular or self.singular.placeholderText()
        )
        metrics = self.preview.fontMetrics()
        self.preview.setText(metrics.elidedText(text, Qt.TextElideMode.ElideRight, 236))
        self.preview.setToolTip(text)

    def changed(self) -> bool:
        if self.loaded is None:
            return False
        plural, singular = self.values()
        return plural != self.loaded.plural or (singular or self.loaded.default_singular) != (
            self.loaded.singular
        )

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))


class EntityLabelsDialog(AdminDialog):
    title = "Entity labels"

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(api, tenant_id, parent)
        self.setMinimumWidth(720)
        intro = QLabel(
            "Rename the entities for everyone in this tenant. Leave Singular empty to use the "
            "default; Reset brings back both default names."
        )
        intro.setWordWrap(True)
        self.layout_.addWidget(intro)
        grid = QGridLayout()
        for column, heading in enumerate(("Entity", "Plural", "Singular", "Preview", "")):
            head = QLabel(f"<b>{heading}</b>")
            grid.addWidget(head, 0, column)
        self.rows: dict[str, EntityRow] = {}
        for index, key in enumerate(ENTITIES):
            row = EntityRow(key)
            line = 1 + index * 2
            grid.addWidget(row.name, line, 0)
            grid.addWidget(row.plural, line, 1)
            grid.addWidget(row.singular, line, 2)
            grid.addWidget(row.preview, line, 3)
            grid.addWidget(row.reset, line, 4)
            grid.addWidget(row.error, line + 1, 1, 1, 3)
            row.reset.clicked.connect(lambda _=False, k=key: self.reset_one(k))
            self.rows[key] = row
            self.editors += [row.plural, row.singular, row.reset]
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        self.layout_.addLayout(grid)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.save_button = self.buttons.addButton("Save", QDialogButtonBox.ButtonRole.ApplyRole)
        self.reset_all_button = self.buttons.addButton(
            "Reset all", QDialogButtonBox.ButtonRole.ResetRole
        )
        self.save_button.clicked.connect(self.save)
        self.reset_all_button.clicked.connect(self.reset_all)
        self.buttons.rejected.connect(self.reject)
        self.editors += [self.save_button, self.reset_all_button]
        self.layout_.addWidget(self.buttons)
        self.finish_layout()

    async def fetch(self) -> None:
        self._show(await self.api.request("GET", f"/api/entity-labels/{self.tenant_id}"))

    def _show(self, data: Any) -> None:
        for key, row in self.rows.items():
            row.show(Label.from_json(key, data))
            row.show_error("")

    # -- save -----------------------------------------------------------------------------
    def changes(self) -> tuple[dict[str, dict[str, str | None]], dict[str, str]]:
        """The rows that changed as the PUT body's `labels`, and the problems found."""
        labels: dict[str, dict[str, str | None]] = {}
        problems: dict[str, str] = {}
        for key, row in self.rows.items():
            plural, singular = row.values()
            assert row.loaded is not None
            found = check_label(plural, singular, row.loaded.default_plural)
            if found:
                problems[key] = " ".join(found.values())
            elif row.changed():
                labels[key] = {"plural": plural, "singular": singular or None}
        return labels, problems

    def apply_mode(self) -> None:
        super().apply_mode()
        editable = self.can_edit and self.loaded
        for row in self.rows.values():  # nothing to reset on a default name
            row.reset.setEnabled(editable and row.loaded is not None and row.loaded.customized)
        self.reset_all_button.setEnabled(
            editable
            and any(r.loaded is not None and r.loaded.customized for r in self.rows.values())
        )

    def save(self) -> None:
        self.clear_banners()
        labels, problems = self.changes()
        for key, row in self.rows.items():
            row.show_error(problems.get(key, ""))
        if problems:
            self.show_failure(ValueError("Fix the marked names; nothing was saved."))
            return
        if not labels:
            self.show_info("Nothing to save: no name changed.")
            return
        self.run(self._save(labels))

    async def _save(self, labels: dict[str, dict[str, str | None]]) -> None:
        data = await self.api.request(
            "PUT", f"/api/entity-labels/{self.tenant_id}", json={"labels": labels}
        )
        self._show(data)
        self.show_done(f"Saved: {', '.join(self.rows[k].values()[0] for k in labels)}.")

    def show_failure(self, exc: BaseException) -> None:
        # the server names fields `labels.<entity>.<plural|singular>`: mark the row
        for name, message in field_errors(exc).items():
            parts = name.split(".")
            if len(parts) >= 2 and parts[1] in self.rows:
                self.rows[parts[1]].show_error(f"{parts[-1].capitalize()}: {message}")
        super().show_failure(exc)

    # -- reset ----------------------------------------------------------------------------
    def reset_one(self, key: str) -> None:
        row = self.rows[key]
        assert row.loaded is not None
        if not self.confirm(
            "Reset entity label",
            f"Reset “{row.loaded.plural}” to the default “{row.loaded.default_plural}” / "
            f"“{row.loaded.default_singular}” for everyone in this tenant?",
        ):
            return
        self.run(self._reset(key))

    def reset_all(self) -> None:
        if not self.confirm(
            "Reset all entity labels",
            "Reset every entity's names to the defaults for everyone in this tenant?",
        ):
            return
        self.run(self._reset(None))

    async def _reset(self, key: str | None) -> None:
        data = await self.api.request(
            "DELETE", f"/api/entity-labels/{self.tenant_id}", params={"entity": key}
        )
        self._show(data)
        self.show_done("Reset to the default names." if key is None else f"Reset {key}.")
