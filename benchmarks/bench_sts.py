"""STS Benchmark: sentence-pair similarity regression trained from scratch.

Text goes through ``TextPairTokenizer`` (vocabulary of the training sentences; its
defaults add character 3-grams and hashed buckets for unseen words, and one row
shows the same regressor on words alone);
``Object2VecRegressor`` trains on train and early-stops on dev. Reported: dev and
test Pearson, test Spearman. Baselines of the same run: word overlap (Jaccard of
the two token sets) and TF-IDF cosine (``TfidfVectorizer`` fitted on the training
sentences); both are unsupervised scores, so correlation needs no fitting. Then
the regressor with its defaults (``random_state=0``) and one recipe per encoder
from RECIPES. Published reference points: word overlap 0.56, fastText
bag-of-vectors (pretrained) 0.70, InferSent 0.758. No pretrained vectors here.

    python benchmarks/bench_sts.py [FOLDER]           # default ../shared/data/stsbenchmark
    python benchmarks/bench_sts.py [FOLDER] --quick   # baselines, defaults and the pooled recipe, <= 10 epochs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import REPO_ROOT, format_table, machine_line, report, write_results
from scipy import stats

DEFAULT_FOLDER = REPO_ROOT.parent / "shared" / "data" / "stsbenchmark"
DEFAULTS = dict(random_state=0)
#: The tokenizer of the "words only" row: no character n-grams, every unknown word the same id.
WORDS_ONLY = dict(char_ngrams=None, oov_buckets=0)
#: One recipe per encoder: one shared encoder (a Siamese / bi-encoder, one vocabulary for both sides),
#: the defaults' relu MLP and dropout, Adam at 0.001, up to 40 epochs with early stopping on dev.
_COMMON = dict(shared_encoder=True, enc_dim=128, mlp_layers=1, mlp_dim=128, mlp_activation="relu",
               dropout=0.3, comparator_list="hadamard, concat, abs_diff", optimizer="adam", learning_rate=0.001,
               epochs=40, early_stopping_patience=5, early_stopping_tolerance=0.001, random_state=0)
RECIPES = {
    # Max pooling ("auto" for word pairs) over 600-dim token vectors: chosen on dev with words-only tokens
    # (0.776 / 0.778 / 0.775 over seeds 0-2, vs 0.760 for the defaults; 1,000 dims 0.774 at 2.5x the time;
    # dropout 0.5 0.769; both orders of each pair 0.772). With the default tokenizer (3-grams, buckets):
    # dev 0.812 / 0.810, test 0.765 / 0.760 (seeds 0 / 1).
    "pooled_embedding": dict(enc0_network="pooled_embedding", enc0_token_embedding_dim=600,
                             **dict(_COMMON, enc_dim=600)),
    "hcnn": dict(enc0_network="hcnn", enc0_token_embedding_dim=128, **_COMMON),
    "bilstm": dict(enc0_network="bilstm", enc0_token_embedding_dim=128, **_COMMON),
}
QUICK_RECIPES = ("pooled_embedding",)
QUICK_EPOCHS = 10
REFERENCES = [["word overlap (published)", float("nan"), 0.56, float("nan")],
              ["fastText bag-of-vectors, pretrained (published)", float("nan"), 0.70, float("nan")],
              ["InferSent, trained on NLI (published)", float("nan"), 0.758, float("nan")]]


def correlations(predicted, y):
    return float(stats.pearsonr(predicted, y)[0]), float(stats.spearmanr(predicted, y)[0])


def jaccard(tokenizer, pairs) -> np.ndarray:
    out = []
    for a, b in pairs:
        sa, sb = set(tokenizer.tokenize(a)), set(tokenizer.tokenize(b))
        out.append(len(sa & sb) / max(len(sa | sb), 1))
    return np.array(out)


def tfidf_sides(train_pairs):
    """``pairs -> (left, right)``: the TF-IDF rows (L2-normalised) of each pair's two sentences, with a
    vectorizer fitted on the training sentences."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer().fit([s for pair in train_pairs for s in pair])

    def sides(pairs):
        return vectorizer.transform([a for a, _ in pairs]), vectorizer.transform([b for _, b in pairs])

    return sides


def tfidf_cosine(train_pairs):
    sides = tfidf_sides(train_pairs)

    def score(pairs):
        left, right = sides(pairs)  # rows are L2-normalised: the dot is the cosine
        return np.asarray(left.multiply(right).sum(axis=1)).ravel()

    return score


