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
writes its own ``__init__``. Not offered (refused when declared):
``InitVar`` pseudo-fields and ``kw_only`` fields; nor ``order`` or
``unsafe_hash``. It imports nothing of mlpack: any module may use it (a leaf
in tests/unit/test_layout.py).

Nor does declaring a class import :mod:`dataclasses` (with :mod:`inspect`,
:mod:`ast`, :mod:`dis`, :mod:`tokenize`: ~10 ms of a CLI start) when its
defaults are plain values or :func:`field` (this module's): the fields are
read from the annotations here, and ``__dataclass_fields__`` /
``__dataclass_params__`` are made by the standard decorator on first use
(:func:`dataclasses.fields`, ``replace``, ``asdict``, ``is_dataclass``), on a
copy of the class as declared. :func:`asdict` and :func:`replace` here need
no such step; ``slots=True`` makes the class again with its slots, as the
standard decorator does. A class with a :func:`dataclasses.field` default or
a ``ClassVar``/``InitVar``/``KW_ONLY`` annotation is declared through
:mod:`dataclasses` as before.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs a CLI start ~3 ms: only the type checker reads it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, TypeVar

    T = TypeVar("T", bound=type)

__all__ = ["dataclass", "field", "asdict", "replace"]


class _MissingType:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


# This module's "no value" (dataclasses.MISSING, without importing dataclasses).
MISSING: Any = _MissingType()


class _FieldSpec:
    """What :func:`field` returns: read by :func:`dataclass` (and turned into a
    :class:`dataclasses.Field` only when the standard module asks for the fields)."""

    __slots__ = ("default", "default_factory", "init", "repr", "compare", "hash", "metadata")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool, compare: bool,
                 hash: bool | None, metadata: Any) -> None:
        self.default, self.default_factory = default, default_factory
        self.init, self.repr, self.compare, self.hash, self.metadata = init, repr, compare, hash, metadata

    def std(self) -> Any:
        import dataclasses

        return dataclasses.field(
            default=dataclasses.MISSING if self.default is MISSING else self.default,
            default_factory=dataclasses.MISSING if self.default_factory is MISSING else self.default_factory,
            init=self.init, repr=self.repr, compare=self.compare, hash=self.hash, metadata=self.metadata)


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING, init: bool = True,
          repr: bool = True, compare: bool = True, hash: bool | None = None, metadata: Any = None) -> Any:
    """:func:`dataclasses.field` for :func:`dataclass` (``kw_only`` is not offered)."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _FieldSpec(default, default_factory, init, repr, compare, hash, metadata)


# (name, default, default_factory, init, repr, compare, hash, metadata) per field
_Spec = tuple


def dataclass(cls: T | None = None, /, *, frozen: bool = False, slots: bool = False) -> Any:
    """:func:`dataclasses.dataclass` (``init``, ``repr`` and ``eq`` on; ``frozen``, ``slots``) without code generation."""

    def wrap(cls: T) -> T:
        if "__doc__" not in cls.__dict__ or not cls.__doc__:
            # dataclasses would compute inspect.signature(cls) for a missing docstring
            cls.__doc__ = f"{cls.__name__}({', '.join(cls.__dict__.get('__annotations__', {}))})"
        specs = _light_specs(cls)
        if specs is None:
            cls, specs = _std_specs(cls, slots)
        else:
            if slots:
                cls = _with_slots(cls, specs)
            _declare_light(cls, specs)
        _attach(cls, specs, frozen, slots)
        return cls

    return wrap if cls is None else wrap(cls)


def _is_std_field(value: Any) -> bool:
    dc = sys.modules.get("dataclasses")
    return dc is not None and isinstance(value, dc.Field)


def _light_specs(cls: type) -> list[_Spec] | None:
    """Every field of ``cls`` (its bases' first), read without :mod:`dataclasses`; None when
    the class needs the standard decorator (see the module's docstring)."""
    own = cls.__dict__
    annotations = own.get("__annotations__", {})
    fields: dict[str, _Spec] = {}
    for base in cls.__mro__[-1:0:-1]:
        light = base.__dict__.get("__values_fields__")
        if light is not None:
            fields.update((s[0], s) for s in light)
        elif "__dataclass_fields__" in base.__dict__:
            return None  # a standard dataclass base: let dataclasses merge its fields
    for name, kind in annotations.items():
        text = kind if isinstance(kind, str) else repr(kind)
        if "ClassVar" in text or "InitVar" in text or "KW_ONLY" in text:
            return None
        value = own.get(name, MISSING)
        if _is_std_field(value):
            return None
        if isinstance(value, _FieldSpec):
            fields[name] = (name, value.default, value.default_factory, value.init, value.repr, value.compare,
                            value.hash, value.metadata)
        else:
            if value is not MISSING and type(value).__hash__ is None:  # as dataclasses refuses it
                raise ValueError(f"mutable default {type(value)} for field {name} is not allowed: "
                                 "use default_factory")
            fields[name] = (name, value, MISSING, True, True, True, None, None)
    for name, value in own.items():
        if isinstance(value, _FieldSpec) and name not in annotations:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    return list(fields.values())


def _slot_names(cls: type) -> tuple[str, ...]:
    slots = cls.__dict__.get("__slots__")
    if slots is None:
        return ()
    if isinstance(slots, str):
        return (slots,)
    if hasattr(slots, "__next__"):
        raise TypeError(f"Slots of {cls.__name__!r} cannot be determined")
    return tuple(slots)


def _with_slots(cls: T, specs: list[_Spec]) -> T:
    """``cls`` made again with a slot for each of its fields, as the standard ``slots=True`` makes it
    (the slots of its bases left out; defaults stay in the specs, not on the class)."""
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__} already specifies __slots__")
    ns = dict(cls.__dict__)
    inherited = {name for base in cls.__mro__[1:-1] for name in _slot_names(base)}
    ns["__slots__"] = tuple(s[0] for s in specs if s[0] not in inherited)
    for s in specs:
        ns.pop(s[0], None)
    ns.pop("__dict__", None)
    ns.pop("__weakref__", None)
    slotted = type(cls)(cls.__name__, cls.__bases__, ns)
    slotted.__qualname__ = cls.__qualname__
    return slotted  # type: ignore[return-value]


def _declare_light(cls: type, specs: list[_Spec]) -> None:
    """What the standard decorator leaves on the class, but ``__dataclass_fields__`` and
    ``__dataclass_params__``, which are made on first use."""
    annotations = cls.__dict__.get("__annotations__", {})
    cls.__values_fields__ = tuple(s for s in specs if s[0] in annotations)  # declared here
    for name, default, *_ in cls.__values_fields__:
        if isinstance(cls.__dict__.get(name), _FieldSpec):
            if default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, default)
    for attr in ("__dataclass_fields__", "__dataclass_params__"):
        setattr(cls, attr, _Materialize(cls, attr))
    if "__match_args__" not in cls.__dict__:
        cls.__match_args__ = tuple(s[0] for s in specs if s[3])


