"""Frozen, slotted records, as `@dataclass(frozen=True, slots=True)` makes them, for the
modules that loading config.yaml imports (config, errors, models, the feed registry).

Why not dataclasses: `import dataclasses` costs ~6 ms (it imports inspect) and creating
a frozen, slotted dataclass ~0.45 ms (exec of each generated method, and the class made
twice); config.yaml's import and validation runs on every cron call and has 30 ms
(issue #11, bench/config_load.py). A record class costs ~20 µs to create: its methods
are the same functions for every class, reading the field names the class keeps (so an
instance costs a little more: ~3 µs to make a 25-field Post, against ~2). msgspec's
Struct, which the issue named, is made in C, but importing msgspec costs ~15 ms (typing,
typing_extensions and so inspect, decimal, uuid); pydantic v2 with one model ~100 ms.

What a record has, as a dataclass would: `__init__` (positional or keyword arguments,
defaults, `field(default_factory=...)`, then `__post_init__` if defined), `__repr__`
(the same text), `__eq__` and `__hash__` over the fields, frozen attributes
(`object.__setattr__` in `__post_init__`, as with a frozen dataclass), `__match_args__`,
pickling and copying (the same state as a frozen, slotted dataclass: a list of the
values), `replace()` and `fields()`. Not: ordering, `asdict`, `InitVar`, keyword-only
fields. ClassVar annotations are not fields.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False  # typing costs ~2 ms to import; mypy and ruff know this name
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    R = TypeVar("R", bound="Record")
    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> Callable[[type], type]:
        return lambda cls: cls


_NO_DEFAULT: Any = object()
_EMPTY: Mapping[str, Any] = {}


class FrozenInstanceError(AttributeError):
    """A record's attribute was assigned or deleted (dataclasses' error of that name)."""


class Field:
    """One field of a record class: its name, annotation (as written), default and the
    metadata its declaration gave."""

    __slots__ = ("default", "default_factory", "metadata", "name", "type")

    def __init__(
        self,
        default: Any = _NO_DEFAULT,
        default_factory: Callable[[], Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if default is not _NO_DEFAULT and default_factory is not None:
            raise ValueError("a field takes a default or a default_factory, not both")
        self.default = default
        self.default_factory = default_factory
        self.metadata: Mapping[str, Any] = metadata or _EMPTY
        self.name = ""
        self.type = ""

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, type={self.type!r})"


def field(
    *,
    default: Any = _NO_DEFAULT,
    default_factory: Callable[[], Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Declare a field with a default factory or metadata (dataclasses.field's
    counterpart)."""
    return Field(default, default_factory, metadata)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class RecordMeta(type):
    """Makes each class body's annotated names the record's fields, in order (after the
    fields of a record base class), and its slots."""

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> RecordMeta:
        inherited = [f for base in bases for f in getattr(base, "__record_fields__", ())]
        own = [_make_field(key, kind, namespace) for key, kind in _annotations(namespace)]
        fields = (*inherited, *own)
        namespace["__slots__"] = tuple(f.name for f in own)
        namespace["__record_fields__"] = fields
        namespace["__record_names__"] = tuple(f.name for f in fields)
        namespace["__match_args__"] = namespace["__record_names__"]
        namespace["_record_values"] = _getter(namespace["__record_names__"])
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        _check_defaults(cls, fields)
        return cls


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    """The field values of a record as a tuple, read in C (eq, hash and pickling use it)."""
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda record: (one(record),)
    if not names:
        return lambda _: ()
    return attrgetter(*names)


def _annotations(namespace: dict[str, Any]) -> list[tuple[str, str]]:
    found = namespace.get("__annotations__", {})
    return [
        (key, kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind)))
        for key, kind in found.items()
        if not str(kind).startswith(("ClassVar", "typing.ClassVar"))
    ]


def _make_field(name: str, kind: str, namespace: dict[str, Any]) -> Field:
    """The Field for `name: kind = value`, the value taken out of the class body (a class
    attribute of that name would hide the slot)."""
    value = namespace.pop(name, _NO_DEFAULT)
    made = value if isinstance(value, Field) else Field(value)
    if isinstance(made.default, list | dict | set):
        raise ValueError(f"mutable default for field {name}: use default_factory")
    made.name, made.type = name, kind
    return made


def _check_defaults(cls: type, fields: tuple[Field, ...]) -> None:
    defaulted = None
    for item in fields:
        if item.default is not _NO_DEFAULT or item.default_factory is not None:
            defaulted = item.name
        elif defaulted is not None:
            raise TypeError(
                f"{cls.__name__}: field {item.name} without a default follows {defaulted}"
            )


class Record(metaclass=RecordMeta):
    """The base of record classes: declare fields as annotated class attributes."""

    __slots__ = ()
    __record_fields__: ClassVar[tuple[Field, ...]]
    __record_names__: ClassVar[tuple[str, ...]]
    _record_values: ClassVar[Callable[[object], tuple[Any, ...]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = type(self).__record_fields__
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments")
        put = object.__setattr__
        for item, value in zip(fields, args, strict=False):
            put(self, item.name, value)
        for item in fields[len(args) :]:
            value = kwargs.pop(item.name, _NO_DEFAULT)
            if value is _NO_DEFAULT:
                value = _default(type(self), item)
            put(self, item.name, value)
        if kwargs:
            name = next(iter(kwargs))
            why = "got two values for" if name in self.__record_names__ else "has no field"
            raise TypeError(f"{type(self).__name__}() {why} {name!r}")
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_names__)
        return f"{type(self).__qualname__}({values})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _values(self) == _values(other)

    def __hash__(self) -> int:
        return hash(_values(self))

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self) -> list[Any]:
        return list(_values(self))

    def __setstate__(self, state: list[Any]) -> None:
        for name, value in zip(self.__record_names__, state, strict=True):
            object.__setattr__(self, name, value)


def _default(cls: type, item: Field) -> Any:
    if item.default_factory is not None:
        return item.default_factory()
    if item.default is _NO_DEFAULT:
        raise TypeError(f"{cls.__name__}() missing argument {item.name!r}")
    return item.default


def _values(record: Record) -> tuple[Any, ...]:
    return type(record)._record_values(record)


def replace(record: T, /, **changes: Any) -> T:
    """A copy of `record` with some fields changed (dataclasses.replace's counterpart:
    `__init__` and `__post_init__` run again). A dataclass instance is handed to
    dataclasses.replace, so this is the one `replace` the package uses (a test checks
    that nothing imports dataclasses' own: given a record, it raises TypeError)."""
    if not isinstance(record, Record):
        import dataclasses

        return dataclasses.replace(record, **changes)  # type: ignore[type-var]
    values = {name: getattr(record, name) for name in record.__record_names__}
    for name in changes:
        if name not in values:
            raise TypeError(f"{type(record).__name__} has no field {name!r}")
    values.update(changes)
    return type(record)(**values)


def fields(record: Record | type[Record]) -> tuple[Field, ...]:
    """The fields of a record or record class, in order."""
    return record.__record_fields__
