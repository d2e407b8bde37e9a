"""Typing names that cost nothing at run time (pure).

`typing` takes ~5 ms to import here (with contextlib), paid by every daemon, every `tenure sync
start` and every host tool importing `tenure.ensure`, for names only the type checker reads.
Modules import these instead: mypy sees the real `typing` ones (`TYPE_CHECKING` is true for
it by name); at run time `TYPE_CHECKING` is False, `Generic[...]` is the plain base below,
`Protocol` a plain base and `TypeVar` only a name. Annotations are strings everywhere (PEP 563),
so anything else from `typing` goes under `if TYPE_CHECKING:`. A test keeps `typing` out of the
daemon's, the ensure path's and the hot commands' imports.
"""

from __future__ import annotations

__all__ = ["TYPE_CHECKING", "Generic", "Protocol", "TypeVar"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Generic, Protocol, TypeVar
else:

    class Generic:
        """Subscriptable like `typing.Generic`; generic classes stay plain classes."""

        __slots__ = ()

        def __class_getitem__(cls, _params):
            return cls

    class Protocol:
        """A structural type for the checker; an empty base when running."""

        __slots__ = ()

    def TypeVar(name, *_constraints, **_options):  # noqa: N802  (stands in for typing's)
        return name
