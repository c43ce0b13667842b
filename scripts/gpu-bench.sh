#!/usr/bin/env bash
# The GPU benchmark, in one go (under 8 minutes on an H100): install, then
#   1. training step at 256 px and inference at 1024 px against the pytorch/examples recipe,
#   2. a 4096x3072 image stylised in tiles (time, peak memory),
#   3. ONNX and TorchScript export checked against the network,
# writing every table to $OUT (default: runs/gpu-bench). `--dry-run` does the same on the
# CPU at tiny sizes, to check the script itself (tests/test_gpu_bench.py runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu-bench}"
mkdir -p "$OUT"
if [ "${1:-}" = "--dry-run" ]; then
  DEVICE=cpu TRAIN=(--size 32 --batch 2 --steps 2 --warmup 0 --infer-sizes "64" --no-compile)
  TILED="160x120"; TILE=64; STEPS=1; SIZE=32
else
  DEVICE=gpu TRAIN=(--size 256 --batch 16 --steps 20 --infer-sizes "1024")
  TILED="4096x3072"; TILE=1024; STEPS=50; SIZE=256
  bash scripts/setup.sh
fi
CLI=(.venv/bin/python -m service.cli)
{
  echo "# checkerless GPU benchmark, $(date -u +%Y-%m-%dT%H:%MZ), device: $DEVICE"
  .venv/bin/python -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} | tee "$OUT/device.txt"
COLUMNS=160 "${CLI[@]}" bench --reference --device "$DEVICE" "${TRAIN[@]}" | tee "$OUT/reference.txt"
COLUMNS=160 "${CLI[@]}" bench --tiling "$TILED" --tile "$TILE" --device "$DEVICE" | tee "$OUT/tiling.txt"
# A network to export: a short real run (the export check does not need a trained style).
"${CLI[@]}" train brick --steps "$STEPS" --size "$SIZE" --batch 4 --device "$DEVICE" --out "$OUT/run" --json > "$OUT/train.json"
for format in onnx torchscript; do
  "${CLI[@]}" export "$OUT/run/last.ckpt" --format "$format" --out "$OUT/net.$format" | tee "$OUT/export-$format.txt"
done
echo "tables in $OUT"
