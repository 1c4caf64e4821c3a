"""One engine stream read by several consumers, each at its own pace.

Greedy choices of one prompt (``n`` > 1 at temperature 0) are the same text by
definition. Decoding them as separate sequences costs a slot each, and batched decoding
is not bit-exact across batch shapes, so a near tie could make two "identical" choices
differ. Decoding once and sharing the tokens is both cheaper and exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()


class _Shared(Generic[T]):
    """The source and everything read from it so far; closed when every copy is."""

    def __init__(self, source: AsyncIterator[T], copies: int) -> None:
        self._source = source
        self._items: list[object] = []
        self._lock = asyncio.Lock()
        self._open = copies

    async def item(self, index: int) -> object:
        """The ``index``-th item (``_END`` or an exception at the end), reading on demand."""
        async with self._lock:  # one reader advances the source; the others then find it
            while len(self._items) <= index:
                if self._items and (self._items[-1] is _END or _failed(self._items[-1])):
                    return self._items[-1]
                try:
                    self._items.append(await self._source.__anext__())
                except StopAsyncIteration:
                    self._items.append(_END)
                except Exception as error:  # every copy sees the same failure
                    self._items.append(error)
            return self._items[index]

    async def release(self) -> None:
        self._open -= 1
        if self._open == 0:
            await self._source.aclose()  # type: ignore[attr-defined]


def _failed(item: object) -> bool:
    return isinstance(item, Exception)


class _Copy(AsyncIterator[T]):
    def __init__(self, shared: _Shared[T]) -> None:
        self._shared = shared
        self._next = 0
        self._closed = False

    def __aiter__(self) -> _Copy[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        item = await self._shared.item(self._next)
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        self._next += 1
        return item  # type: ignore[return-value]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._shared.release()


def fan_out(source: AsyncIterator[T], copies: int) -> list[AsyncIterator[T]]:
    """``copies`` iterators over ``source``'s items; ``source`` is closed once all are."""
    shared = _Shared(source, copies)
    return [_Copy(shared) for _ in range(copies)]
