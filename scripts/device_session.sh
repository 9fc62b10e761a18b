#!/usr/bin/env bash
# One rented-GPU session (issue 29): the sharp photo models distilled from Real-ESRGAN and the tile-exact (static
# channel statistics) fine-tunes of every bundled IMDN model, side by side on one GPU within a fixed deadline.
# Earlier sessions' jobs (span, small, photo, photo-mix: all done and bundled) are in this file's git history.
#
# The device tool sends at most 64 MiB a call: the tracked tree is 27 MB, the teacher 34 MB, BSD200 as lossless
# WebP 34 MB. So two calls, the second while the machine is still warm (it keeps /root between calls):
#   1. carry .teacher (the realesrgan-x4plus.param/.bin pair) and .photocrops (256 px centre crops of the real
#      photos of experiments/fetch_photos.py, 2.4 MB): scripts/device_session.sh stash
#   2. carry .devdata/train/BSD200 (python scripts/pack_device_data.py ../shared/data .devdata):
#      OUT=$OUT scripts/device_session.sh
# If the second call finds a fresh machine (no stashed teacher), the distillations are skipped, the rest runs.
# Rehearsal on the CPU, in a clean clone: OUT=/tmp/out DEV=cpu TINY=1 STASH=/tmp/stash scripts/device_session.sh
#
# Jobs (JOBS, space-separated; default: sharp-gan sharp-unet static):
#   sharp        photo-x4-sharp, photo-x2-sharp: output distillation from RealESRGAN_x4plus (configs/*-sharp.toml)
#   sharp-feat   photo-x4-sharp-feat: the same plus a FitNet term on the teacher's RRDB features (does it help?)
#   sharp-gan    photo-x4-sharp-gan: caches of the teacher's outputs (jdsr distill-cache: GAN_PAIRS on photos as
#                they are, half as many realistic), then L1 to them + an adversarial term
#                (--method adversarial, configs/photo-x4-sharp-asis.toml; docs/photo-results.md says why as-is)
#   sharp-unet   photo-x4-sharp-unet: the same caches (made once for both), the same recipe with the U-Net judge
#                (configs/photo-x4-sharp-unet.toml), side by side with sharp-gan
#   static       photo-faithful-x2 and -x4 (the L1 photo models, bundled with static channel statistics after a short CPU fine-tune)
#                fine-tuned further with configs/<name>-static.toml, from the bundled weights
# sharp and sharp-feat (the realistic chain alone, where the teacher mostly smooths) run only when named.
# At DEADLINE seconds every training still running gets SIGTERM: it saves last/ at the step it stopped after;
# the learning rates are constant with EMA, so best/ and last/ are usable at any stop. Results come back in
# $OUT as .tgz files (the tool takes at most 8 files of 16 MiB) plus logs.tgz.
set -u
PY=${PY:-python3}
DEV=${DEV:-cuda}
TINY=${TINY:-0}
DEADLINE=${DEADLINE:-420}
STASH=${STASH:-/root/jdsr-stash}
DATA=${DATA:-.devdata/train/BSD200}
JOBS=${JOBS:-sharp-gan sharp-unet static}
GAN_PAIRS=${GAN_PAIRS:-16000}
STATIC_MODELS=(photo-faithful-x2 photo-faithful-x4)  # the L1 photo models (the sharp defaults: configs/*-sharp-texgrid.toml)
want() { [[ " $JOBS " == *" $1 "* ]]; }
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }

if [ "${1:-}" = stash ]; then  # call 1: keep the teacher on the machine for call 2, and look at the machine
  mkdir -p "$STASH" && cp -r .teacher .photocrops "$STASH/" && ls -la "$STASH/.teacher" && ls "$STASH/.photocrops" | wc -l
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  nproc; free -g | head -2
  exit 0
fi

