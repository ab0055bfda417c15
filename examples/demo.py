"""`make demo`: train on real data that ships with scikit-learn, print scores and embeddings.

Pairs of handwritten digits (sklearn.datasets.load_digits) as pixel-token
sequences; the label says whether both images show the same digit.
"""

import time

import numpy as np

from skobject2vec import Object2VecClassifier
from skobject2vec.datasets import load_digit_pairs


def main():
    X_train, y_train, X_test, y_test, images = load_digit_pairs(n_pairs=20000, random_state=0)
    print(f"digit pairs: {len(X_train)} train, {len(X_test)} test (label 1 = same digit); "
          f"mean tokens per image {np.mean([len(r['in0']) for r in X_train]):.1f}")
    # The estimator's own defaults: both sides are pixel-token sequences, so one shared encoder
    # embeds either image, early stopping holds out 10% (see docs/choosing_settings.rst).
    clf = Object2VecClassifier(random_state=0, verbose=2)
    started = time.perf_counter()
    clf.fit(X_train, y_train)
    recipes = getattr(clf, "auto_recipe_", None)  # the recipes compared on the held-out 10%, if any
    trained = sum(recipes["epochs"].values()) if recipes else clf.n_epochs_
    print(f"trained {trained} epochs in {time.perf_counter() - started:.1f} s; the model kept: {clf.n_epochs_} epochs"
          + (f" of the {recipes['chosen']!r} recipe" if recipes else ""))
    print(f"train accuracy {clf.score(X_train, y_train):.3f}   test accuracy {clf.score(X_test, y_test):.3f}   "
          f"(majority class {max(np.mean(y_test), 1 - np.mean(y_test)):.3f})")

    tokens, digits = images["test"]
    emb = clf.transform([{"in0": t} for t in tokens])  # SageMaker's embedding mode: enc0 alone
    print(f"single-image embeddings: shape {emb.shape}")
    np.set_printoptions(precision=3, suppress=True, linewidth=120)
    for digit in range(3):
        print(f"  digit {digit}: {emb[np.flatnonzero(digits == digit)[0], :8]} ...")
    # nearest neighbour in embedding space usually shows the same digit
    normed = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = normed @ normed.T
    np.fill_diagonal(sims, -np.inf)
    agree = np.mean(digits[sims.argmax(1)] == digits)
    print(f"nearest-neighbour digit agreement of embeddings: {agree:.3f} (chance 0.1)")


if __name__ == "__main__":
    main()