class _Materialize:
    """``__dataclass_fields__`` / ``__dataclass_params__`` of a class declared here, made on
    first use by running the standard decorator on a copy of the class as it was declared."""

    def __init__(self, owner: type, attr: str) -> None:
        self.owner, self.attr = owner, attr

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        import dataclasses

        owner = self.owner
        if isinstance(owner.__dict__.get(self.attr), _Materialize):
            ns: dict[str, Any] = {"__module__": owner.__module__, "__qualname__": owner.__qualname__,
                                  "__doc__": owner.__doc__,
                                  "__annotations__": dict(owner.__dict__.get("__annotations__", {}))}
            for name, default, factory, init, rep, compare, hsh, metadata in owner.__values_fields__:
                ns[name] = _FieldSpec(default, factory, init, rep, compare, hsh, metadata).std()
            shadow = dataclasses.dataclass(type(owner)(owner.__name__, owner.__bases__, ns),
                                           init=False, repr=False, eq=False)
            type.__setattr__(owner, "__dataclass_fields__", shadow.__dataclass_fields__)
            type.__setattr__(owner, "__dataclass_params__", shadow.__dataclass_params__)
        return owner.__dict__[self.attr]


def _std_specs(cls: T, slots: bool) -> tuple[T, list[_Spec]]:
    """The class through the standard decorator (no methods generated), and its fields."""
    import dataclasses

    for name, value in list(cls.__dict__.items()):
        if isinstance(value, _FieldSpec):
            setattr(cls, name, value.std())
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, slots=slots)  # type: ignore[assignment]
    for f in cls.__dataclass_fields__.values():
        if f.kw_only is True or str(f.type).startswith(("InitVar", "dataclasses.InitVar")) \
                or isinstance(f.type, dataclasses.InitVar):
            raise TypeError(f"{cls.__name__}.{f.name}: mlpack.values.dataclass takes no InitVar or kw_only "
                            "field; use dataclasses.dataclass for this class")
    plain = lambda v: MISSING if v is dataclasses.MISSING else v  # noqa: E731
    return cls, [(f.name, plain(f.default), plain(f.default_factory), f.init, f.repr, f.compare, f.hash,
                  f.metadata) for f in dataclasses.fields(cls)]


def _attach(cls: type, specs: list[_Spec], frozen: bool, slots: bool) -> None:
    cls.__values_init__ = tuple((s[0], s[1], s[2]) for s in specs if s[3])
    cls.__values_later__ = tuple((s[0], s[1], s[2]) for s in specs if not s[3])
    cls.__values_repr__ = tuple(s[0] for s in specs if s[4])
    cls.__values_compare__ = tuple(s[0] for s in specs if s[5])
    cls.__values_names__ = tuple(s[0] for s in specs)
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


def asdict(obj: Any) -> dict[str, Any]:
    """:func:`dataclasses.asdict` (the same dict) without the standard module for this module's classes."""
    if getattr(type(obj), "__values_names__", None) is None:
        import dataclasses

        return dataclasses.asdict(obj)
    return _asdict(obj)


def replace(obj: Any, /, **changes: Any) -> Any:
    """:func:`dataclasses.replace` (the same new object, the same errors) without the standard
    module for this module's classes."""
    cls = type(obj)
    owner = next((c for c in cls.__mro__ if "__values_names__" in c.__dict__ or "__dataclass_fields__" in c.__dict__),
                 None)
    if owner is None or "__values_names__" not in owner.__dict__:  # a standard dataclass, or none
        import dataclasses

        return dataclasses.replace(obj, **changes)
    for name, _, _ in cls.__values_later__:
        if name in changes:
            raise ValueError(f"field {name} is declared with init=False, it cannot be specified with replace()")
    for name, _, _ in cls.__values_init__:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return cls(**changes)


def _asdict(obj: Any) -> Any:
    names = getattr(type(obj), "__values_names__", None)
    if names is not None:
        return {name: _asdict(getattr(obj, name)) for name in names}
    if type(obj) in (str, int, float, bool, type(None)):  # what deepcopy returns as it is
        return obj
    if hasattr(type(obj), "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple, as dataclasses does
        return type(obj)(*[_asdict(v) for v in obj])
    if isinstance(obj, (list, tuple)):
        return type(obj)(_asdict(v) for v in obj)
    if isinstance(obj, dict):
        return type(obj)((_asdict(k), _asdict(v)) for k, v in obj.items())
    import copy

    return copy.deepcopy(obj)


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
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, name) for name in type(self).__values_names__]


def _setstate(self: Any, state: list[Any]) -> None:
    for name, value in zip(type(self).__values_names__, state):
        object.__setattr__(self, name, value)
