#!/usr/bin/env bash
# The GPU checks of docs/gpu.md as one script, for a GPU machine lent for minutes: versions,
# `make gpu-check` (rows per decode step, tokens/s, step times, peak memory, costs), then
# `make gpu-smoke` (the paper profile end to end), each under a time limit, their figures and
# logs into $OUT (default gpu-out). Carry .gpu-wheels/ made here first:
#   make gpu-wheels GPU_WHEELS_ARGS="--for smoke --present benchmarks/gpu/image-packages.txt"
set -u
out=${OUT:-gpu-out}
mkdir -p "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
python3 -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__,
torch.version.cuda, torch.cuda.is_available(), transformers.__version__)" > "$out/versions.txt" 2>&1
start=$(date +%s)
timeout "${CHECK_S:-360}" make -s gpu-check GPU_CHECK_ARGS="--out $out/gpu-check.json" \
  > "$out/gpu-check.log" 2>&1
echo "gpu-check: rc $? in $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
start=$(date +%s)
timeout "${SMOKE_S:-420}" make -s gpu-smoke GPU_SMOKE_ARGS="--folder /tmp/gpu-smoke" \
  > "$out/gpu-smoke.log" 2>&1
echo "gpu-smoke: rc $? in $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
cp /tmp/gpu-smoke/gpu-smoke.json "$out/" 2>/dev/null
tail -n 5 "$out/gpu-check.log" "$out/gpu-smoke.log"
