"""Optimizer steps for row-sparse token tables that cost what the batch touched.

torch's Adagrad and SparseAdam handle a sparse gradient with sparse tensors throughout:
they build sparse tensors, mask their state with ``sparse_mask`` and add sparse updates.
Adagrad's costs about 0.4 ms of Python and dispatch per table per step whatever the batch
size (a tenth of a default MovieLens step). SparseAdam's step over MovieLens's 9,066-item
table took half of a plain torch training step at batch 256 (0.95 of 1.8 ms, one thread);
over 256 random rows of a 9,066 x 128 table it takes 0.50 ms, :class:`RowSparseAdam`'s
0.34-0.38 ms. :class:`RowSparseAdagrad` and :class:`RowSparseAdam` compute the same
updates (RowSparseAdam's to the bit) on the touched rows as dense row blocks, with
``index_select`` and ``index_add_``, or (rows that lazy weight decay hands to Adagrad's step)
numpy's row assignment (:func:`put_rows`); their square roots skip torch's slow CPU root of
zeros (:func:`sqrt_plus`), with the same floats.

Every optimizer a fit builds is :class:`EagerSteps`' (``Adam``, ``Adagrad``, ... here: torch's
classes without the guards that import ``torch._dynamo``), so that no fit pays that import.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "EagerSteps", "RMSprop", "RowSparseAdagrad", "RowSparseAdam",
           "put_rows", "same_rows", "sqrt_plus"]


@functools.lru_cache(maxsize=64)
def _unguarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` without the wrappers around it (``functools.wraps``' ``__wrapped__`` chain)."""
    return inspect.unwrap(method)


class EagerSteps(torch.optim.Optimizer):
    """Placed before a torch optimizer class: its methods without the guards that import ``torch._dynamo``.

    torch wraps ``Optimizer.add_param_group`` (called by every constructor), ``state_dict``,
    ``load_state_dict``, ``zero_grad`` and each optimizer's ``step`` in guards for ``torch.compile``
    that import ``torch._dynamo`` on their first call: 1.2-1.4 s (two cores) in every process's first
    fit, ten times a small fit's own time, paid by each CLI run, SageMaker job, notebook and
    GridSearchCV worker. A fit is never compiled, so these classes call the functions inside the
    guards, and ``step`` with gradients off as its guard turns them off (``differentiable`` is never
    set). The updates, state and ``state_dict`` are the torch class's own. When a torch version's
    methods hold no ``__wrapped__`` function, its own methods run, guards and all.
    """

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _unguarded(torch.optim.Optimizer.add_param_group)(self, param_group)

    def state_dict(self) -> dict[str, Any]:
        return _unguarded(torch.optim.Optimizer.state_dict)(self)  # type: ignore[no-any-return]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _unguarded(torch.optim.Optimizer.load_state_dict)(self, state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _unguarded(torch.optim.Optimizer.zero_grad)(self, set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        # the next class's step after EagerSteps in the method order: the torch optimizer's
        return _unguarded(super().step.__func__)(self, closure)  # type: ignore[attr-defined]


class Adam(EagerSteps, torch.optim.Adam):
    """:class:`torch.optim.Adam` without the ``torch._dynamo`` import (:class:`EagerSteps`)."""


class Adagrad(EagerSteps, torch.optim.Adagrad):
    """:class:`torch.optim.Adagrad` without the ``torch._dynamo`` import (:class:`EagerSteps`)."""


class Adadelta(EagerSteps, torch.optim.Adadelta):
    """:class:`torch.optim.Adadelta` without the ``torch._dynamo`` import (:class:`EagerSteps`)."""


class SGD(EagerSteps, torch.optim.SGD):
    """:class:`torch.optim.SGD` without the ``torch._dynamo`` import (:class:`EagerSteps`)."""


class RMSprop(EagerSteps, torch.optim.RMSprop):
    """:class:`torch.optim.RMSprop` without the ``torch._dynamo`` import (:class:`EagerSteps`)."""


