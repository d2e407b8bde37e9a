"""`tenure.core.values` behaves like the dataclasses it replaces, checked against real ones."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Generic, TypeVar

import pytest

from tenure.core.values import FrozenValueError, asdict, field, frozen, is_value, mutable, replace

T = TypeVar("T")


@frozen
class Point:
    """A docstring that stays."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = ()

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


@dataclasses.dataclass(frozen=True, slots=True)
class RealPoint:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


@frozen
class Box(Generic[T]):
    item: T
    points: tuple[Point, ...] = ()


@frozen
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("negative")


@mutable
class Bag:
    found: list[int] = field(default_factory=list)
    seen: dict[str, Point] = field(default_factory=dict)


def test_construction_matches_a_real_dataclass() -> None:
    for args, kwargs in [
        ((1,), {}),
        ((1, 2), {}),
        ((), {"x": 3, "tags": ("a",)}),
        ((4,), {"y": 5}),
    ]:
        ours, real = Point(*args, **kwargs), RealPoint(*args, **kwargs)
        assert (ours.x, ours.y, ours.tags) == (real.x, real.y, real.tags)
        assert repr(ours) == repr(real).replace("RealPoint", "Point")
    assert Point.__match_args__ == RealPoint.__match_args__ == ("x", "y", "tags")
    assert Point.__doc__ == "A docstring that stays."
    assert Point(1, 2).norm1 == 3


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1, 2, (), 4), {}), ((1,), {"x": 2}), ((1,), {"z": 2})],
)
def test_wrong_arguments_are_refused_like_a_dataclass(
    args: tuple[int, ...], kwargs: dict[str, int]
) -> None:
    with pytest.raises(TypeError):
        RealPoint(*args, **kwargs)  # type: ignore[arg-type, call-arg, misc]
    with pytest.raises(TypeError):
        Point(*args, **kwargs)  # type: ignore[arg-type, call-arg, misc]


def test_frozen_equality_and_hashing() -> None:
    a, b, c = Point(1, 2), Point(1, 2), Point(2, 1)
    assert a == b
    assert a != c
    assert hash(a) == hash(b)
    assert len({a, b, c}) == 2
    assert a != RealPoint(1, 2)  # another class is never equal, as with dataclasses
    with pytest.raises(FrozenValueError):
        a.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.y  # type: ignore[misc]
    with pytest.raises(AttributeError):
        a.other = 1  # type: ignore[attr-defined]  # slots: no new attributes
    assert not hasattr(a, "__dict__")


def test_mutable_values_take_fresh_defaults_and_are_unhashable() -> None:
    one, two = Bag(), Bag()
    one.found.append(1)
    assert two.found == []
    assert one != two
    two.found.append(1)
    assert one == two
    with pytest.raises(TypeError):
        hash(one)


def test_post_init_runs_after_every_construction() -> None:
    assert Checked(1).n == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)
    with pytest.raises(ValueError, match="negative"):
        replace(Checked(1), n=-2)


def test_replace_and_asdict() -> None:
    p = Point(1, 2, ("a",))
    q = replace(p, y=7)
    assert (q.x, q.y, q.tags) == (1, 7, ("a",))
    assert p.y == 2
    with pytest.raises(TypeError, match="no field 'z'"):
        replace(p, z=1)
    box = Box(item=[Point(1)], points=(Point(2, 3),))
    assert asdict(box) == {
        "item": [{"x": 1, "y": 0, "tags": ()}],
        "points": ({"x": 2, "y": 3, "tags": ()},),
    }
    bag = Bag(seen={"p": Point(4)})
    assert asdict(bag) == {"found": [], "seen": {"p": {"x": 4, "y": 0, "tags": ()}}}
    assert asdict(p) == dataclasses.asdict(RealPoint(1, 2, ("a",)))
    assert is_value(p)
    assert is_value(bag)
    assert not is_value(RealPoint(1))


def test_pickle_and_copy_round_trip() -> None:
    p = Point(1, 2, ("a",))
    for twin in (pickle.loads(pickle.dumps(p)), copy.copy(p), copy.deepcopy(p)):
        assert twin == p
        assert twin is not p
    bag = Bag([1], {"p": p})
    assert pickle.loads(pickle.dumps(bag)) == bag


def test_generic_values_keep_their_class() -> None:
    box: Box[int] = Box(3)
    assert box.item == 3
    assert Box.__qualname__ == "Box"
    assert Box[int](4) == Box(4)


def test_what_the_class_body_defines_stays() -> None:
    @frozen
    class Secret:
        name: str
        token: str

        def __repr__(self) -> str:
            return f"Secret({self.name!r}, token=…)"

    s = Secret("a", "t0ps3cret")
    assert repr(s) == "Secret('a', token=…)"
    assert hash(s) == hash(Secret("a", "t0ps3cret"))  # still hashed over its fields
    with pytest.raises(TypeError, match="cannot define"):

        @frozen
        class Settable:
            x: int

            def __setattr__(self, name: str, value: object) -> None:
                object.__setattr__(self, name, value)
