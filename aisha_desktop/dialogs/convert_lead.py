"""`ConvertLeadDialog`: converts a lead into a contact, an account and, when asked, an
opportunity (`POST /api/leads/{id}/convert`, all or nothing on the server).

The form starts from the lead (names, email, phone, title, company as the account, value as
the opportunity's amount); the opportunity's stage is one of the tenant's pipeline stages.
Input is checked before sending; the server's refusals show next to the fields they name
(`contact.email`, `opportunity.stage`...) or in the banner.  Contacts that may be the same
person (409 `possible_duplicates`) are listed and converting needs an explicit "Convert
anyway".  Conversion needs the server: the record views only offer it online, and a
connection lost meanwhile is reported here.  On success `conversion` holds the server's answer
(lead, contact, account, opportunity); the new records reach the replica by sync."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient, ClientError, Conflict, PossibleDuplicates
from aisha_desktop.dialogs.common import (
    Busy,
    banner,
    describe,
    field_error_label,
    field_errors,
    show_banner,
)
from aisha_desktop.models.board import DEFAULT_STAGES, format_amount, stage_title
from aisha_desktop.models.fields import FieldSpec, check_value, column_title, display_name
from aisha_desktop.models.wording import needs

WARNING_STYLE = (
    "QFrame#duplicates { background: #fff4ce; border: 1px solid #e0c060; border-radius: 4px; }"
)
CONTACT_FIELDS = (
    FieldSpec("first_name", "First name"),
    FieldSpec("last_name", "Last name"),
    FieldSpec("email", "Email", "email"),
    FieldSpec("phone", "Phone", "phone"),
    FieldSpec("title", "Title"),
)
ACCOUNT_FIELDS = (FieldSpec("name", "Account name"),)
OPPORTUNITY_FIELDS = (
    FieldSpec("name", "Opportunity name", required=True),
    FieldSpec("amount", "Amount", "currency"),
    FieldSpec("close_date", "Close date", "date"),
)


WRAP_WIDTH = 500


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class ConvertLeadDialog(QDialog):
    def __init__(
        self,
        api: ApiClient,
        lead: Mapping[str, Any],
        parent: QWidget | None = None,
        *,
        stages: Sequence[str] = DEFAULT_STAGES,
        opportunities_enabled: bool = True,
        accounts: Sequence[tuple[str, str]] = (),
        today: date | None = None,
    ) -> None:
        """`accounts`: (id, name) of existing accounts the contact may join instead of a
        new one (one named like the lead's company is chosen at first)."""
        super().__init__(parent)
        self.api = api
        self.lead = dict(lead)
        self.lead_id = str(lead["id"])
        self.conversion: dict[str, Any] | None = None
        self.duplicates_shown: list[dict[str, Any]] = []
        self.opportunities_enabled = opportunities_enabled
        name = display_name("leads", self.lead)
        self.setWindowTitle(f"Convert lead: {name}")
        self.setMinimumWidth(520)

        company = _text(lead.get("company")).strip()
        intro = QLabel(  # names as text, not markup
            f"<b>{html.escape(name)}</b> becomes a contact"
            + (f" at <b>{html.escape(company)}</b>" if company else "")
            + ". The lead is kept, marked converted, with its activities and notes."
        )
        intro.setWordWrap(True)
        # wrapped texts as wide as the form: the dialog's height is then measured right
        intro.setMinimumWidth(WRAP_WIDTH)
        self.inputs: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}

        contact_box = QGroupBox("Contact")
        contact_form = QFormLayout(contact_box)
        for spec in CONTACT_FIELDS:
            self._add(contact_form, f"contact.{spec.name}", spec, _text(lead.get(spec.name)))

        account_box = QGroupBox("Account")
        account_form = QFormLayout(account_box)
        self.account_form = account_form
        self.account_choice = QComboBox()
        self.account_choice.setObjectName("accountChoice")
        self.account_choice.addItem("Create a new account", None)
        for account_id, account_name in accounts:
            self.account_choice.addItem(f"Existing account: {account_name}", account_id)
            if account_name.strip().lower() == company.lower() and company:
                self.account_choice.setCurrentIndex(self.account_choice.count() - 1)
        self.account_choice.setVisible(bool(accounts))
        account_form.addRow(self.account_choice)
        self._add(account_form, "account.name", ACCOUNT_FIELDS[0], company)
        self.inputs["account.name"].setPlaceholderText(
            "required: the lead's company" if company else "empty: no account is created"
        )
        self.account_choice.currentIndexChanged.connect(self._account_chosen)
        self.account_form.setRowVisible(self.inputs["account.name"], self.existing_account is None)

        self.opportunity_box = QGroupBox("Also create an opportunity")
        self.opportunity_box.setCheckable(True)
        self.opportunity_box.setChecked(opportunities_enabled and bool(lead.get("value")))
        opportunity_form = QFormLayout(self.opportunity_box)
        default_name = f"{company or name} opportunity"
        self._add(opportunity_form, "opportunity.name", OPPORTUNITY_FIELDS[0], default_name)
        amount = format_amount(lead.get("value")).replace(",", "")
        self._add(opportunity_form, "opportunity.amount", OPPORTUNITY_FIELDS[1], amount)
        self.stage = QComboBox()
        self.stage.setObjectName("stage")
        for stage in stages or DEFAULT_STAGES:
            self.stage.addItem(stage_title(stage), stage)
        self.errors["opportunity.stage"] = field_error_label()
        opportunity_form.addRow("Stage", self.stage)
        opportunity_form.addRow("", self.errors["opportunity.stage"])
        closes = (today or date.today()) + timedelta(days=30)
        self._add(opportunity_form, "opportunity.close_date", OPPORTUNITY_FIELDS[2],
                  closes.isoformat())  # fmt: skip
        self.inputs["opportunity.close_date"].setPlaceholderText("YYYY-MM-DD")
        if not opportunities_enabled:
            self.opportunity_box.setEnabled(False)
            self.opportunity_box.setTitle("Opportunities are switched off for this tenant")

        self.duplicates = QFrame()
        self.duplicates.setObjectName("duplicates")
        self.duplicates.setStyleSheet(WARNING_STYLE)
        self.duplicates_label = QLabel()
        self.duplicates_label.setWordWrap(True)
        self.duplicates_label.setTextFormat(Qt.TextFormat.PlainText)  # names and emails
        self.duplicates_label.setMinimumWidth(WRAP_WIDTH - 20)
        self.convert_anyway = QPushButton("Convert anyway")
        self.convert_anyway.clicked.connect(lambda: self.submit(confirm_duplicate=True))
        box = QVBoxLayout(self.duplicates)
        box.addWidget(self.duplicates_label)
        box.addWidget(self.convert_anyway)
        self.duplicates.hide()

        self.error = banner()
        self.error.setMinimumWidth(WRAP_WIDTH)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.convert_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.convert_button.setText("Convert")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(contact_box)
        layout.addWidget(account_box)
        layout.addWidget(self.opportunity_box)
        layout.addWidget(self.duplicates)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.busy = Busy(
            self, [self.convert_button, self.convert_anyway, contact_box, account_box,
                   self.opportunity_box],
        )  # fmt: skip

    def _add(self, form: QFormLayout, key: str, spec: FieldSpec, value: str) -> None:
        edit = QLineEdit(value)
        edit.setObjectName(key)
        edit.textEdited.connect(self._edited)
        self.inputs[key] = edit
        self.errors[key] = field_error_label()
        form.addRow(spec.label, edit)
        form.addRow("", self.errors[key])

    @property
    def existing_account(self) -> str | None:
        """The id of the existing account chosen (None: a new one)."""
        value = self.account_choice.currentData()
        return str(value) if value else None

    def _account_chosen(self, *_: object) -> None:
        self.account_form.setRowVisible(self.inputs["account.name"], self.existing_account is None)
        self.errors["account.name"].hide()
        self._edited()

    def _edited(self, *_: object) -> None:
        # what the duplicate warning was about may have changed: ask again on the next try
        self.duplicates.hide()
        self._fit()

    def _fit(self) -> None:
        """As tall as the messages now shown need (wrapped texts fool the size hint)."""
        layout = self.layout()
        assert layout is not None
        layout.activate()
        needed = layout.totalHeightForWidth(self.width())
        self.setMinimumHeight(needed)
        if self.height() < needed:
            self.resize(self.width(), needed)

    # -- the request -------------------------------------------------------------------------
    @property
    def wants_opportunity(self) -> bool:
        return self.opportunities_enabled and self.opportunity_box.isChecked()

    def body(self) -> dict[str, Any]:
        """What is sent: the contact and account as typed (empty ones left to the lead's
        values), the opportunity when asked for."""

        def part(prefix: str, specs: Sequence[FieldSpec]) -> dict[str, Any]:
            values: dict[str, Any] = {}
            for spec in specs:
                text = self.inputs[f"{prefix}.{spec.name}"].text().strip()
                if text:
                    values[spec.name] = text
            return values

        body: dict[str, Any] = {"contact": part("contact", CONTACT_FIELDS)}
        account = part("account", ACCOUNT_FIELDS)
        if self.existing_account is not None:
            body["account_id"] = self.existing_account
        elif account:
            body["account"] = account
        if self.wants_opportunity:
            opportunity = part("opportunity", OPPORTUNITY_FIELDS)
            opportunity["stage"] = self.stage.currentData()
            body["opportunity"] = opportunity
        return body

    def problems(self) -> dict[str, str]:
        """Checked before sending (the server checks again)."""
        found: dict[str, str] = {}
        groups: list[tuple[str, Sequence[FieldSpec]]] = [("contact", CONTACT_FIELDS)]
        if self.wants_opportunity:
            groups.append(("opportunity", OPPORTUNITY_FIELDS))
        for prefix, specs in groups:
            for spec in specs:
                message = check_value(spec, self.inputs[f"{prefix}.{spec.name}"].text().strip())
                if message is not None:
                    found[f"{prefix}.{spec.name}"] = message
        contact = self.body()["contact"]
        if not any(contact.get(k) for k in ("first_name", "last_name", "email")) and not any(
            self.lead.get(k) for k in ("first_name", "last_name", "email")
        ):
            found["contact.last_name"] = "A contact needs a name or an email"
        new_account = self.existing_account is None
        if (
            new_account
            and self.lead.get("company")
            and not self.inputs["account.name"].text().strip()
        ):
            found["account.name"] = "The lead has a company: its account needs a name"
        amount = self.inputs["opportunity.amount"].text().strip()
        negative = amount.startswith("-") and "opportunity.amount" not in found
        if self.wants_opportunity and negative:
            found["opportunity.amount"] = "Amount: cannot be negative"
        return {k: v for k, v in found.items() if k in self.errors}

    def show_errors(self, found: Mapping[str, str]) -> None:
        for key, label in self.errors.items():
            label.setText(found.get(key, ""))
            label.setVisible(key in found)

    def submit(self, *, confirm_duplicate: bool = False) -> None:
        self.busy.run(self._submit(confirm_duplicate))

    async def wait(self) -> None:
        """Until the request under way (if any) ended (tests)."""
        task = self.busy.task
        if task is not None and not task.done():
            # accepting closes the dialog, which cancels its task: no exception to see here
            await asyncio.wait({task})

    async def _submit(self, confirm_duplicate: bool) -> None:
        await self._convert(confirm_duplicate)
        if not self.isHidden():
            self._fit()

    async def _convert(self, confirm_duplicate: bool) -> None:
        show_banner(self.error, "")
        found = self.problems()
        self.show_errors(found)
        if found:
            show_banner(self.error, f"{needs(len(found), 'field')} attention: nothing was sent.")
            return
        body = self.body()
        if confirm_duplicate:
            body["confirm_duplicate"] = True
        try:
            answer = await self.api.request("POST", f"/api/leads/{self.lead_id}/convert", json=body)
        except PossibleDuplicates as exc:
            self._show_duplicates(exc.duplicates)
            return
        except Conflict as exc:
            if exc.code == "already_converted":
                show_banner(self.error, "This lead is already converted (by someone else, "
                            "or in another window): nothing was changed.")  # fmt: skip
            else:
                show_banner(self.error, describe(exc))
            return
        except ClientError as exc:
            errors = field_errors(exc)
            self.show_errors(errors)
            unplaced = {k: v for k, v in errors.items() if k not in self.errors}
            text = describe(exc)
            if unplaced:
                text += ": " + "; ".join(
                    f"{column_title(k.split('.')[-1])}: {v}" for k, v in unplaced.items()
                )
            show_banner(self.error, f"{text}. Nothing was converted.")
            return
        if not isinstance(answer, Mapping) or not isinstance(answer.get("contact"), Mapping):
            show_banner(self.error, "The server's answer is not a conversion.")
            return
        self.conversion = dict(answer)
        self.accept()

    def _show_duplicates(self, found: list[dict[str, Any]]) -> None:
        self.duplicates_shown = found
        names = "; ".join(
            f"{d.get('name') or '(no name)'}"
            + (f" <{d.get('email') or d.get('phone')}>" if d.get("email") or d.get("phone") else "")
            + (f" (same {', '.join(d.get('matched_on') or [])})" if d.get("matched_on") else "")
            for d in found[:3]
        )
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        self.duplicates_label.setText(
            f"Possible duplicate contact: {names}{more}. Convert anyway to create another "
            "contact, or cancel and look at the existing one first."
        )
        self.duplicates.show()
        self.convert_anyway.setFocus()

    @property
    def contact_id(self) -> str | None:
        contact = (self.conversion or {}).get("contact")
        return str(contact["id"]) if isinstance(contact, Mapping) and contact.get("id") else None


__all__ = ["ConvertLeadDialog"]
