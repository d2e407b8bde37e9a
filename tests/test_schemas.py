"""The published schemas (docs/protocol/*.schema.json) against the field tables that render
them, the codec and the docs' tables: real documents validate, mistyped ones are refused by
schema and codec naming the same field, every worked example validates, and each table's
`type` column is the one the field table renders. spec: lease.md#record, root.md#tombstones,
control.md#endpoints
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
from tenure.adapters.tombstones import read_tombstones, valid_tombstone
from tenure.core.codec import HOLDER_KEYS, RECORD_KEYS, parse
from tenure.core.fields import RECORD, TOMBSTONE, Shape
from tenure.core.health import HEALTH, parse_health
from tenure.core.published import SCHEMAS, describe, json_schema, leaves
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


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_published_schema_is_the_one_its_field_table_renders(name: str) -> None:
    """The field table is the one source: a hand edit of the published file, or a table
    change without `scripts/render-schemas`, fails here."""
    shape, schema_id, note = SCHEMAS[name]
    published = json.loads((DOCS / name).read_text())
    assert published == json_schema(shape, schema_id, note), f"run scripts/render-schemas ({name})"
    jsonschema.Draft202012Validator.check_schema(published)


def _table_rows(text: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^\| `([a-z_.\[\]]+)` \| (.*?) \| .* \|$", text, re.M)
    }


def _expected(shape: Shape, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {p: describe(f) for p, f in leaves(shape) if not p.startswith(skip)}


@pytest.mark.parametrize(
    ("doc", "start", "end", "shape", "skip"),
    [
        # orphans[] and child.stop have the shapes of child and holder.stop, said in words
        ("lease.md", "## Record", "**A complete record**", RECORD, ("orphans[].", "child.stop.")),
        ("control.md", "Health fields", "<!-- example: health -->", HEALTH, ()),
        ("root.md", "## Tombstones", "`reason` is the way out", TOMBSTONE, ()),
    ],
    ids=["lease-record", "health", "tombstone"],
)
def test_each_docs_table_has_a_row_per_field_with_the_rendered_type(
    doc: str, start: str, end: str, shape: Shape, skip: tuple[str, ...]
) -> None:
    """Every field of the table is a row, no row names a field the table lacks, and the
    `type` cell is exactly what `describe` renders (bounds, null, optional, default)."""
    text = (DOCS / doc).read_text()
    section = text.split(start, 1)[1].split(end, 1)[0]
    assert _table_rows(section) == _expected(shape, skip)


def _example(doc: str, kind: str) -> str:
    text = (DOCS / doc).read_text()
    found = re.search(rf"<!-- example: {kind} -->\n```\w+\n(.*?)```", text, re.S)
    assert found is not None, f"{doc} has no marked {kind} example"
    return found.group(1)


def test_the_worked_examples_validate_against_schema_and_reader() -> None:
    """The tombstone line (root.md), the health answer and the token file (control.md)."""
    line = _example("root.md", "tombstone")
    assert line.count("\n") == 1, "a tombstone is one line"
    entry = json.loads(line)
    jsonschema.validate(entry, json.loads((DOCS / "tombstone.schema.json").read_text()))
    assert valid_tombstone(entry)
    answer = json.loads(_example("control.md", "health"))
    jsonschema.validate(answer, json.loads((DOCS / "health.schema.json").read_text()))
    assert parse_health(answer) is not None
    token = _example("control.md", "token").strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,128}", token)


def test_real_tombstones_validate_and_wrong_ones_are_skipped(tmp_path: Path) -> None:
    """What `hold` writes validates; a line with a mistyped field is refused by schema and
    reader alike."""
    real_records(tmp_path)
    schema = json.loads((DOCS / "tombstone.schema.json").read_text())
    entries = read_tombstones(tmp_path)
    assert len(entries) == 2
    for entry in entries:
        jsonschema.validate(entry, schema)
    for key, wrong in [("pid", "171"), ("epoch", -1), ("at", 1e12), ("family", "Web")]:
        bad = {**entries[0], key: wrong}
        assert not valid_tombstone(bad)
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_between_protocol_docs_and_each_checks_spec_section_resolve() -> None:
    """`file.md#anchor` in docs/protocol and the guide, and the section each conformance check
    names in its report, point at a heading that exists."""
    from tenure.conformance.report import CHECKS, SPEC

    guide = DOCS.parent / "guide"
    anchors = {
        p.name: {_slug(h) for h in re.findall(r"^#+ (.+)$", p.read_text(), re.M)}
        for p in DOCS.glob("*.md")
    }
    broken = []
    for page in [*DOCS.glob("*.md"), *guide.glob("*.md")]:
        for target, anchor in re.findall(r"\]\((?:\.\./protocol/)?([a-z-]+\.md)#([^)]+)\)",
                                         page.read_text()):  # fmt: skip
            if target in anchors and anchor not in anchors[target]:
                broken.append(f"{page.name}: {target}#{anchor}")
    assert set(SPEC) == set(CHECKS)
    for name, where in SPEC.items():
        target, anchor = where.split("#")
        if anchor not in anchors[target]:
            broken.append(f"SPEC[{name}]: {where}")
    assert broken == []
