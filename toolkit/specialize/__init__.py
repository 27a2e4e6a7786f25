"""Specialization: compression pretraining, distillation, PEFT (+ merge), fleets, fit-to-target."""
from __future__ import annotations

from toolkit.specialize.jobs import is_special, run_recipe

__all__ = ["is_special", "run_recipe"]
