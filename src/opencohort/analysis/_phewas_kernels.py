"""Logistic regression of many outcomes on one shared design: Newton-Raphson over phecodes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opencohort.analysis._gwas_kernels import sigmoid


@dataclass(frozen=True)
class BatchFit:
    """Fits of one design against J outcomes; the tested coefficient is the design's last column.

    ``beta`` and ``se`` are in the caller's units; ``converged`` is False when Newton did not
    settle within the iteration cap, the information was singular or the fit diverged
    (separation).
    """

    beta: np.ndarray
    se: np.ndarray
    converged: np.ndarray
    n_iterations: np.ndarray


def _scales(x: np.ndarray) -> np.ndarray:
    """Column scales that make every non-constant column unit SD (constants keep 1)."""
    sd = x.std(axis=0)
    return np.where(sd > 0, sd, 1.0)


def batched_logistic(
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    *,
    max_iter: int = 30,
    tol: float = 1e-10,
    max_abs_beta: float = 30.0,
) -> BatchFit:
    """Fit ``logit P(y_j = 1) = x b_j`` for every outcome column j, over the rows of mask_j.

    Parameters
    ----------
    x
        Design (n x p): the intercept first, the tested column last.
    y
        Outcomes (n x J), 0/1 where ``mask`` is True (other values are ignored).
    mask
        (n x J) rows used by each fit.
    max_iter, tol
        Newton iteration cap and convergence threshold on the largest coefficient step (in
        unit-SD units of the design's columns).
    max_abs_beta
        A unit-SD coefficient above this marks divergence (separation): not converged.

    Returns
    -------
    BatchFit

    Notes
    -----
    1. Columns are scaled to unit SD (the fit is invariant; results are scaled back).
    2. Each Newton step needs the information X' W_j X of every outcome: with the row-wise
       products of the design's upper triangle Z (n x p(p+1)/2), all of them come from one
       matrix product Z' W (W the n x J weights), as the gradients come from X' R. Rows
       outside an outcome's mask get a fitted probability of 0 and outcome 0, so they add
       nothing to either.
    3. During Newton the information is accumulated in single precision (its relative error,
       about 1e-7, only slows convergence slightly); the linear predictor, the probabilities
       and the gradient, which fix the solution, stay in double precision.
    4. Newton starts at the intercept-only fit (the logit of each outcome's rate).
    5. Steps are solved as a stack of p x p systems; outcomes that converged stop moving. The
       SE comes from the information at the solution, in double precision.
    """
    n, p = x.shape
    scale = _scales(x)
    xs = x / scale
    rows, cols = np.triu_indices(p)
    z = (xs[:, rows] * xs[:, cols]).astype(np.float32)
    outside = ~mask
    yy = np.where(mask, y, 0.0)
    j = y.shape[1]
    beta = np.zeros((j, p))
    rate = yy.sum(axis=0) / np.maximum(mask.sum(axis=0), 1.0)
    beta[:, 0] = np.log(np.clip(rate, 1e-6, 1 - 1e-6) / np.clip(1 - rate, 1e-6, 1.0))
    active = np.ones(j, dtype=bool)
    converged = np.zeros(j, dtype=bool)
    iterations = np.zeros(j, dtype=np.int64)
    for iteration in range(1, max_iter + 1):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        every = idx.size == j
        prob = sigmoid(xs @ beta[idx].T)
        np.copyto(prob, 0.0, where=outside if every else outside[:, idx])
        grad = (xs.T @ ((yy if every else yy[:, idx]) - prob)).T
        w = np.subtract(1.0, prob, dtype=np.float32)
        w *= prob
        upper = (z.T @ w).T
        h = np.zeros((idx.size, p, p))
        h[:, rows, cols] = upper
        h[:, cols, rows] = upper
        step, ok = _solve(h, grad)
        beta[idx] = np.where(ok[:, None], beta[idx] + step, np.nan)
        iterations[idx] = iteration
        big = np.abs(step).max(axis=1)
        done = ok & (big < tol)
        diverged = ~ok | (np.abs(beta[idx]).max(axis=1) > max_abs_beta)
        converged[idx[done & ~diverged]] = True
        active[idx[done | diverged]] = False
    fitted = np.isfinite(beta).all(axis=1)
    se = np.full(j, np.nan)
    if fitted.any():
        prob = sigmoid(xs @ beta[fitted].T)
        np.copyto(prob, 0.0, where=outside[:, fitted])
        upper = (z.astype(np.float64).T @ (prob * (1.0 - prob))).T
        h = np.zeros((int(fitted.sum()), p, p))
        h[:, rows, cols] = upper
        h[:, cols, rows] = upper
        unit = np.zeros((h.shape[0], p))
        unit[:, -1] = 1.0
        column, ok = _solve(h, unit)
        var = np.where(ok, column[:, -1], np.nan)
        se[fitted] = np.sqrt(np.where(var > 0, var, np.nan)) / scale[-1]
    return BatchFit(
        beta=beta[:, -1] / scale[-1],
        se=se,
        converged=converged & np.isfinite(se),
        n_iterations=iterations,
    )


def _solve(h: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve each h[i] s = rhs[i]; a singular system gives ok[i] = False instead of raising."""
    ok = np.ones(len(h), dtype=bool)
    out = np.zeros_like(rhs)
    try:
        out = np.linalg.solve(h, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        for i in range(len(h)):
            try:
                out[i] = np.linalg.solve(h[i], rhs[i])
            except np.linalg.LinAlgError:
                ok[i] = False
    ok &= np.isfinite(out).all(axis=1)
    return np.where(ok[:, None], out, 0.0), ok
