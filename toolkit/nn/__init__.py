"""Models: one architecture per file with its config dataclass; build_model picks one by model.arch."""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Callable

from toolkit.errors import EdgetkError

if TYPE_CHECKING:
    from torch import nn

    from toolkit.data.base import TaskData
    from toolkit.recipe import ModelConfig, Recipe


def _dscnn(m: ModelConfig, data: TaskData) -> nn.Module:
    from toolkit.nn.dscnn import DSCNN, DSCNNConfig

    return DSCNN(DSCNNConfig(in_channels=data.input_shape[0], n_classes=data.n_classes, width=m.width, dropout=m.dropout))


def _cnn1d(m: ModelConfig, data: TaskData) -> nn.Module:
    from toolkit.nn.cnn1d import CNN1D, CNN1DConfig

    return CNN1D(CNN1DConfig(in_channels=data.input_shape[0], n_classes=data.n_classes, width=m.width, dropout=m.dropout))


def _autoencoder(m: ModelConfig, data: TaskData) -> nn.Module:
    from toolkit.nn.autoencoder import Autoencoder, AutoencoderConfig

    return Autoencoder(AutoencoderConfig(n_inputs=data.input_shape[-1], width=m.width))


def _resnet(m: ModelConfig, data: TaskData) -> nn.Module:
    from toolkit.nn.resnet import ResNet, ResNetConfig

    return ResNet(ResNetConfig(in_channels=data.input_shape[0], n_classes=data.n_classes, width=m.width, dropout=m.dropout))


# model.arch -> builder(ModelConfig, TaskData). One line per architecture.
BUILDERS: dict[str, Callable[[ModelConfig, TaskData], nn.Module]] = {
    "dscnn": _dscnn, "cnn1d": _cnn1d, "autoencoder": _autoencoder, "resnet": _resnet,
}


def build_model(recipe: Recipe, data: TaskData) -> nn.Module:
    """A freshly initialised model for the recipe (seed torch first for reproducible weights)."""
    arch = recipe.model.arch
    if arch not in BUILDERS:
        close = difflib.get_close_matches(arch, list(BUILDERS), n=1)
        raise EdgetkError(f"{recipe.path or 'recipe'}: unknown model.arch={arch!r}"
                          + (f"; did you mean {close[0]!r}?" if close else ""),
                          fix=f"choose one of: {', '.join(BUILDERS)}")
    return BUILDERS[arch](recipe.model, data)
