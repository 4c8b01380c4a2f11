"""The wheel carries the registry's data (task and encoder cards, dataset cards, benchmarks, publications, floors,
filed results, committed manifests) under registry/data/, laid out like this checkout, so that `pip install .` gives a
`runner` that works from any folder. What is copied is `registry.home.DATA_PATHS`, the one list of where registry
data lives; everything else (metadata, dependencies) is in pyproject.toml."""

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from registry.home import DATA_PATHS  # stdlib only, after the path insert


class BuildPyWithRegistryData(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "registry" / "data"
        for rel in DATA_PATHS:
            source = HERE / rel
            if source.is_dir():
                shutil.copytree(source, target / rel, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", ".*"))
            elif source.is_file():
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / rel)


setup(cmdclass={"build_py": BuildPyWithRegistryData})
