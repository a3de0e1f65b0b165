"""Frozen value classes declared like frozen dataclasses, without dataclasses' code generation.

    class StepDone(Frozen):
        step: int
        size: int | None = None

Fields are the class's own annotations after its bases' (``ClassVar`` ones
excepted), defaults are class attributes, and instances compare, hash and
print by their fields, refuse assignment, and accept the fields by position
or by keyword, as ``@dataclass(frozen=True)`` gives. What they do without is
the per-class ``exec`` of generated methods: about half a millisecond per
class at import, which every ``mlpack build`` start pays for each of the
builder's parsed-instruction, typed-command and event types (the model-only
rebuild from the CLI targets 0.1 s). Defaults must be immutable (no
``default_factory``); :func:`replace` is :func:`dataclasses.replace`'s twin.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, ClassVar

__all__ = ["Frozen", "replace"]

_MISSING = object()


class Frozen:
    """Base of the builder's immutable value types (see the module docstring)."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [name for name, kind in cls.__dict__.get("__annotations__", {}).items()
               if not str(kind).startswith(("ClassVar", "typing.ClassVar"))]
        fields = list(cls._fields) + [name for name in own if name not in cls._fields]
        defaults = dict(cls._defaults)
        for name in own:
            value = cls.__dict__.get(name, _MISSING)
            if value is not _MISSING:
                defaults[name] = value
        seen_default = False
        for name in fields:  # as dataclasses: no field without a default after one with
            if name in defaults:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument in {cls.__name__}")
        cls._fields = tuple(fields)
        cls._defaults = defaults
        cls.__match_args__ = cls._fields

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} positional arguments "
                            f"but {len(args)} were given")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            values[name] = value
        put = object.__setattr__
        for name in fields:
            value = values.get(name, _MISSING)
            if value is _MISSING:
                value = self._defaults.get(name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{type(self).__name__}() missing required argument: {name!r}")
            put(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({inner})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


def replace(value: Frozen, **changes: Any) -> Any:
    """A copy of ``value`` with ``changes`` (as :func:`dataclasses.replace`)."""
    return type(value)(**{**{name: getattr(value, name) for name in value._fields}, **changes})
