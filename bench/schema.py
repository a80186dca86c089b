"""The JSON schema of a results file (version 1) and a small validator for the subset of JSON Schema
it uses (type, required, properties, items, enum, additionalProperties as a schema), so validating
needs no extra package.  tests/bench checks every written file against it.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

_NUM = {"type": ["number", "null"]}
_ENTRY = {
    "type": "object",
    "required": ["status", "reason"],
    "properties": {
        "status": {"enum": ["ok", "wrong", "error", "unavailable", "n/a"]},
        "reason": {"type": ["string", "null"]},
        "median_s": {"type": "number"}, "iqr_s": {"type": "number"}, "min_s": {"type": "number"},
        "max_s": {"type": "number"}, "times_s": {"type": "array", "items": {"type": "number"}},
        "number": {"type": "integer"}, "reps": {"type": "integer"}, "warmup": {"type": "integer"},
        "clock": {"enum": ["perf_counter", "cuda-events"]},
        "check": {"enum": ["reference", "agrees", "differs"]},
        "max_rel_err": _NUM, "tolerance": _NUM,
        "gflops": _NUM, "gbps": _NUM, "peak_fraction": _NUM, "speed_vs_pytorch": _NUM,
    },
}
_RESULT = {
    "type": "object",
    "required": ["suite", "name", "params", "work", "reference", "tolerance_reason", "entries"],
    "properties": {
        "suite": {"enum": ["ops", "models", "e2e"]},
        "name": {"type": "string"},
        "params": {"type": "object"},
        "work": {"type": "object"},
        "devices": {"type": "array", "items": {"enum": ["cpu", "gpu"]}},
        "reference": {"type": ["string", "null"]},
        "tolerance_reason": {"type": ["string", "null"]},
        "entries": {"type": "object", "additionalProperties": _ENTRY},
    },
}
_TARGET = {
    "type": "object",
    "required": ["name", "device", "threshold", "comparison", "value", "verdict", "words"],
    "properties": {
        "name": {"type": "string"}, "device": {"enum": ["cpu", "gpu"]}, "threshold": {"type": "number"},
        "comparison": {"enum": [">=", "<="]}, "value": _NUM,
        "verdict": {"enum": ["MET", "MISSED", "NOT MEASURED"]}, "words": {"type": "string"},
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "dlgpu bench results",
    "type": "object",
    "required": ["schema_version", "created", "device_slug", "command", "options", "machine", "paths",
                 "results", "targets", "tolerances"],
    "properties": {
        "schema_version": {"enum": [SCHEMA_VERSION]},
        "created": {"type": "string"},
        "device_slug": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}},
        "options": {"type": "object"},
        "machine": {"type": "object", "required": ["cpu", "blas", "versions"]},
        "gpu_samples": {"type": ["object", "null"]},
        "tolerances": {"type": "object"},
        "paths": {"type": "array", "items": {
            "type": "object", "required": ["name", "framework", "device", "available", "reason"],
            "properties": {"name": {"type": "string"}, "available": {"type": "boolean"},
                           "device": {"enum": ["cpu", "gpu"]}, "reason": {"type": ["string", "null"]}}}},
        "results": {"type": "array", "items": _RESULT},
        "targets": {"type": "array", "items": _TARGET},
    },
}

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value, name):
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(doc, schema=SCHEMA, where="$"):
    """Every violation as 'path: message' (empty when the document is valid)."""
    out = []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(doc, k) for k in kinds):
            return [f"{where}: expected {kind}, got {type(doc).__name__}"]
    if "enum" in schema and doc not in schema["enum"]:
        out.append(f"{where}: {doc!r} not one of {schema['enum']}")
    if isinstance(doc, dict):
        for key in schema.get("required", []):
            if key not in doc:
                out.append(f"{where}: missing '{key}'")
        props = schema.get("properties", {})
        for key, value in doc.items():
            if key in props:
                out += errors(value, props[key], f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(value, schema["additionalProperties"], f"{where}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            out += errors(item, schema["items"], f"{where}[{i}]")
    return out


def validate(doc):
    problems = errors(doc)
    if problems:
        raise ValueError("bench results do not match schema v%d:\n  " % SCHEMA_VERSION + "\n  ".join(problems[:20]))
    return doc
