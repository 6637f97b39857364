"""The original request headers of a webhook, looked up case-insensitively."""

from __future__ import annotations

from typing import Iterable, Iterator, List, Mapping, Optional, Tuple, overload

__all__ = ["Headers"]


class Headers(Mapping[str, str]):
    """The original request headers of a webhook, looked up case-insensitively.

    ``headers["Content-Type"]``, ``headers.get("webhook-id")``: a name sent
    more than once gives its values joined with ``", "`` (as HTTP defines);
    :meth:`get_all` gives them as a list. :attr:`raw` keeps the pairs exactly
    as received, in order, names in their original case. Iterating yields
    each distinct name once, in lower case.
    """

    __slots__ = ("_raw", "_index")

    def __init__(self, pairs: Iterable[Tuple[str, str]] = ()) -> None:
        self._raw: Tuple[Tuple[str, str], ...] = tuple((str(n), str(v)) for n, v in pairs)
        index: dict[str, List[str]] = {}
        for name, value in self._raw:
            index.setdefault(name.lower(), []).append(value)
        self._index = index

    @property
    def raw(self) -> Tuple[Tuple[str, str], ...]:
        """The ``(name, value)`` pairs as received, in order."""
        return self._raw

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._index[name.lower()])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def get_all(self, name: str) -> List[str]: ...

    @overload
    def get_all(self, name: str, default: List[str]) -> List[str]: ...

    def get_all(self, name: str, default: Optional[List[str]] = None) -> List[str]:
        """Every value sent under ``name`` (any case), in order; ``default``
        (an empty list unless given) when there is none."""
        values = self._index.get(name.lower())
        if values is None:
            return [] if default is None else default
        return list(values)

    def __repr__(self) -> str:
        return f"Headers({list(self._raw)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._index == other._index
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]
