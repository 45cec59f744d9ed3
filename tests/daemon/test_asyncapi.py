"""docs/asyncapi.yaml must describe exactly what the pydantic payload models produce."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

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


_maybe_text = st.none() | st.text(max_size=20)
_when = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))]))


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "id": st.text(min_size=1, max_size=32),
            "kind": st.sampled_from(["message_added", "flags_changed", "folder_renamed", "not_a_kind"]),
            "account": st.text(max_size=10),
            "folder": st.text(max_size=20),
            "old_folder": _maybe_text,
            "uidvalidity": st.none() | st.integers(0, 2**32),
            "uids": st.lists(st.integers(1, 2**32 - 1), max_size=4),
            "modseq": st.none() | st.integers(0, 2**63 - 1),
            "from_": _maybe_text,
            "to": _maybe_text,
            "subject": _maybe_text,
            "date": st.none() | _when,
            "preview": _maybe_text,
            "flags": st.none() | st.lists(st.text(max_size=8), max_size=3),
            "size": st.none() | st.integers(0, 2**40),
            "created": _when | st.none(),
        }
    )
)
def test_the_daemons_fast_event_calls_publish_what_the_model_api_does(values: dict[str, Any]) -> None:
    """`FolderEvent.of` and `to_json` (the daemon's per-event calls) validate and write what
    `FolderEvent(**values)` and `model_dump_json(by_alias=True)` do: the same JSON, the same refusals."""
    try:
        expected: str | None = FolderEvent(**values).model_dump_json(by_alias=True)
    except ValidationError as e:
        expected = None
        with pytest.raises(ValidationError) as got:
            FolderEvent.of(values)
        assert got.value.errors() == e.errors()
    if expected is not None:
        assert FolderEvent.of(values).to_json() == expected
