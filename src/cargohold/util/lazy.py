"""``cached_property`` that builds its value once even when threads race for it.

functools' version lost its lock in Python 3.12: two threads of a service reaching
``engine.layers`` at once would each build a store and keep different ones.  Here the first
build runs under a lock of the property (re-entrant: a property may use another); once the
value is in the instance's ``__dict__`` it is read from there without calling this at all.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class cached_property(Generic[T]):
    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.attrname = func.__name__
        self.__doc__ = func.__doc__
        self._lock = _thread.RLock()

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.attrname = name

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> cached_property[T]: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> T: ...

    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        if instance is None:
            return self
        cache = instance.__dict__
        with self._lock:
            if self.attrname in cache:  # another thread built it while we waited
                return cache[self.attrname]
            value = self.func(instance)
            cache[self.attrname] = value
            return value
