"""Users and invitations (guide 3.1-3.2): the users of the tenant with role and status,
inviting one by email with a role (checked before sending), resending or revoking an open
invitation, changing a role, deactivating and reactivating.

Revoking an invitation removes the invited user (the server's soft delete, which also
revokes the open invitation links).  Only administrators see the list at all (the server lists
users to admins only); the server also refuses changes to one's own role or status, which
the dialog does not offer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from aisha_desktop.client import ApiClient, Conflict
from aisha_desktop.client.models import optional_text, parse_time
from aisha_desktop.dialogs.admin.base import AdminDialog
from aisha_desktop.dialogs.admin.widgets import FieldErrors, RecordList, when
from aisha_desktop.dialogs.common import field_errors
from aisha_desktop.first_run import email_problem

# the roles a tenant's users can have (a superadmin has no tenant; guide 3.2), in rank order
ROLES: tuple[tuple[str, str], ...] = (
    ("admin", "Admin"),
    ("manager", "Manager"),
    ("employee", "Employee"),
    ("support", "Support (read-only)"),
)
STATUS_NAMES = {"active": "Active", "invited": "Invited", "disabled": "Deactivated"}
NAME_MAX = 100
COLUMNS = ("Name", "Email", "Role", "Status", "Last sign-in")


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    email: str
    first_name: str
    last_name: str
    role: str
    status: str
    last_login_at: datetime | None

    @classmethod
    def from_json(cls, data: Any) -> UserRow:
        return cls(
            id=str(data["id"]),
            email=str(data["email"]),
            first_name=optional_text(data, "first_name") or "",
            last_name=optional_text(data, "last_name") or "",
            role=str(data.get("role") or ""),
            status=str(data.get("status") or ""),
            last_login_at=parse_time(data, "last_login_at"),
        )

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True, slots=True)
class Invitation:
    email: str
    first_name: str
    last_name: str
    role: str


def role_name(role: str) -> str:
    return dict(ROLES).get(role, role.capitalize())


def user_cells(u: UserRow) -> tuple[str, ...]:
    return (
        u.name,
        u.email,
        role_name(u.role),
        STATUS_NAMES.get(u.status, u.status),
        when(u.last_login_at, "never"),
    )


def check_invitation(new: Invitation, existing: list[UserRow]) -> dict[str, str]:
    """`{input: problem}` for an invitation about to be sent; empty when it can be."""
    found: dict[str, str] = {}
    problem = email_problem(new.email)
    if problem is not None:
        found["email"] = problem
    elif any(u.email.casefold() == new.email.strip().casefold() for u in existing):
        found["email"] = "A user with this email exists already."
    for key, text in (("first_name", new.first_name), ("last_name", new.last_name)):
        if not text:
            found[key] = "Required."
        elif len(text) > NAME_MAX:
            found[key] = f"At most {NAME_MAX} characters."
    if new.role not in dict(ROLES):
        found["role"] = "Choose a role."
    return found


class UsersDialog(AdminDialog):
    title = "Users and invitations"

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(api, tenant_id, parent)
        self.setMinimumSize(860, 700)
        self.list = RecordList(COLUMNS, 1, user_cells, lambda u: u.status == "disabled")
        self.table = self.list.table
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.layout_.addWidget(self.list.filter)
        self.layout_.addWidget(self.table, 1)

        self.role_choice = QComboBox()
        for key, name in ROLES:
            self.role_choice.addItem(name, key)
        self.role_button = QPushButton("Change role")
        self.deactivate_button = QPushButton("Deactivate…")
        self.reactivate_button = QPushButton("Reactivate")
        self.resend_button = QPushButton("Resend invitation")
        self.revoke_button = QPushButton("Revoke invitation…")
        self.role_button.clicked.connect(self.change_role)
        self.deactivate_button.clicked.connect(self.deactivate_selected)
        self.reactivate_button.clicked.connect(self.reactivate_selected)
        self.resend_button.clicked.connect(self.resend_selected)
        self.revoke_button.clicked.connect(self.revoke_selected)
        row_actions = QHBoxLayout()
        row_actions.addWidget(QLabel("Selected user:"))
        row_actions.addWidget(self.role_choice)
        row_actions.addWidget(self.role_button)
        row_actions.addStretch(1)
        for button in (
            self.resend_button,
            self.revoke_button,
            self.deactivate_button,
            self.reactivate_button,
        ):
            row_actions.addWidget(button)
        self.layout_.addLayout(row_actions)

        box = QGroupBox("Invite a user (the invitation link is valid for 7 days)")
        form = QFormLayout(box)
        self.errors = FieldErrors(form)
        self.email = QLineEdit()
        self.email.setPlaceholderText("jane.smith@example.com")
        self.first_name = QLineEdit()
        self.first_name.setPlaceholderText("Jane")
        self.last_name = QLineEdit()
        self.last_name.setPlaceholderText("Smith")
        self.new_role = QComboBox()
        self.new_role.addItem("Choose a role…", "")
        for key, name in ROLES:
            self.new_role.addItem(name, key)
        self.invite_button = QPushButton("Send invitation")
        self.invite_button.clicked.connect(self.invite)
        self.errors.add_row("email", "Email", self.email)
        self.errors.add_row("first_name", "First name", self.first_name)
        self.errors.add_row("last_name", "Last name", self.last_name)
        self.errors.add_row("role", "Role", self.new_role)
        form.addRow("", self.invite_button)
        self.layout_.addWidget(box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(self.buttons)
        self.editors += [
            self.email,
            self.first_name,
            self.last_name,
            self.new_role,
            self.invite_button,
            self.role_choice,
            self.role_button,
            self.deactivate_button,
            self.reactivate_button,
            self.resend_button,
            self.revoke_button,
        ]
        self.finish_layout()

    # -- list -----------------------------------------------------------------------------
    async def fetch(self) -> None:
        if not self.can_edit:  # the server lists users to administrators only
            self.show_info("Only administrators can see and manage the users of the tenant.")
            return
        data = await self.api.request(
            "GET", "/api/users", params={"tenant_id": self.tenant_id, "limit": 500}
        )
        self.list.show([UserRow.from_json(item) for item in data or []])
        self.apply_mode()

    @property
    def users(self) -> list[UserRow]:
        return self.list.rows

    def selected(self) -> UserRow | None:
        return self.list.selected()

    def select_user(self, email: str) -> UserRow:
        return self.list.select(lambda u: u.email == email)

    def _selection_changed(self) -> None:
        chosen = self.selected()
        if chosen is not None:  # the role picker starts at the user's role
            self.role_choice.setCurrentIndex(max(self.role_choice.findData(chosen.role), 0))
        self.apply_mode()

    def apply_mode(self) -> None:
        super().apply_mode()
        chosen = self.selected()
        editable = self.can_edit and self.loaded
        # one's own role and status are not one's own to change (the server says so too)
        me = self.me.user.id if self.me is not None and self.me.user is not None else None
        other = editable and chosen is not None and chosen.id != me
        status = chosen.status if chosen is not None else ""
        self.role_choice.setEnabled(other)
        self.role_button.setEnabled(other and status != "disabled")
        self.deactivate_button.setEnabled(other and status == "active")
        self.reactivate_button.setEnabled(other and status == "disabled")
        self.resend_button.setEnabled(other and status == "invited")
        self.revoke_button.setEnabled(other and status == "invited")

    # -- invite ---------------------------------------------------------------------------
    def invitation(self) -> Invitation:
        return Invitation(
            email=self.email.text().strip(),
            first_name=self.first_name.text().strip(),
            last_name=self.last_name.text().strip(),
            role=str(self.new_role.currentData() or ""),
        )

    def invite(self) -> None:
        self.clear_banners()
        new = self.invitation()
        found = check_invitation(new, self.users)
        self.errors.show(found)
        if found:
            self.show_failure(ValueError("Fix the marked inputs; no invitation was sent."))
            return
        self.run(self._invite(new))

    async def _invite(self, new: Invitation) -> None:
        await self.api.request(
            "POST",
            "/api/users",
            json={
                "email": new.email,
                "first_name": new.first_name,
                "last_name": new.last_name,
                "role": new.role,
                "tenant_id": self.tenant_id,
                "send_invitation": True,
            },
        )
        await self.fetch()
        user = next((u for u in self.users if u.email == new.email.lower()), None)
        if user is not None:
            self.select_user(user.email)
        for edit in (self.email, self.first_name, self.last_name):
            edit.clear()
        self.new_role.setCurrentIndex(0)
        self.show_done(f"Invitation sent to {new.email} as {role_name(new.role)}.")

    def show_failure(self, exc: BaseException) -> None:
        found = field_errors(exc)
        if isinstance(exc, Conflict) and exc.code == "email_taken":
            found = {"email": exc.message}
        if found:
            self.errors.show(self.errors.known(found))
        super().show_failure(exc)

    # -- the selected user ----------------------------------------------------------------
    def change_role(self) -> None:
        chosen = self.selected()
        role = str(self.role_choice.currentData())
        if chosen is None:
            return
        if role == chosen.role:
            self.show_info(f"{chosen.email} is {role_name(role)} already.")
            return
        self.run(self._update(chosen, {"role": role}, f"{chosen.email} is now {role_name(role)}."))

    def deactivate_selected(self) -> None:
        chosen = self.selected()
        if chosen is None or not self.confirm(
            "Deactivate user",
            f"Deactivate {chosen.name or chosen.email}?\n\n"
            "They are signed out everywhere at once and cannot sign in until reactivated. "
            "Their records stay as they are.",
        ):
            return
        self.run(self._update(chosen, {"status": "disabled"}, f"Deactivated {chosen.email}."))

    def reactivate_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.run(self._update(chosen, {"status": "active"}, f"Reactivated {chosen.email}."))

    async def _update(self, chosen: UserRow, body: dict[str, Any], done: str) -> None:
        await self.api.request("PUT", f"/api/users/{chosen.id}", json=body)
        await self.fetch()
        self.select_user(chosen.email)
        self.show_done(done)

    def resend_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.run(self._resend(chosen))

    async def _resend(self, chosen: UserRow) -> None:
        answer = await self.api.request("POST", f"/api/users/{chosen.id}/invite")
        until = when(parse_time(answer, "expires_at")) if isinstance(answer, dict) else ""
        self.show_done(
            f"Invitation sent again to {chosen.email}"
            + (f"; the new link is valid until {until}." if until else ".")
            + " Earlier links no longer work."
        )

    def revoke_selected(self) -> None:
        chosen = self.selected()
        if chosen is None or not self.confirm(
            "Revoke invitation",
            f"Revoke the invitation of {chosen.email}?\n\n"
            "The invitation link stops working at once and the invited user is removed "
            "from the tenant.",
        ):
            return
        self.run(self._revoke(chosen))

    async def _revoke(self, chosen: UserRow) -> None:
        await self.api.request("DELETE", f"/api/users/{chosen.id}")
        await self.fetch()
        self.show_done(f"Revoked the invitation of {chosen.email}.")
