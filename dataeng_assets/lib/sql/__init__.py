"""SQL shipped with the package, one statement per file where it is a model."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def load(name: str) -> str:
    return (files(__package__) / f"{name}.sql").read_text(encoding="utf-8")


def statements(name: str) -> list[str]:
    """The file's statements, split on semicolons that end a line (none occur inside literals)."""
    parts = [p.strip() for p in load(name).split(";\n")]
    return [p.rstrip(";") for p in parts if p and not all(line.startswith("--") for line in p.splitlines())]
