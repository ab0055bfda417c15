"""The SageMaker-protocol endpoint, run as a real server: ``python -m skobject2vec serve`` in a
subprocess on a free 127.0.0.1 port, spoken to over HTTP. Answers are compared with the
estimator's in-process predict_proba / predict / transform on the loaded artifact."""

import asyncio
import copy
import json

import numpy as np
import orjson
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from support import FAST  # noqa: E402

import skobject2vec  # noqa: E402
from skobject2vec import Object2VecClassifier, Object2VecRegressor  # noqa: E402
from skobject2vec.cli import main  # noqa: E402
from skobject2vec.datasets import make_score_pairs, make_topic_pairs  # noqa: E402
from skobject2vec.serving.protocol import SAGEMAKER_PHRASE  # noqa: E402
from skobject2vec.serving.runner import preferred_mode_from_env  # noqa: E402
from skobject2vec.serving.testing import running_server  # noqa: E402

pytestmark = pytest.mark.slow  # subprocesses, servers or many fits: `make test-fast` skips it

JSON, JSONL = "application/json", "application/jsonlines"
# float32 networks: a record's outputs move by ~1e-7 with the batch it is computed in.
TOL = dict(rtol=1e-5, atol=1e-6)


def _jsonl(records):
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def _body(records, content_type):
    return _jsonl(records) if content_type.startswith(JSONL) else orjson.dumps({"instances": records})


def _rows(response, key):
    """The predictions of a response in either format, as a 2-D array."""
    if response.headers["content-type"].startswith(JSONL):
        rows = [orjson.loads(line)[key] for line in response.content.splitlines()]
    else:
        rows = [p[key] for p in response.json()["predictions"]]
    return np.array(rows)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    X, y = make_topic_pairs(400, seed=1)
    Object2VecClassifier(**FAST, shared_encoder=False).fit(X, y).save(root / "clf")  # two encoders
    X, y = make_score_pairs(400, seed=1)
    Object2VecRegressor(**FAST, shared_encoder=True).fit(X, y).save(root / "reg")  # one shared encoder
    return root / "clf", root / "reg"


@pytest.fixture(scope="module")
def clf_server(model_dirs):
    with running_server(model_dirs[0]) as url:
        yield url, skobject2vec.load(model_dirs[0])


@pytest.fixture(scope="module")
def reg_server(model_dirs):
    # A small payload limit, to check that it is configurable.
    with running_server(model_dirs[1], "--max-payload-mb", "0.01") as url:
        yield url, skobject2vec.load(model_dirs[1])


@pytest.fixture(scope="module")
def records():
    X, _ = make_topic_pairs(30, seed=7)
    return X


def _post(url, body, content_type=JSON, accept=None):
    headers = {"content-type": content_type} if content_type is not None else {}
    if accept is not None:
        headers["accept"] = accept
    return httpx.post(f"{url}/invocations", content=body, headers=headers, timeout=30)


def test_ping_and_execution_parameters(clf_server):
    url, _ = clf_server
    assert httpx.get(f"{url}/ping").status_code == 200
    params = httpx.get(f"{url}/execution-parameters").json()
    assert params["MaxPayloadInMB"] == 6 and params["BatchStrategy"] == "MULTI_RECORD"


@pytest.mark.parametrize("content_type", [JSON, JSONL, JSONL + "; charset=utf-8", None])
@pytest.mark.parametrize("accept", [None, JSON, JSONL, "*/*"])
def test_classifier_scores_equal_predict_proba(clf_server, records, content_type, accept):
    url, clf = clf_server
    response = _post(url, _body(records, content_type or JSON), content_type, accept)
    assert response.status_code == 200, response.text
    expected_type = JSONL if accept == JSONL else JSON
    assert response.headers["content-type"].startswith(expected_type)
    if expected_type == JSON:
        assert set(response.json()) == {"predictions"}
    scores = _rows(response, "scores")
    assert scores.shape == (len(records), 2)
    np.testing.assert_allclose(scores, clf.predict_proba(records), **TOL)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-9)


