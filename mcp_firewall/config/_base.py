"""The base of every config model: strict, frozen, and aware of where in which file it was written."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, PrivateAttr

__all__ = ["ConfigModel", "Location", "set_source"]


@dataclass(frozen=True, order=True)
class Location:
    """A place in a file a person wrote; `str()` is `FILE:LINE:COL` (1-based)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    @property
    def short(self) -> str:
        """`FILE:LINE`, for tools that print one line per rule."""
        return f"{self.file}:{self.line}"


class ConfigModel(BaseModel):
    """Unknown keys are errors, values are immutable, and `.location` says where the object was written.

    Equality compares values only, never locations: the same rule moved to another line is the same rule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)

    _source: Location | None = PrivateAttr(default=None)

    @property
    def source(self) -> Location | None:
        """Where the loader found this object, or None for an object built in code."""
        return self._source

    @property
    def location(self) -> str:
        """`FILE:LINE:COL` of this object (for a named entry: its key), or `<unknown>` when built in code."""
        return str(self._source) if self._source is not None else "<unknown>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__


def set_source(model: ConfigModel, source: Location) -> None:
    """Record where `model` was written (used by the loader; frozen models allow private attributes)."""
    model._source = source
