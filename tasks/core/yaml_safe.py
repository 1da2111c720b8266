"""Read the project's YAML files the way Nornir does (ruamel.yaml, YAML 1.2), refusing fast what
could exhaust time or memory: anchors and aliases (a "billion laughs" document), deep nesting,
oversized files. Repeated keys are listed with their lines instead of silently merged.

YAML 1.2 matters: PyYAML (1.1) reads ``no`` as false and ``1:30`` as 90 where Nornir's loader
keeps the strings, so a value checked with PyYAML is not the value Nornir deploys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 256 << 10  # about 4000 hosts; Nornir's own parser needs ~1 s for it
MAX_DEPTH = 20
_NO_ALIASES = "YAML anchors and aliases are not accepted (write each value out)"


@dataclass(frozen=True)
class Duplicate:
    """A key repeated within one mapping: where it is (outer keys), its lines."""

    path: tuple[str, ...]
    key: str
    first_line: int
    line: int


@dataclass
class LoadedYaml:
    """One file: its data (None when it could not be read), repeated keys, or the error."""

    data: Any = None
    duplicates: list[Duplicate] = field(default_factory=list)
    error: str | None = None


def _yaml() -> YAML:
    loader = YAML(typ="safe", pure=True)
    loader.allow_duplicate_keys = True  # listed by find_duplicates, with their lines
    return loader


# (alias, node, collection start, collection end) event classes of each parser.
_EventKinds = tuple[type, type, type, type]
_RUAMEL: _EventKinds = (AliasEvent, NodeEvent, CollectionStartEvent, CollectionEndEvent)
_LIBYAML: _EventKinds = (yaml.AliasEvent, yaml.NodeEvent, yaml.CollectionStartEvent,
                         yaml.CollectionEndEvent)
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _refusal(event: Any, depth: int, kinds: _EventKinds) -> str | None:
    """Why an event makes the document unsafe to build, or None."""
    alias, node = kinds[0], kinds[1]
    line = event.start_mark.line + 1 if event.start_mark else 0
    if isinstance(event, alias):
        return f"line {line}: alias *{event.anchor}: {_NO_ALIASES}"
    if isinstance(event, node) and event.anchor is not None:
        return f"line {line}: anchor &{event.anchor}: {_NO_ALIASES}"
    if depth > MAX_DEPTH:
        return f"line {line}: nested more than {MAX_DEPTH} levels deep"
    return None


def _first_refusal(events: Iterable[Any], kinds: _EventKinds) -> str | None:
    depth = 0
    for event in events:
        if isinstance(event, kinds[2]):
            depth += 1
        elif isinstance(event, kinds[3]):
            depth -= 1
        refusal = _refusal(event, depth, kinds)
        if refusal is not None:
            return refusal
    return None


def _scan(text: str) -> str | None:
    """Walk the parser's events (no tree is built): the first reason to refuse, or None.

    Anchors, aliases and nesting are syntax, the same in YAML 1.1 and 1.2, so libyaml's fast
    parser does the walk; where it disagrees with Nornir's parser, Nornir's decides.
    """
    try:
        return _first_refusal(yaml.parse(text, Loader=_FAST_LOADER), _LIBYAML)
    except yaml.YAMLError:
        return _first_refusal(_yaml().parse(text), _RUAMEL)


def find_duplicates(node: Node, path: tuple[str, ...] = ()) -> list[Duplicate]:
    """Keys repeated within one mapping of a composed node tree (depth is bounded)."""
    found: list[Duplicate] = []
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                found.append(Duplicate(path, key, seen[key], line))
            else:
                seen[key] = line
            found.extend(find_duplicates(value_node, (*path, key)))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(find_duplicates(item, (*path, str(index))))
    return found


def _read(path: Path) -> tuple[str | None, str | None]:
    """(text, None) or (None, why it cannot be read)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return None, f"{size} bytes: larger than the {MAX_BYTES} accepted"
        return path.read_bytes().decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"


def parse_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document; an empty document is an empty mapping."""
    try:
        refusal = _scan(text)
        if refusal is not None:
            return LoadedYaml(error=f"refused: {refusal}")
        loader = _yaml()
        node = loader.compose(text)
        if node is None:
            return LoadedYaml(data={})
        duplicates = find_duplicates(node)
        return LoadedYaml(loader.constructor.construct_document(node), duplicates)
    except (YAMLError, ValueError, TypeError) as exc:
        return LoadedYaml(error=f"not valid YAML: {' '.join(str(exc).split())}")


def load_yaml(path: Path) -> LoadedYaml:
    """Read and parse one file; problems are returned, never raised."""
    text, error = _read(path)
    if text is None:
        return LoadedYaml(error=error)
    return parse_yaml(text)
