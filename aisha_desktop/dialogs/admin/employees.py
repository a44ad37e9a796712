"""Employees (guide 3.3): the tenant's employee records (name, email, department, title,
phone, status, the linked login), creating and editing one in the form below the list, and
deactivating one (status `inactive`: the record stays).

An employee may be linked to a user of the tenant (the server links by `user_email`); a
linked employee uses the user's email, so the email input follows the chosen user.  The
department decides a manager's data scope (guide 3.3 "Employee Data Scope")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from aisha_desktop.client import ApiClient, Conflict
from aisha_desktop.client.models import optional_text
from aisha_desktop.dialogs.admin.base import AdminDialog
from aisha_desktop.dialogs.admin.widgets import FieldErrors, RecordList
from aisha_desktop.dialogs.common import field_errors
from aisha_desktop.first_run import email_problem

# the server's EMPLOYEE_STATUSES, in its order
STATUSES: tuple[tuple[str, str], ...] = (
    ("active", "Active"),
    ("inactive", "Inactive"),
    ("on_leave", "On leave"),
    ("terminated", "Terminated"),
)
LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "email": 320,
    "department": 100,
    "title": 200,
    "phone": 50,
}
TEXT_FIELDS = ("first_name", "last_name", "email", "department", "title", "phone")
COLUMNS = ("Name", "Email", "Department", "Title", "Phone", "Status", "Login")


@dataclass(frozen=True, slots=True)
class Employee:
    id: str
    user_id: str | None
    first_name: str
    last_name: str
    email: str
    department: str
    title: str
    phone: str
    status: str

    @classmethod
    def from_json(cls, data: Any) -> Employee:
        return cls(
            id=str(data["id"]),
            user_id=optional_text(data, "user_id"),
            first_name=str(data.get("first_name") or ""),
            last_name=str(data.get("last_name") or ""),
            email=str(data.get("email") or ""),
            department=str(data.get("department") or ""),
            title=str(data.get("title") or ""),
            phone=str(data.get("phone") or ""),
            status=str(data.get("status") or ""),
        )

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def value(self, key: str) -> str:
        return str(getattr(self, key))


def status_name(status: str) -> str:
    return dict(STATUSES).get(status, status)


def employee_cells(e: Employee) -> tuple[str, ...]:
    return (
        e.name,
        e.email,
        e.department,
        e.title,
        e.phone,
        status_name(e.status),
        "Linked" if e.user_id else "",
    )


def check_employee(values: dict[str, str]) -> dict[str, str]:
    """`{input: problem}` for the form's values; empty when they can be sent."""
    found: dict[str, str] = {}
    if not values["first_name"]:
        found["first_name"] = "A first name is required."
    for key, limit in LIMITS.items():
        if key not in found and len(values.get(key, "")) > limit:
            found[key] = f"At most {limit} characters."
    if values.get("email") and "email" not in found and not values.get("user_email"):
        problem = email_problem(values["email"])
        if problem is not None:
            found["email"] = problem
    return found