@pytest.mark.parametrize("content_type", [JSON, JSONL])
@pytest.mark.parametrize("accept", [JSON, JSONL])
def test_regressor_scores_equal_predict(reg_server, content_type, accept):
    url, reg = reg_server
    X, _ = make_score_pairs(20, seed=3)
    response = _post(url, _body(X, content_type), content_type, accept)
    assert response.status_code == 200, response.text
    scores = _rows(response, "scores")
    assert scores.shape == (20, 1)
    np.testing.assert_allclose(scores[:, 0], reg.predict(X), **TOL)


@pytest.mark.parametrize("side", ["in0", "in1"])
@pytest.mark.parametrize("content_type,accept", [(JSON, JSON), (JSONL, JSONL), (JSONL, JSON)])
def test_single_side_records_give_that_encoders_embeddings(clf_server, records, side, content_type, accept):
    url, clf = clf_server
    single = [{side: r[side]} for r in records]
    response = _post(url, _body(single, content_type), content_type, accept)
    assert response.status_code == 200, response.text
    embeddings = _rows(response, "embeddings")
    assert embeddings.shape == (len(records), FAST["enc_dim"])
    np.testing.assert_allclose(embeddings, clf.transform(single), **TOL)
    other = [{("in1" if side == "in0" else "in0"): r[side]} for r in records]
    assert not np.allclose(embeddings, clf.transform(other)), "the other encoder must give other vectors"


def test_shared_encoder_serves_one_embedding_for_either_side(reg_server, records):
    url, reg = reg_server
    as_in0 = _rows(_post(url, _body([{"in0": r["in0"]} for r in records[:10]], JSON), JSON, JSON), "embeddings")
    as_in1 = _rows(_post(url, _body([{"in1": r["in0"]} for r in records[:10]], JSON), JSON, JSON), "embeddings")
    np.testing.assert_array_equal(as_in0, as_in1)


def test_regressor_serves_embeddings_too(reg_server):
    url, reg = reg_server
    X = [{"in1": [3, 4, 5]}, {"in1": [60]}]
    response = _post(url, _body(X, JSON))
    np.testing.assert_allclose(_rows(response, "embeddings"), reg.transform(X), **TOL)


@pytest.mark.parametrize("mode", ["pairs", "in0"])
def test_infer_max_seqlens_truncates_for_that_request_only(clf_server, mode):
    url, clf = clf_server
    long = [{"in0": list(range(i, i + 7)), "in1": list(range(50 + i, 58 + i))} for i in range(5)]
    if mode == "in0":
        long = [{"in0": r["in0"]} for r in long]
    name, key = ("predict_proba", "scores") if mode == "pairs" else ("transform", "embeddings")
    truncated = copy.deepcopy(clf)
    truncated.max_seq_lens_ = (2, 3)
    response = _post(url, _body(long, JSON), JSON + "; infer_max_seqlens=2,3")
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(_rows(response, key), getattr(truncated, name)(long), **TOL)
    assert not np.allclose(_rows(response, key), getattr(clf, name)(long))
    # The next request without the parameter uses the model's own lengths again.
    response = _post(url, _body(long, JSONL), JSONL)
    np.testing.assert_allclose(_rows(response, key), getattr(clf, name)(long), **TOL)


