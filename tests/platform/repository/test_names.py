"""Names never leave the model root (issue 12.6), checked in the store itself (defence in depth)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from npusuite.platform.repository import ModelRepository
from npusuite.platform.repository.names import InvalidNameError, check_name, is_valid_name


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "a..b", "", "-x", ".hidden", "x" * 129, "a\x00b",
                                  "%2e%2e", 5, None])
def test_bad_names_are_refused(name):
    assert not is_valid_name(name)
    with pytest.raises(InvalidNameError):
        check_name("model name", name)


@pytest.mark.parametrize("name", ["scale", "fraud-mlp", "v1.2_3", "A", "x" * 128])
def test_good_names_pass(name):
    assert check_name("model name", name) == name


def test_the_store_refuses_paths_outside_its_root(scale_repo):
    root = scale_repo.root
    (root.parent / "outside").mkdir()
    for call in (lambda: scale_repo.versions(".."), lambda: scale_repo.resolve("..", "production"),
                 lambda: scale_repo.resolve("scale", "../../outside"), lambda: scale_repo.aliases("../models"),
                 lambda: scale_repo.manifest("scale", "..")):
        with pytest.raises(InvalidNameError):
            call()


def test_a_symlinked_version_pointing_outside_is_refused(scale_repo, tmp_path: Path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, scale_repo.root / "scale" / "9")
    with pytest.raises(InvalidNameError, match="outside the model root"):
        scale_repo.resolve("scale", "9")
    assert ModelRepository(scale_repo.root).resolve("scale", "1").version == "1"