LOGS=runs/device-logs
mkdir -p "$LOGS" "$OUT"
# one OpenCV/OpenMP thread per process: the data workers are already one process each
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENCV_FOR_THREADS_NUM=1
TEACHER=$STASH/.teacher/realesrgan-x4plus.param
[ -f "$TEACHER" ] || TEACHER=.teacher/realesrgan-x4plus.param
if [ ! -f "$TEACHER" ]; then
  echo "no teacher at $STASH/.teacher (a fresh machine?): skipping the distillations"
  JOBS=${JOBS//sharp-feat/}; JOBS=${JOBS//sharp-gan/}; JOBS=${JOBS//sharp-unet/}; JOBS=${JOBS//sharp/}
fi

if [ "$TINY" = 1 ]; then
  RUN=(--steps 4 --val-every 2 --save-every 2 --batch-size 2); DEADLINE=${TINY_DEADLINE:-900}
  GAN_PAIRS=24
  CROP=32
else
  RUN=(); CROP=256
fi

stamp "start on $DEV, jobs: $JOBS"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
$PY -c "from PIL import Image; import glob; Image.open(sorted(glob.glob('$DATA/*.webp'))[0]).load(); print('webp ok')" \
  || { echo "cannot read the packed WebP training images in $DATA"; exit 1; }

jdsr() { $PY -m jdsr_cli "$@"; }

if want sharp; then
  jdsr distill "$DATA" --config configs/photo-x4-sharp.toml --teacher "$TEACHER" --device "$DEV" --workers 4 \
    --patch-size 48 "${RUN[@]}" >"$LOGS/photo-x4-sharp.log" 2>&1 &
  jdsr distill "$DATA" --config configs/photo-x2-sharp.toml --teacher "$TEACHER" --device "$DEV" --workers 2 \
    "${RUN[@]}" >"$LOGS/photo-x2-sharp.log" 2>&1 &
fi
if want sharp-feat; then
  jdsr distill "$DATA" --config configs/photo-x4-sharp.toml --teacher "$TEACHER" --device "$DEV" --workers 3 \
    --patch-size 48 --kd-loss fitnet --taps-student body.1,body.3,body.5 --taps-teacher body.7,body.15,body.22 \
    --out runs/photo-x4-sharp-feat "${RUN[@]}" >"$LOGS/photo-x4-sharp-feat.log" 2>&1 &
fi
if want sharp-gan || want sharp-unet; then  # the caches first (the teacher alone on the GPU for a minute or two),
  # then the students side by side: photos as they are (where the teacher draws texture) and half as many realistic
  cache() { jdsr distill-cache "$DATA" --teacher "$TEACHER" -s 4 --patch-size 64 --batch-size 32 --device "$DEV" "$@"; }
  mix() { mkdir -p runs/cache-x4-mix/target runs/cache-x4-mix/lr && for c in asis real; do
            cp -al "runs/cache-x4-$c/target" "runs/cache-x4-mix/target/$c" && cp -al "runs/cache-x4-$c/lr" "runs/cache-x4-mix/lr/$c"
          done; }
  student() { jdsr train runs/cache-x4-mix/target --lr-dir runs/cache-x4-mix/lr --config "configs/$1.toml" \
                --out "runs/$2" --steps 6000 --device "$DEV" --workers 3 "${RUN[@]}" >"$LOGS/$2.log" 2>&1; }
  ( cache --pairs "$GAN_PAIRS" --degradation none -o runs/cache-x4-asis >"$LOGS/cache-x4.log" 2>&1 \
    && cache --pairs $(( GAN_PAIRS / 2 )) -o runs/cache-x4-real >>"$LOGS/cache-x4.log" 2>&1 && mix \
    && { if want sharp-gan; then student photo-x4-sharp-asis photo-x4-sharp-gan & fi
         if want sharp-unet; then student photo-x4-sharp-unet photo-x4-sharp-unet & fi; wait; } ) &
fi
if want static; then
  for name in "${STATIC_MODELS[@]}"; do
    case $name in photo-faithful-x4) w=2 ;; *) w=1 ;; esac
    jdsr train "$DATA" --config "configs/${name/faithful-/}-static.toml" --init "$name" --out "runs/${name/faithful-/}-static" \
      --device "$DEV" --workers $w "${RUN[@]}" >"$LOGS/$name-static.log" 2>&1 &
  done
fi

while [ -n "$(jobs -rp)" ] && [ $(( $(date +%s) - start )) -lt "$DEADLINE" ]; do
  sleep 5
  if [ $(( ($(date +%s) - start) % 60 )) -lt 5 ]; then
    stamp "running: $(jobs -rp | wc -l) jobs"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
    for f in "$LOGS"/*sharp*.log "$LOGS"/*static.log; do
      [ -f "$f" ] && echo "  $(basename "$f"): $(tail -c 300 "$f" | tr '\r' '\n' | grep -v '^\s*$' | tail -1)"
    done
  fi
done
if [ -n "$(jobs -rp)" ]; then
  stamp "deadline: stopping $(jobs -rp | wc -l) jobs"
  pkill -TERM -f "jdsr_cli (train|distill)"
  for _ in $(seq 90); do [ -z "$(jobs -rp)" ] && break; sleep 1; done
fi
wait
stamp "trainings done"

# pack: the sharp runs whole but the training state (they may be continued on a CPU from last/), the static
# fine-tunes' best/ and logs; at most 8 files of 16 MiB
pack() { local out=$1; shift; local have=(); for p in "$@"; do [ -e "$p" ] && have+=("$p"); done
         [ ${#have[@]} -gt 0 ] && tar czf "$OUT/$out" --exclude training_state.pt "${have[@]}"; }
pack photo-x4-sharp.tgz runs/photo-x4-sharp
pack photo-x2-sharp.tgz runs/photo-x2-sharp
pack photo-x4-sharp-feat.tgz runs/photo-x4-sharp-feat/best runs/photo-x4-sharp-feat/log.jsonl
pack photo-x4-sharp-gan.tgz runs/photo-x4-sharp-gan/best runs/photo-x4-sharp-gan/last runs/photo-x4-sharp-gan/log.jsonl \
  runs/photo-x4-sharp-gan/config.toml
pack photo-x4-sharp-unet.tgz runs/photo-x4-sharp-unet/best runs/photo-x4-sharp-unet/last \
  runs/photo-x4-sharp-unet/log.jsonl runs/photo-x4-sharp-unet/config.toml
pack static.tgz runs/photo-x2-static/best runs/photo-x4-static/best runs/*-static/log.jsonl
tar czf "$OUT/logs.tgz" "$LOGS"
stamp "runs packed"

# what users see, on the real photos (the benchmark sets do not fit the transfer; they are measured on a CPU):
# PSNR-Y to the teacher and NIQE, every network in fp32 (TF32 off), whole images
if [ -d "$STASH/.photocrops" ] && [ -f "$TEACHER" ]; then
  models=(--model bicubic --model imdn-x4 --model photo-faithful-x4 --model photo-x4)
  for run in runs/photo-x4-static runs/photo-x4-sharp runs/photo-x4-sharp-feat runs/photo-x4-sharp-gan \
             runs/photo-x4-sharp-unet; do
    [ -d "$run/best" ] && models+=(--model "$run/best")
  done
  timeout 240 $PY experiments/photo_results.py --sets "" --photos "$STASH/.photocrops" --crop $CROP --teacher "$TEACHER" \
    --device "$DEV" "${models[@]}" --json "$OUT/photo-results-gpu.json" >"$LOGS/photo-results.log" 2>&1
  stamp "photo results rc=$?"
  tar czf "$OUT/logs.tgz" "$LOGS"
fi
ls -la "$OUT"
stamp "end"
