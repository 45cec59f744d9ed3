"""docs/asyncapi.yaml must describe exactly what the pydantic payload models produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cpmsync.daemon.topics import encode_folder
from cpmsync.models.events import FolderEvent, FolderSummary, LastMessage, StatusPayload

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text())


def _shape(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """Reduce a JSON schema to what a consumer relies on: types, format, enum, items, refs."""
    if "$ref" in schema:
        return ("ref", schema["$ref"].rsplit("/", 1)[-1])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            alts = [_shape(s, defs) for s in schema[key]]
            return ("union", frozenset(repr(a) for a in alts))
    types = schema.get("type")
    if isinstance(types, list):
        if len(types) > 1:
            alts = []
            for t in types:
                sub = {k: v for k, v in schema.items() if k in ("format", "items", "enum")}
                if t == "null":
                    sub = {}
                alts.append(_shape({**sub, "type": t}, defs))
            return ("union", frozenset(repr(a) for a in alts))
        types = types[0]
    items = _shape(schema["items"], defs) if types == "array" and "items" in schema else None
    enum = tuple(schema["enum"]) if "enum" in schema else None
    return (types, schema.get("format"), enum, items)


def _props(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: _shape(v, {}) for k, v in schema["properties"].items()}


@pytest.mark.parametrize("model", [FolderEvent, FolderSummary, StatusPayload, LastMessage])
def test_schema_matches_the_model(doc: dict[str, Any], model: Any) -> None:
    ours = model.model_json_schema(by_alias=True, mode="serialization")
    theirs = doc["components"]["schemas"][model.__name__]
    assert set(theirs["properties"]) == set(ours["properties"]), "fields"
    assert set(theirs["required"]) == set(ours.get("required", [])), "required"
    assert _props(theirs) == _props(ours), "types"


def test_channels_are_the_three_topics(doc: dict[str, Any]) -> None:
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {
        "{prefix}/{account}/status",
        "{prefix}/{account}/folders/{folder}",
        "{prefix}/{account}/folders/{folder}/events",
    }
    assert doc["asyncapi"].startswith("3.")
    ops = doc["operations"]
    assert ops["publishStatus"]["bindings"]["mqtt"] == {"qos": 1, "retain": True}
    assert ops["publishFolderEvent"]["bindings"]["mqtt"]["qos"] == 1


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target: Any = doc
                for part in ref.removeprefix("#/").split("/"):
                    target = target[part]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)


def test_a_real_payload_validates_against_the_documented_schema(doc: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    import jsonschema

    schemas = doc["components"]["schemas"]
    ev = FolderEvent(
        id="0" * 32,
        kind="message_added",
        account="a",
        folder="INBOX",
        uidvalidity=1,
        uids=[5],
        modseq=9,
        from_="x@example.org",
        subject="hi",
        flags=["\\Seen"],
        created=datetime.now(UTC),
    )
    import json

    jsonschema.validate(json.loads(ev.to_json()), {**schemas["FolderEvent"], "components": doc["components"]})
    # the documented encoding rule is the implemented one
    assert encode_folder("a/b+c#d") == "a%2Fb%2Bc%23d" and encode_folder("") == "%"
