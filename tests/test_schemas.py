"""The published lease-record schema (docs/protocol/lease-record.schema.json) against the codec
and lease.md: real records validate, mistyped ones are refused by both naming the same field,
and the three name the same keys. spec: lease.md#record
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import tenure
from tenure.adapters.store import LeaseStore
from tenure.core.codec import HOLDER_KEYS, RECORD_KEYS, parse
from tenure.core.record import LeaseRecord, Unreadable
from tenure.core.timing import Timing
from tests.conftest import HERE

DOCS = HERE.parent / "docs" / "protocol"
SCHEMA = json.loads((DOCS / "lease-record.schema.json").read_text())
FAST = Timing(ttl_s=3.0, heartbeat_s=0.5)


def real_records(tmp_path: Path) -> list[dict[str, Any]]:
    """Records as `hold` writes them: user scope, a scope with a stop policy, released."""
    project = tmp_path / "project"
    project.mkdir()
    docs = []
    with tenure.hold("web", version="1.0", root=tmp_path, timing=FAST, port=9999):
        docs.append(json.loads((tmp_path / "leases" / "web.json").read_bytes()))
    docs.append(json.loads((tmp_path / "leases" / "web.json").read_bytes()))
    with tenure.hold(
        "api", version="2.0rc1", root=tmp_path, scope=project, timing=FAST, stop_signal="SIGINT"
    ):
        store = next(p for p in (tmp_path / "leases").glob("api.*.json"))
        docs.append(json.loads(store.read_bytes()))
    return docs


def test_records_tenure_writes_validate_against_the_published_schema(tmp_path: Path) -> None:
    docs = real_records(tmp_path)
    assert {d["state"] for d in docs} == {"held", "released"}
    assert any("scope" in d for d in docs)
    for doc in docs:
        jsonschema.validate(doc, SCHEMA)
        assert isinstance(parse(json.dumps(doc).encode()), LeaseRecord)


def test_the_worked_example_in_lease_md_validates_and_parses() -> None:
    """lease.md's annotated example record is a real one: schema and codec accept it."""
    text = (DOCS / "lease.md").read_text()
    found = re.search(r"<!-- example: lease-record -->\n```json\n(.*?)```", text, re.S)
    assert found is not None, "lease.md has no marked example record"
    doc = json.loads(found.group(1))
    jsonschema.validate(doc, SCHEMA)
    rec = parse(json.dumps(doc).encode())
    assert isinstance(rec, LeaseRecord)
    assert rec.holder.where is not None


MUTATIONS = [
    (("holder", "where", "pid_ns"), "4026531836"),
    (("epoch",), "7"),
    (("holder", "pid"), 0),
    (("holder", "port"), 70000),
    (("ttl_s",), 0),
    (("state",), "leased"),
    (("family",), "Web"),
    (("holder", "version"), "v" * 300),
    (("holder", "control"), "yes"),
    (("holder", "where", "boot_id"), ""),
    (("holder", "stop", "signal"), "SIGKILL"),
    (("ports",), [9500]),
    (("scope", "path"), "relative/path"),
    (("ready", "within_s"), 0),
    (("root_id",), "x" * 65),
]


@pytest.mark.parametrize(("path", "value"), MUTATIONS, ids=[".".join(p) for p, _ in MUTATIONS])
def test_a_mistyped_field_is_refused_by_schema_and_codec_alike(
    tmp_path: Path, path: tuple[str, ...], value: object
) -> None:
    """One wrong field, everything else real: the schema rejects it at that field, and the
    codec reads the record as unreadable naming that field."""
    base = real_records(tmp_path)[-1]  # scoped, with a stop policy and `where`
    base.setdefault("ready", {"within_s": 10.0, "at": None})
    base["holder"].setdefault("stop", {"signal": "SIGTERM", "grace_s": 5.0, "tree": True})
    # Where /proc is not read (portable mode, not Linux) tenure writes no `where`: one is given.
    base["holder"].setdefault("where", {"boot_id": "b", "pid_ns": 1, "time_ns": None, "host": "h"})
    base.setdefault("ports", [9500, 9509])
    base.setdefault("root_id", "abc")
    jsonschema.validate(base, SCHEMA)
    doc = copy.deepcopy(base)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc))
    assert errors, f"the schema accepts {path} = {value!r}"
    assert any(tuple(str(p) for p in e.absolute_path)[: len(path)] == path for e in errors) or any(
        path[-1] in e.message or path[-2:] == tuple(e.absolute_path)[-2:] for e in errors
    )
    rec = parse(json.dumps(doc).encode())
    assert isinstance(rec, Unreadable), f"the codec accepts {path} = {value!r}"
    assert path[-1] in rec.reason or path[0] in rec.reason


def test_schema_codec_and_lease_md_name_the_same_keys() -> None:
    """Every top-level and holder key: in the schema, known to the codec (kept, not `extra`),
    and a row of lease.md's record table."""
    top = set(SCHEMA["properties"])
    holder = set(SCHEMA["$defs"]["holder"]["properties"])
    assert top == set(RECORD_KEYS)
    assert holder == set(HOLDER_KEYS)
    table = (DOCS / "lease.md").read_text().split("## Record", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([a-z_.]+)` \|", table, re.M))
    assert {k for k in top if k != "holder"} <= rows
    assert {f"holder.{k}" for k in holder} <= rows


def test_an_empty_root_lists_without_an_error(tmp_path: Path) -> None:
    """`tenure ls` on a root directory with nothing in it yet (no `leases/`)."""
    import subprocess
    import sys

    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    env = {"TENURE_ROOT": str(root), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "tenure", "ls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "sync       absent" in done.stdout
    assert LeaseStore(root, "sync").read() is None
