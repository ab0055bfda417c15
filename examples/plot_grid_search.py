"""
Hyperparameter search: encoder, comparator and embedding size
=============================================================

Object2Vec estimators are ordinary scikit-learn estimators, so
:class:`~sklearn.model_selection.GridSearchCV` tunes them like any other. Here
the search compares two dropout rates, two comparators and two embedding sizes
around the estimator's defaults on "same digit?" pairs, with 2-fold
cross-validation, and plots the results. Every candidate learns: the defaults
are a good starting point, and the search refines them.
"""

# %%
# The search
# ----------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV

from skobject2vec import Object2VecClassifier
from skobject2vec.datasets import load_digit_pairs

X, y, X_test, y_test, _ = load_digit_pairs(n_pairs=1000, random_state=1)

base = Object2VecClassifier(epochs=10, random_state=0)  # defaults otherwise (one shared pooled encoder)
grid = {
    "dropout": [0.0, 0.3],
    "comparator_list": ["hadamard", "hadamard, concat, abs_diff"],
    "enc_dim": [16, 64],
}
search = GridSearchCV(base, grid, cv=2, scoring="accuracy")
search.fit(X, y)
print("best:", search.best_params_, f"cv accuracy {search.best_score_:.3f}")
print(f"test accuracy of the refitted best model: {search.score(X_test, y_test):.3f}")

# %%
# All candidates
# --------------
results = pd.DataFrame(search.cv_results_)
columns = ["param_dropout", "param_comparator_list", "param_enc_dim", "mean_test_score",
           "std_test_score", "mean_fit_time"]
print(results[columns].sort_values("mean_test_score", ascending=False).to_string(index=False))

# %%
# Results plot
# ------------
# One group of bars per dropout rate and comparator; one bar per embedding size.
# Error bars are the standard deviation across folds.
groups = results.groupby(["param_dropout", "param_comparator_list"], sort=True)
labels, width = [], 0.38
fig, ax = plt.subplots(figsize=(8, 4))
for g, ((dropout, comparator), frame) in enumerate(groups):
    labels.append(f"dropout={dropout}\n{comparator}")
    for b, (_, row) in enumerate(frame.sort_values("param_enc_dim").iterrows()):
        ax.bar(g + (b - 0.5) * width, row["mean_test_score"], width, yerr=row["std_test_score"],
               color=f"C{b}", capsize=3, label=f"enc_dim={row['param_enc_dim']}" if g == 0 else None)
ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
ax.set_ylabel("cross-validated accuracy")
ax.set_ylim(0.4, 1.0)
ax.axhline(0.5, color="grey", lw=1, ls=":", label="chance (balanced classes)")
ax.legend(loc="upper left")
ax.set_title("GridSearchCV over dropout, comparator and enc_dim")
fig.tight_layout()
plt.show()
