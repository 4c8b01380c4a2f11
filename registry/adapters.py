"""Adapter names an encoder card may give (`adapter:`), and the runner module that implements each.

The names live in the registry, not the runner, so that card validation imports nothing from the runner; module paths
are plain strings, imported by `runner.encoders.load_encoder` only when a card asks for that adapter (heavy stacks
such as TensorFlow or timm load only when used).
"""

ADAPTER_MODULES: dict[str, str] = {
    "pixels": "runner.encoders.builtin",
    "random-cnn": "runner.encoders.builtin",
    "radiomics": "runner.encoders.builtin",
    "cxr-foundation": "runner.encoders.cxr_foundation",
    "medimageinsight": "runner.encoders.medimageinsight",
    "torchxrayvision": "runner.encoders.community",
    "hf-transformers": "runner.encoders.community",
    "open-clip": "runner.encoders.community",
    "timm": "runner.encoders.community",
    "custom": "runner.encoders.custom",
    "metadata": "runner.encoders.metadata",  # the no-pixels shortcut baseline (runner.evaluate feeds it the manifest)
}
