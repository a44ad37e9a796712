"""The entity view's toolbar controls for saved views and CSV: a combo of the user's saved
views (picking one applies its search, status filter, sort and columns; "Default view"
restores the list's defaults), a menu to save, update, rename and delete them (and to open
the entity's deleted records, to restore them), and a menu opening the CSV import and export
dialogs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QMenu,
    QMessageBox,
    QToolButton,
    QWidget,
)

from aisha_desktop.dialogs.csv_export import CsvExportDialog, ViewScope
from aisha_desktop.dialogs.csv_import import CsvImportDialog
from aisha_desktop.models.fields import STATUSES, sortable_columns
from aisha_desktop.models.saved_views import SavedView, SavedViews, SettingsStore

if TYPE_CHECKING:
    from aisha_desktop.views.entity_view import EntityView

DEFAULT_VIEW = "Default view"
AskName = Callable[[str, str, str], str | None]  # title, label, suggestion -> name or None
Confirm = Callable[[str, str], bool]


def ask_name(parent: QWidget, title: str, label: str, text: str) -> str | None:
    name, ok = QInputDialog.getText(parent, title, label, QLineEdit.EchoMode.Normal, text)
    return name if ok else None


def ask_yes(parent: QWidget, title: str, text: str) -> bool:
    answer = QMessageBox.question(parent, title, text)
    return answer == QMessageBox.StandardButton.Yes


class ViewTools(QWidget):
    def __init__(self, view: EntityView, store: SettingsStore, scope: str) -> None:
        super().__init__(view)
        self.view = view
        self.saved = SavedViews(store, scope, view.entity)
        model = view.model
        self.default = SavedView("", "", None, model.sort_key, tuple(model.columns))
        # replaced in tests; modal questions in the GUI
        self.ask_name: AskName = lambda title, label, text: ask_name(self, title, label, text)
        self.confirm: Confirm = lambda title, text: ask_yes(self, title, text)
        self.last_message = ""

        self.combo = QComboBox()
        self.combo.setObjectName("savedViews")
        self.combo.setMinimumContentsLength(14)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.combo.setToolTip("Saved views: search, status, sort and columns under a name")
        self.combo.activated.connect(self._picked)
        self.menu_button = QToolButton()
        self.menu_button.setObjectName("viewsMenu")
        self.menu_button.setText("Views")
        self.menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.menu_button)
        self.save_as_action = menu.addAction("Save view as…", self.save_as)
        self.update_action = menu.addAction("Update view", self.update_current)
        self.rename_action = menu.addAction("Rename view…", self.rename_current)
        self.delete_action = menu.addAction("Delete view", self.delete_current)
        menu.addSeparator()
        self.deleted_action = menu.addAction("Deleted records…", view.open_deleted)
        self.deleted_action.setObjectName("deletedRecords")
        menu.aboutToShow.connect(self._update_actions)
        self.menu_button.setMenu(menu)

        self.csv_button = QToolButton()
        self.csv_button.setObjectName("csvMenu")
        self.csv_button.setText("CSV")
        self.csv_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        csv_menu = QMenu(self.csv_button)
        self.import_action = csv_menu.addAction("Import CSV…", self.open_import)
        self.export_action = csv_menu.addAction("Export CSV…", self.open_export)
        csv_menu.aboutToShow.connect(self.update_csv_actions)
        self.csv_button.setMenu(csv_menu)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addWidget(self.menu_button)
        layout.addWidget(self.csv_button)
        self.reload("")

    def import_if_allowed(self) -> CsvImportDialog | None:
        """The palette's "Import CSV…": as the menu, only when the role may write."""
        self.update_csv_actions()
        if not self.import_action.isEnabled():
            self.view.say_refused("create")
            return None
        return self.open_import()

    def export_if_allowed(self) -> CsvExportDialog | None:
        self.update_csv_actions()
        if not self.export_action.isEnabled():
            self.view.say_refused("export")
            return None
        return self.open_export()

    def update_csv_actions(self) -> None:
        """An import creates or updates records, an export needs its own right."""
        may = self.view.may
        self.import_action.setEnabled(may("create") or may("update"))
        self.export_action.setEnabled(may("export"))
        self.import_action.setToolTip("" if self.import_action.isEnabled()
                                      else self.view.refused("create"))  # fmt: skip
        self.export_action.setToolTip("" if self.export_action.isEnabled()
                                      else self.view.refused("export"))  # fmt: skip

    # -- the combo -------------------------------------------------------------------------
    @property
    def current_name(self) -> str:
        """The saved view picked last ("" for the default view)."""
        return str(self.combo.currentData() or "")

    def reload(self, select: str) -> None:
        with QSignalBlocker(self.combo):
            self.combo.clear()
            self.combo.addItem(DEFAULT_VIEW, "")
            for name in self.saved.names():
                self.combo.addItem(name, name)
            self.combo.setCurrentIndex(max(0, self.combo.findData(select)))
        self._update_actions()

    def _update_actions(self) -> None:
        chosen = bool(self.current_name)
        for action in (self.update_action, self.rename_action, self.delete_action):
            action.setEnabled(chosen)
        name = self.current_name
        self.update_action.setText(f"Update “{name}” to this view" if chosen else "Update view")
        self.deleted_action.setText(f"Deleted {self.view.plural.lower()}…")

    def _picked(self, _: int) -> None:
        self.apply(self.current_name)

    def apply(self, name: str) -> None:
        """Show the saved view `name` ("" or an unknown name: the default view)."""
        saved = self.saved.get(name) if name else None
        target = saved or self.default
        self.apply_state(target)
        self.reload(saved.name if saved else "")

    # -- the view's state --------------------------------------------------------------------
    def state(self, name: str = "") -> SavedView:
        model = self.view.model
        status = self.view.status_filter.currentData()
        return SavedView(
            name,
            self.view.search.text(),
            status if isinstance(status, str) else None,
            model.sort_key,
            tuple(model.columns),
        )

    def apply_state(self, saved: SavedView) -> None:
        view, model = self.view, self.view.model
        fitted = saved.fitted(
            self.default,
            model.available,
            sortable_columns(view.entity),
            STATUSES.get(view.entity, ()),
        )
        with QSignalBlocker(view.search):
            view.search.setText(fitted.search)
        model.search_now(fitted.search)
        view.status_filter.setCurrentIndex(max(0, view.status_filter.findData(fitted.status)))
        for action in view.columns_menu.actions():
            with QSignalBlocker(action):
                action.setChecked(action.data() in fitted.columns)
        model.set_columns(fitted.columns)
        descending = fitted.sort.startswith("-")
        model.set_sort(fitted.sort.lstrip("-"), descending)
        name = fitted.sort.lstrip("-")
        section = model.columns.index(name) if name in model.columns else -1
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        header = view.table.horizontalHeader()
        with QSignalBlocker(header):
            header.setSortIndicator(section, order)

    # -- managing --------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.last_message = text
        self.view.message.emit(text)  # the status bar

    def save_as(self) -> bool:
        suggestion = self.current_name or ""
        name = self.ask_name(
            f"Save {self.view.plural.lower()} view", "Name of the view:", suggestion
        )
        if name is None:
            return False
        try:
            existing = self.saved.get(name.strip())
            if existing is not None and not self.confirm(
                "Replace view", f"Replace the saved view “{existing.name}”?"
            ):
                return False
            saved = self.saved.save(self.state(name))
        except ValueError as exc:
            self._say(str(exc))
            return False
        self.reload(saved.name)
        self._say(f"View “{saved.name}” saved")
        return True

    def update_current(self) -> bool:
        name = self.current_name
        if not name:
            return False
        self.saved.save(self.state(name))
        self._say(f"View “{name}” updated")
        return True

    def rename_current(self) -> bool:
        old = self.current_name
        if not old:
            return False
        new = self.ask_name("Rename view", "New name:", old)
        if new is None:
            return False
        try:
            renamed = self.saved.rename(old, new)
        except ValueError as exc:
            self._say(str(exc))
            return False
        self.reload(renamed.name)
        self._say(f"View renamed to “{renamed.name}”")
        return True

    def delete_current(self) -> bool:
        name = self.current_name
        if not name or not self.confirm("Delete view", f"Delete the saved view “{name}”?"):
            return False
        self.saved.delete(name)
        self.apply("")
        self._say(f"View “{name}” deleted")
        return True

    # -- CSV -------------------------------------------------------------------------------
    def open_import(self) -> CsvImportDialog:
        view = self.view
        dialog = CsvImportDialog(
            view.engine.api,
            view.entity,
            (view.plural, view.singular),
            view.replica.settings("custom_fields"),
            view,
        )
        dialog.imported.connect(lambda _report: view.engine.kick())  # the rows come by sync
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def open_export(self) -> CsvExportDialog:
        view, model = self.view, self.view.model
        exact = model.windowed or not model.canFetchMore(model.index(-1, -1))
        scope = ViewScope(
            search=model.search_text,
            filters=model.filters,
            columns=tuple(model.columns),
            sort=model.sort_key,
            shown=model.rowCount() if exact else None,
        )
        dialog = CsvExportDialog(
            view.engine.api, view.entity, (view.plural, view.singular), scope, view
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog
