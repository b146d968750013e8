"""Deep Compression: weight sharing, relative indices, Huffman coding and the packed `.krk` file.

`cluster(model, ClusterConfig(bits=5))` shares each conv/linear layer's weights in place and
returns the codebooks (with `.hook()` to fine-tune the centroids on karuku's training loop);
`pack_model` writes a `.krk` file, `load_packed` rebuilds the model; `karuku.codec.job` holds the
checkpoint-to-checkpoint jobs (`cluster_checkpoint`, `pack_checkpoint`, `unpack_checkpoint`).
"""

from __future__ import annotations

from karuku.codec.config import ClusterConfig, PackConfig
from karuku.codec.krk import Packed, load_packed, pack_model, pack_state, read_packed
from karuku.codec.sharing import WeightSharing, cluster

__all__ = ["ClusterConfig", "PackConfig", "Packed", "WeightSharing", "cluster", "load_packed",
           "pack_model", "pack_state", "read_packed"]
