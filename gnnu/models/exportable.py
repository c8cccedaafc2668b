r"""Export forms of gnnu's models: the same weights and arithmetic as the trained model, written
so that TorchScript (``torch.jit.script``) and the ONNX exporter (``torch.onnx.export``) can
capture them for any number of nodes, edges and events per batch.

:func:`exportable` wraps a trained model (eval mode; it shares the model's parameters, nothing is
copied) into an ``nn.Module`` that takes the *raw* inputs a C++ caller can build and returns every
head's scores as a tuple in :attr:`ExportForm.outputs` order: softmax probabilities [B, C] per
classification task, the regression values [B] in physical units (``nu_energy`` in GeV — the
inverse of :func:`gnnu.models.heads.encode_target`).

GNNs (:class:`GraphExport`), inputs (see ``inputs``; only those the model reads):

- ``x`` [N, F] float32: the node features as ``gnnu-build`` computes them (cm, ADC·tick or PE, …),
  *not* standardised: the training-split mean and std are buffers of the form, and the first
  operation is (x − mean) / std, exactly as :class:`gnnu.graph.dataset.GraphDataset` does it;
- ``pos`` [N, D] float32 cm (dynamic EdgeConv with ``first_knn: pos``);
- ``edge_index`` [2, E] int64, row 0 source j, row 1 target i, node indices of the batch (EdgeConv
  on stored edges; the graph config's edge rule, in the metadata, makes them);
- ``batch`` [N] int64: each node's event, 0 … B − 1, sorted, every event with at least one node.

The graph-dependent operations of the training code are replaced by forms without
data-dependent Python numbers (which tracing would freeze and ONNX cannot hold):

- *max over incoming edges* (EdgeConv): a scatter max into a −∞-filled [N, C] tensor, masked
  where a node has no edge (the trained model gathers through a padded neighbour table whose
  width is the largest in-degree of the batch; the maximum is the same number);
- *kNN* (dynamic EdgeConv, GravNet): a dense [N, N] float64 distance matrix with +∞ between events
  (and on the diagonal unless ``include_self``), sorted stably per row — ties go to the lower
  index, the rule of :func:`gnnu.graph.knn.knn` — and its first min(k, N) columns kept as an
  [N, k] neighbour table with a validity mask (+∞ entries: an event with fewer than k other
  nodes). Distances are summed coordinate by coordinate for up to :data:`DIRECT_DIMS` coordinates
  (bit for bit the trained model's float64 distances) and as ‖a‖² + ‖b‖² − 2 a·b above (equal up
  to rounding at 1e-16, which only changes an exact near-tie). Memory grows as N²: feed events
  one at a time or a few per call (a 3 000-hit event needs 72 MB);
- *per-event pooling and GravNet's global exchange*: the number of events B is
  ``batch[-1] + 1``, computed inside the graph; segment sums, means and maxima are scatters into
  [B, C] tensors.

CNNs (:class:`ImageExport`): input ``image`` [B, V, H, W] uint8, the pixel maps rendered with the
checkpoint's preset (metadata); the form divides by 255 like :func:`gnnu.models.cnn.common.pixels`
and runs the trained network unchanged.

Every form is tested against the trained model's own forward (``tests/test_export.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import GnnuError
from .gnn.dynedgeconv import DynEdgeConvEncoder
from .gnn.edgeconv import EdgeConvBlock, EdgeConvEncoder
from .gnn.gravnet import GravNetEncoder
from .heads import is_log_target

#: kNN distances are summed coordinate by coordinate up to this many coordinates.
DIRECT_DIMS = 8


class ExportError(GnnuError):
    """A model (or one of its parts) cannot be exported; the message names the part."""


# -- graph operations in export form ---------------------------------------------------------
def num_graphs(batch: Tensor) -> Tensor:
    """B = batch[-1] + 1 as a 0-d int64 tensor (``batch`` sorted, non-empty)."""
    return batch[-1] + 1


def segment_sum(src: Tensor, index: Tensor, b: Tensor) -> Tensor:
    """Σ of rows of ``src`` [M, C] per segment → [b, C]."""
    out = torch.zeros([int(b), src.size(1)], dtype=src.dtype, device=src.device)
    return out.index_add(0, index, src)


def segment_count(index: Tensor, b: Tensor, dtype: torch.dtype) -> Tensor:
    """Rows per segment → [b, 1] (at least 1, so means of empty segments are 0)."""
    ones = torch.ones([index.size(0), 1], dtype=torch.float32, device=index.device)
    count = torch.zeros([int(b), 1], dtype=torch.float32, device=index.device).index_add(0, index, ones)
    return count.clamp(min=1.0)


def segment_mean(src: Tensor, index: Tensor, b: Tensor) -> Tensor:
    """Mean of rows of ``src`` [M, C] per segment → [b, C] (0 for empty segments)."""
    return (segment_sum(src, index, b) / segment_count(index, b, src.dtype)).to(src.dtype)


def segment_max(src: Tensor, index: Tensor, b: Tensor) -> Tensor:
    """Channel-wise maximum of rows of ``src`` [M, C] per segment → [b, C] (0 if empty)."""
    out = torch.full([int(b), src.size(1)], -math.inf, dtype=src.dtype, device=src.device)
    idx = index.unsqueeze(1).expand(src.size(0), src.size(1))
    out = out.scatter_reduce(0, idx, src, reduce="amax", include_self=True)
    return torch.where(torch.isinf(out) & (out < 0), torch.zeros_like(out), out)


def edge_max(v: Tensor, src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor]:
    """Per target i the channel-wise max of v[j] over edges j → i: ([N, C], has_edges [N, 1])."""
    n, c = v.size(0), v.size(1)
    out = torch.full([n, c], -math.inf, dtype=v.dtype, device=v.device)
    idx = dst.unsqueeze(1).expand(dst.size(0), c)
    out = out.scatter_reduce(0, idx, v.index_select(0, src), reduce="amax", include_self=True)
    has = torch.zeros([n, 1], dtype=torch.float32, device=v.device).index_add(
        0, dst, torch.ones([dst.size(0), 1], dtype=torch.float32, device=v.device)) > 0
    return out, has


def knn_table(points: Tensor, batch: Tensor, k: int, include_self: bool) -> tuple[Tensor, Tensor]:
    """Each point's k nearest points of its own event (module docstring): (neighbour index
    [N, K] int64, valid [N, K] bool), K = min(k, N); rows in ascending (distance, index)."""
    p = points.detach().to(torch.float64)
    n = p.size(0)
    if p.size(1) <= 8:                      # DIRECT_DIMS (TorchScript reads no globals)
        d = torch.zeros([n, n], dtype=torch.float64, device=p.device)
        for c in range(p.size(1)):
            col = p[:, c]
            diff = col.unsqueeze(1) - col.unsqueeze(0)
            d = d + diff * diff
    else:
        sq = (p * p).sum(1)
        d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (p @ p.t())).clamp(min=0.0)
    other = batch.unsqueeze(1) != batch.unsqueeze(0)
    if not include_self:
        other = other | torch.eye(n, dtype=torch.bool, device=p.device)
    d = torch.where(other, torch.full_like(d, math.inf), d)
    kk = min(k, n)
    use_topk = False
    if not torch.jit.is_scripting():
        use_topk = torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()
    if use_topk:        # ONNX TopK orders equal values by index, lower first (its specification)
        vals, cols = torch.topk(d, kk, dim=1, largest=False, sorted=True)
    else:
        vals, cols = torch.sort(d, dim=1, stable=True)
        vals, cols = vals[:, :kk], cols[:, :kk]
    return cols, torch.isfinite(vals)


def table_max(v: Tensor, cols: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Channel-wise max of v [N, C] over each row's valid table neighbours: ([N, C], has [N, 1])."""
    g = v.index_select(0, cols.reshape(-1)).reshape(cols.size(0), cols.size(1), v.size(1))
    g = torch.where(valid.unsqueeze(2), g, torch.full_like(g, -math.inf))
    return g.amax(1), valid.any(1, keepdim=True)


