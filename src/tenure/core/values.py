"""Value classes (pure): `@frozen` is `@dataclass(frozen=True, slots=True)`, made cheaply.

Why not dataclasses: importing it loads `inspect` (ast, dis, tokenize), and every class compiles
six methods with exec, ~0.6 ms a class on the 2-core reference machine: ~25 ms for the two
dozen records the daemon imports, paid again by every `tenure sync start`, every daemon and
every host tool that imports `tenure.ensure` (benchmarks/run.py, `cold_start_s`). Here every
class shares the same few methods, driven by its tuple of field names, and compiles only its
constructor, on its first construction. mypy reads `frozen` and `mutable` as dataclasses
(PEP 681), so constructors, defaults and immutability stay checked.

Covered: fields from the class's own annotations (after a value base's), positional or
keyword construction, plain defaults and `field(default_factory=...)`, `__post_init__`,
equality and hashing over the fields in order, a dataclass-style repr, `__match_args__`,
pickling and `copy`, `replace` and `asdict`. Not covered, because no class here needs it:
ordering, `InitVar`, `ClassVar`, keyword-only fields, per-field options.
"""

from __future__ import annotations

from operator import attrgetter

from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_options: object) -> Callable[[T], T]:
        """Only for the type checker; nothing to do when running."""
        return lambda fn: fn


FIELDS = "__value_fields__"
_MISSING = object()


class FrozenValueError(AttributeError):
    """An attribute of a frozen value was assigned or deleted."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A default made afresh for every instance (a list, a dict, a clock reading)."""
    return _Factory(default_factory)  # type: ignore[return-value]  # resolved by __init__


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[T]) -> type[T]:
    """A frozen value class: immutable, hashable, compared field by field."""
    return _build(cls, frozen=True)


@dataclass_transform(field_specifiers=(field,))
def mutable(cls: type[T]) -> type[T]:
    """A mutable value class (a result being filled in): compared field by field, unhashable."""
    return _build(cls, frozen=False)


def is_value(obj: object) -> bool:
    """True for an instance of a `frozen` or `mutable` class."""
    return hasattr(type(obj), FIELDS)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the value `obj` with `changes` applied (checked by `__init__` again)."""
    names: tuple[str, ...] = getattr(type(obj), FIELDS)
    unknown = changes.keys() - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    for name in names:
        changes.setdefault(name, getattr(obj, name))
    return type(obj)(**changes)


def asdict(obj: object) -> dict[str, Any]:
    """The value's fields as a dict, nested values, lists, tuples and dicts converted too."""
    return {name: _plain(getattr(obj, name)) for name in getattr(type(obj), FIELDS)}


def _plain(item: Any) -> Any:
    if is_value(item):
        return asdict(item)
    if isinstance(item, list | tuple):
        return type(item)(_plain(x) for x in item)
    if isinstance(item, dict):
        return {k: _plain(v) for k, v in item.items()}
    return item


def _build(cls: type[T], *, frozen: bool) -> type[T]:
    inherited: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}
    for base in reversed(cls.__mro__[1:]):
        inherited += tuple(n for n in getattr(base, FIELDS, ()) if n not in inherited)
        defaults.update(getattr(base, "__value_defaults__", {}))
    own_annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063  (inspect is the cost avoided)
    own = tuple(n for n in own_annotations if n not in inherited)
    names = inherited + own
    ns = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    for name in own:
        if name in ns:
            defaults[name] = ns.pop(name)  # a slot and a class attribute cannot share a name
    get = attrgetter(*names) if names else (lambda _obj: ())
    ns.update(
        __slots__=own,
        __match_args__=names,
        __value_fields__=names,
        __value_defaults__=defaults,
        __value_get__=get,
    )
    # As with dataclasses, what the class body defines itself stays (a repr that hides a
    # secret, say); the `__hash__ = None` Python adds beside a body's own `__eq__` does not count.
    generated = {
        "__init__": _init,
        "__repr__": _repr,
        "__eq__": _eq,
        "__getstate__": _getstate,
        "__setstate__": _setstate,
    }
    for name, method in generated.items():
        ns.setdefault(name, method)
    own_hash = "__hash__" in ns and not (ns["__hash__"] is None and "__eq__" in cls.__dict__)
    if not own_hash:
        ns["__hash__"] = _hash if frozen else None
    if frozen:
        if "__setattr__" in ns or "__delattr__" in ns:
            raise TypeError(f"frozen value {cls.__name__} cannot define __setattr__/__delattr__")
        ns.update(__setattr__=_refuse_set, __delattr__=_refuse_del)
    meta: Any = type(cls)  # the class's own metaclass, as dataclasses' slots=True does
    made: type[T] = meta(cls.__name__, cls.__bases__, ns)
    made.__qualname__ = cls.__qualname__
    return made


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    """A class's first construction: compile its own `__init__`, then run it."""
    cls = type(self)
    cls.__init__ = _compile_init(cls)
    cls.__init__(self, *args, **kwargs)


def _compile_init(cls: Any) -> Callable[..., None]:
    """The constructor a dataclass would have, compiled once the class is first used: a
    record imported but never built costs nothing, one built often costs what a dataclass's
    does. Field names are identifiers (annotations), so the source is safe to compile."""
    names: tuple[str, ...] = cls.__value_fields__
    defaults: dict[str, Any] = cls.__value_defaults__
    env: dict[str, Any] = {"_put": object.__setattr__, "_MISSING": _MISSING}
    params, lines = [], []
    for i, name in enumerate(names):
        default = defaults.get(name, _MISSING)
        if default is _MISSING:
            params.append(name)
            lines.append(f"_put(self, {name!r}, {name})")
        elif type(default) is _Factory:
            env[f"_make{i}"] = default.make
            params.append(f"{name}=_MISSING")
            lines.append(f"_put(self, {name!r}, _make{i}() if {name} is _MISSING else {name})")
        else:
            env[f"_default{i}"] = default
            params.append(f"{name}=_default{i}")
            lines.append(f"_put(self, {name!r}, {name})")
    if hasattr(cls, "__post_init__"):
        lines.append("self.__post_init__()")
    body = "".join(f"\n    {line}" for line in lines or ["pass"])
    exec(f"def __init__(self, {', '.join(params)}):{body}", env)  # noqa: S102
    init: Callable[..., None] = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _repr(self: Any) -> str:
    shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__value_fields__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    get = type(self).__value_get__
    return get(self) == get(other)


def _hash(self: Any) -> int:
    return hash(type(self).__value_get__(self))


def _refuse_set(self: Any, name: str, _new: object) -> None:
    raise FrozenValueError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _refuse_del(self: Any, name: str) -> None:
    raise FrozenValueError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _getstate(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n in type(self).__value_fields__)


def _setstate(self: Any, state: tuple[Any, ...]) -> None:
    for name, item in zip(type(self).__value_fields__, state, strict=True):
        object.__setattr__(self, name, item)
