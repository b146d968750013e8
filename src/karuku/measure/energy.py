"""Energy per inference from a documented table (45 nm, Horowitz; as cited by Han et al.).

Per multiply-accumulate: one multiply and one add (float for fp32 models, integer for
int8 ones; the table's 32-bit integer figures are used, an upper bound for 8-bit).
Memory: every weight is read once per inference in 32-bit accesses, from on-chip SRAM
when the weights fit the on-chip budget, else from DRAM; activations are read and
written once each in SRAM. Everything else (control, caches) is left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from karuku.measure.units import size

PJ = {  # picojoules per operation / per 32-bit access
    "int_add": 0.1,
    "float_add": 0.9,
    "int_mult": 3.1,
    "float_mult": 3.7,
    "sram_read": 5.0,
    "dram_read": 640.0,
}


@dataclass(frozen=True)
class Energy:
    """Energy of one inference by part (µJ), where the weights live, and the assumptions."""

    compute_uj: float
    weights_uj: float
    activations_uj: float
    weights_in: str  # "SRAM" or "DRAM"
    assumptions: str
    # the figures behind `assumptions`, kept so a report can say them in its own language
    mac_pj: float = 0.0
    weight_bytes: int = 0
    on_chip_bytes: int = 0
    activation_bytes: int = 0
    integer: bool = False

    @property
    def total_uj(self) -> float:
        return self.compute_uj + self.weights_uj + self.activations_uj

    def as_dict(self) -> dict:
        return dict(asdict(self), total_uj=self.total_uj)


def estimate(macs: int, weight_bytes: int, activation_bytes: int, integer: bool = False,
             on_chip_bytes: int = 1 << 20) -> Energy:
    """Energy of one inference (µJ) from MACs, stored weight bytes and activation traffic."""
    mac_pj = (PJ["int_mult"] + PJ["int_add"]) if integer else (PJ["float_mult"] + PJ["float_add"])
    fits = weight_bytes <= on_chip_bytes
    weight_pj = -(-weight_bytes // 4) * (PJ["sram_read"] if fits else PJ["dram_read"])
    act_pj = 2 * -(-activation_bytes // 4) * PJ["sram_read"]
    why = (f"45 nm table (Horowitz): {'int' if integer else 'float'} mult+add {mac_pj:.1f} pJ/MAC; "
           f"weights {size(weight_bytes)} {'fit' if fits else 'exceed'} {size(on_chip_bytes)} on-chip → "
           f"{'SRAM 5' if fits else 'DRAM 640'} pJ per 32-bit read; activations {size(activation_bytes)} "
           "read+written in SRAM")
    return Energy(macs * mac_pj / 1e6, weight_pj / 1e6, act_pj / 1e6, "SRAM" if fits else "DRAM", why,
                  mac_pj, weight_bytes, on_chip_bytes, activation_bytes, integer)