class RowSparseAdagrad(EagerSteps, torch.optim.Adagrad):
    """:class:`torch.optim.Adagrad` whose step on a sparse gradient works on its rows directly.

    The update is Adagrad's, row by row: for the rows ``r`` the (coalesced) gradient holds,
    ``sum[r] += g ** 2`` and ``param[r] -= clr * g / (sqrt(sum[r]) + eps)``, with
    ``clr = lr / (1 + (step - 1) * lr_decay)``; other rows are not read or written. The state
    (``sum``, ``step``) and ``state_dict`` are torch's. A dense gradient, ``maximize`` or a
    weight decay (which torch refuses for sparse gradients; :func:`skobject2vec.training.decay_touched_rows`
    applies it to the touched rows instead) take torch's own step.

    Lazy weight decay reads a step's rows and their squared sums before its forward pass
    (:func:`skobject2vec.training.catch_up_rows`); :meth:`hold_rows` keeps both for the step,
    which updates them and writes each back once (:func:`put_rows`): the same floats as torch's
    scatter-adds and gathers over the tables, at half the cost (1.0 ms a step less at
    150,000 ids, batch 1,024, two tables).
    """

    def hold_rows(self, param: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, sums: torch.Tensor) -> None:
        """Hold ``param``'s ``rows`` for the next step: ``values``, the rows as the table holds them,
        and ``sums``, their squared sums as they now are (the table's are stale until the step writes
        them back). Rows held before are written back first."""
        self.release_rows(param)
        self._held()[id(param)] = (param, rows, values, sums)

    def release_rows(self, param: torch.Tensor | None = None) -> None:
        """Write back the squared sums :meth:`hold_rows` holds (of ``param``, or of every parameter)."""
        held = self._held()
        for key in [id(param)] if param is not None else list(held):
            if key in held:
                p, rows, _, sums = held.pop(key)
                put_rows(self.state[p]["sum"], rows, sums)

    def _held(self) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        # not optimizer state: rows in flight between a catch-up and its step (none in a state_dict or pickle)
        if not hasattr(self, "_held_rows"):
            self._held_rows: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        return self._held_rows

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        rows_only = all(not group["maximize"] and not group["weight_decay"] and not group.get("differentiable")
                        for group in self.param_groups)
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if closure is not None or not rows_only or not all(g.is_sparse for g in grads):
            self.release_rows()
            return super().step(closure)
        held = self._held()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    self.release_rows(param)
                    continue
                state = self.state[param]
                state["step"] += 1
                clr = group["lr"] / (1 + (float(state["step"]) - 1) * group["lr_decay"])
                grad = param.grad.coalesce()  # the update is not linear in the gradient: one value per row
                rows, values = grad.indices()[0], grad.values()
                sums = state["sum"]
                if id(param) in held and same_rows(held[id(param)][1], rows):
                    _, _, current, sums_held = held.pop(id(param))
                    std = sqrt_plus(sums_held.add_(values.square()), group["eps"])
                    put_rows(sums, rows, sums_held)
                    # index_add_ with alpha adds alpha * source to the rows just so: the same floats
                    put_rows(param, rows, current.add_(values.div(std), alpha=-clr))
                    continue
                self.release_rows(param)
                sums.index_add_(0, rows, values.square())
                std = sqrt_plus(sums.index_select(0, rows), group["eps"])
                param.index_add_(0, rows, values.div(std), alpha=-clr)
        return None

    def state_dict(self) -> dict[str, Any]:
        self.release_rows()  # the tables' sums up to date first
        return super().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._held().clear()  # rows held from before would overwrite the loaded sums at the next step
        super().load_state_dict(state_dict)


def same_rows(held: torch.Tensor, rows: torch.Tensor) -> bool:
    """Whether a step's gradient holds exactly the rows held for it (compared on CPU only, where
    comparing them costs no device synchronisation)."""
    return held is rows or (held.shape == rows.shape and bool(torch.equal(held, rows)))


