"""Numeric kernels of the GWAS scan: residualised linear tests, vectorised IRLS and Firth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr, stdtr

DEGENERATE = 1e-10
"""Residual genotype variance (relative to raw) below which a variant counts as constant."""


def orthonormal_basis(covariates: np.ndarray) -> np.ndarray:
    """Orthonormal basis (n x K) of the covariate columns, failing on collinear columns."""
    q, r = np.linalg.qr(covariates)
    diag = np.abs(np.diag(r))
    if diag.size and diag.min() <= 1e-8 * max(diag.max(), 1.0):
        raise np.linalg.LinAlgError("covariates are collinear")
    return q


def _padded(rows: np.ndarray) -> np.ndarray:
    """``rows`` (n x L) with a zero row appended: the target of :func:`missing_index` padding."""
    return np.vstack([rows, np.zeros((1, rows.shape[1]))])


def clean_block(raw: np.ndarray, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """A dosage block (variants x n) as ``dtype`` with missing calls set to 0, and their mask.

    A call is missing when it is NaN or negative (pgenlib's -9).
    """
    g = raw.astype(dtype)
    missing = ~(g >= 0)
    np.copyto(g, 0, where=missing)
    return g, missing


def missing_index(missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices of each variant's missing calls, padded with n, and their counts.

    Returns a (variants x m) index array, m the largest count, whose padding points one past
    the last sample (the zero row of :func:`_padded` tables), so that gathering a padded table
    with it and summing over the middle axis adds up exactly the missing samples' rows.
    """
    n_var, n = missing.shape
    rows, cols = np.divmod(np.flatnonzero(missing), n)
    counts = np.bincount(rows, minlength=n_var)
    index = np.full((n_var, int(counts.max()) if counts.size else 0), n, dtype=np.intp)
    starts = np.cumsum(counts) - counts
    index[rows, np.arange(rows.size) - starts[rows]] = cols
    return index, counts


@dataclass(frozen=True)
class LinearModel:
    """Per-sample-set quantities of the linear scan that depend only on covariates and traits.

    Attributes
    ----------
    q
        Orthonormal covariate basis (n x K), intercept included.
    y
        Phenotypes (n x P), no missing values.
    qy
        Q'Y (K x P).
    basis
        [Q | Y - Q Q'Y] (n x (K+P)): one product with a genotype block gives G'Q and G'Y_r.
    yy, yyr
        Per-phenotype raw and residual sums of squares.
    qy_rows
        [Q | Y] with a zero row appended ((n+1) x (K+P)): gathered at each variant's missing
        samples to drop them from the covariate fit.
    """

    q: np.ndarray
    y: np.ndarray
    qy: np.ndarray
    basis: np.ndarray
    yy: np.ndarray
    yyr: np.ndarray
    qy_rows: np.ndarray

    @classmethod
    def fit(cls, covariates: np.ndarray, y: np.ndarray) -> LinearModel:
        """Project the phenotypes on the covariates once."""
        q = orthonormal_basis(covariates)
        qy = q.T @ y
        yr = y - q @ qy
        return cls(
            q=q,
            y=y,
            qy=qy,
            basis=np.hstack([q, yr]),
            yy=np.einsum("ij,ij->j", y, y),
            yyr=np.einsum("ij,ij->j", yr, yr),
            qy_rows=_padded(np.hstack([q, y])),
        )


def linear_block(model: LinearModel, genotypes: np.ndarray) -> dict[str, np.ndarray]:
    """Linear-regression statistics of every variant in a block against every phenotype.

    Samples whose genotype is missing are dropped for that variant (as plink2 --glm does): the
    covariate cross-products are downdated by those samples' rows (gathered, so the cost grows
    with the number of missing calls, not samples), so the fit is exact; variants without
    missing calls use the plain residualised formulas.

    Parameters
    ----------
    model
        The covariate and phenotype projection from :meth:`LinearModel.fit`.
    genotypes
        Dosages (variants x n), NaN or negative where missing.

    Returns
    -------
    dict of numpy.ndarray
        ``beta``, ``se``, ``stat``, ``p`` (variants x P) and ``n_obs`` (variants).
    """
    k = model.q.shape[1]
    g, missing = clean_block(genotypes)
    index, n_missing = missing_index(missing)
    prod = g @ model.basis
    gq, gyr = prod[:, :k], prod[:, k:]
    gg = np.einsum("ij,ij->i", g, g)
    grr = gg - np.einsum("ij,ij->i", gq, gq)
    yyr = np.broadcast_to(model.yyr, gyr.shape).copy()
    rows = np.flatnonzero(n_missing)
    if rows.size:
        gathered = model.qy_rows[index[rows]]
        down = np.matmul(gathered[:, :, :k].transpose(0, 2, 1), gathered)
        gram = np.eye(k) - down[:, :, :k]
        a_y = model.qy[None] - down[:, :, k:]
        yy_obs = model.yy[None] - np.einsum("rmp,rmp->rp", gathered[:, :, k:], gathered[:, :, k:])
        gy_obs = gyr[rows] + gq[rows] @ model.qy
        rhs = np.concatenate([gq[rows, :, None], a_y], axis=2)
        sol = np.linalg.solve(gram, rhs)
        grr[rows] = gg[rows] - np.einsum("vk,vk->v", gq[rows], sol[:, :, 0])
        gyr[rows] = gy_obs - np.einsum("vk,vkp->vp", gq[rows], sol[:, :, 1:])
        yyr[rows] = yy_obs - np.einsum("vkp,vkp->vp", a_y, sol[:, :, 1:])
    n_obs = model.y.shape[0] - n_missing
    df = (n_obs - k - 1).astype(np.float64)[:, None]
    valid = (grr > DEGENERATE * np.maximum(gg, 1.0))[:, None] & (df > 0)
    safe_grr = np.where(valid, grr[:, None], 1.0)
    beta = gyr / safe_grr
    rss = np.maximum(yyr - gyr * beta, 0.0)
    se = np.sqrt(rss / np.where(df > 0, df, 1.0) / safe_grr)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = beta / se
    p = 2.0 * stdtr(np.where(df > 0, df, 1.0), -np.abs(stat))
    nan = np.nan
    return {
        "beta": np.where(valid, beta, nan),
        "se": np.where(valid, se, nan),
        "stat": np.where(valid, stat, nan),
        "p": np.where(valid, p, nan),
        "n_obs": n_obs,
    }


def fit_null_logistic(
    x: np.ndarray, y: np.ndarray, *, max_iter: int = 50, tol: float = 1e-10
) -> np.ndarray:
    """Coefficients of the covariates-only logistic model, by Newton-Raphson."""
    beta = np.zeros(x.shape[1])
    for _ in range(max_iter):
        p = expit(x @ beta)
        w = p * (1 - p)
        step = np.linalg.solve(x.T @ (x * w[:, None]), x.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    return beta


@dataclass(frozen=True)
class LogisticModel:
    """Per-trait quantities of the logistic scan that depend only on covariates and the trait.

    Attributes
    ----------
    q
        Covariate design (n x K), intercept included; a scaled orthonormal basis is best.
    y
        0/1 outcome (n).
    null_beta
        Covariates-only coefficients, where every variant's fit starts.
    null_h, null_score
        Covariate information and score at the null fit.
    null_proj
        [Q w0 | y - p0] (n x (K+1)): one product with a genotype block gives each variant's
        cross-information and score at the null fit.
    null_w
        Null-fit weights p0 (1 - p0).
    null_proj32, null_w32
        float32 copies of ``null_proj`` and ``null_w``: the null system only sets the first
        Newton step, so single precision does not change the converged fit.
    null_rows
        [Q sqrt(w0) | (y - p0) / sqrt(w0)] with a zero row appended, gathered at a variant's
        missing samples to drop them from its null-fit system.
    q32, q32_t, qq32, y32
        float32 copies for the Newton iterations; ``qq32`` holds the upper-triangle products.
    y_logit
        +inf for cases, -inf for controls (float32): the logit that makes a sample's fitted
        probability equal its outcome, so it adds nothing to the score or the information.
    """

    q: np.ndarray
    y: np.ndarray
    null_beta: np.ndarray
    null_h: np.ndarray
    null_score: np.ndarray
    null_proj: np.ndarray
    null_w: np.ndarray
    null_rows: np.ndarray
    null_proj32: np.ndarray
    null_w32: np.ndarray
    q32: np.ndarray
    q32_t: np.ndarray
    qq32: np.ndarray
    y32: np.ndarray
    y_logit: np.ndarray

    @classmethod
    def fit(cls, q: np.ndarray, y: np.ndarray) -> LogisticModel:
        """Fit the covariates-only model once and precompute what every block reuses."""
        null_beta = fit_null_logistic(q, y)
        p = sigmoid(q @ null_beta)
        w, resid = p * (1 - p), y - p
        rows, cols = np.triu_indices(q.shape[1])
        q32 = q.astype(np.float32)
        return cls(
            q=q,
            y=y,
            null_beta=null_beta,
            null_h=q.T @ (q * w[:, None]),
            null_score=resid @ q,
            null_proj=np.column_stack([q * w[:, None], resid]),
            null_w=w,
            null_proj32=np.column_stack([q * w[:, None], resid]).astype(np.float32),
            null_w32=w.astype(np.float32),
            null_rows=_padded(np.column_stack([q * np.sqrt(w)[:, None], resid / np.sqrt(w)])),
            q32=q32,
            q32_t=np.ascontiguousarray(q32.T),
            qq32=q32[:, rows] * q32[:, cols],
            y32=y.astype(np.float32),
            y_logit=np.where(y > 0.5, np.inf, -np.inf).astype(np.float32),
        )


@dataclass(frozen=True)
class LogisticResult:
    """Per-variant logistic fits of one block: log-odds, SE, Wald z, p and fit diagnostics.

    ``constant`` marks variants with no genotype variation among observed samples (not fitted).
    """

    beta: np.ndarray
    se: np.ndarray
    z: np.ndarray
    p: np.ndarray
    n_obs: np.ndarray
    converged: np.ndarray
    n_iterations: np.ndarray
    firth: np.ndarray
    constant: np.ndarray


def logistic_block(
    model: LogisticModel,
    genotypes: np.ndarray,
    *,
    firth: str = "fallback",
    max_iter: int = 25,
    tol: float = 1e-6,
) -> LogisticResult:
    """Logistic regression of ``y`` on covariates plus each variant, vectorised over variants.

    Newton-Raphson (IRLS) runs on all unconverged variants of the block at once, starting from
    the null-model coefficients with a zero genotype effect. A variant converges when every
    coefficient changes by less than ``tol``; one that reaches ``max_iter`` iterations, or whose
    information matrix turns singular or non-finite (separation), has not converged. With
    ``firth="fallback"`` (plink2's default ``firth-fallback``), those variants are refitted with
    Firth's penalised likelihood; ``"always"`` fits every variant with Firth, ``"never"``
    reports NaN for unconverged variants. Samples with a missing genotype are left out.

    The first Newton step is taken from the null fit, where every variant shares the same
    fitted probabilities, so it costs a few matrix products. Later steps evaluate the
    per-sample terms in float32 (as plink2 does), which halves the memory traffic that bounds
    this loop, while the score and the Newton solve accumulate in float64; coefficients agree
    with statsmodels to about 1e-6 of their SE, and SEs to about 1e-7 relative.

    Parameters
    ----------
    model
        The trait's null fit from :meth:`LogisticModel.fit`.
    genotypes
        Dosages (variants x n), NaN or negative where missing.
    firth, max_iter, tol
        Fallback mode and Newton settings.

    Returns
    -------
    LogisticResult
    """
    q, y, null_beta = model.q, model.y, model.null_beta
    n_var, k = genotypes.shape[0], q.shape[1]
    g, missing = clean_block(genotypes, np.float32)
    index, n_missing = missing_index(missing)
    has_missing = bool(n_missing.any())
    coef = np.zeros((n_var, k + 1))
    coef[:, :k] = null_beta
    info = np.zeros((n_var, k + 1, k + 1))
    converged = np.zeros(n_var, dtype=bool)
    iterations = np.zeros(n_var, dtype=np.int64)
    tri_rows, tri_cols = np.triu_indices(k)
    n_obs = g.shape[1] - n_missing
    constant = g.sum(axis=1, dtype=np.float64) == n_obs * g.max(axis=1, initial=0.0)
    active = np.flatnonzero(~constant) if firth != "always" else np.arange(0)
    for iteration in range(max_iter):
        if active.size == 0:
            break
        everything = active.size == n_var
        ga = g if everything else g[active]
        if iteration == 0:
            h, score = _null_system(model, ga, index[active], n_missing[active])
        else:
            ca = coef[active].astype(np.float32)
            eta = ca[:, :k] @ model.q32_t
            eta += ca[:, k:] * ga
            if has_missing:
                np.copyto(eta, model.y_logit, where=missing if everything else missing[active])
            p = sigmoid(eta)
            resid = model.y32 - p
            w = np.subtract(1.0, p, dtype=np.float32)
            w *= p
            wg = w * ga
            h = np.empty((active.size, k + 1, k + 1))
            tri = (w @ model.qq32).astype(np.float64)
            h[:, tri_rows, tri_cols] = tri
            h[:, tri_cols, tri_rows] = tri
            h[:, :k, k] = h[:, k, :k] = wg @ model.q32
            h[:, k, k] = np.einsum("ij,ij->i", wg, ga, dtype=np.float64)
            score = np.empty((active.size, k + 1))
            score[:, :k] = resid.astype(np.float64) @ q
            score[:, k] = np.einsum("ij,ij->i", resid, ga, dtype=np.float64)
        step, ok = _batched_solve(h, score)
        ok &= np.all(np.isfinite(step), axis=1)
        info[active] = h
        iterations[active] += 1
        coef[active[ok]] += step[ok]
        done = ok & (np.max(np.abs(step), axis=1) < tol)
        converged[active[done]] = True
        active = active[ok & ~done]
    se = np.full(n_var, np.nan)
    good = np.flatnonzero(converged)
    if good.size:
        inv_ok = np.linalg.det(info[good]) > 0
        inv = np.linalg.inv(np.where(inv_ok[:, None, None], info[good], np.eye(k + 1)))
        se[good] = np.where(inv_ok, np.sqrt(np.abs(inv[:, k, k])), np.nan)
        converged[good[~inv_ok]] = False
    beta = np.where(converged, coef[:, k], np.nan)
    used_firth = np.zeros(n_var, dtype=bool)
    if firth != "never":
        for i in np.flatnonzero(~converged & ~constant):
            keep = ~missing[i]
            x = np.column_stack([q[keep], g[i, keep]])
            fit = firth_logistic(x, y[keep], start=np.append(null_beta, 0.0))
            used_firth[i] = True
            converged[i], iterations[i] = fit[2], fit[3]
            beta[i], se[i] = (fit[0], fit[1]) if fit[2] else (np.nan, np.nan)
    z = beta / se
    return LogisticResult(
        beta=beta,
        se=se,
        z=z,
        p=2.0 * ndtr(-np.abs(z)),
        n_obs=n_obs,
        converged=converged,
        n_iterations=iterations,
        firth=used_firth,
        constant=constant,
    )


def _null_system(
    model: LogisticModel, g: np.ndarray, index: np.ndarray, n_missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Information and score of every variant at the null fit (genotype effect zero).

    There the fitted probabilities are the same for all variants, so the system comes from
    products of the genotype block with fixed vectors, minus the rows of samples with a
    missing call (gathered by :func:`missing_index`), instead of a full per-variant pass.
    """
    k = model.q.shape[1]
    prod = (g @ model.null_proj32).astype(np.float64)
    h = np.empty((g.shape[0], k + 1, k + 1))
    h[:, :k, :k] = model.null_h
    score = np.empty((g.shape[0], k + 1))
    score[:, :k] = model.null_score
    rows = np.flatnonzero(n_missing)
    if rows.size:
        gathered = model.null_rows[index[rows]]
        down = np.matmul(gathered[:, :, :k].transpose(0, 2, 1), gathered)
        h[rows, :k, :k] -= down[:, :, :k]
        score[rows, :k] -= down[:, :, k]
    h[:, :k, k] = h[:, k, :k] = prod[:, :k]
    h[:, k, k] = np.square(g) @ model.null_w32
    score[:, k] = prod[:, k]
    return h, score


def sigmoid(eta: np.ndarray) -> np.ndarray:
    """Logistic function, in place on ``eta`` (numpy's SIMD exp is faster than scipy's expit)."""
    with np.errstate(over="ignore"):
        np.negative(eta, out=eta)
        np.exp(eta, out=eta)
    eta += 1.0
    return np.reciprocal(eta, out=eta)


def _batched_solve(h: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve each h[i] x = rhs[i]; a singular system gives ok[i] = False instead of raising."""
    try:
        return np.linalg.solve(h, rhs[:, :, None])[:, :, 0], np.ones(len(h), dtype=bool)
    except np.linalg.LinAlgError:
        out = np.zeros_like(rhs)
        ok = np.ones(len(h), dtype=bool)
        for i in range(len(h)):
            try:
                out[i] = np.linalg.solve(h[i], rhs[i])
            except np.linalg.LinAlgError:
                ok[i] = False
        return out, ok


def firth_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    start: np.ndarray,
    max_iter: int = 50,
    tol: float = 1e-7,
    max_step: float = 5.0,
    max_halvings: int = 25,
) -> tuple[float, float, bool, int]:
    """Firth-penalised logistic fit of y on x; the last column is the tested one.

    Newton steps on the penalised score U* = X'(y - p + h(1/2 - p)) (h the hat-matrix diagonal),
    capped at ``max_step`` and halved until the penalised log-likelihood
    l + log|X'WX|/2 does not drop. The SE comes from the inverse of X'WX at the solution,
    giving a Wald test as plink2 reports it.

    Returns
    -------
    tuple
        (coefficient, SE, converged, iterations) for the last column.
    """
    beta = start.astype(np.float64).copy()

    def penalised(b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        eta = x @ b
        p = expit(eta)
        xtwx = x.T @ (x * (p * (1 - p))[:, None])
        sign, logdet = np.linalg.slogdet(xtwx)
        value = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
        return (value + 0.5 * logdet if sign > 0 else -np.inf), p, xtwx

    current, p, xtwx = penalised(beta)
    for iteration in range(1, max_iter + 1):
        try:
            inv = np.linalg.inv(xtwx)
        except np.linalg.LinAlgError:
            return np.nan, np.nan, False, iteration
        w = p * (1 - p)
        hat = w * np.einsum("ij,jk,ik->i", x, inv, x)
        step = inv @ (x.T @ (y - p + hat * (0.5 - p)))
        biggest = np.max(np.abs(step))
        if biggest > max_step:
            step *= max_step / biggest
        for _ in range(max_halvings):
            value, p_new, xtwx_new = penalised(beta + step)
            if value >= current - 1e-12:
                break
            step /= 2
        beta = beta + step
        current, p, xtwx = value, p_new, xtwx_new
        if np.max(np.abs(step)) < tol:
            try:
                se = float(np.sqrt(np.linalg.inv(xtwx)[-1, -1]))
            except np.linalg.LinAlgError:
                return np.nan, np.nan, False, iteration
            return float(beta[-1]), se, True, iteration
    return np.nan, np.nan, False, max_iter
