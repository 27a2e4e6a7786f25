"""Datasets: one module per dataset, reached by the recipe's data.name through LOADERS."""
from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from toolkit.data.base import TaskData
from toolkit.errors import EdgetkError

if TYPE_CHECKING:
    from toolkit.recipe import Recipe

log = logging.getLogger(__name__)

# data.name -> module under toolkit.data with load(DataConfig) -> TaskData. One line per dataset.
LOADERS = {
    "fsdd": "toolkit.data.fsdd",
    "basicmotions": "toolkit.data.basicmotions",
    "mitdb": "toolkit.data.mitdb",
    "digits": "toolkit.data.digits",
}


def load_dataset(recipe: Recipe) -> TaskData:
    """The recipe's dataset as TaskData (features cached under $EDGETK_CACHE)."""
    name = recipe.data.name
    if name not in LOADERS:
        import difflib

        close = difflib.get_close_matches(name, list(LOADERS), n=1)
        raise EdgetkError(f"{recipe.path or 'recipe'}: unknown dataset data.name={name!r}"
                          + (f"; did you mean {close[0]!r}?" if close else ""),
                          fix=f"choose one of: {', '.join(LOADERS)}")
    data = importlib.import_module(LOADERS[name]).load(recipe.data)
    log.debug("%s", data.summary())
    return data


__all__ = ["TaskData", "load_dataset", "LOADERS"]
