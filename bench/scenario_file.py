"""A scenario file -> plain data and the line of every key and item, refusing what could crash
or stall the parser: files that are not regular, too large or not UTF-8, control and invisible
characters, nesting too deep, huge values and aliases that expand too far ("billion laughs").

Merge keys (`<<: *common`) are applied here; every error is a ScenarioError `file:line: what; fix`.
"""

from __future__ import annotations

import os
import re
import reprlib
import stat
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from bench.errors import InputError

# Real scenarios are a few KiB with a few hundred values nested 5 levels deep; these limits are
# far above that. PyYAML spends about 30 us per value: MAX_VALUES keeps the worst file, however
# it is written, under half a second.
MAX_FILE_BYTES = 128 << 10
MAX_DEPTH = 32
MAX_VALUES = 10_000  # nodes, as written and after expanding every alias where it is used
MAX_SCALAR_CHARS = 4096  # also below Python's 4,300-digit limit of int()

_DEFAULT_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FILE_TYPES = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
               stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}
# Control characters, bidirectional overrides and other invisible format characters hide
# text from a reader (a command line that looks harmless in a terminal or an editor).
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e]")
_TOO_MANY_VALUES = f"more than {MAX_VALUES:,} values; a scenario needs a few hundred"


class ScenarioError(InputError):
    """A scenario that cannot be run; the message names the file, the line and the fix."""


# What a message quotes of a file's keys and values: a hostile file's must not flood the terminal.
_SHOWN_CHARS = 80
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN_CHARS
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxlevel = 4


def shown(value: Any) -> str:
    """`value` quoted for a message, long strings and collections cut short."""
    return _SHOWN.repr(value)


def cut(text: str) -> str:
    """`text` for a message, its middle left out when long."""
    half = _SHOWN_CHARS // 2
    return text if len(text) <= _SHOWN_CHARS else f"{text[:half]}...{text[-half:]}"


def read_scenario_text(path: Path) -> str:
    """The text of a scenario file: a regular file, at most MAX_FILE_BYTES of UTF-8."""
    data = read_regular_file(path, MAX_FILE_BYTES, "scenario", ScenarioError)
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}:{_line_at(data, MAX_FILE_BYTES)}: the file is larger than "
                            f"{MAX_FILE_BYTES >> 10} KiB, far more than a scenario needs; check that it is the "
                            "scenario you meant")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}:{_line_at(data, exc.start)}: byte 0x{data[exc.start]:02x} is not "
                            "UTF-8; save the file as UTF-8") from None


def read_regular_file(path: Path, limit: int, what: str, error: type[InputError]) -> bytes:
    """At most `limit` + 1 bytes of the regular file `path`, never opened in a way a FIFO or a
    device can block; `error` (naming the `what` file) when it is not one or cannot be read."""
    try:
        _require_regular(path, os.stat(path).st_mode, what, error)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            _require_regular(path, os.fstat(handle.fileno()).st_mode, what, error)  # replaced since the stat
            return handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}; check the path") from None


def _line_at(text: str | bytes, index: int) -> int:
    return text.count(b"\n" if isinstance(text, bytes) else "\n", 0, index) + 1


def _require_regular(path: Path, mode: int, what: str, error: type[InputError]) -> None:
    if not stat.S_ISREG(mode):
        kind = _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")
        raise error(f"{path}:1: not a {what} file: it is {kind}; give the path of a {what} file")


