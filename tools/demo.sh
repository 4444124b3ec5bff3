#!/usr/bin/env bash
# The whole loop on a fresh machine: set-up -> generate a nuScenes-format data set ->
# convert it with mmdet3d's converter -> train the synthetic CMT config -> test it through
# NuScenesMetric (nuscenes-devkit DetectionEval) -> a picture of its predictions.
#   bash tools/demo.sh                  # the default schedule (see configs/synthetic/)
#   EPOCHS=N bash tools/demo.sh         # another schedule length
#   CONFIG=... bash tools/demo.sh       # another config (e.g. the longer schedule)
#   SEED=S bash tools/demo.sh           # another training seed (randomness.seed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA=data/synthetic_nuscenes
CONFIG=${CONFIG:-configs/synthetic/cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py}
WORK=work_dirs/demo
PY=.venv/bin/python
t() { date +%s; }

bash tools/setup_env.sh
mkdir -p "$WORK"
T0=$(t)
echo; echo "== 1/5 generate $DATA =="
# 8 train scenes x 10 samples, 2 val scenes x 30 samples (60 val samples to rank models)
$PY tools/create_synthetic_nuscenes.py --out "$DATA" --val-samples-per-scene 30 --overwrite
T1=$(t)
echo; echo "== 2/5 convert with mmdet3d's create_data (nuscenes, v1.0-mini) =="
$PY tools/create_data.py nuscenes --root-path "$DATA" --out-dir "$DATA" \
  --extra-tag nuscenes --version v1.0-mini > "$WORK/create_data.log" 2>&1 \
  || { tail -30 "$WORK/create_data.log"; exit 1; }
tail -n 4 "$WORK/create_data.log"
T2=$(t)
echo; echo "== 3/5 train $CONFIG (log: $WORK/train.log) =="
OPTS=(train_cfg.val_interval=1000)   # the demo tests once, in step 4
# the synthetic configs' cosine decay (their second LR scheduler) must end with the training
[ -n "${EPOCHS:-}" ] && OPTS+=(train_cfg.max_epochs="$EPOCHS" param_scheduler.1.T_max="$EPOCHS"
                               param_scheduler.1.end="$EPOCHS")
[ -n "${SEED:-}" ] && OPTS+=(randomness.seed="$SEED")
rm -f "$WORK/last_checkpoint"
# the progress bar is on stderr (the terminal), mmengine's log on stdout (train.log)
$PY tools/train.py "$CONFIG" --work-dir "$WORK" --cfg-options "${OPTS[@]}" > "$WORK/train.log" \
  || { tail -30 "$WORK/train.log"; exit 1; }
CKPT=$(cat "$WORK/last_checkpoint")
T3=$(t)
echo; echo "== 4/5 test $CKPT on the generated val split =="
$PY tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK" > "$WORK/test.log" \
  || { tail -30 "$WORK/test.log"; exit 1; }
grep -A 10 "^Object Class" "$WORK/test.log"
grep -E "^(mAP|mATE|mASE|mAOE|mAVE|mAAE|NDS): " "$WORK/test.log"
T4=$(t)
echo; echo "== 5/5 predictions vs ground truth (6 cameras + BEV) =="
$PY tools/analysis/visualize_predictions.py "$CONFIG" "$CKPT" --indices 0 10 --score-thr 0.2 --out "$WORK/pred_vis" 2>&1 \
  | grep wrote
T5=$(t)
echo
echo "times: generate $((T1 - T0))s, convert $((T2 - T1))s, train $((T3 - T2))s, test $((T4 - T3))s," \
  "pictures $((T5 - T4))s, total $((T5 - T0))s"
