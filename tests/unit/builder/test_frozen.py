"""The builder's frozen value classes behave as frozen dataclasses do (fields, defaults, equality,
hash, repr, immutability, pickling), without dataclasses' per-class code generation."""

from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError

import pytest

from mlpack.builder import instructions as ins
from mlpack.builder.events import BuildDone, LayerSummary, StepDone
from mlpack.builder.frozen import Frozen, replace
from mlpack.builder.parser import parse


class Base(Frozen):
    node: str


class Child(Base):
    count: int
    names: tuple[str, ...] = ()
    flag: bool = False


def test_fields_are_the_bases_then_the_class_own_in_order() -> None:
    assert Child._fields == ("node", "count", "names", "flag")
    assert Child.__match_args__ == Child._fields
    c = Child("n", 2, flag=True)
    assert (c.node, c.count, c.names, c.flag) == ("n", 2, (), True)


def test_equality_and_hash_by_type_and_fields() -> None:
    a, b = Child("n", 1, ("x",)), Child(node="n", count=1, names=("x",))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Child("n", 2, ("x",))

    class Other(Base):
        count: int
        names: tuple[str, ...] = ()
        flag: bool = False

    assert a != Other("n", 1, ("x",))  # same fields, another type: not equal (as dataclasses)
    assert repr(a) == "Child(node='n', count=1, names=('x',), flag=False)"


def test_instances_refuse_assignment_and_deletion() -> None:
    c = Child("n", 1)
    with pytest.raises(FrozenInstanceError):
        c.count = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del c.node  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        c.new = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("n",), {}, "missing required argument: 'count'"),
    (("n", 1), {"bogus": 2}, "unexpected keyword argument 'bogus'"),
    (("n", 1), {"count": 2}, "multiple values for argument 'count'"),
    (("n", 1, (), False, "extra"), {}, "takes 4 positional arguments but 5 were given"),
])
def test_bad_arguments_are_type_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Child(*args, **kwargs)


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="non-default argument 'late'"):
        class Bad(Frozen):  # noqa: F841
            early: int = 0
            late: str


def test_real_commands_and_events_pickle_copy_and_compare() -> None:
    cmd = ins.instructions(parse("FROM scratch\nCOPY --chown=1:1 a /b/\n").instructions)[1]
    assert isinstance(cmd, ins.CopyCommand) and isinstance(cmd, ins.Command)
    assert pickle.loads(pickle.dumps(cmd)) == cmd == copy.deepcopy(cmd)
    assert cmd.line == 2 and cmd.chown == "1:1" and cmd.link is False
    done = BuildDone(digest="sha256:ab", tag=None, seconds=1.0, layers=(LayerSummary("sha256:cd", 3, "COPY", True),))
    assert done.unused_build_args == () and done.layers[0].cached is True
    assert StepDone(1, 2, "RUN x", None, 0.5) == StepDone(step=1, total=2, instruction="RUN x", size=None, seconds=0.5)


def test_replace_copies_with_changes_and_checks_names() -> None:
    c = Child("n", 1, ("x",))
    assert replace(c, count=2) == Child("n", 2, ("x",)) and c.count == 1
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        replace(c, bogus=1)
    node = parse("FROM scratch\nRUN <<EOF\necho hi\nEOF\n").instructions[1]
    assert node.heredocs[0].content == "echo hi\n" and node.end_line > node.line  # set through replace()