BAD_REQUESTS = [
    # (content type, body, status, what the message must say)
    (JSON, b'{"instances": [{"in0": [1, 2], "in1": [3]', 400, "not valid JSON"),
    (JSON, b"", 400, "not valid JSON"),
    (JSON, b'[{"in0": [1, 2], "in1": [3]}]', 400, "bare JSON list"),
    (None, b'[{"in0": [1, 2], "in1": [3]}]', 400, "bare JSON list"),
    (JSON, b'{"records": [{"in0": [1], "in1": [3]}]}', 400, '"instances"'),
    (JSON, b'{"instances": {"in0": [1], "in1": [3]}}', 400, '"instances" must be a list'),
    (JSON, b'{"instances": []}', 400, "no instances"),
    (JSONL, b"\n\n", 400, "no instances"),
    (JSON, b'{"instances": [{"in0": [1], "in1": [3]}, {"in0": [1, 2]}]}', 400, "record 1, field 'in1'"),
    (JSON, b'{"instances": [{"in0": [1]}, {"in1": [2]}]}', 400, "record 1, field 'in0'"),
    (JSON, b'{"instances": [{"label": 1}]}', 400, "record 0, field 'in0': missing key"),
    (JSON, b'{"instances": [{"in0": [1], "in1": [3]}, {"in0": [1.5], "in1": [3]}]}', 400,
     "record 1, field 'in0': token ids must be integers"),
    (JSON, b'{"instances": [{"in0": [1], "in1": ["7"]}]}', 400,
     "record 0, field 'in1': expected a flat list of integer token ids"),
    (JSON, b'{"instances": [{"in0": [true], "in1": [3]}]}', 400,
     "record 0, field 'in0': expected a flat list of integer"),
    (JSON, b'{"instances": [{"in0": [2, true], "in1": [3]}]}', 400,
     "record 0, field 'in0': expected a flat list of integer"),
    (JSON, b'{"instances": [{"in0": [1], "in1": [3]}, {"in0": [4], "in1": [-2]}]}', 400,
     "record 1, field 'in1' has token id -2"),
    (JSON, b'{"instances": [{"in0": [1e30], "in1": [3]}]}', 400,
     "record 0, field 'in0': token ids must be integers below 2**53"),
    (JSON, b'{"instances": [{"in0": [], "in1": [3]}]}', 400, "record 0, field 'in0': empty sequence"),
    (JSON, b'{"instances": [{"in0": 5, "in1": [3]}]}', 400, "record 0, field 'in0'"),
    (JSON, b'{"instances": [{"in0": [[1, 2]], "in1": [3]}]}', 400, "record 0, field 'in0'"),
    (JSON, b'{"instances": [[1, 2]]}', 400, "record 0: expected an object"),
    (JSONL, b'{"in0": [1], "in1": [3]}\n{"in0": [1], "in1": [3]\n', 400, "line 2 is not valid JSON"),
    (JSONL, b'{"in0": [1], "in1": [3]}\n{"in0": [-1], "in1": [3]}\n', 400, "record 1, field 'in0'"),
    (JSON + "; infer_max_seqlens=0,10", b'{"instances": [{"in0": [1], "in1": [3]}]}', 400, "infer_max_seqlens"),
    (JSON + "; infer_max_seqlens=10", b'{"instances": [{"in0": [1], "in1": [3]}]}', 400, "infer_max_seqlens"),
    (JSON + "; infer_max_seqlens=5001,3", b'{"instances": [{"in0": [1], "in1": [3]}]}', 400, "[1, 5000]"),
    ("text/csv", b"1,2,3", 415, "unsupported content type 'text/csv'"),
    ("application/x-recordio-protobuf", b"\x00\x01", 415, "unsupported content type"),
]


@pytest.mark.parametrize("content_type,body,status,message", BAD_REQUESTS)
def test_bad_input_gets_a_4xx_json_error(clf_server, content_type, body, status, message):
    url, _ = clf_server
    response = _post(url, body, content_type)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(JSON)
    error = response.json()["error"]
    assert error["code"] == status
    assert SAGEMAKER_PHRASE in error["message"] and message in error["message"], error["message"]


def test_unsupported_accept_gets_406(clf_server, records):
    url, _ = clf_server
    response = _post(url, _body(records, JSON), JSON, accept="text/csv")
    assert response.status_code == 406
    assert SAGEMAKER_PHRASE in response.json()["error"]["message"]


