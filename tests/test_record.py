"""syndicate.record: frozen, slotted records that behave as the frozen, slotted
dataclasses they replace (repr, equality, hashing, pickling), without their cost."""

from __future__ import annotations

import ast
import copy
import dataclasses
import pickle
from pathlib import Path

import pytest

from syndicate.record import FrozenInstanceError, Record, field, fields, replace


class Point(Record):
    """A record with a default, a factory and a __post_init__."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", f"{self.x},{self.y}")


@dataclasses.dataclass(frozen=True, slots=True)
class DataPoint:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = dataclasses.field(default_factory=dict)
    label: str = ""


class Pair(Record):
    a: int
    b: str


@dataclasses.dataclass(frozen=True, slots=True)
class DataPair:
    a: int
    b: str


def test_arguments_defaults_factories_and_post_init() -> None:
    point = Point(1, tags=("a",))
    assert (point.x, point.y, point.tags, point.extra, point.label) == (1, 0, ("a",), {}, "1,0")
    assert Point(1).extra is not Point(1).extra  # a new dict each time
    assert Point(1, 2, label="p").label == "p"


def test_repr_equality_and_hash_are_a_dataclass_s() -> None:
    """repr feeds run fingerprints: the same text as the dataclass it replaced."""
    point = Point(1, 2, ("a",), {"k": 1}, "p")
    assert repr(point) == repr(DataPoint(1, 2, ("a",), {"k": 1}, "p")).replace("DataPoint", "Point")
    assert point == Point(1, 2, ("a",), {"k": 1}, "p")
    assert point != Point(2) and point != DataPoint(1, 2, ("a",), {"k": 1}, "p")
    assert hash(Pair(1, "a")) == hash(Pair(1, "a")) == hash(DataPair(1, "a"))
    with pytest.raises(TypeError, match="unhashable"):
        hash(point)  # a dict in it, as with a dataclass


def test_fields_are_frozen() -> None:
    point = Point(1)
    with pytest.raises(FrozenInstanceError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.y  # type: ignore[misc]
    with pytest.raises(AttributeError):
        point.other = 1  # type: ignore[attr-defined]


def test_replace_runs_init_again_and_refuses_unknown_fields() -> None:
    point = Point(1, label="p")
    assert replace(point, y=5) == Point(1, 5, label="p")
    assert replace(Point(1), x=3, label="").label == "3,0"
    with pytest.raises(TypeError, match="no field 'z'"):
        replace(point, z=1)


def test_pickling_and_copying_keep_a_frozen_dataclass_s_state() -> None:
    """The post cache holds pickles made when these classes were dataclasses: the same
    state (a list of the values) reads back into a record."""
    point = Point(1, 2, ("a",), {"k": 1}, "p")
    assert pickle.loads(pickle.dumps(point)) == point  # noqa: S301 - bytes made here
    assert copy.copy(point) == point and copy.deepcopy(point) == point
    assert point.__getstate__() == DataPoint(1, 2, ("a",), {"k": 1}, "p").__getstate__()  # type: ignore[attr-defined]


def test_fields_in_order_with_their_annotations() -> None:
    assert [(f.name, f.type) for f in fields(Point)][:2] == [("x", "int"), ("y", "int")]
    assert Point.__match_args__ == ("x", "y", "tags", "extra", "label")


def test_wrong_calls_and_declarations_fail_as_a_dataclass_s_would() -> None:
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no field 'z'"):
        Point(1, z=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="got two values for 'x'"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 5 arguments"):
        Point(1, 2, (), {}, "", 6)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="mutable default"):

        class Bad(Record):
            items: list[int] = []  # noqa: RUF012 - the mistake under test

    with pytest.raises(TypeError, match="without a default follows"):

        class Unordered(Record):
            a: int = 0
            b: int


@pytest.mark.slow  # parses every module (~0.3 s)
def test_nothing_uses_dataclasses_replace() -> None:
    """Given a record, dataclasses.replace raises TypeError (and mypy does not see it):
    the package and its tests use `syndicate.record.replace`, which takes both."""
    root = Path(__file__).resolve().parent.parent
    found = []
    for path in [*root.joinpath("syndicate").rglob("*.py"), *root.joinpath("tests").rglob("*.py")]:
        if path.name == "record.py":
            continue  # the one call, for dataclass instances
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "dataclasses":
                if any(alias.name == "replace" for alias in node.names):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "replace"
                and isinstance(node.value, ast.Name)
                and node.value.id == "dataclasses"
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []
