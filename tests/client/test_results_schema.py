"""What holds the client library to the service without a server running: its typed results
against the OpenAPI schema of the real app, its webhook check against the service's signing,
its async client against its sync one, and its packaging (httpx and nothing else)."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import hmac
import inspect
import subprocess
import sys
import time
import tomllib
import types
import typing
from datetime import datetime
from pathlib import Path

import pytest

from checkerless_client import AsyncClient, Client, verify_webhook
from checkerless_client.results import SCHEMA_RESULTS, Result
from service.core import webhooks

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
ENUMS = {"JobState", "ContentSetState", "ContentSource"}  # string enums: plain str in the client


@pytest.fixture(scope="module")
def schemas(tmp_path_factory) -> dict:
    from service.api.main import create_app
    from service.core.settings import Settings

    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))
    return app.openapi()["components"]["schemas"]


def _options(prop: dict) -> tuple[list[dict], bool]:
    """A property's schemas other than null, and whether null is allowed."""
    options = prop.get("anyOf", [prop])
    return [o for o in options if o.get("type") != "null"], any(o.get("type") == "null" for o in options)


def _agrees(annotation, schema: dict) -> bool:
    """Whether a dataclass annotation reads what the schema describes: null where it allows null,
    the referenced result for a $ref, str for a string enum, datetime for a date-time, a list of
    agreeing items, a dict for an object. A union of several (a float or a str) is as the schema has it."""
    options, nullable = _options(schema)
    if (type(None) in typing.get_args(annotation)) != nullable:
        return False
    if len(options) != 1:
        return True
    annotation, schema = _without_none(annotation), options[0]
    ref = schema.get("$ref", "").rsplit("/", 1)[-1]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if ref:
        if ref in ENUMS:
            return annotation is str
        return isinstance(annotation, type) and issubclass(annotation, Result) and annotation.SCHEMA == ref
    kind = schema.get("type")
    if kind == "string":
        return annotation is (datetime if schema.get("format") == "date-time" else str)
    if kind == "array":
        return origin is list and (not schema.get("items") or _agrees(args[0], schema["items"]))
    if kind == "object":
        return origin is dict or annotation is dict
    return annotation is {"integer": int, "number": float, "boolean": bool}.get(kind)


def _without_none(annotation):
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return annotation


@pytest.mark.parametrize("cls", SCHEMA_RESULTS, ids=lambda c: c.__name__)
def test_each_result_has_its_schema_models_fields_with_their_types(cls, schemas):
    """Same field names; nullable exactly where the schema lets a value be null; a default exactly
    where the schema does not require the field; and a type that reads the schema's."""
    model = schemas[cls.SCHEMA]
    props, required = model["properties"], set(model.get("required", []))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    assert set(fields) == set(props), (f"{cls.__name__} vs {cls.SCHEMA}: only in the client "
                                       f"{sorted(set(fields) - set(props))}, only in the schema {sorted(set(props) - set(fields))}")
    for name, prop in props.items():
        has_default = (fields[name].default is not dataclasses.MISSING
                       or fields[name].default_factory is not dataclasses.MISSING)
        assert has_default == (name not in required), f"{cls.__name__}.{name}: required is {name in required}"
        assert _agrees(hints[name], prop), f"{cls.__name__}.{name}: {hints[name]} vs {prop}"


def test_the_rule_fails_on_a_result_that_drifted(schemas):
    """The check above can fail: a field renamed, null let through, or a time read as text is caught."""
    from checkerless_client.results import Style

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Renamed(Result):
        SCHEMA: typing.ClassVar[str] = "StylePublic"
        id: str
        width: int | None
        tall: int | None
        name: str | None = None
        created_at: datetime | None = None

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NotNullable(Style):
        width: int

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Untimed(Style):
        created_at: str | None = None

    for drifted in (Renamed, NotNullable, Untimed):
        with pytest.raises(AssertionError):
            test_each_result_has_its_schema_models_fields_with_their_types(drifted, schemas)


def test_async_client_offers_what_client_offers_with_the_same_parameters():
    public = lambda cls: {n: m for n, m in vars(cls).items() if not n.startswith("_") and callable(m)}  # noqa: E731
    sync, aio = public(Client), public(AsyncClient)
    assert set(sync) == set(aio)
    iterators = {"jobs", "experiments", "watch"}  # `async for`: plain functions returning async iterators
    for name in sync:
        assert list(inspect.signature(sync[name]).parameters.values()) == \
            list(inspect.signature(aio[name]).parameters.values()), name
        assert inspect.iscoroutinefunction(aio[name]) == (name not in iterators), name
    assert set(inspect.signature(Client.__init__).parameters) == set(inspect.signature(AsyncClient.__init__).parameters)


def test_verify_webhook_accepts_the_services_signature_and_nothing_else():
    secret, body, t = "whsec_test", b'{"type": "job.state", "state": "succeeded"}', int(time.time())
    header = webhooks.sign(secret, t, body)
    assert verify_webhook(body, header, secret) and verify_webhook(body.decode(), header, secret)
    assert webhooks.verify(secret, header, body)  # the service's own check agrees
    refused = {
        "a changed body": (body.replace(b"succeeded", b"failed"), header, secret),
        "another secret": (body, header, "whsec_other"),
        "an old signature": (body, webhooks.sign(secret, t - 301, body), secret),
        "no header": (body, None, secret),
        "a header without v1": (body, f"t={t}", secret),
        "a time that is not one": (body, header.replace(f"t={t}", "t=soon"), secret),
    }
    for what, (b, h, s) in refused.items():
        assert not verify_webhook(b, h, s), what
        if h is not None:
            assert not webhooks.verify(s, h, b if isinstance(b, bytes) else b.encode()), what
    # The tolerance is the caller's: a day-old delivery passes when a day is allowed.
    old = webhooks.sign(secret, t - 86_000, body)
    assert verify_webhook(body, old, secret, tolerance_s=86_400) and not verify_webhook(body, old, secret)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert verify_webhook(body, f"t={t},v1={mac}", secret, now=t + 10)


def test_the_client_distribution_needs_httpx_alone_and_loads_nothing_of_the_service():
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "checkerless-client" and [d.split(">")[0] for d in project["dependencies"]] == ["httpx"]
    assert project["requires-python"] == ">=3.11"
    allowed = set(sys.stdlib_module_names) | {"httpx", "checkerless_client", "__future__"}
    for source in (CLIENT / "src" / "checkerless_client").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] in allowed, f"{source.name} imports {name}"
    code = ("import sys, checkerless_client; "
            "print(sorted(m for m in ('torch', 'numpy', 'models', 'service', 'workers') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CLIENT)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr
