"""The Object2Vec architecture diagram of the concepts page (drawn at build time)."""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

fig, ax = plt.subplots(figsize=(10, 3.6))
ax.set_xlim(0, 100)
ax.set_ylim(0, 40)
ax.axis("off")

COLORS = {"input": "#e8eef7", "encoder": "#cfe3cf", "join": "#f6e3c4", "head": "#f3d0d0"}


def box(x, y, w, h, text, kind):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.4,rounding_size=1.2",
                                fc=COLORS[kind], ec="#444444", lw=1.0))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)


def arrow(x0, y0, x1, y1, label=None):
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=11, lw=1.0,
                                 color="#333333"))
    if label:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 1.4, label, ha="center", va="bottom", fontsize=8, style="italic")


for row, (y, side) in enumerate(((27, 0), (7, 1))):
    box(1, y, 12, 7, f"in{side}\ntoken ids", "input")
    box(18, y, 13, 7, f"token table {side}\n+ unknown row", "input")
    box(36, y, 15, 7, f"enc{side}\nhcnn | bilstm |\npooled_embedding", "encoder")
    arrow(13.6, y + 3.5, 17.4, y + 3.5)
    arrow(31.6, y + 3.5, 35.4, y + 3.5)
box(58, 15.5, 13, 9, "comparator\nhadamard, concat,\nabs_diff", "join")
arrow(51.6, 30.5, 57.6, 22.5, "e0")
arrow(51.6, 10.5, 57.6, 17.5, "e1")
box(75, 15.5, 10, 9, "MLP\nmlp_layers x\nmlp_dim", "head")
arrow(71.6, 20, 74.6, 20)
box(89, 15.5, 10, 9, "softmax\nor linear\noutput", "head")
arrow(85.6, 20, 88.6, 20)
ax.add_patch(FancyBboxPatch((0, 4.5), 53, 33.5, boxstyle="round,pad=0.2", fc="none", ec="#2a6f97", lw=1.2,
                            ls="--"))
ax.text(26.5, 38.6, "embedding mode: transform on one side returns e0 (or e1)", ha="center", fontsize=8.5,
        color="#2a6f97")
ax.text(78.5, 28.5, "pair mode: predict / predict_proba", ha="center", fontsize=8.5, color="#9c2a2a")
ax.text(26.5, 1.0, "tied_token_embedding_weight=True shares the token table, never the encoders",
        ha="center", fontsize=8, color="#555555")
fig.tight_layout()
