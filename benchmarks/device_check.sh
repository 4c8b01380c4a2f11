#!/usr/bin/env bash
# Device check. First (issue 26, item 8) `runner doctor` on the machine, then CXR Foundation through the GPU path:
# signature-compatible stand-in SavedModels (tests/cxr_foundation_models.py; the real ones are gated) under the real
# cards, `runner encoders check` and `runner eval` of the demo task with cxr-foundation (the paper's 1024² card) and
# random-cnn after it, each result naming the device its framework really used (TensorFlow in its own child process).
# Then (issue 17, items 1 and 7) the honest `runner bench` (eval's own call and defaults, files read from
# disk with the page cache dropped, whole-command cold/warm beside the stage-only warm-cache speedup) for a
# DenseNet-class, a ViT-class and the MedImageInsight tower, all with random weights (nothing downloaded), on generated
# 1024² 8-bit PNGs and 1955x1841 15-bit MONOCHROME1 DICOMs (the real CR's geometry); then `runner eval` of a demo task
# on the device. Installs nothing from the network. Without TensorFlow on the machine the CXR Foundation step says so
# and the rest runs.
#
#   STEPS=doctor,cxr,bench,eval (default: all, in that order); the whole script stops starting steps at BUDGET_S
#   (default 560 s on CUDA, none for the dry run) so that one device call (10 min at most) ends with its report.
#
#   DEVICE=cuda (default): the check itself, on one GPU; steps start while BUDGET_S (560 s) lasts (10 min a run).
#   DEVICE=cpu: a dry run of the same steps with tiny N and sizes and no GPU-name check (tests/test_device_check.py
#               runs it in CI, so the script stays working between GPU sessions).
#
# The lent GPU machine has torch, timm, pandas, pillow, pyyaml, typer, rich, filelock but not pydicom or jsonschema.
# Before the device call, on the dev machine (once):   bash benchmarks/fetch_device_wheels.sh      (writes .whl/)
# Device call:  run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=570)
# Output in $OUT (or benchmarks/out/): bench-<device>-<encoder>.{json,md}, eval-<device>-demo.{json,md}, and
# device-check.md (every table and every step that failed or was skipped, with why).
#
# Precision: each encoder runs its card's own `precision` block (no bench-only setting):
#   bench-densenet121      fp32, no channels_last: the proxy stands for xrv-densenet121, whose registry card is fp32
#   bench-vit-b14-518      bf16 autocast: the proxy stands for rad-dino, whose registry card sets bf16
#   medimageinsight-random the registry card itself (bf16, as medimageinsight's card)
# bf16 and channels_last apply on CUDA only (runner.embed.device), so the dry run is fp32 throughout.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
OUT_DIR="${OUT:-benchmarks/out}"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/device-check.md"
: > "$REPORT"
note() { echo "device_check: $*" | tee -a "$REPORT" >&2; }
STEPS=",${STEPS:-doctor,cxr,bench,eval},"
wants() { [[ "$STEPS" == *",$1,"* ]]; }
DEADLINE=$((SECONDS + ${BUDGET_S:-$([ "$DEVICE" = cpu ] && echo 3600 || echo 560)}))
limit_for() {  # a step's timeout: its own, or what is left before the deadline (0: skip the step)
  local want="$1" left=$((DEADLINE - SECONDS - 5))
  if [ "$left" -lt 15 ]; then echo 0; elif [ "$want" -lt "$left" ]; then echo "$want"; else echo "$left"; fi
}

case "$DEVICE" in
  cuda*)  # distinct files per format (each read once per pass: no repeats out of the page cache)
    N="${N:-512}"; PNG_SIZE=1024; DICOM_SIZE=1955x1841; NAIVE=32; RSS="$N,$((N * 4))"; EXTRA=(); SLACK=1
    DEMO_PATIENTS=450; DEMO_PX=256; DEMO_TASK=effusion-demo ;;  # `runner demo`'s data set and task
  cpu)
    # Fresh-process measurements (whole command, memory probes) off: each rebuilds the model, minutes on a CPU for
    # these three; tests/test_bench.py covers them.
    N="${N:-2}"; PNG_SIZE=64; DICOM_SIZE=48x40; NAIVE=1; RSS=""; EXTRA=(--no-whole-command)
    SLACK=3  # the timeouts are sized for the GPU; on 2 busy CPU cores the ViT's build and forward alone take ~80 s
    DEMO_PATIENTS=80; DEMO_PX=128; DEMO_TASK=effusion-dryrun ;;  # 80 patients cannot fill effusion-demo's 150/150
  *) echo "device_check: DEVICE must be cuda[:N] or cpu, not $DEVICE" >&2; exit 2 ;;
