#!/usr/bin/env bash
# One rented-GPU session (issues 15, 16, 17): the trainings that would take this 2-core CPU ~12 hours, run side by
# side on one GPU within a fixed deadline, then the CUDA checks of the product path. Needs the training images
# packed into the repo (python scripts/pack_device_data.py ../shared/data .devdata) and carried with the tree.
#
#   OUT=/tmp/out scripts/device_session.sh                 # on the GPU machine (device tool: carry .devdata)
#   OUT=/tmp/out DEV=cpu TINY=1 scripts/device_session.sh  # rehearsal: a few steps of each job, in a clean clone
#                                                          # (it trains into runs/; jdsr refuses to overwrite a run)
#
# Jobs (each a plain jdsr command; configs/ hold the recipes, flags below only adapt them to this machine), chosen
# by JOBS (space-separated; default: none, all done; the CUDA checks still run):
#   span        span-x4 + span-x4-ft: issue 16's SPAN candidate (done 2026-11-30: under imdn-x4, not adopted)
#   small       imdn-small-x4/-x2: issue 15's fast models (done 2026-11-30: bundled)
#   photo       photo-x4, photo-x2: issue 17's photo models (done 2026-11-30: bundled, the defaults)
#   photo-mix   photo-x4-mix, photo-x2-mix: the photo recipe with [degradation] clean_prob (configs/photo-x*-mix.toml;
#               both bundled from CPU runs at their full 4000 steps (photo-x2 in bf16 on an AMX CPU,
#               2026-12-01): a GPU run here is only worth it at more steps than that)
# At DEADLINE seconds any job still running gets SIGTERM (it stops at a step boundary; its last/ is kept and
# `jdsr train --resume` continues it). Results come back as one .tgz per run plus logs.tgz in $OUT: best/, the
# log and config, and last/config.json only (SPAN's last/ is 42 MB, over the tool's 16 MiB per file) except
# for the small students.
set -u
PY=${PY:-python3}
DEV=${DEV:-cuda}
TINY=${TINY:-0}
DEADLINE=${DEADLINE:-460}
DATA=.devdata/train
JOBS=${JOBS:-}  # nothing pending: by default only the CUDA checks below (bench_cuda: the engine ceiling)
want() { [[ " $JOBS " == *" $1 "* ]]; }
LOGS=runs/device-logs
mkdir -p "$LOGS" "$OUT"
# one OpenCV thread per process: the data workers are already one process per core (cv2.setNumThreads in a
# forked worker deadlocks once the parent has used its pool)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENCV_FOR_THREADS_NUM=1 JDSR_DATA=$PWD/.devdata
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }

if [ "$TINY" = 1 ]; then
  SPAN=(--steps 20 --val-every 10 --save-every 10); SPAN_FT=(--steps 10 --val-every 10 --save-every 10)
  SMALL=(--steps 20 --val-every 10 --save-every 10); P4=(--steps 10 --val-every 10 --save-every 10)
  P2=(--steps 10 --val-every 10 --save-every 10); W=(1 1 1 1 1)
else
  SPAN=(); SPAN_FT=(); SMALL=()
  P4=(--steps 4000 --val-every 500 --save-every 250); P2=(--steps 4000 --val-every 500 --save-every 250)
  # data workers on 16 cores: the realistic chain is CPU work (~24 ms per ×4 sample, ~7 ms per ×2 one); bicubic
  # pairs are made once, so one worker feeds a GPU run
  W=(1 1 6 2 1)
fi

stamp "start on $DEV"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch, PIL; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'pillow', PIL.__version__)"
$PY -c "from PIL import Image; import glob; Image.open(sorted(glob.glob('$DATA/*/*.webp'))[0]).load(); print('webp ok')" \
  || { echo "cannot read the packed WebP training images"; exit 1; }

jdsr() { $PY -m jdsr_cli "$@"; }
want span && ( jdsr train $DATA --config configs/span-x4.toml --out runs/span-x4 --device "$DEV" --workers "${W[0]}" "${SPAN[@]}" \
  && jdsr train $DATA --config configs/span-x4-ft.toml --out runs/span-x4-ft --init runs/span-x4/best \
       --device "$DEV" --workers "${W[0]}" "${SPAN_FT[@]}" ) >"$LOGS/span-x4.log" 2>&1 &
