#!/usr/bin/env bash
# One GPU session (device tool): speed benchmarks, then the committed CIFAR-100 study.
# Expects the data store copied to /tmp/cifar (part1 + part2 of ../shared/tools/device-data).
# Everything it produces lands in $OUT (speed_gpu.jsonl, study.tgz without checkpoints, log).
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 CIFARLAB_DATA=/tmp/cifar/data
python3 /tmp/cifar/materialize /tmp/cifar/data >/dev/null || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
timeout 90 python3 benchmarks/speed.py --out "$OUT/speed_gpu.jsonl"
timeout 90 python3 benchmarks/speed.py --preset c100-resnet9 --images 25600 --out "$OUT/speed_gpu.jsonl"
timeout "${STUDY_S:-400}" python3 -m cifarlab ablate studies/cifar100.yaml --out /tmp/study/cifar100
tar czf "$OUT/study.tgz" --exclude='*.pt' -C /tmp/study cifar100
