"""``dataclass``: the standard library's, without its per-class code generation.

    from mlpack.values import dataclass

    @dataclass(frozen=True)
    class StepDone:
        step: int
        size: int | None = None

:func:`dataclasses.dataclass` writes the source of ``__init__``, ``__repr__``,
``__eq__``, ``__hash__`` and (frozen) ``__setattr__``/``__delattr__`` for each
class and compiles it with ``exec``: about half a millisecond per class at
import, which every CLI start pays for each value type it loads (a model-only
``mlpack build`` loads ~60, ``mlpack run`` ~30; the first targets 0.1 s and
the second a few per cent of a container's start). Here the standard
decorator runs without generating any of them (so the classes are real
dataclasses: :func:`dataclasses.fields`, :func:`~dataclasses.replace`,
:func:`~dataclasses.asdict` and ``__match_args__`` work as before) and one
shared implementation of each method, reading the class's fields, is attached
instead: the same arguments (positional or keyword, defaults and
``default_factory``, ``init=False`` fields, ``__post_init__``), equality by
type and fields, a hash for frozen classes (none for the others), the same
repr, :class:`dataclasses.FrozenInstanceError` on assignment to a frozen one,
and a method the class defines itself is kept. Declaring a class costs
0.01-0.1 ms instead of ~0.5 ms; making an instance costs a few microseconds
more, so a type made once per file of a layer (``mlpack.oci.layer.Entry``)
stays with the standard decorator. Not offered (refused when declared):
``InitVar`` pseudo-fields and ``kw_only`` fields; nor ``order`` or
``unsafe_hash``. It imports nothing of mlpack: any module may use it (a leaf
in tests/unit/test_layout.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, FrozenInstanceError
from typing import Any, Callable, TypeVar

__all__ = ["dataclass"]

T = TypeVar("T", bound=type)


def dataclass(cls: T | None = None, /, *, frozen: bool = False, slots: bool = False) -> Any:
    """:func:`dataclasses.dataclass` (``init``, ``repr`` and ``eq`` on; ``frozen``, ``slots``) without code generation."""

    def wrap(cls: T) -> T:
        if "__doc__" not in cls.__dict__ or not cls.__doc__:
            # dataclasses would compute inspect.signature(cls) for a missing docstring
            cls.__doc__ = f"{cls.__name__}({', '.join(cls.__dict__.get('__annotations__', {}))})"
        cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, slots=slots)  # type: ignore[assignment]
        fields = dataclasses.fields(cls)
        for f in cls.__dataclass_fields__.values():
            if f.kw_only is True or str(f.type).startswith(("InitVar", "dataclasses.InitVar")) \
                    or isinstance(f.type, dataclasses.InitVar):
                raise TypeError(f"{cls.__name__}.{f.name}: mlpack.values.dataclass takes no InitVar or kw_only "
                                "field; use dataclasses.dataclass for this class")
        cls.__values_init__ = tuple((f.name, f.default, f.default_factory) for f in fields if f.init)
        cls.__values_later__ = tuple((f.name, f.default, f.default_factory) for f in fields if not f.init)
        cls.__values_repr__ = tuple(f.name for f in fields if f.repr)
        cls.__values_compare__ = tuple(f.name for f in fields if f.compare)
        own = cls.__dict__
        # as dataclasses: what the class defines itself stays
        explicit_hash = not (own.get("__hash__", MISSING) is MISSING or (own["__hash__"] is None and "__eq__" in own))
        for name, method in (("__init__", _init), ("__repr__", _repr), ("__eq__", _eq)):
            if name not in own:
                setattr(cls, name, method)
        if not explicit_hash:  # eq without frozen is unhashable
            cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_delattr
            if slots:  # pickle and copy restore slots by setattr: give them dataclasses' state methods
                cls.__getstate__ = _getstate
                cls.__setstate__ = _setstate
        return cls

    return wrap if cls is None else wrap(cls)


def _default(name: str, default: Any, factory: Callable[[], Any] | Any, owner: type) -> Any:
    if default is not MISSING:
        return default
    if factory is not MISSING:
        return factory()
    raise TypeError(f"{owner.__name__}.__init__() missing 1 required argument: {name!r}")


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    owner = type(self)
    spec = owner.__values_init__
    if len(args) > len(spec):
        raise TypeError(f"{owner.__name__}.__init__() takes {len(spec) + 1} positional arguments "
                        f"but {len(args) + 1} were given")
    put = object.__setattr__
    for i, (name, default, factory) in enumerate(spec):
        if i < len(args):
            if name in kwargs:
                raise TypeError(f"{owner.__name__}.__init__() got multiple values for argument {name!r}")
            put(self, name, args[i])
        elif name in kwargs:
            put(self, name, kwargs.pop(name))
        else:
            put(self, name, _default(name, default, factory, owner))
    if kwargs:
        raise TypeError(f"{owner.__name__}.__init__() got an unexpected keyword argument {next(iter(kwargs))!r}")
    for name, default, factory in owner.__values_later__:
        if default is not MISSING or factory is not MISSING:
            put(self, name, _default(name, default, factory, owner))
    post = getattr(self, "__post_init__", None)
    if post is not None:
        post()


def _repr(self: Any) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__values_repr__)
    return f"{type(self).__qualname__}({inner})"


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in type(self).__values_compare__)


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(self), state):
        object.__setattr__(self, f.name, value)