def put_rows(table: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``table[rows] = values`` for distinct ``rows``, in place.

    On CPU through numpy, whose row assignment takes half of ``index_copy_``'s time (120 against
    230 us for 1,000 rows of a 150,000 x 128 table); the table's version counter moves as an
    in-place torch operation's would.
    """
    if (table.device.type == "cpu" and values.dtype == table.dtype and table.is_contiguous()
            and values.is_contiguous() and not table.is_sparse):
        table.detach().numpy()[rows.numpy()] = values.numpy()
        torch.autograd.graph.increment_version(table)
    else:
        table.index_copy_(0, rows, values)


class RowSparseAdam(EagerSteps, torch.optim.SparseAdam):
    """:class:`torch.optim.SparseAdam` whose step works on the gradient's rows directly.

    The update is SparseAdam's, in the same floating-point operations: for the rows ``r`` the
    (coalesced) gradient holds, the moments move towards ``g`` and ``g ** 2`` by ``1 - beta``,
    and ``param[r] -= step_size * m / (sqrt(v) + eps)`` with Adam's bias corrections of the
    table's step count; other rows are not read or written. The state (``step``, ``exp_avg``,
    ``exp_avg_sq``) and ``state_dict`` are torch's. A closure takes torch's own step.
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is not None:
            return super().step(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead")
                state = self.state[param]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                grad = param.grad if not group["maximize"] else -param.grad
                grad = grad.coalesce()  # the update is not linear in the gradient: one value per row
                rows, values = grad.indices()[0], grad.values()
                if values.numel() == 0:
                    continue
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                # torch's order: old += (1 - b) * (new - old), then the new moments as update + old
                old_avg = exp_avg.index_select(0, rows)
                avg_update = values.sub(old_avg).mul_(1 - beta1)
                exp_avg.index_add_(0, rows, avg_update)
                old_sq = exp_avg_sq.index_select(0, rows)
                sq_update = values.pow(2).sub_(old_sq).mul_(1 - beta2)
                exp_avg_sq.index_add_(0, rows, sq_update)
                numer = avg_update.add_(old_avg)
                denom = sqrt_plus(sq_update.add_(old_sq), group["eps"])
                step = state["step"]
                step_size = _scalar(group["lr"]) * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
                param.index_add_(0, rows, numer.div_(denom).mul_(-step_size))
        return None


def sqrt_plus(values: torch.Tensor, eps: float) -> torch.Tensor:
    """``values.sqrt() + eps`` (a new tensor), the same floats, without torch's slow square root of zeros.

    On CPU torch's float square root (MKL's) takes 7 times as long for a zero as for a positive
    number: 1.7 against 0.25 ms for 1,300 x 384 floats, one thread. An Adam step over sentence
    tokens read through max pooling has mostly zero second moments (each token row is the max in
    few dimensions): 0.9 s of an STS-B fit's 10.7 s went to that square root. The values are first
    raised to the smallest normal float: the square root of anything below it is under half a unit
    in the last place of ``eps``, so adding ``eps`` gives ``eps`` either way (checked for the dtype
    and ``eps``; otherwise, or off the CPU, torch's own order).
    """
    if values.device.type == "cpu" and _absorbs_tiny_roots(values.dtype, float(eps)):
        return values.clamp_min(torch.finfo(values.dtype).tiny).sqrt_().add_(eps)
    return values.sqrt().add_(eps)


@functools.lru_cache(maxsize=64)
def _absorbs_tiny_roots(dtype: torch.dtype, eps: float) -> bool:
    """Whether ``sqrt(tiny) + eps == 0 + eps`` in ``dtype`` (tiny: its smallest normal number), as
    ``add_`` rounds it; then so does the root of every smaller non-negative number."""
    root = torch.full((), torch.finfo(dtype).tiny, dtype=dtype).sqrt_()
    return bool(root.add_(eps) == torch.zeros((), dtype=dtype).add_(eps))


def _scalar(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)