esac

if ! "$PY" -c "import pydicom, jsonschema, lightgbm" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
  else
    echo "device_check: pydicom/jsonschema missing and no .whl/ carried; run benchmarks/fetch_device_wheels.sh here first" >&2
    exit 2
  fi
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
if [ "$DEVICE" = cpu ]; then
  MACHINE="dry run on $(nproc) CPU cores (DEVICE=cpu: tiny sizes, the figures mean nothing)"
else
  GPU="$("$PY" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "")')"
  if [ -z "$GPU" ]; then echo "device_check: no CUDA device visible to torch" >&2; exit 1; fi
  MACHINE="1x $GPU, $(nproc) CPU cores"
  nvidia-smi -L || true
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CARDS="$WORK/cards"
mkdir -p "$CARDS"
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
precision: {bf16: false, channels_last: false}
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

INPUTS="$WORK/inputs"  # generated once (by the first bench), shared by all three
bench_one() {  # seconds, rss sizes, card args...
  local limit="$1" rss="$2" name; shift 2
  name="$(basename "${@: -1}" .yaml)"
  limit="$(limit_for $((limit * SLACK)))"
  if [ "$limit" -eq 0 ]; then note "bench $name not started: the ${BUDGET_S:-560} s budget is spent"; return; fi
  if timeout "$limit" "$PY" -m runner.cli.main bench "$@" --n "$N" --size "$PNG_SIZE" --dicom-size "$DICOM_SIZE" \
      "${EXTRA[@]}" --device "$DEVICE" --naive-limit "$NAIVE" --rss-sizes "$rss" --inputs "$INPUTS" --machine "$MACHINE" \
      --json "$OUT_DIR/bench-$DEVICE-$name.json" --markdown "$OUT_DIR/bench-$DEVICE-$name.md" >/dev/null; then
    { echo "### $name"; echo; cat "$OUT_DIR/bench-$DEVICE-$name.md"; echo; } >> "$REPORT"
  else
    note "bench $name failed or ran over its $limit s (exit $?)"
  fi
}
# The demo data set (`runner demo`'s, small for the dry run): the CXR Foundation step and the eval step read it.
DEMO="$WORK/demo"
make_demo() {
  [ -f "$DEMO/demo_data.json" ] || "$PY" -c "import sys; from runner.data.synthetic import make_demo_dataset as m; m(sys.argv[1], seed=0, n_patients=int(sys.argv[2]), image_size=int(sys.argv[3]))" "$DEMO" "$DEMO_PATIENTS" "$DEMO_PX"
}
CARD_ARGS=()
if [ "$DEMO_TASK" = effusion-dryrun ]; then  # a small task for the dry run's small data set
  cp tasks/_defaults*.yaml "$CARDS/"  # the task extends them, found beside it
  cat > "$CARDS/$DEMO_TASK.yaml" <<'YAML'
extends: _defaults-demo.yaml
id: effusion-dryrun
title: Effusion (device check dry run)
description: "SYNTHETIC data; device_check.sh's dry run only."
dataset: demo-cxr
label: {id: effusion, name: Effusion}
sampling: {positives: 70, negatives: 70, verify: header}
leaderboard: {table: demo}
YAML
  CARD_ARGS=(--card "$CARDS/$DEMO_TASK.yaml")
fi