def load_document(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """The YAML document in `text` as plain data, and the line of each key path and item path."""
    refused = _refused_character(text, "\t\n\r")
    if refused is not None:
        raise ScenarioError(f"{source}:{_line_at(text, refused)}: {_character_problem(text[refused])}")
    try:
        loader = _Composer(text, source)
    except yaml.reader.ReaderError as exc:  # the few characters YAML refuses that are not refused above
        raise ScenarioError(f"{source}:{_line_at(text, exc.position)}: character U+{exc.character:04X} is not "
                            "allowed in YAML; remove it") from None
    try:
        node = loader.get_single_node()
        return (None, {}) if node is None else _Expander(loader, source).document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        context = getattr(exc, "context_mark", None)
        if context and (mark is None or mark.index >= len(text.rstrip())):
            mark = context  # "got <stream end>": the line that opened what was never closed says more
        line = mark.line + 1 if mark else 1
        raise ScenarioError(f"{source}:{line}: not valid YAML: {cut(str(getattr(exc, 'problem', exc)))}") from None
    finally:
        loader.dispose()


def _refused_character(text: str, allowed: str) -> int | None:
    """The index of the first control or invisible character of `text` not in `allowed`."""
    for match in _NOT_PLAIN_ASCII.finditer(text):
        char = match.group()
        if char not in allowed and unicodedata.category(char) in _REFUSED_CATEGORIES:
            return match.start()
    return None


def _character_problem(char: str) -> str:
    name = unicodedata.name(char, "a control character")
    return f"character U+{ord(char):04X} ({name}) is not allowed: it is invisible or controls the terminal; remove it"


class _Composer(yaml.SafeLoader):
    """PyYAML's composer with a nesting limit (it recurses per level) and a limit of values as
    written, whose aliases keep the line they are written at (they share the anchored node's
    contents)."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0
        self.values = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.values += 1
        if self.values > MAX_VALUES:
            raise ScenarioError(f"{self.source}:{self.peek_event().start_mark.line + 1}: {_TOO_MANY_VALUES}")
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            anchored = super().compose_node(parent, index)
            alias = type(anchored)(anchored.tag, anchored.value, mark, mark)
            alias.is_alias = True
            return alias
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ScenarioError(f"{self.source}:{self.peek_event().start_mark.line + 1}: nested deeper than "
                                    f"{MAX_DEPTH} levels; a scenario needs a few")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Expander:
    """Turns composed nodes into dicts, lists and scalars, expanding aliases and merge keys
    within MAX_VALUES nodes, and records the line of each path."""

    def __init__(self, loader: _Composer, source: str) -> None:
        self.loader = loader
        self.source = source
        self.values = 0
        self.active: set[int] = set()  # the collections being expanded: an alias back to one is a loop
        self.alias_line: int | None = None  # the outermost alias being expanded
        self.lines: dict[tuple, int] = {}
        # A scalar's value depends on its tag and text only: each is checked and constructed
        # once, however many aliases repeat it.
        self.scalars: dict[tuple[str, str], Any] = {}

    def document(self, node: yaml.Node) -> tuple[Any, dict[tuple, int]]:
        return self.expand(node, ()), self.lines

    def refuse(self, node: yaml.Node, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}:{node.start_mark.line + 1}: {problem}")

    def expand(self, node: yaml.Node, path: tuple) -> Any:
        outermost = getattr(node, "is_alias", False) and self.alias_line is None
        if outermost:
            self.alias_line = node.start_mark.line + 1
        try:
            return self._expand(node, path)
        finally:
            if outermost:
                self.alias_line = None

    def _expand(self, node: yaml.Node, path: tuple) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            where = f"{self.source}:{self.alias_line or node.start_mark.line + 1}"
            raise ScenarioError(f"{where}: {_TOO_MANY_VALUES} (an alias counts its whole anchor each time it is "
                                "used: use fewer or less nested aliases)")
        if len(path) > MAX_DEPTH:
            raise ScenarioError(f"{self.source}:{self.alias_line}: nested deeper than {MAX_DEPTH} levels (through "
                                "aliases); a scenario needs a few")
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if node.tag != _DEFAULT_TAGS[type(node)]:
            raise self.refuse(node, f"tag {cut(node.tag)} is not supported in a scenario; remove it")
        if id(node.value) in self.active:
            raise self.refuse(node, "this alias refers to a value that contains it (a loop); remove the alias")
        self.active.add(id(node.value))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.expand(item, path + (index,)) for index, item in enumerate(node.value)]
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node.value))

    def mapping(self, node: yaml.MappingNode, path: tuple) -> dict:
        """Merged mappings first (the first listed wins), then the mapping's own keys, which win."""
        merged = [(key, value) for key, value in node.value if key.tag == _MERGE_TAG]
        out: dict = {}
        for _, value_node in reversed(merged):
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in reversed(sources):
                if not isinstance(source, yaml.MappingNode):
                    raise self.refuse(source, "a merge key (<<) takes an alias of a mapping, or a list of them")
                out.update(self.expand(source, path))
        own: set = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.refuse(key_node, "a key must be a plain word, not a list or a mapping")
            name = self.scalar(key_node)
            if not isinstance(name, str):
                raise self.refuse(key_node, f"key {shown(key_node.value)} is read as {shown(name)}, not as a word; "
                                            "a scenario's keys are words: quote it or use a known key")
            if name in own:
                raise self.refuse(key_node, f"key {shown(name)} appears twice")
            own.add(name)
            out[name] = self.expand(value_node, path + (name,))
            self.lines[path + (name,)] = key_node.start_mark.line + 1
        self.lines[path] = node.start_mark.line + 1
        return out

    def scalar(self, node: yaml.ScalarNode) -> Any:
        known = (node.tag, node.value)
        if known not in self.scalars:
            self.scalars[known] = self._construct(node)
        return self.scalars[known]

    def _construct(self, node: yaml.ScalarNode) -> Any:
        if len(node.value) > MAX_SCALAR_CHARS:
            raise self.refuse(node, f"a value of {len(node.value):,} characters; a scenario's values are at most "
                                    f"{MAX_SCALAR_CHARS:,}")
        try:
            value = self.loader.construct_object(node)
        except ValueError as exc:  # a timestamp such as 2024-13-45
            raise self.refuse(node, f"{shown(node.value)} cannot be read: {exc}; quote it if it is text") from None
        if isinstance(value, str):
            refused = _refused_character(value, "\t\n")
            if refused is not None:
                raise self.refuse(node, _character_problem(value[refused]))
        return value
