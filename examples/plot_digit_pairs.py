"""
Same digit? Pairs of handwritten digits, then a map of the embeddings
=====================================================================

Each 8x8 image of scikit-learn's digits becomes a sequence of *pixel tokens*
(one token per inked pixel, encoding its position and intensity, see
:func:`skobject2vec.datasets.digit_tokens`). A pair of images is labelled 1 when
both show the same digit. The classifier never sees which digit an image shows,
only whether two images agree, yet its encoder learns an embedding in which
images of the same digit sit together: the 2-D map at the end shows it.
"""

# %%
# Data: pairs of images, half of them the same digit
# --------------------------------------------------
# Training and test pairs are built from disjoint sets of images.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.manifold import TSNE

from skobject2vec import Object2VecClassifier
from skobject2vec.datasets import load_digit_pairs

X_train, y_train, X_test, y_test, images = load_digit_pairs(n_pairs=5000, random_state=0)
print(f"{len(X_train)} training pairs, {len(X_test)} test pairs")
print("one record:", {k: v[:8] + ["..."] for k, v in X_train[0].items()}, "label", y_train[0])

# %%
# A "same digit?" classifier
# --------------------------
# Both sides are the same kind of object, so one token table serves both
# (``tied_token_embedding_weight``) and the comparator looks at the element-wise
# product and the absolute difference of the two embeddings.
clf = Object2VecClassifier(
    enc0_network="pooled_embedding", enc_dim=64, tied_token_embedding_weight=True,
    comparator_list="hadamard, abs_diff", mlp_layers=1, mlp_dim=128, mlp_activation="relu",
    epochs=12, mini_batch_size=128, learning_rate=0.005, validation_fraction=0.1, random_state=0,
)
clf.fit(X_train, y_train)
print(f"test accuracy {clf.score(X_test, y_test):.3f} after {clf.n_epochs_} epochs "
      f"(majority class {max(y_test.mean(), 1 - y_test.mean()):.3f})")

# %%
# Learning curves from ``history_``
# ---------------------------------
# One dict per epoch, with SageMaker's metric names.
epochs = [h["epoch"] for h in clf.history_]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(epochs, [h["train:cross_entropy"] for h in clf.history_], "o-", label="train cross-entropy")
ax.plot(epochs, [h["validation:cross_entropy"] for h in clf.history_], "s-", label="validation cross-entropy")
# ``best_epoch_``: the epoch whose weights the estimator kept (lowest validation loss).
ax.axvline(clf.best_epoch_, color="grey", ls="--", lw=1, label=f"kept epoch {clf.best_epoch_}")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy")
ax.legend()
ax.set_title("Same-digit classifier")
fig.tight_layout()

# %%
# A 2-D map of single-image embeddings
# ------------------------------------
# ``transform`` on records holding only ``in0`` returns enc0's embedding of each
# test image (SageMaker's embedding mode). t-SNE squeezes the 64 dimensions into
# two; colours are the digits, which the model was never told.
tokens, digits = images["test"]
embeddings = clf.transform([{"in0": t} for t in tokens])
print("embeddings:", embeddings.shape)
xy = TSNE(n_components=2, init="pca", perplexity=30, random_state=0).fit_transform(embeddings)

fig, ax = plt.subplots(figsize=(6.5, 5.5))
scatter = ax.scatter(xy[:, 0], xy[:, 1], c=digits, cmap="tab10", s=12)
for digit in range(10):
    cx, cy = np.median(xy[digits == digit], axis=0)
    ax.text(cx, cy, str(digit), fontsize=16, weight="bold", ha="center", va="center",
            bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.7))
ax.set_xticks([])
ax.set_yticks([])
ax.set_title("t-SNE of enc0 embeddings of test images, coloured by digit")
fig.tight_layout()
plt.show()
