"""Property-based tests (hypothesis): parsers and the artifact loader under mutated input.

Each property states what must hold for *any* input of a kind: a request body is served
or refused with a PayloadError (never another exception, which the server would turn into
a 500); a mutated artifact loads identically or is refused with a ValueError; any request to
the server application (method, path, content type, Accept, body) is answered below 500. The default
profile keeps `make test` fast; ``HYPOTHESIS_PROFILE=deep make test`` explores 20x more.
"""

import json
import os
import shutil

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from support import FAST  # noqa: E402

import skobject2vec  # noqa: E402
from skobject2vec import Object2VecClassifier  # noqa: E402
from skobject2vec.data.jsonlines import RecordError, read_records  # noqa: E402
from skobject2vec.datasets import make_topic_pairs  # noqa: E402
from skobject2vec.serving.protocol import JSON, JSONLINES, PayloadError, parse_body  # noqa: E402

settings.register_profile("default", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("deep", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# JSON values, records shaped like ours, and raw bytes
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
                     st.text(max_size=8))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=5), inner, max_size=4), max_leaves=12)
_ids = st.lists(st.one_of(st.integers(-5, 2 ** 64), st.floats(), st.booleans(), st.text(max_size=3)), max_size=6)
_records = st.dictionaries(st.sampled_from(["in0", "in1", "label", "IN0", "in 1", ""]), st.one_of(_ids, _values),
                           max_size=3)


@given(st.one_of(
    st.builds(lambda rs: json.dumps({"instances": rs}).encode(), st.lists(_records, max_size=4)),
    st.builds(lambda v: json.dumps(v).encode(), _values),
    st.binary(max_size=200)))
def test_any_json_body_is_served_or_refused_with_a_payload_error(body):
    for media in (JSON, JSONLINES):
        try:
            parse_body(body, media, (10, 10))
        except PayloadError:
            pass


@given(st.lists(st.one_of(st.builds(json.dumps, _records), st.text(max_size=30)), max_size=6))
def test_any_jsonlines_file_is_read_or_refused_naming_the_line(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        read_records(path, label="classification")
    except (RecordError, ValueError) as exc:
        assert "records.jsonl" in str(exc)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    X, y = make_topic_pairs(120, seed=2)
    clf = Object2VecClassifier(**dict(FAST, epochs=1)).fit(X, y)
    path = tmp_path_factory.mktemp("prop") / "m"
    clf.save(path)
    return clf, path, X[:10]


def _paths(value, prefix=()):
    """Every (path, leaf) of a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list) and value and len(value) <= 8:
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))
    else:
        yield prefix, value


@given(data=st.data())
def test_a_mutated_artifact_loads_identically_or_is_refused(artifact, tmp_path_factory, data):
    clf, path, X = artifact
    copy = tmp_path_factory.mktemp("mut") / "m"
    shutil.copytree(path, copy)
    if data.draw(st.booleans(), label="mutate the weights"):
        weights = bytearray((copy / "model.safetensors").read_bytes())
        position = data.draw(st.integers(0, len(weights) - 1), label="byte")
        weights[position] ^= data.draw(st.integers(1, 255), label="xor")
        (copy / "model.safetensors").write_bytes(bytes(weights))
    else:
        config = json.loads((copy / "config.json").read_text())
        leaves = list(_paths(config))
        where, _ = leaves[data.draw(st.integers(0, len(leaves) - 1), label="leaf")]
        node = config
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = data.draw(_values, label="new value")
        (copy / "config.json").write_text(json.dumps(config))
    try:
        loaded = skobject2vec.load(copy)
    except (ValueError, FileNotFoundError):
        return
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------------------ the server, in process
_media = st.sampled_from([JSON, JSONLINES, "application/json; infer_max_seqlens=2,3", "text/csv", "",
                          "application/json; infer_max_seqlens=x", "application/jsonlines;charset=utf-8",
                          "application/json; infer_max_seqlens=0,99999999999"])
_accept = st.one_of(st.sampled_from(["", "*/*", JSON, JSONLINES, "application/jsonlines;q=0.5, application/json",
                                     "text/html", "application/json;q=0", "application/json;q=abc"]),
                    st.text(max_size=20))
_bodies = st.one_of(
    st.builds(lambda rs: json.dumps({"instances": rs}).encode(), st.lists(_records, max_size=4)),
    st.builds(lambda rs: "\n".join(json.dumps(r) for r in rs).encode(), st.lists(_records, max_size=4)),
    st.builds(lambda v: json.dumps(v).encode(), _values),
    st.binary(max_size=200))


@pytest.fixture(scope="module")
def model_path(artifact):
    pytest.importorskip("httpx")
    pytest.importorskip("starlette")
    return artifact[1]


def _ask(model_path, method, route, headers, body):
    """One request to a fresh app in process (its batcher lives in one event loop); the response."""
    import asyncio

    import httpx

    from skobject2vec.serving import create_app

    app = create_app(model_path, max_payload_bytes=4096)

    async def send():
        transport = httpx.ASGITransport(app=app)  # an exception the app does not handle is raised here
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, route, content=body, headers=headers)
        finally:
            await app.state.batcher.stop()

    return asyncio.run(send())


@given(media=_media, accept=_accept, body=_bodies)
def test_any_invocation_gets_an_answer_below_500(model_path, media, accept, body):
    headers = {"content-type": media, **({"accept": accept} if accept else {})}
    try:
        response = _ask(model_path, "POST", "/invocations", headers, body)
    except UnicodeEncodeError:  # a header value httpx itself refuses to send (not the server's concern)
        return
    assert response.status_code < 500, (response.status_code, response.text[:200])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json")
        assert "error" in response.json()


@settings(max_examples=40)
@given(method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]),
       route=st.sampled_from(["/invocations", "/ping", "/execution-parameters", "/nope", "/invocations/"]),
       body=_bodies)
def test_any_method_and_path_gets_an_answer_below_500(model_path, method, route, body):
    response = _ask(model_path, method, route, {"content-type": JSON}, body)
    assert response.status_code < 500, (response.status_code, response.text[:200])
