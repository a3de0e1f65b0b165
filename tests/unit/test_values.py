"""mlpack.values.dataclass behaves as the standard library's: each check runs on the same
class declared with both decorators (what the builder's value types rely on), plus the cost that
the module exists for: no generated code, so a class is made several times faster."""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path
from dataclasses import field

import pytest

from mlpack.builder import instructions as ins
from mlpack.builder.events import BuildDone, LayerSummary
from mlpack.builder.parser import parse
from mlpack.runtime.options import RunOptions, parse_ports
from mlpack.values import asdict as values_asdict
from mlpack.values import dataclass as fast
from mlpack.values import field as values_field
from mlpack.values import replace as values_replace

ROOT = Path(__file__).resolve().parents[2]


def _declare(decorator, field=field):  # type: ignore[no-untyped-def]
    @decorator(frozen=True)
    class Base:
        node: str

    @decorator(frozen=True)
    class Child(Base):
        """A child."""

        count: int
        names: tuple[str, ...] = ()
        tags: list[str] = field(default_factory=list)
        flag: bool = False

    @decorator
    class Mutable:
        a: int
        b: list[int] = field(default_factory=list)
        derived: int = field(init=False, default=0)
        hidden: str = field(default="x", repr=False, compare=False)

        def __post_init__(self) -> None:
            self.derived = self.a * 2

    @decorator(frozen=True, slots=True)
    class Slotted:
        a: int
        b: str = "b"

    @decorator(frozen=True)
    class OwnRepr:
        a: int

        def __repr__(self) -> str:
            return "own"

    return Base, Child, Mutable, Slotted, OwnRepr


STD = _declare(dataclasses.dataclass)
FAST = _declare(fast)
LIGHT = _declare(fast, values_field)  # declared without the dataclasses module
for _prefix, _kinds in (("Std", STD), ("Fast", FAST), ("Light", LIGHT)):  # module-level names, so that pickle finds them
    for _kind in _kinds:
        _kind.__qualname__ = _prefix + _kind.__name__
        globals()[_kind.__qualname__] = _kind


def _outcome(fn):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn())
    except Exception as exc:  # the type of what is raised must match too
        return ("raised", type(exc))


def _behaviour(kinds):  # type: ignore[no-untyped-def]
    Base, Child, Mutable, Slotted, OwnRepr = kinds
    c = Child("n", 1, ("x",))
    m = Mutable(3)
    s = Slotted(1)
    out = {
        "fields": [(f.name, f.init, f.repr, f.compare) for f in dataclasses.fields(Child)]
        + [(f.name, f.init, f.repr, f.compare) for f in dataclasses.fields(Mutable)],
        "is_dataclass": dataclasses.is_dataclass(c) and dataclasses.is_dataclass(m),
        "match_args": Child.__match_args__,
        "values": (c.node, c.count, c.names, c.tags, c.flag),
        "kw": Child(node="n", count=1, names=("x",)) == c,
        "eq_other_value": c == Child("n", 2, ("x",)),
        "eq_other_type": Child("n", 1) == Base("n"),
        "hash_unhashable_field": _outcome(lambda: hash(Child("n", 1))),
        "hash": (hash(Base("n")), hash(Slotted(1)), hash(OwnRepr(2))),
        "repr": repr(c).replace(Child.__qualname__, "Child"),
        "repr_mutable": repr(m).replace(Mutable.__qualname__, "Mutable"),
        "own_repr": repr(OwnRepr(1)),
        "factory_fresh": Child("a", 1).tags is not Child("a", 1).tags,
        "post_init": (m.derived, m.b, m.hidden),
        "compare_false": Mutable(3, hidden="y") == m,
        "mutable_hash": Mutable.__hash__ is None,
        "assign_frozen": _outcome(lambda: setattr(c, "count", 2)),
        "delete_frozen": _outcome(lambda: delattr(c, "node")),
        "assign_mutable": _outcome(lambda: setattr(m, "a", 5)),
        "missing": _outcome(lambda: Child("n")),
        "unknown": _outcome(lambda: Child("n", 1, bogus=1)),
        "twice": _outcome(lambda: Child("n", 1, count=2)),
        "too_many": _outcome(lambda: Child("n", 1, (), [], False, "extra")),
        "init_false_arg": _outcome(lambda: Mutable(1, [], derived=5)),
        "replace": dataclasses.replace(c, count=5) == Child("n", 5, ("x",)),
        "replace_post_init": dataclasses.replace(m, a=4).derived,
        "values_replace": (values_replace(c, count=5) == Child("n", 5, ("x",)), values_replace(c) == c,
                           values_replace(c) is not c, values_replace(m, a=4).derived, values_replace(m, a=4).b is m.b,
                           values_replace(s, b="c") == Slotted(1, "c"), values_replace(OwnRepr(1), a=2).a),
        "values_replace_init_false": _outcome(lambda: values_replace(m, derived=1)),
        "values_replace_unknown": _outcome(lambda: values_replace(c, bogus=1)),
        "values_replace_not_a_dataclass": _outcome(lambda: values_replace(object(), a=1)),
        "asdict": dataclasses.asdict(c),
        "pickle": pickle.loads(pickle.dumps(c)) == c and pickle.loads(pickle.dumps(s)) == s,
        "deepcopy": copy.deepcopy(c) == c and copy.deepcopy(s) == s and copy.copy(s) == s,
        "slots": (hasattr(s, "__dict__"), Slotted.__slots__, _outcome(lambda: setattr(s, "a", 2))),
    }
    return out