# -- GNN encoders in export form -------------------------------------------------------------
class _EdgeConvBlock(nn.Module):
    """:class:`~gnnu.models.gnn.edgeconv.EdgeConvBlock` given the max over incoming edges."""

    def __init__(self, block: EdgeConvBlock):
        super().__init__()
        self.lin = block.conv.lin
        self.act = block.conv.act
        self.norm = block.norm
        self.shortcut = block.shortcut.proj
        self.cin = block.conv.in_channels
        self.cout = block.conv.out_channels

    def node_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w1 = self.lin.weight[:, :self.cin]
        w2 = self.lin.weight[:, self.cin:]
        bias = torch.cat([self.lin.bias, torch.zeros_like(self.lin.bias)])
        uv = F.linear(x, torch.cat([w1 - w2, w2], dim=0), bias)
        return uv[:, :self.cout], uv[:, self.cout:]

    def close(self, x: Tensor, u: Tensor, vmax: Tensor, has: Tensor) -> Tensor:
        h = self.act(torch.where(has, u + vmax, torch.zeros_like(u)))
        return torch.relu(self.norm(h) + self.shortcut(x))


class _StaticEdgeConvBlock(_EdgeConvBlock):
    def forward(self, x: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        u, v = self.node_terms(x)
        vmax, has = edge_max(v, src, dst)
        return self.close(x, u, vmax, has)


class _DynamicEdgeConvBlock(_EdgeConvBlock):
    def __init__(self, block):
        super().__init__(block.block)
        self.k = block.knn.k
        self.include_self = block.knn.include_self

    def forward(self, x: Tensor, knn_input: Tensor, batch: Tensor) -> Tensor:
        cols, valid = knn_table(knn_input, batch, self.k, self.include_self)
        u, v = self.node_terms(x)
        vmax, has = table_max(v, cols, valid)
        return self.close(x, u, vmax, has)


class EdgeConvExport(nn.Module):
    """:class:`~gnnu.models.gnn.edgeconv.EdgeConvEncoder` on given edges."""

    def __init__(self, enc: EdgeConvEncoder):
        super().__init__()
        self.input_norm = enc.input_norm
        self.blocks = nn.ModuleList([_StaticEdgeConvBlock(b) for b in enc.blocks])
        self.concat = enc.readout == "concat"

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        src, dst = edge_index[0], edge_index[1]
        h = self.input_norm(x)
        outs: list[Tensor] = []
        for block in self.blocks:
            h = block(h, src, dst)
            outs.append(h)
        return torch.cat(outs, dim=1) if self.concat else h


class DynEdgeConvExport(nn.Module):
    """:class:`~gnnu.models.gnn.dynedgeconv.DynEdgeConvEncoder` with the dense kNN table."""

    def __init__(self, enc: DynEdgeConvEncoder):
        super().__init__()
        self.input_norm = enc.input_norm
        self.blocks = nn.ModuleList([_DynamicEdgeConvBlock(b) for b in enc.blocks])
        self.first_pos = enc.first_knn == "pos"
        self.concat = enc.readout == "concat"

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        h = self.input_norm(x)
        outs: list[Tensor] = []
        i = 0
        for block in self.blocks:
            knn_input = pos if (i == 0 and self.first_pos) else h
            h = block(h, knn_input, batch)
            outs.append(h)
            i += 1
        return torch.cat(outs, dim=1) if self.concat else h


class _GravNetBlock(nn.Module):
    def __init__(self, block):
        super().__init__()
        conv = block.conv
        self.global_exchange = block.global_exchange
        self.dense = block.dense
        self.lin_s, self.lin_f, self.lin_out = conv.lin_s, conv.lin_f, conv.lin_out
        self.k, self.include_self = conv.knn.k, conv.knn.include_self
        self.weight_scale = float(conv.weight_scale)
        self.act = conv.act
        self.norm = block.norm

    def forward(self, x: Tensor, batch: Tensor, b: Tensor) -> Tensor:
        if self.global_exchange:
            x = torch.cat([x, segment_mean(x, batch, b).index_select(0, batch)], dim=1)
        x = self.dense(x)
        s = self.lin_s(x)
        cols, valid = knn_table(s, batch, self.k, self.include_self)
        f = self.lin_f(x)
        n, kk = cols.size(0), cols.size(1)
        flat = cols.reshape(-1)
        sj = s.index_select(0, flat).reshape(n, kk, s.size(1))
        d2 = (sj - s.unsqueeze(1)).pow(2).sum(dim=2, keepdim=True)
        msg = f.index_select(0, flat).reshape(n, kk, f.size(1)) * torch.exp(-self.weight_scale * d2)
        mask = valid.unsqueeze(2)
        count = valid.to(torch.float32).sum(1, keepdim=True).clamp(min=1.0)
        mean = (torch.where(mask, msg, torch.zeros_like(msg)).sum(1) / count).to(msg.dtype)
        mx = torch.where(mask, msg, torch.full_like(msg, -math.inf)).amax(1)
        mx = torch.where(valid.any(1, keepdim=True), mx, torch.zeros_like(mx))
        out = self.act(self.lin_out(torch.cat([x, mean, mx], dim=1)))
        return self.norm(out)


class GravNetExport(nn.Module):
    """:class:`~gnnu.models.gnn.gravnet.GravNetEncoder` with the dense kNN table."""

    def __init__(self, enc: GravNetEncoder):
        super().__init__()
        self.input_norm = enc.input_norm
        self.blocks = nn.ModuleList([_GravNetBlock(b) for b in enc.blocks])
        self.concat = enc.readout == "concat"

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        b = num_graphs(batch)
        h = self.input_norm(x)
        outs: list[Tensor] = []
        for block in self.blocks:
            h = block(h, batch, b)
            outs.append(h)
        return torch.cat(outs, dim=1) if self.concat else h


#: Export form of each GNN encoder class.
GRAPH_ENCODERS = {EdgeConvEncoder: EdgeConvExport, DynEdgeConvEncoder: DynEdgeConvExport,
                  GravNetEncoder: GravNetExport}


# -- heads --------------------------------------------------------------------------------------
class _Scores(nn.Module):
    """The multi-task head's outputs as scores: softmax per task, decoded regression values."""

    def __init__(self, head, energy_target: str):
        super().__init__()
        self.trunk = head.trunk
        self.heads = head.heads
        self.regressors = head.regressors
        self.log_targets = [is_log_target(r, energy_target) for r in head.regression]

    def forward(self, z: Tensor) -> list[Tensor]:
        t = self.trunk(z)
        out: list[Tensor] = []
        for head in self.heads.values():
            out.append(torch.softmax(head(t).float(), dim=1))
        i = 0
        for reg in self.regressors.values():
            value = reg(t).squeeze(-1).float()
            out.append(torch.exp(value) if self.log_targets[i] else value)
            i += 1
        return out


def output_names(model) -> list[str]:
    """Names of the form's outputs, in order: classification tasks, then regression targets."""
    return list(model.head.tasks) + list(model.head.regression)


class GraphExport(nn.Module):
    """A GNN in export form (module docstring): raw features in, every head's scores out."""

    def __init__(self, model, mean: Tensor, std: Tensor):
        super().__init__()
        enc_type = type(model.encoder)
        if enc_type not in GRAPH_ENCODERS:
            raise ExportError(f"no export form for encoder {enc_type.__name__}")
        self.encoder = GRAPH_ENCODERS[enc_type](model.encoder)
        self.modes = list(model.pool.modes)
        self.scores = _Scores(model.head, model.energy_target)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1).clone())

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, batch: Tensor) -> list[Tensor]:
        x = (x - self.mean) / self.std
        h = self.encoder(x, pos, edge_index, batch)
        b = num_graphs(batch)
        pooled: list[Tensor] = []
        for mode in self.modes:
            if mode == "mean":
                pooled.append(segment_mean(h, batch, b))
            elif mode == "max":
                pooled.append(segment_max(h, batch, b))
            else:
                pooled.append(segment_sum(h, batch, b))
        return self.scores(torch.cat(pooled, dim=1))


class ImageExport(nn.Module):
    """A CNN in export form: uint8 pixel maps [B, V, H, W] in, every head's scores out."""

    def __init__(self, model):
        super().__init__()
        self.encoder = model.encoder
        self.scores = _Scores(model.head, model.energy_target)

    def forward(self, image: Tensor) -> list[Tensor]:
        return self.scores(self.encoder(image.to(torch.float32) / 255.0))


def graph_inputs(model) -> list[str]:
    """The inputs a GNN's export form reads, in call order (``pos`` / ``edge_index`` only when
    the model uses them)."""
    enc = model.encoder
    names = ["x"]
    if isinstance(enc, DynEdgeConvEncoder) and enc.first_knn == "pos":
        names.append("pos")
    if isinstance(enc, EdgeConvEncoder):
        names.append("edge_index")
    return names + ["batch"]
