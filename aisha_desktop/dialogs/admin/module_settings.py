"""Module settings (guide 4.4): every module of the tenant, enabled or not, and the settings
of the selected one edited by their type (a list of names such as the opportunity stages,
booleans as checkboxes, whole numbers).  Save sends, per module, only what changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.admin.base import AdminDialog, humanize
from aisha_desktop.dialogs.common import field_error_label, field_errors

MODULE_NAMES = {"ai_campaigns": "AI campaigns"}
SETTING_NAMES = {
    "ptt_enabled": "Push-to-talk",
    "auto_play_responses": "Play responses automatically",
    "stages": "Pipeline stages",
    "max_workflows": "Most workflows",
}


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    is_enabled: bool
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Module:
        settings = data.get("settings")
        return cls(
            str(data["module_name"]),
            bool(data.get("is_enabled")),
            dict(settings) if isinstance(settings, dict) else {},
        )


def check_list(name: str, items: list[str]) -> str | None:
    if not items:
        return f"{name}: give at least one entry."
    if any(not item for item in items):
        return f"{name}: entries cannot be empty."
    seen: set[str] = set()
    for item in items:
        if item.casefold() in seen:
            return f"{name}: “{item}” is listed twice."
        seen.add(item.casefold())
    return None


class ListEditor(QWidget):
    """An ordered list of names: edit in place (double-click), add, remove, move."""

    def __init__(self, items: list[str]) -> None:
        super().__init__()
        self.list = QListWidget()
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setMaximumHeight(150)
        self.set_items(items)
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.up_button = QPushButton("Up")
        self.down_button = QPushButton("Down")
        self.add_button.clicked.connect(self.add)
        self.remove_button.clicked.connect(self.remove)
        self.up_button.clicked.connect(lambda: self.shift(-1))
        self.down_button.clicked.connect(lambda: self.shift(1))
        buttons = QVBoxLayout()
        for button in (self.add_button, self.remove_button, self.up_button, self.down_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(buttons)

    def _item(self, text: str) -> QListWidgetItem:
        item = QListWidgetItem(text)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        return item

    def set_items(self, items: list[str]) -> None:
        self.list.clear()
        for text in items:
            self.list.addItem(self._item(text))

    def items(self) -> list[str]:
        return [self.list.item(i).text().strip() for i in range(self.list.count())]

    def add(self, text: str = "") -> None:
        item = self._item(text or "new stage")
        self.list.addItem(item)
        self.list.setCurrentItem(item)
        if not text:
            self.list.editItem(item)

    def remove(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.list.takeItem(row)

    def shift(self, step: int) -> None:
        row = self.list.currentRow()
        target = row + step
        if row < 0 or not 0 <= target < self.list.count():
            return
        item = self.list.takeItem(row)
        self.list.insertItem(target, item)
        self.list.setCurrentRow(target)


class ModulePage(QWidget):
    """The settings of one module, an editor per setting by the type of its value."""

    def __init__(self, module: Module) -> None:
        super().__init__()
        self.module = module
        self.editors: dict[str, QCheckBox | QSpinBox | ListEditor] = {}
        self.controls: list[QWidget] = []
        form = QFormLayout(self)
        heading = QLabel(f"<b>{MODULE_NAMES.get(module.name, humanize(module.name))}</b>")
        form.addRow(heading)
        for key, value in module.settings.items():
            name = SETTING_NAMES.get(key, humanize(key))
            editor: QCheckBox | QSpinBox | ListEditor
            if isinstance(value, bool):
                editor = QCheckBox(name)
                editor.setChecked(value)
                form.addRow("", editor)
            elif isinstance(value, int):
                editor = QSpinBox()
                editor.setRange(0, 1_000_000)
                editor.setValue(value)
                form.addRow(name, editor)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                editor = ListEditor(list(value))
                form.addRow(QLabel(name))
                form.addRow(editor)
                self.controls += [
                    editor.list,
                    editor.add_button,
                    editor.remove_button,
                    editor.up_button,
                    editor.down_button,
                ]
            else:  # a setting this console has no editor for: shown, left alone
                form.addRow(name, QLabel(repr(value)))
                continue
            self.editors[key] = editor
            if not isinstance(editor, ListEditor):
                self.controls.append(editor)
        if not self.editors:
            empty = QLabel("This module has no settings; enable or disable it in the list.")
            empty.setStyleSheet("color: #5f6368;")
            empty.setWordWrap(True)
            form.addRow(empty)
        self.error = field_error_label()
        form.addRow(self.error)

    def value(self, key: str) -> Any:
        editor = self.editors[key]
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QSpinBox):
            return editor.value()
        return editor.items()

    def changed_settings(self) -> dict[str, Any]:
        return {
            key: self.value(key)
            for key in self.editors
            if self.value(key) != self.module.settings.get(key)
        }

    def problem(self) -> str | None:
        for key, editor in self.editors.items():
            if isinstance(editor, ListEditor):
                found = check_list(SETTING_NAMES.get(key, humanize(key)), editor.items())
                if found:
                    return found
        return None

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))


class ModuleSettingsDialog(AdminDialog):
    title = "Module settings"

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(api, tenant_id, parent)
        self.setMinimumSize(640, 420)
        self.modules = QListWidget()
        self.modules.setMaximumWidth(240)
        self.pages = QStackedWidget()
        self.modules.currentRowChanged.connect(self.pages.setCurrentIndex)
        body = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(QLabel("Modules (checked = enabled)"))
        left.addWidget(self.modules)
        body.addLayout(left)
        body.addWidget(self.pages, 1)
        self.layout_.addLayout(body, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.save_button = self.buttons.addButton("Save", QDialogButtonBox.ButtonRole.ApplyRole)
        self.save_button.clicked.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(self.buttons)
        self.page_by_name: dict[str, ModulePage] = {}
        self.editors += [self.save_button]
        self.finish_layout()

    async def fetch(self) -> None:
        data = await self.api.request(
            "GET", "/api/module-settings", params={"tenant_id": self.tenant_id}
        )
        self._show([Module.from_json(item) for item in data or []])

    def _show(self, modules: list[Module]) -> None:
        current = self.modules.currentRow()
        self.modules.clear()
        while self.pages.count():
            page = self.pages.widget(0)
            assert page is not None
            self.pages.removeWidget(page)
            page.deleteLater()
        self.page_by_name.clear()
        self.editors = [self.save_button]
        for module in modules:
            item = QListWidgetItem(MODULE_NAMES.get(module.name, humanize(module.name)))
            item.setData(Qt.ItemDataRole.UserRole, module.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if module.is_enabled else Qt.CheckState.Unchecked
            )
            self.modules.addItem(item)
            page = ModulePage(module)
            self.pages.addWidget(page)
            self.page_by_name[module.name] = page
            self.editors += page.controls
        self.modules.setCurrentRow(max(current, 0))
        assert self.busy is not None
        self.busy.controls = list(self.editors)

    def apply_mode(self) -> None:
        super().apply_mode()
        # the list stays usable (to browse settings); only its checkboxes follow the mode
        editable = self.can_edit and self.loaded
        for row in range(self.modules.count()):
            item = self.modules.item(row)
            flags = item.flags()
            if editable:
                flags |= Qt.ItemFlag.ItemIsUserCheckable
            else:
                flags &= ~Qt.ItemFlag.ItemIsUserCheckable
            item.setFlags(flags)

    def select(self, name: str) -> ModulePage:
        page = self.page_by_name[name]
        self.modules.setCurrentRow(self.pages.indexOf(page))
        return page

    def set_enabled(self, name: str, enabled: bool) -> None:
        item = self.modules.item(self.pages.indexOf(self.page_by_name[name]))
        item.setCheckState(Qt.CheckState.Checked if enabled else Qt.CheckState.Unchecked)

    def changes(self) -> dict[str, dict[str, Any]]:
        """`{module: PUT body}` holding only what changed."""
        out: dict[str, dict[str, Any]] = {}
        for row in range(self.modules.count()):
            item = self.modules.item(row)
            name = str(item.data(Qt.ItemDataRole.UserRole))
            page = self.page_by_name[name]
            body: dict[str, Any] = {}
            enabled = item.checkState() == Qt.CheckState.Checked
            if enabled != page.module.is_enabled:
                body["is_enabled"] = enabled
            settings = page.changed_settings()
            if settings:
                body["settings"] = settings
            if body:
                out[name] = body
        return out

    def save(self) -> None:
        self.clear_banners()
        problems = {name: page.problem() for name, page in self.page_by_name.items()}
        for name, page in self.page_by_name.items():
            page.show_error(problems[name] or "")
        bad = [name for name, problem in problems.items() if problem]
        if bad:
            self.select(bad[0])
            self.show_failure(ValueError(f"Fix {humanize(bad[0])}; nothing was saved."))
            return
        changes = self.changes()
        if not changes:
            self.show_info("Nothing to save: no module changed.")
            return
        self.run(self._save(changes))

    async def _save(self, changes: dict[str, dict[str, Any]]) -> None:
        saved: list[str] = []
        for name, body in changes.items():
            page = self.page_by_name[name]
            try:
                answer = await self.api.request(
                    "PUT",
                    f"/api/module-settings/{name}",
                    json=body,
                    params={"tenant_id": self.tenant_id},
                )
            except Exception as exc:
                found = field_errors(exc)
                if found:
                    page.show_error("; ".join(found.values()))
                self.select(name)
                if saved:
                    self.show_done(f"Saved: {', '.join(humanize(n) for n in saved)}.")
                raise
            # the server's answer is the new baseline; what is still unsaved stays edited
            page.module = Module.from_json(answer)
            saved.append(name)
        self.show_done(f"Saved: {', '.join(humanize(n) for n in saved)}.")
