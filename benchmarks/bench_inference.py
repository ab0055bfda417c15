"""Inference: predict and transform records/s against a plain torch forward, and the
peak memory of predicting many pairs.

Speed: a fitted classifier predicts (and embeds) the same generated records that a
plain ``torch.inference_mode()`` forward of the same module sees as tensors padded
beforehand, in batches of the same size (1,024); runs alternate, best kept. Both run at
predict's default thread count (``n_threads="auto"``: one thread for pooled and bilstm
encoders, see ``docs/performance.rst``), then both at torch's own count, so that each
ratio compares like with like. Predict's time includes checking and converting the
records; the plain forward's tensors are ready.

Memory: a child process (so the parent's allocations do not blur it) loads the
saved model, builds the records, resets the kernel's peak-RSS counter, calls
``predict`` and reports the peak RSS growth. The growth should be the validated
copy of the input (8 bytes per token) plus a constant, never the padded batch
activations of all records at once.

    python benchmarks/bench_inference.py            # 100,000 pairs for speed; 1,000,000 for memory
    python benchmarks/bench_inference.py --quick    # 20,000 and 200,000
    python benchmarks/bench_inference.py --networks tuple_hcnn   # link prediction records only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    alternate,
    format_table,
    machine_line,
    padded_tensors,
    ragged_pairs,
    report,
    rss_kib,
    timed,
    write_results,
)

VOCAB, MIN_LEN, MAX_LEN = 50_000, 5, 40
#: Pinned to the network measured before the 0.2 defaults (two encoders, linear MLP, no dropout,
#: no hold-out), so that figures compare across versions.
PARAMS = dict(enc_dim=64, enc0_token_embedding_dim=64, enc0_vocab_size=VOCAB, enc0_max_seq_len=MAX_LEN,
              mlp_layers=2, mlp_dim=256, mini_batch_size=256, learning_rate=0.001, epochs=1, random_state=0,
              shared_encoder=False, mlp_activation="linear", dropout=0.0, validation_fraction=None)
NETWORKS = ("pooled_embedding", "pooled_relu", "hcnn", "bilstm", "tuple_hcnn")
#: Each row's encoder and what it changes in PARAMS. The pinned MLP is linear (SageMaker's default
#: activation), which inference folds into one affine map (``nn.model.invariant_copy``); the relu row
#: (the estimator's default activation) shows predict where the MLP's layers run one by one.
VARIANTS = {"pooled_embedding": dict(enc0_network="pooled_embedding", enc0_layers="auto"),
            "pooled_relu": dict(enc0_network="pooled_embedding", enc0_layers="auto", mlp_activation="relu"),
            "hcnn": dict(enc0_network="hcnn", enc0_layers=2),
            "bilstm": dict(enc0_network="bilstm", enc0_layers=1)}
#: tuple_hcnn: link prediction's records, ``[head, relation]`` against ``[tail]``, at the classifier's defaults
#: (a tuple of fields: hcnn as wide as the tuple), the shape a knowledge graph's ranking predicts in bulk.
ENTITIES, RELATIONS = 2_000, 40


def tuple_pairs(n: int, seed: int):
    """``n`` link-prediction records over ENTITIES entities and RELATIONS relation tokens, with a planted
    label (the tail's parity against the head's and relation's)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    heads, relations, tails = (rng.integers(0, ENTITIES, n), rng.integers(0, RELATIONS, n),
                               rng.integers(0, ENTITIES, n))
    records = [{"in0": [int(h), ENTITIES + int(r)], "in1": [int(t)]} for h, r, t in zip(heads, relations, tails)]
    return records, ((heads + relations + tails) % 2).astype(np.int64)


def records_for(network: str, n: int, seed: int):
    """``(records, y, longest)``: the row's records, their labels and the length the plain forward pads to."""
    if network == "tuple_hcnn":
        return (*tuple_pairs(n, seed), 2)
    return (*ragged_pairs(n, vocab=VOCAB, min_len=MIN_LEN, max_len=MAX_LEN, seed=seed), MAX_LEN)


def fitted(network: str, n_train: int = 2_000):
    from skobject2vec import Object2VecClassifier

    records, y, _ = records_for(network, n_train, seed=1)
    if network == "tuple_hcnn":
        return Object2VecClassifier(random_state=0, epochs=1).fit(records, y)
    return Object2VecClassifier(**dict(PARAMS, **VARIANTS[network])).fit(records, y)


def plain_forward(net, tensors, batch_size: int):
    import torch

    net.eval()
    n = len(tensors[0])
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            torch.log_softmax(net(*(t[start:start + batch_size] for t in tensors)), dim=1).numpy()


