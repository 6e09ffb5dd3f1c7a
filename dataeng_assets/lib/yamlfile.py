"""YAML that remembers where things are: every mapping carries its line as `__line__`, so
configuration errors can name the file and the line."""

from __future__ import annotations

from typing import Any

import yaml

LINE = "__line__"


class LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node, deep=False):
    mapping = loader.construct_mapping(node, deep=deep)
    mapping[LINE] = node.start_mark.line + 1
    return mapping


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class YamlError(ValueError):
    pass


def load(text: str, path: str) -> Any:
    try:
        return yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise YamlError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None


def line_of(node: Any) -> int | None:
    return node.get(LINE) if isinstance(node, dict) else None


def keys(node: dict) -> set[str]:
    return set(node) - {LINE}
