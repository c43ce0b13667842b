#!/usr/bin/env bash
# The GPU benchmark and checks, in one go (about 7 minutes on an H100 or H200 before step 4, the
# job path, was added; its server start and two compiles add a minute or two, not yet measured):
#   0. the CUDA tests (tests/gpu: bf16 training, the network against the CPU, tiles),
#   1. our training step at 256 px and inference at 512 and 1024 px against the pytorch/examples
#      recipe, fp32 and bf16, eager and compiled,
#   2. where the time goes (scripts/gpu_profile.py),
#   3. a 4096x3072 image stylised in tiles (time, peak memory),
#   4. a job through the service against its bare step (`checkerless bench --job-path`),
#   5. a real style trained for 2,000 steps at 256 px through `checkerless train` (the path a
#      job takes: bf16, compiled, DataLoader workers), its network
#      exported to ONNX and TorchScript and checked, and bf16 stylising measured against fp32,
# writing every table to $OUT (default: runs/gpu-bench). `--dry-run` does the same on the CPU
# at tiny sizes, to check the script itself (tests/test_gpu_bench.py runs it); its step 5 trains
# and exports the plain network (DRY_NET), not the defaults' (filtered ReLUs, resize-lowpass,
# blur-stride, stability loss: its ONNX export alone takes twice the plain one's on a small CPU).
# The dry run checks the script's wiring; each command is tested elsewhere, the defaults'
# network's export too (tests/test_cli_export.py, tests/e2e/test_live.py).
# PYTHON=python3 uses an interpreter that already has torch and the project's needs (a lent GPU
# machine has no internet); by default .venv is made with scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu-bench}"
mkdir -p "$OUT"
if [ "${1:-}" = "--dry-run" ]; then
  DEVICE=cpu TRAIN=(--size 32 --batch 2 --steps 2 --warmup 0 --infer-sizes "64" --no-compile)
  TILED="160x120"; TILE=64; STEPS=1; SIZE=32; BATCH=2; JOB_STEPS=5
  DRY_NET=(--decoder resize-nearest --downsample stride-conv --plain-relu --stability-weight 0)
else
  DEVICE=gpu TRAIN=(--size 256 --batch 16 --steps 20 --infer-sizes "512 1024")
  TILED="4096x3072"; TILE=1024; STEPS="${TRAIN_STEPS:-2000}"; SIZE=256; BATCH=8; JOB_STEPS=400
  DRY_NET=()
fi
if [ -z "${PYTHON:-}" ]; then
  bash scripts/setup.sh
  PYTHON=.venv/bin/python
fi
CLI=("$PYTHON" -m service.cli)
{
  echo "# checkerless GPU benchmark, $(date -u +%Y-%m-%dT%H:%MZ), device: $DEVICE"
  "$PYTHON" -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, '| lightning', pl.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} | tee "$OUT/device.txt"
if [ "$DEVICE" = gpu ]; then
  # A failing test is reported, and the benchmark still runs: the machine's time is short.
  "$PYTHON" -m pytest tests/gpu -m cuda -q -p no:cacheprovider -W ignore::DeprecationWarning --tb=short \
    > "$OUT/cuda-tests.txt" 2>&1 || echo "CUDA tests FAILED: see $OUT/cuda-tests.txt"
  tail -3 "$OUT/cuda-tests.txt"
fi
COLUMNS=160 "${CLI[@]}" bench --reference --device "$DEVICE" "${TRAIN[@]}" | tee "$OUT/reference.txt"
if [ "$DEVICE" = gpu ]; then
  PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" scripts/gpu_profile.py 256 16 > "$OUT/profile.txt" 2>&1 \
    || echo "profile failed: see $OUT/profile.txt"
fi
COLUMNS=160 "${CLI[@]}" bench --tiling "$TILED" --tile "$TILE" --device "$DEVICE" | tee "$OUT/tiling.txt"
COLUMNS=160 "${CLI[@]}" bench --job-path --size "$SIZE" --batch "$BATCH" --job-steps "$JOB_STEPS" --steps 5 \
  | tee "$OUT/job-path.txt"
# A real style through the command a user runs; its network is exported and checked.
"${CLI[@]}" train hubble --steps "$STEPS" --size "$SIZE" --batch "$BATCH" --checkpoint-every "$STEPS" \
  --device "$DEVICE" --out "$OUT/run" --json ${DRY_NET[@]+"${DRY_NET[@]}"} > "$OUT/train.json"
for format in onnx torchscript; do
  "${CLI[@]}" export "$OUT/run/last.ckpt" --format "$format" --out "$OUT/net.$format" | tee "$OUT/export-$format.txt"
done
if [ "$DEVICE" = gpu ]; then
  "$PYTHON" - "$OUT/run/last.ckpt" <<'PY' | tee "$OUT/bf16-stylise.txt"
import sys, torch
from models.bench import psnr
from models.checkpoint import load_network
from models.builtin_images import BUILTIN_PHOTOS
from models.images import to_tensor
net = load_network(sys.argv[1])[0].cuda().eval()
for name in ("astronaut", "coffee", "chelsea"):
    x = to_tensor(BUILTIN_PHOTOS[name]().resize((1024, 768)))[None].cuda()
    with torch.inference_mode():
        fp32 = net(x)[0].cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = net(x)[0].float().cpu()
    print(f"{name} 1024x768: bf16 against fp32 stylised, PSNR {psnr(bf16, fp32):.1f} dB")
PY
fi
echo "tables in $OUT"