def test_payload_limit_gives_413(clf_server, reg_server):
    url, clf = clf_server
    record = {"in0": [1] * 1000, "in1": [2] * 1000}
    big = orjson.dumps({"instances": [record] * 1600})  # ~6.4 MB, over SageMaker's 6 MB
    assert len(big) > 6 * 1024 * 1024
    response = _post(url, big)
    assert response.status_code == 413 and SAGEMAKER_PHRASE in response.json()["error"]["message"]
    small = orjson.dumps({"instances": [record] * 2})
    assert _post(url, small).status_code == 200
    # The regressor's server was started with --max-payload-mb 0.01 (10 KiB).
    url, _ = reg_server
    assert _post(url, orjson.dumps({"instances": [record] * 3})).status_code == 413
    assert _post(url, small).status_code == 200


def test_server_still_answers_after_bad_input(clf_server, records):
    url, clf = clf_server
    for content_type, body, status, _ in BAD_REQUESTS:
        assert _post(url, body, content_type).status_code == status
    assert httpx.get(f"{url}/ping").status_code == 200
    np.testing.assert_allclose(_rows(_post(url, _body(records, JSON)), "scores"), clf.predict_proba(records), **TOL)


def test_inference_preferred_mode_keeps_both_modes_working(model_dirs, records):
    clf = skobject2vec.load(model_dirs[0])
    with running_server(model_dirs[0], env={"INFERENCE_PREFERRED_MODE": "embedding"}) as url:
        np.testing.assert_allclose(_rows(_post(url, _body(records, JSON)), "scores"),
                                   clf.predict_proba(records), **TOL)
        single = [{"in0": r["in0"]} for r in records]
        np.testing.assert_allclose(_rows(_post(url, _body(single, JSON)), "embeddings"),
                                   clf.transform(single), **TOL)


@pytest.mark.parametrize("value,expected", [("classification", "classification"), (" EMBEDDING ", "embedding"),
                                            ("", None)])
def test_inference_preferred_mode_values(value, expected):
    assert preferred_mode_from_env({"INFERENCE_PREFERRED_MODE": value}) == expected
    assert preferred_mode_from_env({}) is None


# Startup failures are checked in process (cli.main): they fail before uvicorn starts listening.
def test_invalid_preferred_mode_stops_serve_with_a_clear_error(model_dirs, monkeypatch, capsys):
    monkeypatch.setenv("INFERENCE_PREFERRED_MODE", "gpu")
    assert main(["serve", "--model-dir", str(model_dirs[0]), "--port", "1"]) == 1
    assert "INFERENCE_PREFERRED_MODE='gpu' is not valid" in capsys.readouterr().err


def test_missing_model_dir_stops_serve_with_a_clear_error(tmp_path, capsys):
    assert main(["serve", "--model-dir", str(tmp_path / "nothing-here"), "--port", "1"]) == 1
    assert "is not a skobject2vec model folder" in capsys.readouterr().err


async def _fire(url, jobs, concurrency):
    """Send every (body, content_type) job with at most ``concurrency`` in flight; the responses in order."""
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(body, content_type):
            async with limit:
                return await client.post("/invocations", content=body, headers={"content-type": content_type})
        return await asyncio.gather(*(one(body, ct) for body, ct in jobs))


