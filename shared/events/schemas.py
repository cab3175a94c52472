"""JSON Schemas of the payloads, exported to ``schemas/`` and checked for backward compatibility.

Backward compatible means: every event written under the committed schema is still
read by the current code. So a type stays, no field is removed, no field becomes
required that was not, and no field's schema changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.events.registry import REGISTRY

SCHEMA_DIR = Path(__file__).parent / "schemas"


def current_schemas() -> dict[str, dict[str, Any]]:
    return {
        type_: spec.model.model_json_schema(by_alias=True, mode="validation")
        for type_, spec in sorted(REGISTRY.items())
    }


def committed_schemas(folder: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def export(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for type_, schema in current_schemas().items():
        path = folder / f"{type_}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def compatibility_problems(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for type_, old_schema in old.items():
        new_schema = new.get(type_)
        if new_schema is None:
            problems.append(f"{type_}: event type removed")
            continue
        old_props = old_schema.get("properties", {})
        new_props = new_schema.get("properties", {})
        for name, prop in old_props.items():
            if name not in new_props:
                problems.append(f"{type_}: field {name!r} removed")
            elif _resolved(prop, old_schema) != _resolved(new_props[name], new_schema):
                problems.append(f"{type_}: field {name!r} changed its schema")
        newly_required = set(new_schema.get("required", [])) - set(old_schema.get("required", []))
        for name in sorted(newly_required):
            problems.append(f"{type_}: field {name!r} became required")
    return problems


def _resolved(node: Any, root: dict[str, Any]) -> Any:
    """Inline ``$ref``s so a moved definition is not mistaken for a change. Titles, descriptions
    and ``additionalProperties`` do not change what a reader accepts (readers ignore unknown
    fields), so they are left out of the comparison."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _resolved(root["$defs"][ref.removeprefix("#/$defs/")], root)
        ignored = ("title", "description", "additionalProperties")
        return {k: _resolved(v, root) for k, v in node.items() if k not in ignored}
    if isinstance(node, list):
        return [_resolved(v, root) for v in node]
    return node