def speed(network: str, n: int, repeats: int) -> dict:
    """records/s of predict and transform (defaults: ``n_threads="auto"``), of predict with torch's own
    threads, and of the plain forward at predict's default thread count and at torch's own."""
    import torch

    from skobject2vec.inference import INFERENCE_BATCH_SIZE
    from skobject2vec.threads import resolve_threads, torch_threads

    estimator = fitted(network)
    own_threads = resolve_threads("auto", estimator.net_.config["networks"]) or torch.get_num_threads()
    records, _, longest = records_for(network, n, seed=2)
    tensors = padded_tensors(records, longest)

    def torch_own(method):
        def run():
            estimator.set_params(n_threads=None)
            try:
                return timed(method, records)
            finally:
                estimator.set_params(n_threads="auto")
        return run

    def forward_at(threads):
        def run():
            with torch_threads(threads):
                return timed(plain_forward, estimator.net_, tensors, INFERENCE_BATCH_SIZE)
        return run

    best = alternate({
        "predict": lambda: timed(estimator.predict, records),
        "transform": lambda: timed(estimator.transform, records),
        "torch forward, same threads": forward_at(own_threads),
        "predict, torch threads": torch_own(estimator.predict),
        "torch forward, torch threads": forward_at(None),
    }, repeats)
    return dict({name: n / seconds for name, seconds in best.items()}, threads=own_threads,
                torch_threads=torch.get_num_threads())


# ------------------------------------------------------------------ memory
def child_peak_growth(model_dir: str, n: int) -> None:
    """Runs in the child: print JSON {"baseline_mib", "growth_mib", "seconds"}."""
    import gc
    import time

    import skobject2vec

    estimator = skobject2vec.load(model_dir)
    records, _ = ragged_pairs(n, vocab=VOCAB, min_len=MIN_LEN, max_len=MAX_LEN, seed=3)
    estimator.predict(records[:2048])  # warm up torch's allocator and kernels
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    baseline = rss_kib("VmRSS")
    started = time.perf_counter()
    estimator.predict(records)
    seconds = time.perf_counter() - started
    print(json.dumps({"baseline_mib": baseline / 1024, "growth_mib": (rss_kib("VmHWM") - baseline) / 1024,
                      "seconds": seconds, "tokens": sum(len(r["in0"]) + len(r["in1"]) for r in records)}))


def memory(network: str, sizes) -> list[dict]:
    estimator = fitted(network)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(Path(tmp) / "model")
        estimator.save(model_dir)
        for n in sizes:
            done = subprocess.run([sys.executable, __file__, "--rss-child", model_dir, str(n)], check=True,
                                  capture_output=True, text=True)
            out.append(dict(json.loads(done.stdout.strip().splitlines()[-1]), pairs=n))
            print(f"  predict {n:,} pairs: peak RSS growth {out[-1]['growth_mib']:.0f} MiB")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000, help="records for the speed comparison")
    parser.add_argument("--memory-pairs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--quick", action="store_true", help="20,000 pairs for speed, 20,000/200,000 for memory")
    parser.add_argument("--rss-child", nargs=2, metavar=("MODEL_DIR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        return child_peak_growth(args.rss_child[0], int(args.rss_child[1]))
    if args.quick:
        args.pairs, args.memory_pairs, args.repeats = 20_000, [20_000, 200_000], 2

    rows, speeds = [], {}
    for network in args.networks:
        print(f"{network}:")
        rate = speeds[network] = speed(network, args.pairs, args.repeats)
        rows.append([network, rate["threads"], rate["predict"], rate["transform"],
                     rate["torch forward, same threads"], rate["predict"] / rate["torch forward, same threads"],
                     rate["predict, torch threads"], rate["torch forward, torch threads"],
                     rate["predict, torch threads"] / rate["torch forward, torch threads"]])
    torch_count = speeds[args.networks[0]]["torch_threads"]
    speed_table = format_table(
        ["network", "threads", "predict rec/s", "transform rec/s", "torch forward rec/s", "predict / torch",
         f"predict rec/s, {torch_count} threads", f"torch forward, {torch_count} threads", "predict / torch"],
        rows)
    print("memory (hcnn):")
    mem = memory("hcnn", args.memory_pairs)
    memory_table = format_table(
        ["pairs predicted", "tokens", "peak RSS growth MiB", "MiB per million tokens"],
        [[m["pairs"], m["tokens"], m["growth_mib"], m["growth_mib"] / m["tokens"] * 1e6] for m in mem])
    report(f"Inference speed, {args.pairs:,} pairs (best of {args.repeats}, alternating)", speed_table,
           [machine_line(), "network settings as in the training benchmark; inference batches of 1,024 records",
            "threads: predict's default (n_threads='auto'); the plain forward runs at the same count, then both at "
            "torch's own (n_threads=None)", "target: predict / torch >= 0.9 (pooled_embedding)"])
    report("Peak RSS growth while predicting (hcnn, separate process)", memory_table,
           ["target: under 1 GiB for 1,000,000 pairs"])
    write_results("inference", {"args": vars(args), "params": PARAMS, "records_per_second": speeds,
                                "memory": mem, "speed_table": speed_table, "memory_table": memory_table})


if __name__ == "__main__":
    main()
