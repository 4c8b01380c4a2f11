#!/usr/bin/env bash
# GPU device check for issue 8 (performance): `runner bench` for a DenseNet-121 and a ViT-B/14 (DINOv2, 518 px), both
# with seeded random weights (timm, nothing downloaded), on generated 1024² 8-bit PNGs and uncompressed 16-bit DICOMs,
# on CUDA. Installs nothing from the network; budget <= 8 minutes on one H100.
#
# The lent GPU machine has torch, timm, pandas, pillow, pyyaml, typer, rich, filelock but not pydicom or jsonschema.
# Before the device call, on the dev machine (once):   bash benchmarks/fetch_device_wheels.sh      (writes .whl/)
# Device call:  run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=540)
# Output: $OUT (or benchmarks/out/) gets bench-gpu-densenet121.{json,md}, bench-gpu-vit-b14-518.{json,md}, bench-gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-benchmarks/out}"
mkdir -p "$OUT_DIR"
N="${N:-1024}"            # distinct files per format
WORKERS="${WORKERS:-14}"  # reader processes (16-core machine: leave two for the driver and the GPU feed)

if ! "$PY" -c "import pydicom, jsonschema" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
  else
    echo "device_check: pydicom/jsonschema missing and no .whl/ carried; run benchmarks/fetch_device_wheels.sh here first" >&2
    exit 2
  fi
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
GPU="$("$PY" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "")')"
if [ -z "$GPU" ]; then echo "device_check: no CUDA device visible to torch" >&2; exit 1; fi

CARDS="$(mktemp -d)"
cat > "$CARDS/bench-densenet121.yaml" <<'YAML'
id: bench-densenet121
title: DenseNet-121 (timm), random weights - benchmark proxy for torchxrayvision's DenseNet
description: Benchmark-only card; the architecture of xrv-densenet121 at its 224 px one-channel contract, random weights.
adapter: timm
model: {name: densenet121, kwargs: {in_chans: 1}}
weights: {random_init: true}
seed: 0
preprocess: {size: 224, channels: 1, interpolation: bilinear, normalize: xrv, bit_depth: float}
embedding: {dim: 1024, pooling: none}
precision: {bf16: true, channels_last: true}
batch_size: 256
license: Apache-2.0
citation: Benchmark proxy (random weights).
control: true
YAML
cat > "$CARDS/bench-vit-b14-518.yaml" <<'YAML'
id: bench-vit-b14-518
title: ViT-B/14 DINOv2 at 518 px (timm), random weights - benchmark proxy for RAD-DINO
description: Benchmark-only card; RAD-DINO's architecture and input contract (518 px, RGB, 8-bit), random weights.
adapter: timm
model: {name: vit_base_patch14_dinov2, kwargs: {img_size: 518}}
weights: {random_init: true}
seed: 0
preprocess: {size: 518, channels: 3, interpolation: bicubic, bit_depth: 8, normalize: {mean: [0.5307, 0.5307, 0.5307], std: [0.2583, 0.2583, 0.2583]}}
embedding: {dim: 768, pooling: none}
precision: {bf16: true}
batch_size: 64
license: Apache-2.0
citation: Benchmark proxy (random weights).
control: true
YAML

nvidia-smi -L || true
INPUTS="$(mktemp -d)/inputs"  # generated once, shared by both runs
run_one() {  # card, repeat
  local name="$1" repeat="$2"
  timeout 200 "$PY" -m runner.cli bench --encoder-card "$CARDS/$name.yaml" --n "$N" --repeat "$repeat" --size 1024 \
    --device cuda --workers "$WORKERS" --naive-limit 64 --rss-sizes "$N,$((N * 4))" --inputs "$INPUTS" --machine "1x $GPU" \
    --json "$OUT_DIR/bench-gpu-$name.json" --markdown "$OUT_DIR/bench-gpu-$name.md" \
    || echo "device_check: $name failed or ran over its 200 s (exit $?)" | tee -a "$OUT_DIR/bench-gpu.md"
}
run_one bench-densenet121 8   # ~8k img/s forward: 8192 images per format so start-up costs stay small
run_one bench-vit-b14-518 4   # ~1k img/s forward
cat "$OUT_DIR"/bench-gpu-*.md >> "$OUT_DIR/bench-gpu.md"
cat "$OUT_DIR/bench-gpu.md"