# runner doctor: what torch and TensorFlow each see here (TensorFlow in the child process its encoders run in).
if wants doctor; then
  limit="$(limit_for 90)"
  if [ "$limit" -eq 0 ]; then note "runner doctor not started: the budget is spent"
  else
    status=0  # 1 = something an asked-for run needs is missing: the report says what
    timeout "$limit" "$PY" -m runner.cli.main doctor --json > "$OUT_DIR/doctor-$DEVICE.json" 2> "$WORK/doctor.err" \
      || status=$?
    timeout "$limit" "$PY" -m runner.cli.main doctor --no-tensorflow > "$OUT_DIR/doctor-$DEVICE.txt" 2>> "$WORK/doctor.err" || true
    if [ "$status" -le 1 ] && [ -s "$OUT_DIR/doctor-$DEVICE.json" ]; then
      "$PY" - "$OUT_DIR/doctor-$DEVICE.json" > "$OUT_DIR/doctor-$DEVICE.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, tf, smi = r["torch"], r["tensorflow"], r["nvidia_smi"]
gpus = lambda g: "; ".join(x if isinstance(x, str) else f"{x['name']} ({x['free_mib']:,} of {x['total_mib']:,} MiB free)" for x in g) or "none"
print(f"`runner doctor` ({r['seconds']} s): Python {r['python']}\n")
print("| framework | version | built for CUDA | cuDNN | GPUs it sees |\n| --- | --- | --- | --- | --- |")
if t.get("installed"):
    print(f"| torch | {t['version']} | {t['cuda_built'] or '–'} | {t['cudnn'] or '–'} | {gpus(t['gpus'])} |")
if tf.get("installed") and not tf.get("error"):
    print(f"| tensorflow (child process, import {tf['import_s']} s) | {tf['version']} | {tf['cuda_built']} | "
          f"{tf['cudnn_built']} | {gpus(tf['gpus'])} |")
else:
    print(f"| tensorflow | {tf.get('error') or 'not installed'} | | | |")
if smi and smi.get("gpus"):
    print(f"\nnvidia-smi: driver {smi['gpus'][0]['driver']}; {gpus(smi['gpus'])}")
PY
      { echo "### runner doctor"; echo; cat "$OUT_DIR/doctor-$DEVICE.md"; echo; } >> "$REPORT"
    else
      note "runner doctor failed (exit $status): $(tail -n 3 "$WORK/doctor.err" | tr '\n' ' ')"
    fi
  fi
fi

# CXR Foundation through the device path: stand-in SavedModels under the real cards (the model itself is gated).
if wants cxr; then
  if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"; then
    echo "CXR Foundation: not run here: TensorFlow is not installed on this machine (pip install -e '.[tf]'; on a GPU also make install-gpu)." >> "$REPORT"
  else
    limit="$(limit_for $((150 * SLACK)))"
    if [ "$limit" -eq 0 ]; then note "CXR Foundation step not started: the budget is spent"
    else
      started=$SECONDS
      if timeout "$limit" bash -c '
          set -e
          "$0" tests/cxr_foundation_models.py "$1/cxr-snapshot" > /dev/null
          "$0" -m runner.cli.main encoders check cxr-foundation --weights-dir "$1/cxr-snapshot" --device "$2" > "$3"
          ' "$PY" "$WORK" "$DEVICE" "$OUT_DIR/cxr-check-$DEVICE.txt" 2> "$WORK/cxr.err" \
         && make_demo 2>> "$WORK/cxr.err" && limit="$(limit_for $((150 * SLACK)))" && [ "$limit" -gt 0 ] \
         && timeout "$limit" "$PY" -m runner.cli.main "${CARD_ARGS[@]}" eval --task "$DEMO_TASK" \
              --encoder cxr-foundation,random-cnn --weights-dir "$WORK/cxr-snapshot" --data-root "$DEMO" \
              --out "$WORK/cxr-runs" --cache-dir "$WORK/cxr-cache" --device "$DEVICE" --json \
              > "$OUT_DIR/cxr-eval-$DEVICE.json" 2>> "$WORK/cxr.err"; then
        "$PY" - "$OUT_DIR/cxr-eval-$DEVICE.json" "$DEVICE" "$((SECONDS - started))" > "$OUT_DIR/cxr-eval-$DEVICE.md" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
print(f"CXR Foundation (stand-in SavedModels, the paper's 1024² card) then random-cnn, `runner eval --device "
      f"{sys.argv[2]}` ({sys.argv[3]} s with the check and the data):\n")
