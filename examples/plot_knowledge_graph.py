"""
Knowledge-graph relation prediction (UMLS), with learning curves
================================================================

UMLS is a small biomedical knowledge graph: 135 concepts (``in0`` and ``in1``,
one token each) linked by 46 relations such as ``causes`` or ``isa``. Given a
(head, tail) pair, the classifier predicts the relation. The graph comes from
the files the pykeen 1.11.1 wheel bundles
(:func:`skobject2vec.datasets.load_kg` fetches the wheel once with ``pip
download`` and reads it; nothing else is downloaded).

A (head, tail) pair can hold several relations, so no model reaches accuracy 1;
we also report top-3 accuracy, which suits a "suggest relations" tool.
"""

# %%
# Load the graph
# --------------
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from skobject2vec import Object2VecClassifier
from skobject2vec.datasets import load_kg

kg = load_kg("umls")
print(f"{len(kg.entities)} entities, {len(kg.relations)} relations, "
      f"{len(kg.X_train)} train / {len(kg.X_test)} test triples")
print("a triple:", kg.train[0], "->", kg.X_train[0], kg.y_train[0])

# %%
# Fit with a held-out validation fraction
# ---------------------------------------
# ``validation_fraction`` holds out 10 % of the training triples: they drive
# early stopping, and ``history_`` records the validation metrics every epoch.
clf = Object2VecClassifier(
    enc0_network="pooled_embedding", enc1_network="pooled_embedding", enc_dim=64,
    tied_token_embedding_weight=True, comparator_list="hadamard, concat, abs_diff",
    mlp_layers=1, mlp_dim=256, mlp_activation="relu", dropout=0.2,
    epochs=30, mini_batch_size=128, learning_rate=0.01,
    validation_fraction=0.1, early_stopping_patience=5, early_stopping_tolerance=0.005,
    random_state=0,
)
clf.fit(kg.X_train, kg.y_train)

proba = clf.predict_proba(kg.X_test)
top3 = np.argsort(proba, axis=1)[:, -3:]
index = np.searchsorted(clf.classes_, kg.y_test)
print(f"stopped after {clf.n_epochs_} epochs; test accuracy {clf.score(kg.X_test, kg.y_test):.3f}, "
      f"top-3 accuracy {np.mean([i in row for i, row in zip(index, top3)]):.3f}")
majority = max(np.mean(kg.y_test == r) for r in clf.classes_)
print(f"(most frequent relation alone: {majority:.3f})")

# %%
# Learning curves from ``history_``
# ---------------------------------
# The epoch marked ``best`` is the one whose weights the estimator kept.
history = clf.history_
epochs = [h["epoch"] for h in history]
best = next(h["epoch"] for h in history if h["best"])

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
left.plot(epochs, [h["train:cross_entropy"] for h in history], "o-", ms=3, label="train")
left.plot(epochs, [h["validation:cross_entropy"] for h in history], "s-", ms=3, label="validation")
left.set_ylabel("cross-entropy")
right.plot(epochs, [h["validation:accuracy"] for h in history], "s-", ms=3, color="C1")
right.set_ylabel("validation accuracy")
for ax in (left, right):
    ax.axvline(best, color="grey", ls="--", lw=1, label=f"kept epoch {best}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
left.legend()
right.legend(loc="lower right")
# The kept epoch is chosen on the validation loss: its title goes on the loss panel.
left.set_title(f"UMLS relation prediction: best epoch {best} (weights kept)")
right.set_title("validation accuracy")
fig.tight_layout()
plt.show()
