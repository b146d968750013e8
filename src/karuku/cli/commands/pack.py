"""`karuku cluster`, `karuku pack`, `karuku unpack`: Deep Compression's weight sharing and `.krk` files."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console, print_table, write_json
from karuku.cli.options import Section, configs
from karuku.codec.config import ClusterConfig, PackConfig
from karuku.data.config import DataConfig


@app.command("cluster")
@guard
@configs(cfg=Section(ClusterConfig), data=Section(DataConfig, "data", partial=True))
def cluster_cmd(
    checkpoint: Path = typer.Argument(..., help="a (pruned) karuku checkpoint"),
    out: Path = typer.Option(..., help="checkpoint of the shared-weight model to write"),
    quiet: bool = typer.Option(False, help="no progress output"),
    *,
    cfg: ClusterConfig,
    data: dict,
) -> None:
    """Share weights: per layer 2^bits centroids by k-means over the surviving weights (--finetune-* tunes them)."""
    from karuku.codec.job import cluster_checkpoint

    meta = cluster_checkpoint(checkpoint, cfg, out, data, verbose=not quiet)
    test = (meta.get("metrics") or {}).get("test")
    bits = ", ".join(f"{k} {v}" for k, v in meta["cluster"]["bits"].items())
    acc = f"; test accuracy {100 * test['accuracy']:.2f} %" if test else ""
    console.print(f"shared weights ({bits} bits){acc} → {out}", soft_wrap=True)


@app.command("pack")
@guard
@configs(cfg=Section(PackConfig))
def pack_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint of a shared-weight model"),
    out: Path = typer.Option(..., help="packed model to write (.krk)"),
    json_out: Path = typer.Option(None, "--json", help="also write the per-layer sizes to this JSON file"),
    *,
    cfg: PackConfig,
) -> None:
    """Pack a shared-weight model: relative indices and Huffman codes in one `.krk` file."""
    from karuku.codec.job import pack_checkpoint
    from karuku.io.atomic import ensure_writable_dir

    if json_out:
        ensure_writable_dir(json_out)
    packed = pack_checkpoint(checkpoint, cfg, out)
    sizes = packed.sizes()
    d = sizes.as_dict()
    dense = [n for n in packed.tensors if n not in packed.coded and n.endswith("weight")]
    rows = [(x.name, f"{x.kept:,}/{x.params:,} kept, {x.weight_bits} bits, {x.index_bits}-bit indices, "
             f"{x.huffman_bits / 8:,.0f} B ({x.ratio_huffman:.1f}×)") for x in sizes.layers if x.weight_bits]
    rows += [("dense fp32", f"{d['dense_fp32_bytes']:,} B"),
             ("paper count (before Huffman)", f"{d['paper_shared_bytes']:,} B ({d['ratio_shared']}×)"),
             ("paper count (after Huffman)", f"{d['paper_huffman_bytes']:,} B ({d['ratio_huffman']}×)"),
             ("entropy bound", f"{d['entropy_bound_bytes']:,} B"),
             ("file", f"{d['packed_file_bytes']:,} B ({d['ratio_file']}×) → {out}")]
    if dense:
        rows.append(("stored dense", ", ".join(dense) + " (more than 256 values: run karuku cluster first)"))
    print_table(f"karuku pack {checkpoint}", rows)
    if json_out:
        write_json(json_out, d)


@app.command("unpack")
@guard
@configs()
def unpack_cmd(
    packed: Path = typer.Argument(..., help="a packed model (.krk)"),
    out: Path = typer.Option(..., help="karuku checkpoint to write (.safetensors)"),
) -> None:
    """Rebuild the model of a `.krk` file and write it as a checkpoint."""
    from karuku.codec.job import unpack_checkpoint

    unpack_checkpoint(packed, out)
    console.print(f"unpacked {packed} → {out}", soft_wrap=True)
