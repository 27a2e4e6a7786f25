"""Models: one architecture per file with its config dataclass; build_model picks one by model.arch."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

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
    from toolkit.recipe import check_choice

    check_choice(recipe.path, "model.arch", recipe.model.arch, BUILDERS)
    return BUILDERS[recipe.model.arch](recipe.model, data)
