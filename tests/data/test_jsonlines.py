"""SageMaker JSON Lines records: reading (plain/gzip, path/file object), errors, writing."""

import gzip
import io
import json

import numpy as np
import pytest

from skobject2vec.data.jsonlines import RecordError, iter_records, read_records, write_records

RECORDS = [{"in0": [6, 17, 606], "in1": [16, 21]}, {"in0": [22], "in1": [22, 32, 13]}, {"in0": [0], "in1": [5]}]
LABELS = [0, 1, 1]


def _lines(records=RECORDS, labels=LABELS):
    return "".join(json.dumps({"label": lab, **rec}) + "\n" for rec, lab in zip(records, labels))


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(_lines())
    return path


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl"])  # gzip found by magic bytes, not by name
def test_gzip_path(tmp_path, suffix):
    path = tmp_path / f"train{suffix}"
    with gzip.open(path, "wt") as handle:
        handle.write(_lines())
    records, labels = read_records(path, label="classification")
    assert records == RECORDS and labels.tolist() == LABELS


def test_plain_path_and_str_path(plain):
    for source in (plain, str(plain)):
        records, labels = read_records(source, label="classification")
        assert records == RECORDS
        assert labels.dtype == np.int64 and labels.tolist() == LABELS


@pytest.mark.parametrize("kind", ["text", "binary", "gzip-binary", "opened-file"])
def test_file_objects(plain, kind):
    data = _lines()
    if kind == "text":
        handle = io.StringIO(data)
    elif kind == "binary":
        handle = io.BytesIO(data.encode())
    elif kind == "gzip-binary":
        handle = io.BytesIO(gzip.compress(data.encode()))
    else:
        handle = open(plain, "rb")
    with handle:
        records, labels = read_records(handle, label="classification")
        assert not handle.closed, "reading must not close the caller's file object"
    assert records == RECORDS and labels.tolist() == LABELS


def test_streams_line_by_line():
    """A generator: records come out before the stream's end is read."""

    class Endless(io.StringIO):
        def __iter__(self):
            yield json.dumps(RECORDS[0]) + "\n"
            raise AssertionError("read past the first record")

    first, label = next(iter_records(Endless()))
    assert first == RECORDS[0] and label is None


