"""Datasets: one module per dataset, reached by the recipe's data.name through LOADERS."""
from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from toolkit.data.base import TaskData

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
    from toolkit.recipe import check_choice

    check_choice(recipe.path, "data.name", recipe.data.name, LOADERS)
    data = importlib.import_module(LOADERS[recipe.data.name]).load(recipe.data)
    if recipe.data.groups:
        from toolkit.data.base import select_groups

        data = select_groups(data, recipe.data.groups)
    log.debug("%s", data.summary())
    return data


__all__ = ["TaskData", "load_dataset", "LOADERS"]
