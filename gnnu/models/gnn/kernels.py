"""Compiled CPU kernels for the GNN operators (numba; numpy arrays in and out).

On the CPU, torch runs a neighbourhood reduction as a gather that materialises one row per edge
([E, C] with E = k·N) and then reduces it: at k = 16 and C = 256 that is ~400 MB written and
read per EdgeConv block of a batch of 8 DUNE-like events, and it was most of a training step's
time (BENCHMARKS.md, "GNN training on the CPU"). These kernels read each neighbour's row where it
lies and write only the [N, C] result, in parallel over nodes (``prange``, numba's threads):

- :func:`edge_max_forward` / :func:`edge_max_backward`: EdgeConv's ``u_i + max_j v_j`` over a
  padded neighbour table, with the arg-max source per channel; the backward gathers, per source,
  the gradients of the targets whose maximum it gave (through :func:`reverse_table`: no write
  conflicts, and it vectorises, unlike a scatter).
- :func:`segment_pool_forward` / :func:`segment_pool_backward`: global sum, mean and max pooling
  over a sorted batch in one pass each way.
- :func:`channel_moments`, :func:`scale_add_relu`, :func:`relu_grad_moments` and
  :func:`bn_relu_backward`: a residual block's closing BatchNorms, sum and ReLU in two passes each
  way (statistics, then one pass writing), instead of the ten or so of separate torch operations.
- :func:`gravnet_forward` / :func:`gravnet_backward`: GravNet's distance-weighted mean and max
  over a neighbour table, and their gradients (per target, then per source through
  :func:`reverse_table`: again no write conflicts).

The kNN of the dynamic layers is compiled too, in :mod:`gnnu.graph.bruteforce`.

Kernels only see float32/float64 and int arrays; callers (:mod:`gnnu.models.gnn.ops`) fall back to
torch for other dtypes and for tensors on a GPU.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..._jit import jit

@jit(parallel=True, fastmath=False, boundscheck=False)
def edge_max_forward(uv, index, out, arg):
    """EdgeConv's aggregation on uv [N, 2C] = [u | v]: ``out[i] = u[i] + max_s v[index[i, s]]``
    (channel-wise; 0 for a row without a valid slot), ``arg`` the arg-max source per channel as in
    :func:`gather_max_forward`. index [N, K] int64, out [N, C], arg [N, C] int32."""
    n, k = index.shape
    c = out.shape[1]
    for i in prange(n):
        o = out[i]
        a = arg[i]
        for ch in range(c):
            o[ch] = -np.inf
            a[ch] = n
        found = False
        for s in range(k):
            j = index[i, s]
            if j >= n:
                continue
            found = True
            row = uv[j, c:]
            jj = np.int32(j)
            for ch in range(c):
                x = row[ch]
                better = x > o[ch]
                o[ch] = x if better else o[ch]
                a[ch] = jj if better else a[ch]
        ui = uv[i, :c]
        if found:
            for ch in range(c):
                o[ch] += ui[ch]
        else:
            for ch in range(c):
                o[ch] = 0.0


@jit(parallel=True, boundscheck=False)
def edge_max_backward(grad, arg, ptr, target, guv):
    """Gradient of :func:`edge_max_forward` with respect to uv, into guv [N, 2C] (overwritten):
    ``grad`` [N, C] to the u half of rows with edges; to the v half of source j, the sum of
    ``grad[i, c]`` over the targets i of its edges (``ptr``, ``target`` from
    :func:`reverse_table`) whose channel c took its maximum from j. Parallel over sources: each
    thread writes its own rows, and the reads of neighbouring targets vectorise."""
    n, c = grad.shape
    for j in prange(n):
        has = arg[j, 0] < n
        for ch in range(c):
            guv[j, ch] = grad[j, ch] if has else 0.0
            guv[j, c + ch] = 0.0
        jj = np.int32(j)
        for e in range(ptr[j], ptr[j + 1]):
            i = target[e]
            if e > ptr[j] and i == target[e - 1]:     # a repeated edge: its target counts once
                continue
            for ch in range(c):
                guv[j, c + ch] += grad[i, ch] if arg[i, ch] == jj else 0.0


@jit(parallel=True, boundscheck=False)
def segment_pool_forward(h, ptr, total, mean, mx, arg):
    """Per run ``ptr[b]:ptr[b+1]`` of rows of h [N, C] (a graph of a sorted batch), in one pass:
    the channel-wise sum, mean and maximum into total, mean, mx [B, C], and the maximum's row
    (the first at ties) into arg [B, C] int32; an empty run gives zeros and ``arg = N``."""
    nb = len(ptr) - 1
    n, c = h.shape
    for b in prange(nb):
        s, e = ptr[b], ptr[b + 1]
        for ch in range(c):
            total[b, ch] = 0.0
            mx[b, ch] = -np.inf if e > s else 0.0
            arg[b, ch] = n
        for r in range(s, e):
            row = h[r]
            rr = np.int32(r)
            for ch in range(c):
                x = row[ch]
                total[b, ch] += x
                better = x > mx[b, ch]
                mx[b, ch] = x if better else mx[b, ch]
                arg[b, ch] = rr if better else arg[b, ch]
        inv = 1.0 / max(e - s, 1)
        for ch in range(c):
            mean[b, ch] = total[b, ch] * inv


@jit(parallel=True, boundscheck=False)
def segment_pool_backward(ptr, gsum, gmean, gmx, arg, gh):
    """Gradient of :func:`segment_pool_forward` with respect to h, into gh [N, C] (overwritten):
    each row of run b gets ``gsum[b] + gmean[b] / n_b``, and the arg-max row of each channel
    ``gmx[b]`` too; runs are independent (parallel over runs, no write conflicts)."""
    nb = len(ptr) - 1
    c = gh.shape[1]
    for b in prange(nb):
        s, e = ptr[b], ptr[b + 1]
        inv = 1.0 / max(e - s, 1)
        for r in range(s, e):
            for ch in range(c):
                gh[r, ch] = gsum[b, ch] + gmean[b, ch] * inv
        for ch in range(c):
            a = arg[b, ch]
            if a < e:
                gh[a, ch] += gmx[b, ch]


@jit(parallel=True, fastmath=False, boundscheck=False)
def gravnet_forward(s, f, index, scale, mean, mx, arg, w, inv_count):
    """GravNet's aggregation over a padded neighbour table (see :mod:`gnnu.models.gnn.gravnet`):
    ``w[i, t] = exp(−scale · Σ_c (s[j, c] − s[i, c])²)`` for the neighbour ``j = index[i, t]``,
    ``mean[i] = Σ_t w[i, t] f[j] / n_i`` and ``mx[i] = max_t w[i, t] f[j]`` (channel-wise; the
    slot giving it in ``arg``), where n_i counts the valid slots (``index < N``); a node without
    any gets zeros and ``inv_count = 0``. s [N, S], f [N, F], index [N, K] int64; outputs mean,
    mx [N, F], arg [N, F] int32, w [N, K], inv_count [N] (s's dtype)."""
    n, k = index.shape
    dim = s.shape[1]
    c = f.shape[1]
    for i in prange(n):
        me = mean[i]
        mi = mx[i]
        ai = arg[i]
        for ch in range(c):
            me[ch] = 0.0
            mi[ch] = -np.inf
            ai[ch] = -1
        cnt = 0
        for t in range(k):
            j = index[i, t]
            if j >= n:
                w[i, t] = 0.0
                continue
            d2 = scale * 0.0   # s's dtype (the caller passes scale in it)
            for cc in range(dim):
                diff = s[j, cc] - s[i, cc]
                d2 += diff * diff
            wij = np.exp(-scale * d2)
            w[i, t] = wij
            cnt += 1
            fj = f[j]
            tt = np.int32(t)
            for ch in range(c):
                m = fj[ch] * wij
                me[ch] += m
                better = m > mi[ch]
                mi[ch] = m if better else mi[ch]
                ai[ch] = tt if better else ai[ch]
        if cnt:
            inv = 1.0 / cnt
            inv_count[i] = inv
            for ch in range(c):
                me[ch] *= inv
        else:
            inv_count[i] = 0.0
            for ch in range(c):
                mi[ch] = 0.0


@jit(boundscheck=False)
def reverse_table(index, n):
    """The edges of a padded neighbour table grouped by source: (ptr [n + 1], target [E],
    slot [E]) with source j's edges at ``ptr[j]:ptr[j + 1]`` (targets ascending)."""
    rows, k = index.shape
    ptr = np.zeros(n + 1, np.int64)
    for i in range(rows):
        for t in range(k):
            j = index[i, t]
            if j < n:
                ptr[j + 1] += 1
    for j in range(n):
        ptr[j + 1] += ptr[j]
    fill = ptr[:-1].copy()
    target = np.empty(ptr[n], np.int64)
    slot = np.empty(ptr[n], np.int32)
    for i in range(rows):
        for t in range(k):
            j = index[i, t]
            if j < n:
                target[fill[j]] = i
                slot[fill[j]] = t
                fill[j] += 1
    return ptr, target, slot


@jit(parallel=True, fastmath=False, boundscheck=False)
def gravnet_backward(s, f, index, scale, w, inv_count, arg, gmean, gmx, ptr, target, slot,
                     coef, ds, df):
    """Gradients of :func:`gravnet_forward` with respect to s and f (into ds [N, S] and df [N, F],
    overwritten) from those of mean and mx (gmean, gmx [N, F]). Two passes without write
    conflicts: per target i (its share of ds, and ``coef[i, t]`` = ∂loss/∂d²), then per source j
    over its edges (``ptr``, ``target``, ``slot`` from :func:`reverse_table`: df and its share
    of ds)."""
    n, k = index.shape
    dim = s.shape[1]
    c = f.shape[1]
    for i in prange(n):
        for cc in range(dim):
            ds[i, cc] = 0.0
        for t in range(k):
            j = index[i, t]
            if j >= n:
                coef[i, t] = 0.0
                continue
            dw = scale * 0.0   # s's dtype (the caller passes scale in it)
            for ch in range(c):
                g = gmean[i, ch] * inv_count[i]
                if arg[i, ch] == t:
                    g += gmx[i, ch]
                dw += g * f[j, ch]
            cf = dw * (-scale) * w[i, t]
            coef[i, t] = cf
            for cc in range(dim):
                ds[i, cc] -= 2.0 * cf * (s[j, cc] - s[i, cc])
    for j in prange(n):
        for ch in range(c):
            df[j, ch] = 0.0
        for e in range(ptr[j], ptr[j + 1]):
            i = target[e]
            t = slot[e]
            wij = w[i, t]
            for ch in range(c):
                g = gmean[i, ch] * inv_count[i]
                if arg[i, ch] == t:
                    g += gmx[i, ch]
                df[j, ch] += wij * g
            cf = coef[i, t]
            for cc in range(dim):
                ds[j, cc] += 2.0 * cf * (s[j, cc] - s[i, cc])


#: Row chunks of the per-channel reductions: a fixed number (not the thread count), so sums are
#: taken in the same order whatever the machine, and results do not depend on the threads.
CHUNKS = 16


@jit(parallel=True, boundscheck=False)
def channel_moments(x, out):
    """Per channel of x [N, C]: Σx and Σx² into out [2, C] (float64), in :data:`CHUNKS` row
    chunks added in a fixed order."""
    n, c = x.shape
    part = np.zeros((CHUNKS, 2, c))
    for k in prange(CHUNKS):
        for r in range(k * n // CHUNKS, (k + 1) * n // CHUNKS):
            for ch in range(c):
                v = np.float64(x[r, ch])
                part[k, 0, ch] += v
                part[k, 1, ch] += v * v
    for ch in range(c):
        out[0, ch] = 0.0
        out[1, ch] = 0.0
    for k in range(CHUNKS):
        for ch in range(c):
            out[0, ch] += part[k, 0, ch]
            out[1, ch] += part[k, 1, ch]


@jit(parallel=True, fastmath=False, boundscheck=False)
def scale_add_relu(a, sa, ta, b, sb, tb, y):
    """y = max(0, a·sa + ta + b·sb + tb) per channel (the affine maps of two BatchNorms, then the
    residual sum and ReLU, in one pass). a, b, y [N, C]; sa, ta, sb, tb [C]."""
    n, c = a.shape
    for r in prange(n):
        for ch in range(c):
            v = a[r, ch] * sa[ch] + ta[ch] + (b[r, ch] * sb[ch] + tb[ch])
            y[r, ch] = v if v > 0.0 else 0.0


@jit(parallel=True, boundscheck=False)
def relu_grad_moments(gy, y, a, b, out):
    """With g = gy · [y > 0]: per channel Σg, Σg·a and Σg·b into out [3, C] (float64), chunked as
    :func:`channel_moments`."""
    n, c = gy.shape
    part = np.zeros((CHUNKS, 3, c))
    for k in prange(CHUNKS):
        for r in range(k * n // CHUNKS, (k + 1) * n // CHUNKS):
            for ch in range(c):
                g = np.float64(gy[r, ch]) if y[r, ch] > 0.0 else 0.0
                part[k, 0, ch] += g
                part[k, 1, ch] += g * a[r, ch]
                part[k, 2, ch] += g * b[r, ch]
    for q in range(3):
        for ch in range(c):
            out[q, ch] = 0.0
    for k in range(CHUNKS):
        for q in range(3):
            for ch in range(c):
                out[q, ch] += part[k, q, ch]


@jit(parallel=True, fastmath=False, boundscheck=False)
def bn_relu_backward(gy, y, a, ka, ca, b, kb, cb, da, db):
    """Input gradients of y = relu(BN_a(a) + BN_b(b)): with g = gy · [y > 0],
    ``da = ka·g + ca1·a + ca0`` and ``db = kb·g + cb1·b + cb0`` per channel, the training-mode
    BatchNorm backward written as one affine map of (g, x) per channel (the caller folds the means
    and the Σg·x̂ terms into ka, ca = [ca0, ca1]; eval mode and the identity shortcut are the
    special cases ca = 0). gy, y, a, b, da, db [N, C]; ka, kb [C]; ca, cb [2, C]."""
    n, c = gy.shape
    for r in prange(n):
        for ch in range(c):
            g = gy[r, ch] if y[r, ch] > 0.0 else 0.0
            da[r, ch] = ka[ch] * g + ca[1, ch] * a[r, ch] + ca[0, ch]
            db[r, ch] = kb[ch] * g + cb[1, ch] * b[r, ch] + cb[0, ch]