def test_load_concurrent_good_and_malformed_requests(clf_server):
    """200 concurrent requests, a quarter malformed: every good one gets the in-process answer,
    every bad one its 4xx, none is lost (micro-batching mixes them into shared forward passes)."""
    url, clf = clf_server
    rng = np.random.default_rng(0)
    X, _ = make_topic_pairs(600, seed=11)
    jobs, expected = [], []
    for i in range(200):
        start, size = int(rng.integers(0, 580)), int(rng.integers(1, 20))
        chunk = X[start:start + size]
        kind = i % 8
        if kind in (1, 5):  # malformed: a negative id in the last record
            bad = copy.deepcopy(chunk)
            bad[-1]["in1"] = [-1]
            jobs.append((_body(bad, JSON), JSON))
            expected.append(("error", 400, f"record {len(bad) - 1}, field 'in1'"))
        elif kind == 3:  # malformed JSON lines
            jobs.append((_jsonl(chunk)[:-5] + b"\n", JSONL))
            expected.append(("error", 400, "not valid JSON"))
        elif kind == 7:  # unsupported content type
            jobs.append((b"1,2", "text/csv"))
            expected.append(("error", 415, "unsupported content type"))
        elif kind == 2:  # embedding mode
            single = [{"in1": r["in1"]} for r in chunk]
            jobs.append((_body(single, JSONL), JSONL))
            expected.append(("embeddings", single))
        else:
            jobs.append((_body(chunk, JSON), JSON))
            expected.append(("scores", chunk))
    responses = asyncio.run(_fire(url, jobs, concurrency=32))
    assert len(responses) == 200
    for response, want in zip(responses, expected):
        if want[0] == "error":
            assert response.status_code == want[1], response.text
            assert want[2] in response.json()["error"]["message"]
        else:
            assert response.status_code == 200, response.text
            method = clf.predict_proba if want[0] == "scores" else clf.transform
            np.testing.assert_allclose(_rows(response, want[0]), method(want[1]), **TOL)
    assert httpx.get(f"{url}/ping").status_code == 200


def test_concurrent_requests_share_forward_passes(model_dirs):
    """In process (ASGI transport): 40 concurrent requests run in far fewer forward passes."""
    from skobject2vec.serving import create_app

    app = create_app(model_dirs[0])
    clf = app.state.runner.estimator
    X, _ = make_topic_pairs(40, seed=5)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(*(
                client.post("/invocations", content=_body([record], JSON), headers={"content-type": JSON})
                for record in X))
        await app.state.batcher.stop()
        return responses

    responses = asyncio.run(scenario())
    np.testing.assert_allclose(np.vstack([_rows(r, "scores") for r in responses]), clf.predict_proba(X), **TOL)
    assert app.state.batcher.records_run == 40
    assert app.state.batcher.batches_run <= 10, app.state.batcher.batches_run


def test_random_junk_only_ever_raises_payload_errors():
    """Mutated and random bodies: parse_body either accepts them or raises PayloadError (a 4xx),
    never another exception (which the server would turn into a 500)."""
    from skobject2vec.serving.protocol import PayloadError, parse_body

    rng = np.random.default_rng(0)
    values = [0, 3, -1, 1.5, 2.0, 1e30, -1e30, "7", None, True, [], [1], [[1]], {}, {"in0": [1]}, 2 ** 63, 2 ** 70]
    seeds = [orjson.dumps({"instances": [{"in0": [1, 2], "in1": [3]}]}), _jsonl([{"in0": [4]}, {"in0": [5, 6]}])]
    for trial in range(400):
        if trial % 4 == 0:  # byte-level damage
            body = bytearray(seeds[trial % 2])
            for _ in range(int(rng.integers(1, 4))):
                body[int(rng.integers(len(body)))] = int(rng.integers(0, 256))
            body = bytes(body)
        else:  # structurally valid JSON with odd values in odd places
            record = {f: [values[int(i)] for i in rng.integers(0, len(values), int(rng.integers(0, 3)))]
                      if rng.random() < 0.7 else values[int(rng.integers(len(values)))]
                      for f in ("in0", "in1", "label") if rng.random() < 0.8}
            obj = {"instances": [record] * int(rng.integers(0, 3))} if trial % 2 else record
            body = json.dumps(obj).encode()  # the stdlib writes ints beyond 64 bits too
        for media in (JSON, JSONL):
            try:
                parse_body(body, media, (5, 5))
            except PayloadError as exc:
                assert exc.status == 400 and str(exc).startswith(SAGEMAKER_PHRASE)
