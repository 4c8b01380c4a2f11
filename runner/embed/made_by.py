"""What an encoder's embeddings are made from besides its card: the content of its weight files, a custom
adapter's source, and the versions of the packages that change its numbers.

Entry: `encoder_inputs(card, adapter, weights_dir, hashes) -> EncoderInputs`. Its `sha256` keys the embedding
cache (runner.embed.cache: embeddings made from other weights, code or packages are never read), it enters the
run fingerprint (runner.results.reuse.run_inputs_sha256: a result computed from other ones is never kept), and
its `record()` is written into the result as `environment.encoder_inputs` (the registry's regeneration files a
run's `environment` as the run reports it, so the filed result keeps it).

* weights: the sha256 of every file the card's `weights.files` lists (a folder entry: every file under it),
  found where the model will load them (runner.encoders.weights.resolve_weights) and hashed once per version
  of the file (runner.encoders.weights.FileHashes, indexed in the cache folder). A card with random weights
  (`weights: {random_init: true}`, drawn from its `seed`) or none (pixels, radiomics, random-cnn, metadata)
  has nothing to hash, and the key says so (`no_weights`).
* code: a custom adapter's module files from outside the installed packages
  (runner.encoders.custom.local_code); an adapter from another package's plugin entry point is treated the
  same way.
* packages: NUMBER_PACKAGES of the adapter class and its bases (runner.encoders.base.Encoder says why each),
  plus torch where the device backend may prepare the inputs (its resize is torch's), plus the installed
  distributions a custom adapter's code imports. A package that is not installed is recorded as null: which
  decoder plugins exist decides how a compressed DICOM decodes. Not in the key: packages that move bytes
  without changing them (safetensors, huggingface_hub), and the registry's own code (runner/, registry/; a
  run's fingerprint holds its code_sha256).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from registry import plugins
from registry.hashing import installed_version, sha256_of
from runner.embed.plan import supports_device_preprocessing
from runner.encoders.base import Encoder
from runner.encoders.custom import local_code
from runner.encoders.weights import FileHashes, resolve_weights, weights_sha256


@dataclass(frozen=True)
class EncoderInputs:
    """What made an encoder's embeddings beyond its card (see the module docstring)."""

    weights_sha256: dict[str, str] = field(default_factory=dict)  # weight file name -> sha256
    no_weights: str = ""  # why there is nothing to hash ("" when weights_sha256 lists files)
    code_sha256: dict[str, str] = field(default_factory=dict)  # module -> sha256 (custom code)
    packages: dict[str, str | None] = field(default_factory=dict)  # distribution -> version (None: not installed)

    def _parts(self) -> dict:
        return {"weights_sha256": dict(sorted(self.weights_sha256.items())), "no_weights": self.no_weights,
                "code_sha256": dict(sorted(self.code_sha256.items())), "packages": dict(sorted(self.packages.items()))}

    @property
    def sha256(self) -> str:
        return sha256_of(self._parts())

    def record(self) -> dict:
        """The result's `environment.encoder_inputs` (registry/schemas/result.schema.json)."""
        parts = self._parts()
        if not parts["no_weights"]:
            del parts["no_weights"]
        return {"sha256": self.sha256, **parts}


def number_packages(adapter: type[Encoder]) -> list[str]:
    """The packages whose versions can change this adapter's numbers (module docstring)."""
    names = {name for cls in adapter.__mro__ for name in getattr(cls, "NUMBER_PACKAGES", ())}
    if supports_device_preprocessing(adapter):
        names.add("torch")
    return sorted(names)


def _code_entrypoint(card: dict) -> str | None:
    """The "module:attr" whose code the key must cover: a custom card's entrypoint, or a plugin adapter's entry from
    another package (the built-in adapters are the registry's own code)."""
    name = card.get("adapter")
    if name == "custom":
        return str(card.get("entrypoint") or "")
    if name in plugins.BUILTIN["adapter"]:
        return None
    return plugins.entries("adapter").get(name)


def encoder_inputs(card: dict, adapter: type[Encoder], weights_dir: Path | None = None,
                   hashes: FileHashes | None = None) -> EncoderInputs:
    """What made this card's embeddings (module docstring). Locates the weight files as the model will
    (WeightsNotFoundError when they are not here: without them nothing cached can be shown to be theirs)."""
    hashes = hashes or FileHashes()
    spec = card.get("weights") or {}
    weights, no_weights = {}, ""
    if spec.get("random_init"):
        no_weights = f"none: seeded random initialisation (seed {card.get('seed', 0)}), nothing to hash"
    elif not spec.get("files"):
        no_weights = f"none: adapter {card.get('adapter')!r} loads no weight file, nothing to hash"
    else:
        weights = weights_sha256(resolve_weights(card, weights_dir, hashes), hashes)
    packages = {name: installed_version(name) for name in number_packages(adapter)}
    code = {}
    entrypoint = _code_entrypoint(card)
    if entrypoint is not None:
        found = local_code(entrypoint)
        code = found.files
        packages.update(found.packages)
    return EncoderInputs(weights, no_weights, code, packages)
