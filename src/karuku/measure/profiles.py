"""Edge device profiles (data) and the check of whether a model fits one.

Figures are from the vendors' datasheets for a representative part of each class; they are
what a deployment must respect, not a promise about every board of that class.
"""

from __future__ import annotations

from dataclasses import dataclass

from karuku.registry import Registry


@dataclass(frozen=True)
class Profile:
    """An edge device class: where weights and activations live, and how much of each it holds."""

    name: str
    description: str
    flash_bytes: int  # where weights live (microcontrollers: internal flash; others: storage)
    ram_bytes: int  # working memory for activations (and, off microcontrollers, the weights too)
    on_chip_bytes: int  # SRAM / last-level cache: weights that fit avoid DRAM in the energy estimate
    weights_in_ram: bool  # application processors load weights into RAM; MCUs execute from flash


PROFILES: Registry[Profile] = Registry("device profile")


def register_profile(profile: Profile) -> Profile:
    """Add a device profile (`karuku evaluate --profile NAME`, recipes' `budget.profile`, `export --profile`)."""
    return PROFILES.register(profile.name, profile)


# Descriptions name the class and its processor; memory sizes are shown from the numbers (karuku.measure.units),
# so every page states them in one unit convention. The report translates these four (report/i18n.py).
register_profile(Profile("mcu-m4", "Cortex-M4F microcontroller, STM32F407-class, 168 MHz",
                         1024 * 1024, 192 * 1024, 192 * 1024, False))
register_profile(Profile("mcu-m7", "Cortex-M7 microcontroller, STM32H743-class, 480 MHz",
                         2 * 1024 * 1024, 1024 * 1024, 1024 * 1024, False))
register_profile(Profile("rpi4", "Raspberry Pi 4 class board, 4× Cortex-A72 at 1.5 GHz, SD-card storage",
                         16 * 1024**3, 4 * 1024**3, 1024 * 1024, True))
register_profile(Profile("phone", "Phone-class SoC, 8 big/little Arm cores",
                         64 * 1024**3, 8 * 1024**3, 8 * 1024 * 1024, True))


def get_profile(name: str) -> Profile:
    """The profile called `name`; the error names the known ones."""
    return PROFILES.find(name)


@dataclass(frozen=True)
class Fit:
    """Whether a model fits a profile, with the numbers behind the verdict (`as_dict` keeps them for reports)."""

    profile: str
    fits: bool
    reasons: tuple[str, ...]
    weight_bytes: int = 0
    flash_bytes: int = 0
    ram_need_bytes: int = 0  # peak activations, plus the weights where the device loads them into RAM
    ram_bytes: int = 0
    weights_in_ram: bool = False

    def as_dict(self) -> dict:
        """{"fits", "reasons", and the numbers}: what summaries store, so a report can say it in its language."""
        return {"fits": self.fits, "reasons": list(self.reasons), "weight_bytes": self.weight_bytes,
                "flash_bytes": self.flash_bytes, "ram_need_bytes": self.ram_need_bytes, "ram_bytes": self.ram_bytes,
                "weights_in_ram": self.weights_in_ram}


def check_fit(profile: Profile, weight_bytes: int, activation_bytes: int) -> Fit:
    """Does a model with these stored weights and peak activations fit the device? Reasons carry the numbers."""
    from karuku.measure.units import size

    reasons = []
    ok_flash = weight_bytes <= profile.flash_bytes
    reasons.append(f"weights {size(weight_bytes)} {'≤' if ok_flash else '>'} flash {size(profile.flash_bytes)}")
    ram_need = activation_bytes + (weight_bytes if profile.weights_in_ram else 0)
    ok_ram = ram_need <= profile.ram_bytes
    what = "weights + peak activations" if profile.weights_in_ram else "peak activations"
    reasons.append(f"{what} {size(ram_need)} {'≤' if ok_ram else '>'} RAM {size(profile.ram_bytes)}")
    return Fit(profile.name, ok_flash and ok_ram, tuple(reasons), weight_bytes, profile.flash_bytes, ram_need,
               profile.ram_bytes, profile.weights_in_ram)
