"""Saved views of an entity list (Qt-free): a name for a search text, status filter, sort and
set of visible columns, kept per entity and per user in the console's UI state (`QSettings`,
which this module only sees as a key-value store).

Stored data is UI state, not records: whatever is unreadable (a hand-edited or older file) is
skipped, never an error, and a view is applied only as far as it still fits the entity (a
column or sort that no longer exists falls back to the default)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

MAX_NAME = 60
MAX_VIEWS = 50


class SettingsStore(Protocol):
    """What the saved views use of `QSettings`."""

    def value(self, key: str) -> Any: ...

    def setValue(self, key: str, value: Any) -> None: ...  # noqa: N802 - QSettings' name

    def remove(self, key: str) -> None: ...


@dataclass(frozen=True)
class SavedView:
    name: str
    search: str = ""
    status: str | None = None
    sort: str = ""  # "-updated_at": descending; "" the list's default
    columns: tuple[str, ...] = ()  # () the list's default

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "search": self.search,
            "status": self.status,
            "sort": self.sort,
            "columns": list(self.columns),
        }

    @classmethod
    def from_json(cls, data: Any) -> SavedView | None:
        if not isinstance(data, dict):
            return None
        name, search, status = data.get("name"), data.get("search", ""), data.get("status")
        sort, columns = data.get("sort", ""), data.get("columns", [])
        if (
            not isinstance(name, str)
            or not name.strip()
            or not isinstance(search, str)
            or not (status is None or isinstance(status, str))
            or not isinstance(sort, str)
            or not isinstance(columns, list)
            or not all(isinstance(c, str) for c in columns)
        ):
            return None
        return cls(name.strip(), search, status or None, sort, tuple(columns))

    def fitted(
        self,
        default: SavedView,
        available: Iterable[str],
        sortable: Iterable[str],
        statuses: Sequence[str],
    ) -> SavedView:
        """This view as far as the entity still allows it; the rest from `default`."""
        known = set(available)
        columns = tuple(dict.fromkeys(c for c in self.columns if c in known))
        sort_name = self.sort.lstrip("-")
        return replace(
            self,
            status=self.status if self.status in statuses else None,
            sort=self.sort if sort_name and sort_name in set(sortable) else default.sort,
            columns=columns or default.columns,
        )


def checked_name(name: str) -> str:
    """The name to store; ValueError says what is wrong with it."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("Give the view a name")
    if len(cleaned) > MAX_NAME:
        raise ValueError(f"A view name has at most {MAX_NAME} characters")
    return cleaned


class SavedViews:
    """The saved views of one entity for one user (`scope`: the replica's identity, which
    names server, tenant and user)."""

    def __init__(self, store: SettingsStore, scope: str, entity: str) -> None:
        self.store = store
        self.key = f"saved_views/{scope}/{entity}"

    def all(self) -> list[SavedView]:
        raw = self.store.value(self.key)
        try:
            items = json.loads(raw) if isinstance(raw, str) else []
        except ValueError:
            items = []
        found: dict[str, SavedView] = {}
        for item in items if isinstance(items, list) else []:
            view = SavedView.from_json(item)
            if view is not None:
                found.setdefault(view.name.casefold(), view)
        return sorted(found.values(), key=lambda v: v.name.casefold())

    def names(self) -> list[str]:
        return [v.name for v in self.all()]

    def get(self, name: str) -> SavedView | None:
        wanted = name.casefold()
        return next((v for v in self.all() if v.name.casefold() == wanted), None)

    def save(self, view: SavedView) -> SavedView:
        """Store `view`, replacing the one of the same name (names ignore case)."""
        view = replace(view, name=checked_name(view.name))
        views = [v for v in self.all() if v.name.casefold() != view.name.casefold()]
        if len(views) >= MAX_VIEWS:
            raise ValueError(f"At most {MAX_VIEWS} saved views: delete one first")
        self._write([*views, view])
        return view

    def rename(self, old: str, new: str) -> SavedView:
        view = self.get(old)
        if view is None:
            raise ValueError(f"No saved view “{old}”")
        name = checked_name(new)
        clash = self.get(name)
        if clash is not None and clash.name.casefold() != old.casefold():
            raise ValueError(f"A view named “{clash.name}” exists already")
        renamed = replace(view, name=name)
        others = [v for v in self.all() if v.name.casefold() != old.casefold()]
        self._write([*others, renamed])
        return renamed

    def delete(self, name: str) -> None:
        views = [v for v in self.all() if v.name.casefold() != name.casefold()]
        self._write(views)

    def _write(self, views: list[SavedView]) -> None:
        if views:
            self.store.setValue(self.key, json.dumps([v.as_json() for v in views]))
        else:
            self.store.remove(self.key)
