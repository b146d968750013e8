"""Sizes the way Deep Compression counts them, and the real bytes on disk, per layer and total.

Per shared layer: weights kept, weight bits b, index bits p, and the bits of
- *pruned*: the survivors alone at 32 bits (the paper's "after pruning" ratio is params / kept),
- *shared*: nnz·b + m·p + 2^b·32 (cluster indices, relative indices incl. fillers, codebook),
- *huffman*: the Huffman-coded indices and gaps (each stream as stored: Huffman or fixed,
  whichever the writer chose) + codebook + code tables,
- *entropy*: the Shannon bound of both streams (+ codebook), beside what Huffman achieved.
Dense tensors (biases, unshared layers) count 32 bits per element (or their dtype's width) in
every column, as the paper's totals include biases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from karuku.codec.coded import CodedTensor


@dataclass(frozen=True)
class LayerSize:
    """One tensor's figures; bits unless named `_bytes`."""

    name: str
    params: int
    kept: int
    weight_bits: int  # 0 for dense tensors
    index_bits: int
    gaps: int  # relative-index codes, fillers included
    dense_bits: int
    shared_bits: int
    huffman_bits: int
    entropy_bits: float
    file_bytes: int  # bytes of its record in the .krk file

    @property
    def ratio_pruned(self) -> float:
        return self.params / self.kept if self.kept else float("inf")

    @property
    def ratio_shared(self) -> float:
        return self.dense_bits / self.shared_bits

    @property
    def ratio_huffman(self) -> float:
        return self.dense_bits / self.huffman_bits


def coded_size(name: str, t: CodedTensor) -> LayerSize:
    """Figures of one shared tensor."""
    book = 32 * t.codebook.size
    tables = sum(((s.alphabet + 1) // 2) * 8 for s in (t.weights, t.gaps) if s.lengths is not None)
    stored = sum(s.huffman_bits() if s.lengths is not None else s.fixed_bits() for s in (t.weights, t.gaps))
    record = 2 + len(name.encode()) + 2 + 4 * len(t.shape) + t.stored_bytes()
    return LayerSize(name, t.numel, t.nnz, t.bits, t.index_bits, int(t.gaps.codes.size), 32 * t.numel,
                     t.weights.fixed_bits() + t.gaps.fixed_bits() + book, stored + book + tables,
                     t.weights.entropy_bits() + t.gaps.entropy_bits() + book, record)


def dense_size(name: str, t: torch.Tensor) -> LayerSize:
    """Figures of a tensor stored dense."""
    n, bits = t.numel(), 8 * t.element_size() * t.numel()
    record = 2 + len(name.encode()) + 2 + 4 * t.dim() + 1 + bits // 8
    return LayerSize(name, n, int(t.count_nonzero()), 0, 0, 0, 32 * n, bits, bits, float(bits), record)


@dataclass(frozen=True)
class SizeReport:
    """Every layer's figures and the totals, plus the real file size."""

    layers: list[LayerSize]
    file_bytes: int

    def total(self, field: str) -> float:
        return sum(getattr(x, field) for x in self.layers)

    @property
    def dense_bytes(self) -> int:
        return int(self.total("dense_bits")) // 8

    def as_dict(self) -> dict:
        """Plain figures (bytes rounded up) for JSON and `Evaluation.extra`."""
        tot = {k: self.total(k) for k in ("params", "kept", "dense_bits", "shared_bits", "huffman_bits",
                                          "entropy_bits")}
        return {
            "dense_fp32_bytes": self.dense_bytes,
            "paper_shared_bytes": -(-int(tot["shared_bits"]) // 8),
            "paper_huffman_bytes": -(-int(tot["huffman_bits"]) // 8),
            "entropy_bound_bytes": -(-int(tot["entropy_bits"]) // 8),
            "packed_file_bytes": self.file_bytes,
            "ratio_pruned": round(tot["params"] / tot["kept"], 2) if tot["kept"] else None,
            "ratio_shared": round(tot["dense_bits"] / tot["shared_bits"], 2),
            "ratio_huffman": round(tot["dense_bits"] / tot["huffman_bits"], 2),
            "ratio_file": round(self.dense_bytes / self.file_bytes, 2),
            "layers": [dict(asdict(x), ratio_pruned=round(x.ratio_pruned, 2), ratio_shared=round(x.ratio_shared, 2),
                            ratio_huffman=round(x.ratio_huffman, 2)) for x in self.layers],
        }

    def table(self) -> str:
        """A Markdown table in the paper's form (per layer, then the total)."""
        rows = ["| layer | params | kept | weight bits | index bits | pruned ratio | shared (before Huffman) "
                "| after Huffman | entropy bound |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for x in self.layers:
            rows.append(f"| {x.name} | {x.params:,} | {100 * x.kept / max(x.params, 1):.1f} % | "
                        f"{x.weight_bits or 32} | {x.index_bits or '–'} | {x.ratio_pruned:.1f}× | "
                        f"{x.shared_bits / 8:,.0f} B ({x.ratio_shared:.1f}×) | {x.huffman_bits / 8:,.0f} B "
                        f"({x.ratio_huffman:.1f}×) | {x.entropy_bits / 8:,.0f} B |")
        d = self.as_dict()
        kept = self.total("kept") / self.total("params")
        rows.append(f"| **total** | {int(self.total('params')):,} | {100 * kept:.1f} % | | | {d['ratio_pruned']}× | "
                    f"{d['paper_shared_bytes']:,} B ({d['ratio_shared']}×) | {d['paper_huffman_bytes']:,} B "
                    f"(**{d['ratio_huffman']}×**) | {d['entropy_bound_bytes']:,} B |")
        rows.append(f"\nFile on disk: {self.file_bytes:,} B against {self.dense_bytes:,} B dense fp32 "
                    f"(**{d['ratio_file']}×**).")
        return "\n".join(rows)