def test_extra_keys_ignored_and_blank_lines_skipped(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('\n{"label": 1, "in0": [1], "in1": [2], "weight": 3, "id": "a"}\n\n{"in0": [3], "in1": [4], '
                    '"label": 0}\n')
    records, labels = read_records(path, label="classification")
    assert records == [{"in0": [1], "in1": [2]}, {"in0": [3], "in1": [4]}]
    assert labels.tolist() == [1, 0]


def test_integral_floats_become_ints(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"label": 1.0, "in0": [1.0, 2], "in1": [3]}\n')
    records, labels = read_records(path, label="classification")
    assert records == [{"in0": [1, 2], "in1": [3]}]
    assert all(type(t) is int for t in records[0]["in0"])
    assert labels.tolist() == [1]


def test_regression_labels(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"label": 3.5, "in0": [1], "in1": [2]}\n{"label": 4, "in0": [1], "in1": [2]}\n')
    _, labels = read_records(path, label="regression")
    assert labels.dtype == np.float64 and labels.tolist() == [3.5, 4.0]


def test_labels_ignored_without_label_kind(plain):
    records, labels = read_records(plain)
    assert records == RECORDS and labels is None


def test_single_side_records_for_embeddings(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"in0": [1, 2]}\n{"in1": [3]}\n')
    records, _ = read_records(path, fields="any")
    assert records == [{"in0": [1, 2]}, {"in1": [3]}]
    with pytest.raises(RecordError, match=r"x.jsonl:1: missing key 'in1'"):
        read_records(path)  # pairs required by default


BAD = [
    ("bad-json", '{"in0": [1], "in1": [2], "label": 1', r":2: invalid JSON"),
    ("not-object", "[1, 2, 3]", r":2: expected a JSON object"),
    ("missing-in0", '{"in1": [2], "label": 1}', r":2: missing key 'in0'"),
    ("missing-in1", '{"in0": [2], "label": 1}', r":2: missing key 'in1'"),
    ("missing-label", '{"in0": [1], "in1": [2]}', r":2: missing key 'label'"),
    ("string-id", '{"in0": [1, "a"], "in1": [2], "label": 1}',
     r":2: field 'in0' holds 'a'; token ids must be integers"),
    ("fractional-id", '{"in0": [1], "in1": [2.5], "label": 1}', r":2: field 'in1' holds 2.5; token ids must be"),
    ("bool-id", '{"in0": [true], "in1": [2], "label": 1}', r":2: field 'in0' holds True"),
    # several ids: the common records' fast check (no loop over the tokens) must refuse these too
    ("bool-among-ids", '{"in0": [4, 5, true], "in1": [2], "label": 1}', r":2: field 'in0' holds True"),
    ("negative-among-ids", '{"in0": [1], "in1": [4, -1, 5], "label": 1}', r":2: field 'in1' holds the negative"),
    ("huge-among-ids", '{"in0": [1, 9007199254740992], "in1": [2], "label": 1}', r":2: field 'in0' holds the id "
                                                                                  r"9007199254740992"),
    ("negative-id", '{"in0": [1], "in1": [-3], "label": 1}', r":2: field 'in1' holds the negative id -3"),
    ("negative-float-id", '{"in0": [1], "in1": [-2.0], "label": 1}', r":2: field 'in1' holds the negative id -2"),
    ("nested", '{"in0": [[1, 2]], "in1": [2], "label": 1}', r":2: field 'in0' holds a nested list"),
    ("not-a-list", '{"in0": 5, "in1": [2], "label": 1}', r":2: field 'in0' must be a list of integer token ids"),
    ("empty", '{"in0": [], "in1": [2], "label": 1}', r":2: field 'in0' is empty"),
    ("label-fraction", '{"in0": [1], "in1": [2], "label": 0.5}', r":2: field 'label' is 0.5; classification"),
    ("label-string", '{"in0": [1], "in1": [2], "label": "1"}', r":2: field 'label' is '1'; classification"),
    ("label-bool", '{"in0": [1], "in1": [2], "label": true}', r":2: field 'label' is True; classification"),
    ("label-negative", '{"in0": [1], "in1": [2], "label": -1}', r":2: field 'label' is -1; classification"),
]


@pytest.mark.parametrize("case,line,message", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("compressed", [False, True])
def test_malformed_record_names_file_line_and_field(tmp_path, case, line, message, compressed):
    good = json.dumps({"label": 1, "in0": [1], "in1": [2]})
    text = f"{good}\n{line}\n{good}\n"
    path = tmp_path / ("data.jsonl.gz" if compressed else "data.jsonl")
    if compressed:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    with pytest.raises(RecordError, match=str(path).replace(".", r"\.") + message):
        read_records(path, label="classification")


def test_regression_label_of_wrong_kind(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"in0": [1], "in1": [2], "label": "high"}\n')
    with pytest.raises(RecordError, match=r"r\.jsonl:1: field 'label' is 'high'; regression labels must be numbers"):
        read_records(path, label="regression")


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"in0": [1], "in1": [2]}\n{"in0": [1], "in1": [2], "x": "\xff"}\n')
    with pytest.raises(RecordError, match=r"u\.jsonl:2: invalid JSON"):
        read_records(path)


def test_file_object_error_names_its_name(plain):
    with pytest.raises(RecordError, match=r"<stream>:1: invalid JSON"):
        read_records(io.StringIO("nope\n"))
    with open(plain, "a") as handle:
        handle.write("{oops\n")
    with open(plain, "rb") as handle, pytest.raises(RecordError, match=str(plain).replace(".", r"\.") + ":4:"):
        read_records(handle)


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_round_trip(tmp_path, name):
    path = tmp_path / name
    records = [{"in0": np.array([1, 2]), "in1": [3]}, {"in0": [4], "in1": np.array([5, 6], dtype=np.int32)}]
    assert write_records(records, path, labels=np.array([1, 0])) == 2
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    back, labels = read_records(path, label="classification")
    assert back == [{"in0": [1, 2], "in1": [3]}, {"in0": [4], "in1": [5, 6]}]
    assert labels.tolist() == [1, 0]
    # regression labels and records without labels
    write_records(back, path, labels=[2.5, np.float64(-1.0)])
    assert read_records(path, label="regression")[1].tolist() == [2.5, -1.0]
    write_records(back, path)
    assert read_records(path) == (back, None)


def test_write_to_file_objects():
    text = io.StringIO()
    write_records(RECORDS, text, labels=LABELS)
    binary = io.BytesIO()
    write_records(RECORDS, binary, labels=LABELS)
    assert not binary.closed and binary.getvalue().decode() == text.getvalue()
    records, labels = read_records(io.StringIO(text.getvalue()), label="classification")
    assert records == RECORDS and labels.tolist() == LABELS
