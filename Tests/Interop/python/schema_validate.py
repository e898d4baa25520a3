"""Validates JSON instances against the project's JSON Schemas with the reference
implementation (jsonschema, draft 2020-12). One request per stdin line:
{"schema": "<path relative to the repository root>", "instance": <any JSON>}
answered by one line: {"ok": true} or {"ok": false, "error": "<first error>"}.
Relative $refs resolve against the schema file's folder."""
import json
import pathlib
import sys

from jsonschema.validators import validator_for
from referencing import Registry, Resource

ROOT = pathlib.Path(__file__).resolve().parents[3]


def retrieve(uri: str) -> Resource:
    path = pathlib.Path(uri.removeprefix("file://"))
    return Resource.from_contents(json.loads(path.read_text()))


REGISTRY = Registry(retrieve=retrieve)


def check(schema_path: str, instance) -> dict:
    path = (ROOT / schema_path).resolve()
    schema = json.loads(path.read_text())
    schema.setdefault("$id", path.as_uri())
    cls = validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema, registry=REGISTRY).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        return {"ok": False, "error": f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}"}
    return {"ok": True}


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        request = json.loads(line)
        answer = check(request["schema"], request["instance"])
    except Exception as exc:  # a broken schema or request is an answer too, never a hang
        answer = {"ok": False, "error": f"validator: {type(exc).__name__}: {exc}"}
    print(json.dumps(answer), flush=True)
