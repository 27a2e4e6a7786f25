"""A model too big for the board is refused at build time with the limit that binds, never flashed."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import require_tool
from toolkit.codegen import generate
from toolkit.errors import EdgetkError
from toolkit.hil.build import build_firmware, firmware_root
from toolkit.targets import get_target

IC = "mlperf_tiny/benchmark/training/image_classification/trained_models/pretrainedResnet_quant.tflite"


@pytest.fixture(scope="module")
def ic_library(external: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ic_c")
    generate(external / IC, out)
    return out


def test_ram_budget_of_the_target_file_binds(ic_library: Path, tmp_path: Path):
    require_tool("arm-none-eabi-gcc")
    spec = dataclasses.replace(get_target("nucleo-l4r5zi"), ram_bytes=48 * 1024)
    with pytest.raises(EdgetkError, match=r"does not fit nucleo-l4r5zi: RAM needs [\d,]+ B") as e:
        build_firmware(spec, ic_library, tmp_path)
    assert "--fit-target nucleo-l4r5zi" in str(e.value)


def test_linker_overflow_is_reported_as_the_board_being_too_small(ic_library: Path, tmp_path: Path):
    require_tool("arm-none-eabi-gcc")
    spec = get_target("nucleo-l4r5zi")
    board_ld = (firmware_root() / spec.build.linker_script).read_text()
    small_ld = tmp_path / "small.ld"
    small_ld.write_text(board_ld.replace("LENGTH = 2048K", "LENGTH = 64K"))  # flash smaller than IC's weights
    spec = dataclasses.replace(spec, build=dataclasses.replace(spec.build, linker_script=str(small_ld)))
    with pytest.raises(EdgetkError, match=r"does not fit nucleo-l4r5zi: FLASH overflowed by [\d,]+ B at link time"):
        build_firmware(spec, ic_library, tmp_path / "fw")


def test_a_model_that_fits_builds(ic_library: Path, tmp_path: Path):
    require_tool("arm-none-eabi-gcc")
    fw = build_firmware(get_target("nucleo-l4r5zi"), ic_library, tmp_path)
    assert 80_000 < fw.flash_bytes < 2_097_152 and fw.static_ram_bytes > 33_000