@pytest.mark.parametrize("kinds", [FAST, LIGHT], ids=["dataclasses.field", "values.field"])
def test_same_behaviour_as_the_standard_decorator(kinds) -> None:  # type: ignore[no-untyped-def]
    std, ours = _behaviour(STD), _behaviour(kinds)
    assert std.keys() == ours.keys()
    different = {k: (std[k], ours[k]) for k in std if std[k] != ours[k]}
    assert not different, different


def test_values_asdict_is_the_standard_asdict() -> None:
    _, Child, Mutable, Slotted, _ = LIGHT
    for obj in (Child("n", 1, ("x", "y"), ["t"]), Mutable(2, [1]), Slotted(3)):
        assert values_asdict(obj) == dataclasses.asdict(obj)
    opts = RunOptions(ports=parse_ports(["8080:80"]), env=("A=1",))
    assert values_asdict(opts) == dataclasses.asdict(opts)
    with pytest.raises(TypeError):
        values_asdict({"not": "a dataclass"})


def test_declaring_with_values_field_imports_no_dataclasses() -> None:
    """The point of the light path: a CLI start that declares value types never loads
    dataclasses (and inspect, ast, dis with it), until something asks for the fields."""
    code = ("import sys\nfrom mlpack.values import dataclass, field, asdict, replace\n"
            "@dataclass(frozen=True)\nclass V:\n    a: int\n    b: tuple = ()\n"
            "    c: list = field(default_factory=list)\n"
            "v = V(1)\nassert asdict(v) == {'a': 1, 'b': (), 'c': []} and v == V(1) and repr(v)\n"
            "@dataclass(frozen=True, slots=True)\nclass S:\n    a: int\n    b: str = 'b'\n"
            "assert replace(v, a=3) == V(3) and replace(S(1), b='c') == S(1, 'c') and S.__slots__ == ('a', 'b')\n"
            "assert 'dataclasses' not in sys.modules and 'inspect' not in sys.modules, 'loaded'\n"
            "import dataclasses\nassert [f.name for f in dataclasses.fields(V)] == ['a', 'b', 'c']\n"
            "assert dataclasses.replace(v, a=2) == V(2) and dataclasses.is_dataclass(V)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr


def test_the_builder_and_runtime_types_are_real_dataclasses() -> None:
    cmd = ins.instructions(parse("FROM scratch\nCOPY --chown=1:1 a /b/\n").instructions)[1]
    assert isinstance(cmd, ins.CopyCommand) and dataclasses.is_dataclass(cmd)
    assert dataclasses.replace(cmd, dest="/c/").dest == "/c/" and cmd.dest == "/b/"
    assert pickle.loads(pickle.dumps(cmd)) == cmd and hash(cmd) == hash(copy.deepcopy(cmd))
    done = BuildDone(digest="sha256:ab", tag=None, seconds=1.0, layers=(LayerSummary("sha256:cd", 3, "COPY", True),))
    assert dataclasses.asdict(done)["layers"][0]["cached"] is True
    opts = RunOptions(ports=parse_ports(["8080:80"]), env=("A=1",))
    assert dataclasses.replace(opts, name="x").ports == opts.ports and RunOptions(**opts.__dict__) == opts
    assert dataclasses.asdict(opts.ports[0]) == {"host_port": 8080, "container_port": 80, "host_ip": "127.0.0.1"}


_compiled: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:  # type: ignore[type-arg]
    if _compiled and event in ("exec", "compile"):
        _compiled[-1].append(event)


sys.addaudithook(_audit)  # hooks stay for the process: it records only inside _compiles()


def _compiles(fn) -> list[str]:  # type: ignore[no-untyped-def]
    _compiled.append([])
    try:
        fn()
    finally:
        events = _compiled.pop()
    return events


def test_declaring_a_class_compiles_no_code() -> None:
    """What the module is for: the standard decorator compiles a method source per class
    (exec/compile audit events); this one compiles nothing."""
    def declare(decorator):  # type: ignore[no-untyped-def]
        return lambda: decorator(frozen=True)(type("V", (), {"__annotations__": {"a": "int", "b": "str"}, "b": "x"}))

    assert _compiles(declare(dataclasses.dataclass))
    assert _compiles(declare(fast)) == []


@pytest.mark.parametrize("bad", [dict(a=1, b=2), dict()])
def test_errors_name_the_class(bad: dict) -> None:  # type: ignore[type-arg]
    _, Child, *_ = FAST
    with pytest.raises(TypeError, match="Child"):
        Child(**bad)


def test_what_it_does_not_offer_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match="InitVar or kw_only"):
        @fast
        class WithInitVar:  # noqa: F841
            a: int
            scale: dataclasses.InitVar[int] = 1
    with pytest.raises(TypeError, match="InitVar or kw_only"):
        @fast
        class WithKwOnly:  # noqa: F841
            a: int = field(kw_only=True, default=0)
