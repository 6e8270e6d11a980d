"""Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020), L-inf and L2, score-based,
following ``autoattack/square.py``.

- L-inf: init with vertical stripes ``x + eps * sign`` (one random sign per column and channel);
  each query draws a square of side ``s`` (from the ``p`` schedule) at a random position and sets it
  to ``x_best + 2 eps * sign`` (one sign per channel), projected back to the ball and the box.
- L2: init with the grid of ``eta`` blocks (side ``h // 5``) with random signs, rescaled to norm eps;
  each query moves the mass of a second random window into a new ``eta``-shaped square at the first
  window (the reference's update, norm kept at eps).
- The loss is the margin ``z_y - max_{j != y} z_j`` (or ``-CE`` with ``loss='ce'``), *minimised*; a
  candidate is accepted only if it lowers the sample's loss (or misclassifies it), so the per-sample
  loss never increases. Samples already misclassified stop changing.
- ``p`` schedule: ``p_init`` halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10000
  (iteration rescaled to ``n_queries`` when ``rescale_schedule``), precomputed as a static array of
  square sizes indexed by the iteration inside one loop (:func:`loops.while_active`), which ends
  once every sample is fooled.

Inputs are ``[B, H, W, C]`` (``[B, H, W]`` and ``[B, D]`` are treated as one channel / one row).

Deviations from the reference: square positions, per-channel signs (and the random transposition of
the L2 ``eta`` pattern) are drawn per sample instead of once per iteration for the whole batch; the
square is placed with masks built from ``iota`` comparisons so that everything vmaps. Samples
misclassified at the clean input are returned unchanged (as in the reference); samples never fooled
get their best (lowest-loss) point, the reference returns the clean input for them. Targeted Square
is not implemented.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gfa_jax import random_draws
from gfa_jax.attacks import loops
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    _expand,
    clip_to_bounds,
    cross_entropy,
    normalize_l2,
    per_sample_norm,
    project_l2,
    project_linf,
    register,
)
from gfa_jax.attacks.base import (
    margin as margin_loss,
)

P_INIT = 0.8


def p_selection(p_init: float, it: int, n_queries: int, rescale_schedule: bool = True) -> float:
    """The reference's schedule of the fraction ``p`` of pixels changed at iteration ``it``."""
    if rescale_schedule:
        it = int(it / n_queries * 10000)
    for lo, hi, div in ((10, 50, 2), (50, 200, 4), (200, 500, 8), (500, 1000, 16), (1000, 2000, 32),
                        (2000, 4000, 64), (4000, 6000, 128), (6000, 8000, 256)):
        if lo < it <= hi:
            return p_init / div
    if 8000 < it:
        return p_init / 512
    return p_init


def square_sizes(norm: str, n_queries: int, h: int, w: int, c: int, p_init: float = P_INIT,
                 rescale_schedule: bool = True) -> np.ndarray:
    """Side of the square at every iteration (static), as the reference computes it."""
    n_features = c * h * w
    sizes = []
    for i in range(n_queries):
        p = p_selection(p_init, i, n_queries, rescale_schedule)
        s = int(round(math.sqrt(p * n_features / c)))
        if norm == "linf":
            s = max(s, 1)
        else:
            s = max(s, 3)
            if s % 2 == 0:
                s += 1
        sizes.append(min(s, h, w))
    return np.asarray(sizes, dtype=np.int32)


def _eta_rectangles(x: int, y: int) -> np.ndarray:
    delta = np.zeros((x, y), np.float64)
    x_c, y_c = x // 2 + 1, y // 2 + 1
    c0, c1 = x_c - 1, y_c - 1
    for counter in range(max(x_c, y_c)):
        delta[max(c0, 0):min(c0 + (2 * counter + 1), x), max(0, c1):min(c1 + (2 * counter + 1), y)] += (
            1.0 / (counter + 1) ** 2)
        c0 -= 1
        c1 -= 1
    norm = np.sqrt((delta ** 2).sum())
    return delta / norm if norm > 0 else delta