want small && jdsr distill $DATA --config configs/imdn-small-x4.toml --out runs/imdn-small-x4 --device "$DEV" \
  --workers "${W[1]}" "${SMALL[@]}" >"$LOGS/imdn-small-x4.log" 2>&1 &
want small && jdsr distill $DATA --config configs/imdn-small-x2.toml --out runs/imdn-small-x2 --device "$DEV" \
  --workers "${W[4]}" "${SMALL[@]}" >"$LOGS/imdn-small-x2.log" 2>&1 &
want photo && jdsr train $DATA --config configs/photo-x4.toml --out runs/photo-x4 --device "$DEV" --precision fp32 \
  --workers "${W[2]}" "${P4[@]}" >"$LOGS/photo-x4.log" 2>&1 &
want photo && jdsr train $DATA --config configs/photo-x2.toml --out runs/photo-x2 --device "$DEV" --precision fp32 \
  --workers "${W[3]}" "${P2[@]}" >"$LOGS/photo-x2.log" 2>&1 &
want photo-mix && jdsr train $DATA --config configs/photo-x4-mix.toml --out runs/photo-x4-mix --device "$DEV" \
  --workers "${W[2]}" "${P4[@]}" >"$LOGS/photo-x4-mix.log" 2>&1 &
want photo-mix && jdsr train $DATA --config configs/photo-x2-mix.toml --out runs/photo-x2-mix --device "$DEV" \
  --workers "${W[3]}" "${P2[@]}" >"$LOGS/photo-x2-mix.log" 2>&1 &

while [ -n "$(jobs -rp)" ] && [ $(( $(date +%s) - start )) -lt "$DEADLINE" ]; do
  sleep 5
  if [ $(( ($(date +%s) - start) % 60 )) -lt 5 ]; then
    stamp "running: $(jobs -rp | wc -l) jobs"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
    for f in "$LOGS"/*.log; do echo "  $(basename "$f"): $(tail -c 300 "$f" | tr '\r' '\n' | grep -v '^\s*$' | tail -1)"; done
  fi
done
if [ -n "$(jobs -rp)" ]; then
  stamp "deadline: stopping $(jobs -rp | wc -l) jobs"
  pkill -TERM -f "jdsr_cli (train|distill)"
  for _ in $(seq 60); do [ -z "$(jobs -rp)" ] && break; sleep 1; done
fi
wait
stamp "trainings done"
# pack the runs before the CUDA checks, so a command timeout during the checks still brings them back
for run in span-x4 span-x4-ft imdn-small-x4 imdn-small-x2 photo-x4 photo-x2 photo-x4-mix photo-x2-mix; do
  [ -d "runs/$run" ] || continue
  case $run in imdn-small-*) skip=() ;; *) skip=(--exclude "runs/$run/last/training_state.pt" --exclude "runs/$run/last/model.safetensors") ;; esac
  tar czf "$OUT/$run.tgz" "${skip[@]}" "runs/$run"
done
tar czf "$OUT/logs.tgz" "$LOGS"
stamp "runs packed"

if [ "$DEV" = cuda ]; then
  timeout 120 $PY bench/bench_cuda.py --candidate imdn-small-x4 --candidate span-x4 \
    >"$LOGS/bench_cuda.json" 2>&1
  stamp "bench_cuda rc=$?"
  for p in fp32 fp16 bf16; do
    timeout 40 $PY -m jdsr_cli eval imdn-x4 --data .devdata/benchmark --sets Set5 --device cuda --precision $p \
      >"$LOGS/eval-imdn-x4-$p.txt" 2>&1
  done
  timeout 90 $PY -m pytest -q -p no:cacheprovider tests/test_engine.py tests/test_resize.py tests/test_onnx.py -k cuda \
    >"$LOGS/pytest-cuda.txt" 2>&1
  stamp "eval + pytest done"
fi

tar czf "$OUT/logs.tgz" "$LOGS"
ls -la "$OUT"
stamp "end"