class EmployeesDialog(AdminDialog):
    title = "Employees"

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(api, tenant_id, parent)
        self.setMinimumSize(880, 660)
        self.logins: dict[str, str] = {}  # user id -> email, for the link
        self.editing: Employee | None = None
        self.list = RecordList(
            COLUMNS, 1, employee_cells, lambda e: e.status in ("inactive", "terminated")
        )
        self.table = self.list.table
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.layout_.addWidget(self.list.filter)
        self.layout_.addWidget(self.table, 1)
        self.new_button = QPushButton("New employee")
        self.deactivate_button = QPushButton("Deactivate…")
        self.new_button.clicked.connect(self.new_employee)
        self.deactivate_button.clicked.connect(self.deactivate_selected)
        row_actions = QHBoxLayout()
        row_actions.addWidget(self.new_button)
        row_actions.addStretch(1)
        row_actions.addWidget(self.deactivate_button)
        self.layout_.addLayout(row_actions)

        self.box = QGroupBox()
        form = QFormLayout(self.box)
        self.errors = FieldErrors(form)
        self.inputs: dict[str, QLineEdit] = {key: QLineEdit() for key in TEXT_FIELDS}
        placeholders = {
            "first_name": "John",
            "last_name": "Doe",
            "email": "john.doe@example.com",
            "department": "Sales",
            "title": "Account Executive",
            "phone": "+1-555-0123",
        }
        for key, text in placeholders.items():
            self.inputs[key].setPlaceholderText(text)
        self.login = QComboBox()
        self.login.currentIndexChanged.connect(self._login_changed)
        self.status_input = QComboBox()
        for key, name in STATUSES:
            self.status_input.addItem(name, key)
        self.save_button = QPushButton()
        self.save_button.clicked.connect(self.save)
        self.errors.add_row("first_name", "First name", self.inputs["first_name"])
        self.errors.add_row("last_name", "Last name", self.inputs["last_name"])
        self.errors.add_row("user_email", "Login (user)", self.login)
        self.errors.add_row("email", "Email", self.inputs["email"])
        self.errors.add_row("department", "Department", self.inputs["department"])
        self.errors.add_row("title", "Title", self.inputs["title"])
        self.errors.add_row("phone", "Phone", self.inputs["phone"])
        self.errors.add_row("status", "Status", self.status_input)
        form.addRow("", self.save_button)
        self.layout_.addWidget(self.box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(self.buttons)
        self.editors += [
            *self.inputs.values(),
            self.login,
            self.status_input,
            self.save_button,
            self.new_button,
            self.deactivate_button,
        ]
        self.finish_layout()
        self.new_employee()

    # -- list -----------------------------------------------------------------------------
    async def fetch(self) -> None:
        data = await self.api.request(
            "GET", "/api/employees", params={"tenant_id": self.tenant_id, "limit": 500}
        )
        employees = [Employee.from_json(item) for item in data or []]
        if self.can_edit:  # the logins to link to (users are listed to admins only)
            users = await self.api.request(
                "GET", "/api/users", params={"tenant_id": self.tenant_id, "limit": 500}
            )
            self.logins = {str(u["id"]): str(u["email"]) for u in users or []}
        self.list.show(employees)
        self._fill_logins()
        self.apply_mode()

    @property
    def employees(self) -> list[Employee]:
        return self.list.rows

    def _fill_logins(self) -> None:
        linked = {e.user_id for e in self.employees if e.user_id}
        current = self.editing.user_id if self.editing is not None else None
        self.login.blockSignals(True)
        self.login.clear()
        self.login.addItem("No login (employee record only)", "")
        for user_id, email in sorted(self.logins.items(), key=lambda item: item[1]):
            if user_id not in linked or user_id == current:  # one employee per user
                self.login.addItem(email, email)
        self.login.blockSignals(False)

    def selected(self) -> Employee | None:
        return self.list.selected()

    def select_employee(self, employee_id: str) -> Employee:
        employee = self.list.select(lambda e: e.id == employee_id)
        self.edit(employee)  # also when the row was selected already (fresh values)
        return employee

    def _selection_changed(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.edit(chosen)
        self.apply_mode()

    def apply_mode(self) -> None:
        super().apply_mode()
        chosen = self.selected()
        editable = self.can_edit and self.loaded
        self.deactivate_button.setEnabled(
            editable and chosen is not None and chosen.status == "active"
        )
        self.inputs["email"].setEnabled(editable and not self.login.currentData())
        if self.loaded and not self.can_edit and self.editing is None:
            self.box.setTitle("Select an employee to see the details")

    # -- the form -------------------------------------------------------------------------
    def new_employee(self) -> None:
        self.editing = None
        self.table.clearSelection()
        self.box.setTitle("New employee")
        self.save_button.setText("Create employee")
        for edit in self.inputs.values():
            edit.clear()
        self._fill_logins()
        self.login.setCurrentIndex(0)
        self.status_input.setCurrentIndex(0)
        self.errors.show({})

    def edit(self, employee: Employee) -> None:
        self.editing = employee
        self.box.setTitle(f"Edit {employee.name}")
        self.save_button.setText("Save changes")
        self._fill_logins()
        for key, edit in self.inputs.items():
            edit.setText(employee.value(key))
        linked = self.logins.get(employee.user_id or "", "")
        index = self.login.findData(linked) if linked else 0
        self.login.setCurrentIndex(max(index, 0))
        self.status_input.setCurrentIndex(max(self.status_input.findData(employee.status), 0))
        self.errors.show({})

    def _login_changed(self) -> None:
        email = str(self.login.currentData() or "")
        if email:
            self.inputs["email"].setText(email)
        self.apply_mode()

    def values(self) -> dict[str, str]:
        out = {key: edit.text().strip() for key, edit in self.inputs.items()}
        out["user_email"] = str(self.login.currentData() or "")
        out["status"] = str(self.status_input.currentData())
        return out

    def body(self, values: dict[str, str]) -> dict[str, Any]:
        """The request: every field for a new employee, what changed for an edit."""
        linked = values["user_email"]
        if self.editing is None:
            body: dict[str, Any] = {
                key: values[key] or None for key in ("last_name", "department", "title", "phone")
            }
            body.update(first_name=values["first_name"], status=values["status"])
            if linked:
                body["user_email"] = linked
            elif values["email"]:
                body["email"] = values["email"]
            body["tenant_id"] = self.tenant_id
            return body
        before = self.editing
        body = {
            key: values[key]
            for key in ("first_name", "last_name", "department", "title", "phone", "status")
            if values[key] != before.value(key)
        }
        was_linked = self.logins.get(before.user_id or "", "")
        if linked != was_linked:
            body["user_email"] = linked  # "" removes the link
        if not linked and values["email"] != before.email:
            body["email"] = values["email"]
        return body

    def save(self) -> None:
        self.clear_banners()
        values = self.values()
        found = check_employee(values)
        self.errors.show(found)
        if found:
            self.show_failure(ValueError("Fix the marked inputs; nothing was saved."))
            return
        body = self.body(values)
        if not body:
            self.show_info("Nothing to save: no field changed.")
            return
        self.run(self._save(body))

    async def _save(self, body: dict[str, Any]) -> None:
        editing = self.editing
        if editing is None:
            answer = await self.api.request("POST", "/api/employees", json=body)
        else:
            answer = await self.api.request(
                "PATCH",
                f"/api/employees/{editing.id}",
                json=body,
                params={"tenant_id": self.tenant_id},
            )
        saved = Employee.from_json(answer)
        await self.fetch()
        self.select_employee(saved.id)
        what = "Created" if editing is None else "Saved"
        self.show_done(f"{what} {saved.name}.")

    def show_failure(self, exc: BaseException) -> None:
        found = field_errors(exc)
        if isinstance(exc, Conflict):
            key = "user_email" if exc.code == "user_linked" else "email"
            found = {key: exc.message}
        if found:
            self.errors.show(self.errors.known(found))
        super().show_failure(exc)

    # -- deactivate -----------------------------------------------------------------------
    def deactivate_selected(self) -> None:
        chosen = self.selected()
        if chosen is None or not self.confirm(
            "Deactivate employee",
            f"Deactivate {chosen.name}?\n\nThe employee record is kept with status "
            "Inactive; a linked login is not changed (deactivate it under Users).",
        ):
            return
        self.run(self._deactivate(chosen))

    async def _deactivate(self, chosen: Employee) -> None:
        await self.api.request(
            "PATCH",
            f"/api/employees/{chosen.id}",
            json={"status": "inactive"},
            params={"tenant_id": self.tenant_id},
        )
        await self.fetch()
        self.select_employee(chosen.id)
        self.show_done(f"Deactivated {chosen.name}.")
