"""Generate docs/configuration.md's field reference from the pydantic models: the agent's
(agent.config.Config) and the board's (agent.web.config.BoardConfig).

`python -m agent.configdoc --write` rewrites the reference; `--check` exits 1 when the file
is out of date (a test runs that check, so docs cannot drift from the schema).
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from agent.config import Config
from agent.core.settings import parse_duration
from agent.web.config import BoardConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m agent.configdoc --write) -->"
END = "<!-- END GENERATED REFERENCE -->"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        if any("duration" in repr(m) for m in meta):
            return "duration"
        return _type_name(base)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None)) + " (optional)"
    if origin is list:
        (item,) = typing.get_args(annotation)
        return f"list of {_type_name(item)}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"table of {_type_name(value)}"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                "Path": "path"}.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        return "see below" if isinstance(value, BaseModel) else f"`{value!r}`"
    if field.default is PydanticUndefined or field.default is None:
        return "unset"
    return f"`{field.default!r}`".replace("PosixPath(", "").replace("')", "'")


def _summary(models: list[type[BaseModel]]) -> str:
    docs = [(m.__doc__ or "").strip() for m in models]
    return next((d.splitlines()[0] for d in docs if d), "")


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    out: list[str] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        sub_models = _models_in(annotation)
        is_list = typing.get_origin(annotation) is list
        description = (field.description or _summary(sub_models)).replace("|", "\\|")
        type_name = "duration" if any(getattr(m, "func", None) is parse_duration for m in field.metadata) \
            else _type_name(annotation)
        out.append(f"| `{path}` | {type_name} | {_default(field)} | {description} |")
        for sub in sub_models:
            nested.append((f"{path}[]." if is_list else f"{path}.", sub))
    for sub_prefix, sub in nested:
        out.extend(rows(sub, sub_prefix))
    return out


HEAD = ["| field | type | default | meaning |", "|---|---|---|---|"]


def reference() -> str:
    board = ["", "### The board (`edge-agent board --config board.toml`)", "",
             ("Example: [`config/board.toml`](../config/board.toml); access model: "
              "[security.md](security.md#board-access)."),
             "", *HEAD, *rows(BoardConfig)]
    return "\n".join([BEGIN, *HEAD, *rows(Config), *board, END])


def render(current: str) -> str:
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{reference()}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated part of docs/configuration.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is out of date")
    args = parser.parse_args(argv)
    current = DOC.read_text()
    if BEGIN not in current or END not in current:
        print(f"{DOC}: markers {BEGIN!r} and {END!r} are missing", file=sys.stderr)
        return 1
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{DOC} is out of date: run python -m agent.configdoc --write", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
