#!/usr/bin/env bash
# Every GPU measurement of issue 11 (time to accuracy) in one call of the device tool: the step limits
# add up to 550 s (+ data), under the 600-s call limit.
# Staging, from the repository root here (each `run` carries < 64 MiB; the machine stays warm ~30 s):
#   ../shared/tools/device-data cifar-100 && mv .device-data .device-c100
#   ../shared/tools/device-data cifar-10  && mv .device-data .device-c10
#   pip download airbench --no-deps -d .device-wheels       # the CIFAR-10 peer (no internet there)
#   run carry=[.device-c100/part1]  "mkdir -p /tmp/c100 && cp -r .device-c100/part1/. /tmp/c100/"
#   run carry=[.device-c100/part2]  "cp -r .device-c100/part2/. /tmp/c100/"
#   run carry=[.device-c10/part1]   "mkdir -p /tmp/c10 && cp -r .device-c10/part1/. /tmp/c10/"
#   run carry=[.device-c10/part2, .device-wheels]  "cp -r .device-c10/part2/. /tmp/c10/ && bash benchmarks/gpu_run.sh"
# The --budget ladder (30 s, 90 s, 5 min; CIFAR-100 only, ~8 min with start-ups) is a call of its own:
#   run carry=[.device-c100/part2]  "cp -r .device-c100/part2/. /tmp/c100/ && LADDER=1 bash benchmarks/gpu_run.sh"
# (.device-c100, .device-c10 and .device-wheels are git-ignored.) Records land in $OUT; copy them into
# benchmarks/results/ here and run `make readme`. Steps are ordered by value and each has a timeout, so a
# slow step costs its own budget only.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 CIFARLAB_DATA=/tmp/cifar/data
export CIFARLAB_GIT_COMMIT=${CIFARLAB_GIT_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 /tmp/c100/materialize "$CIFARLAB_DATA" >/dev/null || exit 1
[ -f /tmp/c10/materialize ] && python3 /tmp/c10/materialize "$CIFARLAB_DATA" >/dev/null
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
TTA="$OUT/time_to_accuracy.jsonl"
step() { local s=$1; shift; echo "== $* (limit ${s}s)"; timeout "$s" "$@" 2>&1 | tail -8; }
# LADDER=1: the --budget ladder of issue 17 instead of the steps below (one seed per budget; each step's limit
# is its budget + 40 s for start-up, so a run that overran its budget by more than that is cut and shows as
# missing). The records say how far each run kept to its budget (budget_runs.jsonl: wall_s, budget_s).
if [ "${LADDER:-0}" = 1 ]; then
  for b in 30s 90s 5m; do
    s=$(python3 -c "from cifarlab.budget import parse_duration as p; print(int(p('$b')) + 40)")
    step "$s" python3 -m cifarlab bench --budget "$b" --dataset cifar100 --seed-list 0 --record "$OUT/budget_runs.jsonl"
  done
  ls -la "$OUT"; exit 0
fi
# 1. CIFAR-100 time to accuracy (targets: >= 70% in 2.5 s, >= 75% in 6 s, >= 80% in 15 s)
step 120 python3 -m cifarlab bench c100-gpu-fast --seeds 3 --record "$TTA"
# 1b. CUDA graphs of the train step (torch.compile mode reduce-overhead): same math, one seed for the clock
step 60 python3 -m cifarlab bench c100-gpu-fast --seed-list 0 --set train.compile_mode=reduce-overhead \
  --record "$OUT/cudagraphs.jsonl"
# 2. the real loop against a bare step (target: >= 95%)
step 45 python3 benchmarks/speed.py --preset c100-gpu-fast --images 51200 --out "$OUT/speed_gpu.jsonl"
# 3. CIFAR-10: cifarlab, then the airbench package on the same GPU, same data
if [ -d "$CIFARLAB_DATA/cifar-10-batches-py" ]; then
  step 100 python3 -m cifarlab bench c10-gpu-fast --seeds 3 --record "$TTA"
  ab=$(ls .device-wheels/airbench-*.tar.gz 2>/dev/null | head -1)
  if [ -n "$ab" ]; then
    mkdir -p /tmp/ab && tar xzf "$ab" -C /tmp/ab
    export PYTHONPATH=$PYTHONPATH:$(ls -d /tmp/ab/airbench-* | head -1)
    step 75 python3 benchmarks/airbench_side_by_side.py \
      --runs 3 --out "$OUT/airbench_side_by_side.jsonl"
  fi
fi
# 4. the accuracy end of the CIFAR-100 curve
step 150 python3 -m cifarlab bench c100-gpu-best --seeds 3 --record "$TTA"
# 5. (DDP=1) torchrun with one process matches the plain run (issue 13); past the 600-s call otherwise
[ "${DDP:-0}" = 1 ] && step 90 python3 benchmarks/ddp_check.py c100-gpu-fast --out "$OUT/ddp_check.jsonl"
ls -la "$OUT"