print("| encoder | status | device its framework used | embed img/s | seconds |\n| --- | --- | --- | ---: | ---: |")
for r in runs:
    result = json.load(open(r["result"])) if r.get("result") else {}
    used = "; ".join(f"{k}: {v}" for k, v in (result.get("environment", {}).get("frameworks") or {}).items()) or "–"
    rate = (result.get("throughput") or {}).get("images_per_s")
    print(f"| {r['encoder']} | {r['status']} | {used} | {'–' if rate is None else rate} | {r['seconds']:.1f} |")
PY
        { echo "### CXR Foundation on the device path"; echo; sed -n '1,3p' "$OUT_DIR/cxr-check-$DEVICE.txt";
          echo; cat "$OUT_DIR/cxr-eval-$DEVICE.md"; echo; } >> "$REPORT"
      else
        note "CXR Foundation step failed or ran over its budget (exit $?): $(tail -n 3 "$WORK/cxr.err" | tr '\n' ' ')"
      fi
    fi
  fi
fi

if wants bench; then
# Timeouts: 150 + 110 + 150 s of benches, 100 s for the demo data and eval; with doctor and CXR Foundation first,
# the BUDGET_S deadline cuts whatever would run past the device call's 10 minutes.
bench_one 150 "$RSS" --encoder-card "$CARDS/bench-densenet121.yaml"  # memory-vs-N probes on this one only
bench_one 110 "" --encoder-card "$CARDS/bench-vit-b14-518.yaml"
# The registry's own random-weights tower card (MedImageInsight's DaViT + projection, the package's init).
if [ "$DEVICE" = cpu ]; then  # 360 M parameters at 480 px, built twice: minutes on a CPU, past any dry-run budget
  echo "MedImageInsight tower (medimageinsight-random): not benched in the dry run; DEVICE=cuda benches it." >> "$REPORT"
elif "$PY" -c "from registry.cards import load_registry; load_registry().encoders['medimageinsight-random']" 2>/dev/null; then
  bench_one 150 "" --encoder medimageinsight-random
else
  note "medimageinsight-random: no such card in this registry, so the MedImageInsight tower was not benched"
fi
fi

# runner eval of a demo task on the device: `runner demo`'s synthetic data set, one task, the built-in random-cnn.
if ! wants eval; then
  :
elif ! "$PY" -c "import lightgbm, sklearn" 2>/dev/null; then
  note "runner eval skipped: lightgbm or scikit-learn is not importable here (the classifier stage needs both)"
elif [ "$(limit_for 100)" -eq 0 ]; then
  note "runner eval not started: the ${BUDGET_S:-560} s budget is spent"
else
  started=$SECONDS
  if make_demo 2> "$WORK/eval.err" && limit="$(limit_for 100)" && [ "$limit" -gt 0 ] && timeout "$limit" "$PY" -m runner.cli.main "${CARD_ARGS[@]}" eval \
      --task "$DEMO_TASK" --encoder random-cnn --data-root "$DEMO" --out "$WORK/runs" --cache-dir "$WORK/cache" \
      --device "$DEVICE" --json > "$OUT_DIR/eval-$DEVICE-demo.json" 2>> "$WORK/eval.err"; then
    "$PY" - "$OUT_DIR/eval-$DEVICE-demo.json" "$DEVICE" "$((SECONDS - started))" > "$OUT_DIR/eval-$DEVICE-demo.md" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
print(f"`runner eval --device {sys.argv[2]}` on the synthetic demo data ({sys.argv[3]} s with making the data):\n")
print("| task | encoder | status | AUROC | seconds |\n| --- | --- | --- | ---: | ---: |")
for r in runs:
    auroc = (r.get("auroc") or {}).get("mean")
    print(f"| {r['task']} | {r['encoder']} | {r['status']} | {'–' if auroc is None else f'{auroc:.3f}'} | "
          f"{r.get('seconds', 0):.1f} |")
PY
    { echo "### runner eval"; echo; cat "$OUT_DIR/eval-$DEVICE-demo.md"; echo; } >> "$REPORT"
  else
    note "runner eval of $DEMO_TASK failed or ran over its 100 s (exit $?): $(tail -n 3 "$WORK/eval.err" | tr '\n' ' ')"
  fi
fi
cat "$REPORT"