def main(argv=None):
    import torch

    from skobject2vec import Object2VecRegressor, TextPairTokenizer
    from skobject2vec.datasets import load_sts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER), help="the stsbenchmark folder")
    parser.add_argument("--recipes", nargs="*", default=None, choices=list(RECIPES),
                        help="RECIPES to run (default all; none: baselines and defaults only)")
    parser.add_argument("--no-defaults", action="store_true", help="skip the defaults row")
    parser.add_argument("--epochs", type=int, default=None, help="cap the epochs of every model")
    parser.add_argument("--quick", action="store_true",
                        help=f"baselines, defaults and {', '.join(QUICK_RECIPES)}, at most {QUICK_EPOCHS} epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--name", default="sts", help="name of the JSON results file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = list(QUICK_RECIPES) if args.quick and args.recipes is None else (
        list(RECIPES) if args.recipes is None else args.recipes)
    cap = min(args.epochs or QUICK_EPOCHS, QUICK_EPOCHS) if args.quick else args.epochs

    data = load_sts(Path(args.folder))
    tokenized = {}

    def tokenize(**tokenizer_params):
        key = tuple(sorted(tokenizer_params.items()))
        if key not in tokenized:
            fitted = TextPairTokenizer(**tokenizer_params).fit(data.X_train)
            tokenized[key] = {s: fitted.transform(data[f"X_{s}"]) for s in ("train", "dev", "test")}
            print(f"TextPairTokenizer({tokenizer_params or ''}): vocabulary {fitted.vocab_size_:,} ids", flush=True)
        return tokenized[key]

    tokenizer = TextPairTokenizer().fit(data.X_train)  # its words, for the overlap baseline
    print(f"{len(data.X_train)} train, {len(data.X_dev)} dev, {len(data.X_test)} test pairs", flush=True)

    results = {}
    tfidf = tfidf_cosine(data.X_train)
    for label, score in (("word overlap (Jaccard of token sets)", lambda pairs: jaccard(tokenizer, pairs)),
                         ("TF-IDF cosine (fitted on train)", tfidf)):
        dev = correlations(score(data.X_dev), data.y_dev)[0]
        test = correlations(score(data.X_test), data.y_test)
        results[label] = {"dev_pearson": dev, "pearson": test[0], "spearman": test[1], "epochs": 0, "seconds": 0.0}
    runs = ([] if args.no_defaults else [("Object2VecRegressor, defaults", DEFAULTS, {}),
                                         ("defaults on words only (tokenizer without n-grams, buckets)", DEFAULTS,
                                          WORDS_ONLY)])
    runs += [(f"recipe: {n}", RECIPES[n], {}) for n in names]
    for label, params, tokenizer_params in runs:
        X = tokenize(**tokenizer_params)
        params = dict(params) if cap is None else dict(params, epochs=min(cap, params.get("epochs", 30)))
        started = time.perf_counter()
        model = Object2VecRegressor(**params).fit(X["train"], data.y_train, X_val=X["dev"], y_val=data.y_dev)
        seconds = time.perf_counter() - started
        test = correlations(model.predict(X["test"]), data.y_test)
        results[label] = {"dev_pearson": correlations(model.predict(X["dev"]), data.y_dev)[0], "pearson": test[0],
                          "spearman": test[1], "epochs": model.n_epochs_, "seconds": seconds, "params": params,
                          "tokenizer": tokenizer_params}
        print(f"  {label}: {results[label]}", flush=True)
    rows = [[k, r["dev_pearson"], r["pearson"], r["spearman"], r["epochs"], r["seconds"]] for k, r in results.items()]
    rows += [[*ref, "", ""] for ref in REFERENCES]
    table = format_table(["model", "dev Pearson", "test Pearson", "test Spearman", "epochs", "fit s"], rows)
    report("STS Benchmark (trained from scratch; early stopping on dev)", table, [
        machine_line(),
        "tokenizer: TextPairTokenizer() fitted on the training sentences (words only: "
        + ", ".join(f"{k}={v}" for k, v in WORDS_ONLY.items()) + ")",
        "defaults: Object2VecRegressor(random_state=0)" + (f", epochs <= {cap}" if cap else ""),
        *(f"recipe {n}: " + ", ".join(f"{k}={v}" for k, v in RECIPES[n].items()) for n in names),
    ])
    write_results(args.name, {"args": vars(args), "recipes": {n: RECIPES[n] for n in names}, "results": results,
                              "table": table})
    return results


if __name__ == "__main__":
    main()
