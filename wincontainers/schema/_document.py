"""A tiny base for HCS JSON documents as attrs classes.

Python names are snake_case; the wire name is the PascalCase of it unless a field says
otherwise (``json_field("ID")``). ``to_json`` drops ``None`` values (HCS treats absent and null
alike, and the reference documents omit them); ``from_json`` matches keys case-insensitively, as
HCS v1 and HNS do, and keeps keys it does not know in ``extra`` so nothing is lost on a round trip.
"""

from __future__ import annotations

import json
import typing
from typing import Any, ClassVar, Mapping, Optional, TypeVar, Union

import attrs

__all__ = ["Document", "json_field", "pascal"]

T = TypeVar("T", bound="Document")

_ACRONYMS = {"id": "Id", "mb": "MB", "dns": "DNS", "ip": "IP", "mac": "Mac", "os": "Os", "vm": "Vm", "gb": "GB"}


def pascal(name: str) -> str:
    return "".join(_ACRONYMS.get(part, part[:1].upper() + part[1:]) for part in name.split("_"))


def json_field(key: Optional[str] = None, *, default: Any = None, factory: Any = None) -> Any:
    """A document field, optional by default, with an explicit wire name when PascalCase is wrong."""
    metadata = {"json": key} if key else {}
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata, kw_only=True)
    return attrs.field(default=default, metadata=metadata, kw_only=True)


def _key(field: "attrs.Attribute[Any]") -> str:
    return str(field.metadata.get("json") or pascal(field.name))


def _dump(value: Any) -> Any:
    if isinstance(value, Document):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value


@attrs.define
class Document:
    """Base class: subclasses are ``@attrs.define`` classes of :func:`json_field` fields."""

    extra: dict[str, Any] = attrs.field(factory=dict, kw_only=True, repr=False, eq=True)

    _hints_cache: ClassVar[dict[type, dict[str, Any]]] = {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in attrs.fields(type(self)):
            if field.name == "extra":
                continue
            value = getattr(self, field.name)
            if value is None:
                continue
            out[_key(field)] = _dump(value)
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        hints = cls._hints()
        by_key = {}
        for field in attrs.fields(cls):
            if field.name != "extra":
                by_key[_key(field).lower()] = field
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            field = by_key.get(key.lower())
            if field is None:
                extra[key] = value
                continue
            kwargs[field.name] = _load(hints.get(field.name), value)
        return cls(extra=extra, **kwargs)

    @classmethod
    def loads(cls: type[T], text: str) -> T:
        return cls.from_json(json.loads(text))

    @classmethod
    def _hints(cls) -> dict[str, Any]:
        cached = Document._hints_cache.get(cls)
        if cached is None:
            cached = typing.get_type_hints(cls)
            Document._hints_cache[cls] = cached
        return cached


def _load(hint: Any, value: Any) -> Any:
    if value is None or hint is None:
        return value
    origin = typing.get_origin(hint)
    if origin is Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _load(args[0], value) if len(args) == 1 else value
    if origin in (list, tuple, typing.List, typing.Tuple, typing.Sequence) and isinstance(value, list):
        item_types = typing.get_args(hint)
        item = item_types[0] if item_types else None
        loaded = [_load(item, v) for v in value]
        return tuple(loaded) if origin is tuple else loaded
    if isinstance(hint, type) and issubclass(hint, Document) and isinstance(value, Mapping):
        return hint.from_json(value)
    return value
