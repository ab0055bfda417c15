"""Data-parallel training under torchrun (2 gloo processes on 127.0.0.1), dask search, table export."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from support import FAST

from skobject2vec import Object2VecClassifier, load
from skobject2vec.data.jsonlines import write_records
from skobject2vec.datasets import make_topic_pairs
from skobject2vec.io import export_token_tables
from skobject2vec.parallel import TorchThreads, fit_stream, rank_batch_size

pytestmark = pytest.mark.slow  # subprocesses, servers or many fits: `make test-fast` skips it

TIMEOUT = 240  # seconds for one torchrun job: 2 processes importing torch on 2 busy cores

#: The same small model everywhere; ``mini_batch_size`` is the global batch.
SMALL = dict(enc_dim=16, enc0_network="pooled_embedding", mlp_dim=32, mlp_layers=1, dropout=0.0, random_state=0,
             device="cpu")  # no dropout: each rank draws its own masks


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(args, cwd):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


GRADIENT_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import torch.distributed as dist
    from skobject2vec import Object2VecClassifier
    from skobject2vec.parallel import fit_stream

    path, out, params = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    dist.init_process_group("gloo")
    for storage in ("dense", "row_sparse"):
        model = fit_stream(Object2VecClassifier(**params, token_embedding_storage_type=storage), path)
        state = {k: v.numpy() for k, v in model.net_.state_dict().items()}
        np.savez(f"{out}/{storage}-rank{dist.get_rank()}.npz", **state)
    dist.destroy_process_group()
""")


def test_gradients_are_averaged_across_ranks(tmp_path):
    """One SGD step with mini_batch_size=64 on 2 ranks (32 records each) equals one step on one process."""
    X, y = make_topic_pairs(64, seed=2)
    write_records(X, tmp_path / "batch.jsonl", labels=y.tolist())
    params = dict(SMALL, epochs=1, optimizer="sgd", learning_rate=0.5)
    (tmp_path / "step.py").write_text(GRADIENT_SCRIPT)
    _torchrun(["step.py", "batch.jsonl", str(tmp_path), repr(dict(params, mini_batch_size=64))], cwd=tmp_path)
    for storage in ("dense", "row_sparse"):
        ranks = [np.load(tmp_path / f"{storage}-rank{r}.npz") for r in (0, 1)]
        single = fit_stream(Object2VecClassifier(**params, mini_batch_size=64, token_embedding_storage_type=storage),
                            tmp_path / "batch.jsonl")
        for name, value in single.net_.state_dict().items():
            np.testing.assert_array_equal(ranks[0][name], ranks[1][name])  # the ranks stay in sync
            np.testing.assert_allclose(ranks[0][name], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
        # the step is large enough to tell averaging from summing or from no synchronisation
        unchanged = Object2VecClassifier(**dict(params, learning_rate=1e-6), mini_batch_size=64).fit(
            tmp_path / "batch.jsonl").net_.output.weight.detach().numpy()
        assert np.abs(ranks[0]["output.weight"] - unchanged).max() > 1e-3


def test_lazy_row_decay_trains_data_parallel(tmp_path):
    """Sparse rows with weight decay (decayed lazily, through the network inside the DDP wrapper)."""
    X, y = make_topic_pairs(128, seed=3)
    write_records(X, tmp_path / "train.jsonl", labels=y.tolist())
    script = GRADIENT_SCRIPT.replace('("dense", "row_sparse")', '("row_sparse",)')
    (tmp_path / "step.py").write_text(script)
    params = dict(SMALL, epochs=2, optimizer="adagrad", learning_rate=0.1, weight_decay=0.01, mini_batch_size=64)
    _torchrun(["step.py", "train.jsonl", str(tmp_path), repr(params)], cwd=tmp_path)
    ranks = [np.load(tmp_path / f"row_sparse-rank{r}.npz") for r in (0, 1)]
    for name in ranks[0].files:
        # the ranks stay in sync: each decays the rows the other's batch touched as it decays its own
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name])
        assert np.isfinite(ranks[0][name]).all()