def eta_pattern(s: int) -> np.ndarray:
    """The reference's ``eta(s)`` (without its random transposition): unit-norm ``[s, s]``."""
    delta = np.zeros((s, s), np.float64)
    delta[: s // 2] = _eta_rectangles(s // 2, s)
    delta[s // 2:] = -1.0 * _eta_rectangles(s - s // 2, s)
    return delta / np.sqrt((delta ** 2).sum())


def _eta_table(s_max: int) -> np.ndarray:
    """``table[s, :s, :s] = eta(s)``, zero-padded to ``[s_max + 1, s_max, s_max]``."""
    table = np.zeros((s_max + 1, s_max, s_max), np.float32)
    for s in range(1, s_max + 1):
        table[s, :s, :s] = eta_pattern(s)
    return table


def _window_mask(vh: Array, vw: Array, s, h: int, w: int) -> Array:
    """``[B, h, w, 1]`` bool: ``vh <= row < vh + s`` and ``vw <= col < vw + s`` per sample."""
    rows = jnp.arange(h)[None, :]
    cols = jnp.arange(w)[None, :]
    mh = (rows >= vh[:, None]) & (rows < vh[:, None] + s)
    mw = (cols >= vw[:, None]) & (cols < vw[:, None] + s)
    return (mh[:, :, None] & mw[:, None, :])[..., None]


def _random_pos(u: Array, size: int, s) -> Array:
    """The reference's ``random_int(0, size - s)`` from uniform draws ``u``: ``floor(u * (size - s))``."""
    return jnp.floor(u * (size - s)).astype(jnp.int32)


def _query_draws(key, norm: str, b: int, c: int) -> dict[str, Array]:
    """A query's random numbers for every sample, from one uniform draw: the window positions
    (``vh, vw``; L2 also the second window's ``vh2, vw2`` and the pattern's transposition ``flip``)
    and one sign per channel (``[B, 1, 1, C]``). One draw, not one per quantity: each threefry draw
    is a loop of its own in the compiled program (a key split and three draws per query made the
    paper CNN's L-inf Square 178 kernels; this way it has 146)."""
    names = ("vh", "vw") if norm == "linf" else ("vh", "vw", "vh2", "vw2", "flip")
    u = random_draws.uniform(key, (len(names) + c, b))
    draws = dict(zip(names, u))
    draws["sign"] = jnp.where(u[len(names):].T < 0.5, -1.0, 1.0).reshape(b, 1, 1, c)
    return draws


def _to_4d(x: Array) -> Array:
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 2:
        return x[:, None, :, None]
    raise ValueError(f"Square attack expects [B, H, W, C], [B, H, W] or [B, D] inputs, got {x.shape}")


def square_single_run(logits_fn: LogitsFn, x: Array, y: Array, key, *, eps, bounds: Bounds,
                      norm: str = "linf", n_queries: int = 5000, p_init: float = P_INIT, loss: str = "margin",
                      rescale_schedule: bool = True, done: Array | None = None, chunk_size: int | None = None,
                      tail_chunk_size: int | None = None):
    """One Square run on the whole batch; it ends once every sample is fooled or ``done`` (bool
    ``[B]``, samples settled by an earlier restart, left unchanged).

    Each query's candidates are drawn for the whole batch, and the model scores only those of the
    samples still active, gathered into chunks of ``chunk_size`` (:func:`loops.for_active_chunks`;
    ``None``: :func:`loops.chunk_rows`), those left over after full chunks in chunks of
    ``tail_chunk_size`` (``None``: :func:`loops.tail_chunk_rows`), as the reference queries only its
    not-yet-fooled subset.
    The random draws do not depend on the chunking, so neither does any sample's trajectory.

    Returns ``(x_best, margin_min, loss_min, margin_init, loss_init)``; ``margin = z_y - max_{j!=y} z_j``
    (``<= 0`` means misclassified), ``loss`` the minimised loss.
    """
    orig_shape = x.shape
    x4 = _to_4d(x)
    b, h, w, c = x4.shape
    eps_b = _expand(jnp.broadcast_to(jnp.asarray(eps, x.dtype), (b,)), x4)
    chunk = loops.chunk_rows(b, chunk_size)
    tail_chunk = loops.tail_chunk_rows(chunk, tail_chunk_size)

    def margin_and_loss(z4, labels):
        logits = logits_fn(z4.reshape(z4.shape[:1] + orig_shape[1:]))
        m = -margin_loss(logits, labels)
        if loss == "margin":
            return m, m
        if loss == "ce":
            return m, -cross_entropy(logits, labels)
        raise ValueError(f"Square attack loss must be 'margin' or 'ce', got {loss!r}")

    def score_active(x_new, active):
        """Margin and loss of the active samples' candidates (``inf`` for the others)."""
        if chunk >= b:  # one chunk: the whole batch, masked by the caller
            return margin_and_loss(x_new, y)

        def on_chunk(rows, valid, scores):
            return loops.scatter_rows(scores, rows, valid, margin_and_loss(x_new[rows], y[rows]))

        unscored = jnp.full((b,), jnp.inf, x.dtype)
        return loops.for_active_chunks(on_chunk, (unscored, unscored), active, chunk_size=chunk,
                                       tail_chunk_size=tail_chunk)

    k_init, k_loop = jax.random.split(key)
    if norm == "linf":
        signs = random_draws.rademacher(k_init, (b, 1, w, c), x.dtype)
        x_best = clip_to_bounds(x4 + eps_b * signs, bounds)
    elif norm == "l2":
        s0 = max(h // 5, 1)
        sp_init = (h - s0 * 5) // 2
        pattern = eta_pattern(s0)
        blocks = []
        for bi in range(h // s0):
            for bj in range(w // s0):
                vh, vw = sp_init + bi * s0, sp_init + bj * s0
                blk = np.zeros((h + s0, w + s0), np.float32)
                blk[vh:vh + s0, vw:vw + s0] = pattern
                blocks.append(blk[:h, :w])
        blocks = jnp.asarray(np.stack(blocks))  # [n_blocks, h, w]
        signs = random_draws.rademacher(k_init, (b, blocks.shape[0], c), x.dtype)
        delta_init = jnp.einsum("nhw,bnc->bhwc", blocks, signs)
        x_best = clip_to_bounds(x4 + normalize_l2(delta_init) * eps_b, bounds)
    else:
        raise ValueError(f"Square attack supports norm 'linf' or 'l2', got {norm!r}")

    margin_init, loss_init = margin_and_loss(x_best, y)
    done = jnp.zeros((b,), bool) if done is None else done
    sizes = jnp.asarray(square_sizes(norm, n_queries, h, w, c, p_init, rescale_schedule))
    table = jnp.asarray(_eta_table(min(h, w))) if norm == "l2" else None

    def body(carry):
        i, x_best, margin_min, loss_min = carry
        s = sizes[i]
        draws = _query_draws(jax.random.fold_in(k_loop, i), norm, b, c)  # a scalar hash, not n_queries keys
        sign = draws["sign"].astype(x.dtype)
        active = (margin_min > 0.0) & ~done
        vh = _random_pos(draws["vh"], h, s)
        vw = _random_pos(draws["vw"], w, s)
        mask1 = _window_mask(vh, vw, s, h, w)
        if norm == "linf":
            x_new = x_best + jnp.where(mask1, 2.0 * eps_b * sign, 0.0)
            x_new = clip_to_bounds(jnp.clip(x_new, x4 - eps_b, x4 + eps_b), bounds)
        else:
            delta_curr = x_best - x4
            vh2 = _random_pos(draws["vh2"], h, s)
            vw2 = _random_pos(draws["vw2"], w, s)
            mask2 = _window_mask(vh2, vw2, s, h, w)
            m1 = mask1.astype(x.dtype)
            mask_image = (mask1 | mask2).astype(x.dtype)
            norms_window_1 = jnp.sqrt(jnp.sum(jnp.square(delta_curr * m1), axis=(1, 2), keepdims=True))
            norms_image = _expand(per_sample_norm(delta_curr, 2), x4)
            norms_windows = _expand(per_sample_norm(delta_curr * mask_image, 2), x4)
            # eta(s) at (vh, vw), randomly transposed per sample
            lr = jnp.arange(h)[None, :] - vh[:, None]  # [B, h]
            lc = jnp.arange(w)[None, :] - vw[:, None]  # [B, w]
            s_max = table.shape[1]
            lr_i = jnp.clip(lr, 0, s_max - 1)[:, :, None]
            lc_i = jnp.clip(lc, 0, s_max - 1)[:, None, :]
            eta_s = table[s]
            flip = (draws["flip"] < 0.5)[:, None, None]
            pat = jnp.where(flip, eta_s[lc_i, lr_i], eta_s[lr_i, lc_i])[..., None]  # [B, h, w, 1]
            new = jnp.where(mask1, pat * sign + delta_curr / (1e-12 + norms_window_1), 0.0)
            new_norm = jnp.sqrt(jnp.sum(jnp.square(new), axis=(1, 2), keepdims=True))
            new = new / (1e-12 + new_norm) * jnp.sqrt(
                jnp.maximum(jnp.square(eps_b) - jnp.square(norms_image), 0.0) / c + jnp.square(norms_windows))
            delta = delta_curr * (1.0 - mask_image) + new * m1
            x_new = clip_to_bounds(x4 + normalize_l2(delta) * eps_b, bounds)

        margin_new, loss_new = score_active(x_new, active)
        improved = (loss_new < loss_min) & active
        loss_min = jnp.where(improved, loss_new, loss_min)
        improved = (improved | (margin_new <= 0.0)) & active
        margin_min = jnp.where(improved, margin_new, margin_min)
        x_best = jnp.where(_expand(improved, x4), x_new, x_best)
        return i + 1, x_best, margin_min, loss_min

    # A fooled sample (margin <= 0) is never updated again: stop once every sample is fooled.
    _, x_best, margin_min, loss_min = loops.while_active(
        body, (jnp.asarray(0), x_best, margin_init, loss_init), max_steps=n_queries,
        active=lambda carry: (carry[2] > 0.0) & ~done)
    return x_best.reshape(orig_shape), margin_min, loss_min, margin_init, loss_init


def square_attack(logits_fn: LogitsFn, x: Array, y: Array, key, *, eps, bounds: Bounds,
                  norm: str = "linf", n_queries: int = 5000, p_init: float = P_INIT, n_restarts: int = 1,
                  loss: str = "margin", rescale_schedule: bool = True, skip: Array | None = None,
                  chunk_size: int | None = None, tail_chunk_size: int | None = None) -> Array:
    """Square attack (untargeted); ``norm``, ``n_queries``, ``n_restarts``, ``loss`` are static;
    ``skip`` (bool ``[B]``): samples not to attack, returned unchanged; no query is spent on them,
    nor on samples already fooled (the model scores the others in chunks of ``chunk_size`` and
    ``tail_chunk_size``, static: see :func:`square_single_run`).

    Returns per sample the first misclassified point found (clean misclassified inputs unchanged),
    else the lowest-loss point of the restarts, always in ``bounds`` and the eps ball.
    """
    already = jnp.argmax(logits_fn(x), axis=-1) != y
    if skip is not None:
        already = already | skip

    def body(carry):
        r, x_adv, fooled, x_low, loss_low = carry
        x_best, margin_min, loss_min, _, _ = square_single_run(
            logits_fn, x, y, jax.random.fold_in(key, r), eps=eps, bounds=bounds, norm=norm,
            n_queries=n_queries, p_init=p_init, loss=loss, rescale_schedule=rescale_schedule, done=fooled,
            chunk_size=chunk_size, tail_chunk_size=tail_chunk_size)
        run_fooled = margin_min <= 0.0
        new = run_fooled & ~fooled
        x_adv = jnp.where(_expand(new, x), x_best, x_adv)
        better = loss_min < loss_low
        x_low = jnp.where(_expand(better, x), x_best, x_low)
        loss_low = jnp.where(better, loss_min, loss_low)
        return r + 1, x_adv, fooled | run_fooled, x_low, loss_low

    init = (jnp.asarray(0), x, already, x, jnp.full((x.shape[0],), jnp.inf, x.dtype))
    _, x_adv, fooled, x_low, _ = loops.while_active(body, init, max_steps=n_restarts,
                                                    active=lambda carry: ~carry[2])
    x_adv = jnp.where(_expand(fooled, x), x_adv, x_low)
    if norm == "linf":
        return project_linf(x_adv, x, eps, bounds)
    return project_l2(x_adv, x, eps, bounds)


@register("square", norm="linf", test_kwargs={"n_queries": 10})
def square(logits_fn, x, y, key, *, eps, bounds, n_queries=5000, p_init=P_INIT, n_restarts=1,
           loss="margin", rescale_schedule=True, chunk_size=None, tail_chunk_size=None):
    """Square attack in the L-inf ball (see :func:`square_attack`)."""
    return square_attack(logits_fn, x, y, key, eps=eps, bounds=bounds, norm="linf", n_queries=n_queries,
                         p_init=p_init, n_restarts=n_restarts, loss=loss, rescale_schedule=rescale_schedule,
                         chunk_size=chunk_size, tail_chunk_size=tail_chunk_size)


@register("square_l2", norm="l2", test_kwargs={"n_queries": 10})
def square_l2(logits_fn, x, y, key, *, eps, bounds, n_queries=5000, p_init=P_INIT, n_restarts=1,
              loss="margin", rescale_schedule=True, chunk_size=None, tail_chunk_size=None):
    """Square attack in the L2 ball (see :func:`square_attack`)."""
    return square_attack(logits_fn, x, y, key, eps=eps, bounds=bounds, norm="l2", n_queries=n_queries,
                         p_init=p_init, n_restarts=n_restarts, loss=loss, rescale_schedule=rescale_schedule,
                         chunk_size=chunk_size, tail_chunk_size=tail_chunk_size)
