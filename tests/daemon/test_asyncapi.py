"""docs/asyncapi.yaml must describe exactly what the pydantic payload models produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cpmsync.daemon.topics import encode_folder
from cpmsync.models import actions as act
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


ACTION_MODELS = [
    act.MarkReadAction,
    act.MarkUnreadAction,
    act.SetFlagsAction,
    act.DeleteMessagesAction,
    act.MoveMessagesAction,
    act.CreateFolderAction,
    act.RenameFolderAction,
    act.DeleteFolderAction,
    act.AppendAction,
]


@pytest.mark.parametrize(
    "model", [FolderEvent, FolderSummary, StatusPayload, LastMessage, act.ActionResult, *ACTION_MODELS]
)
def test_schema_matches_the_model(doc: dict[str, Any], model: Any) -> None:
    ours = model.model_json_schema(by_alias=True, mode="serialization")
    theirs = doc["components"]["schemas"][model.__name__]
    assert set(theirs["properties"]) == set(ours["properties"]), "fields"
    assert set(theirs["required"]) == set(ours.get("required", [])), "required"
    assert _props(theirs) == _props(ours), "types"


def test_channels_are_the_five_topics(doc: dict[str, Any]) -> None:
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {
        "{prefix}/{account}/status",
        "{prefix}/{account}/folders/{folder}",
        "{prefix}/{account}/folders/{folder}/events",
        "{prefix}/{account}/actions",
        "{prefix}/{account}/actions/results",
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


def test_every_action_is_a_message_of_the_actions_channel(doc: dict[str, Any]) -> None:
    """One documented message per action the daemon accepts, each naming its model's schema."""
    messages = doc["channels"]["actions"]["messages"].values()
    schemas = {
        doc["components"]["messages"][m["$ref"].rsplit("/", 1)[-1]]["payload"]["$ref"] for m in messages
    }
    assert schemas == {f"#/components/schemas/{m.__name__}" for m in ACTION_MODELS}
    consts = {
        doc["components"]["schemas"][m.__name__]["properties"]["action"]["const"] for m in ACTION_MODELS
    }
    assert consts == set(act.ACTION_KINDS)
    reasons = doc["components"]["schemas"]["ActionResult"]["properties"]["reason"]["enum"]
    assert tuple(reasons) == act.REASONS


def test_a_real_action_and_result_validate_against_the_documented_schemas(doc: dict[str, Any]) -> None:
    import json
    from datetime import UTC, datetime

    import jsonschema

    schemas = doc["components"]["schemas"]
    action = {"id": "x1", "action": "set_flags", "folder": "INBOX", "uids": [3], "add": ["$Label1"]}
    parsed = act.action_adapter.validate_python(action)
    jsonschema.validate(json.loads(parsed.model_dump_json()), schemas["SetFlagsAction"])
    result = act.ActionResult(
        id="x1", action="set_flags", state="failed", reason="refused", created=datetime.now(UTC)
    )
    jsonschema.validate(json.loads(result.to_json()), schemas["ActionResult"])