def test_torchrun_cli_matches_one_process_and_writes_one_artifact(tmp_path, topic_files):
    hp = dict(SMALL, epochs=4, mini_batch_size=64, learning_rate=0.01)  # the global batch: 32 per rank
    del hp["random_state"], hp["device"]
    (tmp_path / "hp.json").write_text(json.dumps(hp))
    train, val, (X, y) = topic_files
    done = _torchrun(["-m", "skobject2vec", "train", "--train", str(train), "--validation", str(val),
                      "--hyperparameters", "hp.json", "--model-dir", "model", "--random-state", "0",
                      "--device", "cpu", "--quiet"], cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hp.json", "model"]  # one artifact, no leftovers
    assert done.stdout.count("epoch=1, validation cross_entropy") == 1  # only rank 0 prints metrics
    two = json.loads((tmp_path / "model" / "config.json").read_text())["fitted"]["history"]
    # one process with the same hyperparameters
    one_process = fit_stream(Object2VecClassifier(**dict(SMALL, epochs=4, mini_batch_size=64, learning_rate=0.01)),
                             train, X_val=val)
    one = one_process.history_
    # the same hyperparameter file trains the same model: same steps per epoch, same held-out accuracy
    assert len(two) == len(one)
    loaded = load(tmp_path / "model")
    # the fitted state of a torchrun fit survives the artifact: every rank's records counted once
    assert loaded.n_records_ == one_process.n_records_ == sum(1 for _ in open(train))
    assert loaded.classes_.tolist() == one_process.classes_.tolist() and len(loaded.history_) == len(one)
    accuracies = [loaded.score(X[2000:], y[2000:]), one_process.score(X[2000:], y[2000:])]
    assert accuracies[0] > 0.95 and abs(accuracies[0] - accuracies[1]) < 0.02, accuracies
    losses = [[h["validation:cross_entropy"] for h in history] for history in (two, one)]
    print("validation cross-entropy, 2 ranks vs 1 process:", losses)
    # stated tolerance: the best validation cross-entropy within 0.01 nats (both runs learn the rule)
    assert min(losses[0]) < 0.05
    assert abs(min(losses[0]) - min(losses[1])) < 0.01


def test_global_batch_is_split_across_ranks():
    for batch, world in [(64, 2), (65, 2), (32, 3), (7, 7)]:
        shares = [rank_batch_size(batch, rank, world) for rank in range(world)]
        assert sum(shares) == batch and max(shares) - min(shares) <= 1
    with pytest.raises(ValueError, match="mini_batch_size=2 is the global batch.*at least the number of ranks"):
        rank_batch_size(2, 0, 4)


def test_grid_search_on_dask_local_cluster():
    distributed = pytest.importorskip("dask.distributed")
    from skobject2vec.parallel import dask_search

    X, y = make_topic_pairs(300, seed=3)
    grid = {"learning_rate": [0.003, 0.03]}
    estimator = Object2VecClassifier(**dict(FAST, enc0_network="pooled_embedding", epochs=3))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        search = dask_search(GridSearchCV(estimator, grid, cv=2), X, y, client=client)
        threads = client.run(torch.get_num_threads)
    assert list(threads.values()) == [1, 1]
    local = GridSearchCV(estimator, grid, cv=2).fit(X, y)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
    assert search.best_params_ == local.best_params_


def test_torch_threads_plugin_sets_threads():
    before = torch.get_num_threads()
    try:
        TorchThreads(2).setup()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_import_leaves_dask_out_and_the_plugin_is_a_dask_worker_plugin():
    # the plugin's base class is dask's (register_plugin refuses duck-typed plugins), built on first use so
    # that `import skobject2vec` does not import distributed (0.4 s); dask pickles the plugin to its workers
    pytest.importorskip("distributed")
    code = ("import sys, pickle, skobject2vec, skobject2vec.parallel as p; print('distributed' in sys.modules); "
            "from distributed.diagnostics.plugin import WorkerPlugin; "
            "print(isinstance(pickle.loads(pickle.dumps(p.TorchThreads(3))), WorkerPlugin))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=TIMEOUT)
    assert done.stdout.split() == ["False", "True"]


def test_export_token_tables_partitions(tmp_path):
    X, y = make_topic_pairs(200, seed=4)
    model = Object2VecClassifier(**dict(FAST, epochs=1), shared_encoder=False).fit(X, y)
    written = export_token_tables(model, tmp_path / "npy", n_partitions=3)
    assert len(written) == 2 * 2 * 3
    for side in (0, 1):
        table = model.net_.token_table(side).weight.detach().numpy()
        ids = np.concatenate([np.load(tmp_path / "npy" / f"enc{side}.part{k}.ids.npy") for k in range(3)])
        vectors = np.concatenate([np.load(tmp_path / "npy" / f"enc{side}.part{k}.vectors.npy") for k in range(3)])
        np.testing.assert_array_equal(np.sort(ids), np.arange(len(table)))
        np.testing.assert_allclose(vectors, table[ids])
    model.save(tmp_path / "model")
    (tsv,) = export_token_tables(tmp_path / "model", tmp_path / "tsv", fmt="tsv")[:1]
    rows = np.loadtxt(tsv, delimiter="\t")
    np.testing.assert_allclose(rows[:, 1:], model.net_.token_table(0).weight.detach().numpy(), rtol=1e-6)
