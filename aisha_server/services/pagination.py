"""One page of a list, as every listing service returns it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int

    def pagination(self) -> dict[str, int]:
        """The `pagination` member of a list answer, beside `data`."""
        return {"limit": self.limit, "offset": self.offset, "total": self.total}
