#!/usr/bin/env bash
# The whole loop on a fresh machine: set-up -> generate a nuScenes-format data set ->
# convert it with mmdet3d's converter -> score the val ground truth through
# NuScenesMetric (nuscenes-devkit DetectionEval), exact and shifted by 1 m -> pictures.
# (Until the detector lands, the "predictions" are the ground truth itself.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA=data/synthetic_nuscenes
CFG=configs/_base_/datasets/synthetic-nus-3d-multimodal.py
PY=.venv/bin/python
t() { date +%s; }

bash tools/setup_env.sh
T0=$(t)
echo; echo "== 1/4 generate $DATA =="
$PY tools/create_synthetic_nuscenes.py --out "$DATA" --overwrite "$@"
T1=$(t)
echo; echo "== 2/4 convert with mmdet3d's create_data (nuscenes, v1.0-mini) =="
$PY tools/create_data.py nuscenes --root-path "$DATA" --out-dir "$DATA" \
  --extra-tag nuscenes --version v1.0-mini > work_dirs/demo_create_data.log 2>&1 \
  || { tail -30 work_dirs/demo_create_data.log; exit 1; }
tail -n 14 work_dirs/demo_create_data.log
T2=$(t)
echo; echo "== 3/4 val ground truth as predictions through NuScenesMetric =="
$PY tools/analysis/eval_ground_truth.py "$CFG" > work_dirs/demo_eval_gt.log 2>&1 \
  || { tail -30 work_dirs/demo_eval_gt.log; exit 1; }
grep -A 12 "^Object Class" work_dirs/demo_eval_gt.log
EXACT=$(grep -E "^(mAP|NDS): " work_dirs/demo_eval_gt.log | tail -2 | paste -sd' ')
$PY tools/analysis/eval_ground_truth.py "$CFG" --shift 1 0 0 > work_dirs/demo_eval_shift.log 2>&1 \
  || { tail -30 work_dirs/demo_eval_shift.log; exit 1; }
SHIFTED=$(grep -E "^(mAP|NDS): " work_dirs/demo_eval_shift.log | tail -2 | paste -sd' ')
T3=$(t)
echo; echo "== 4/4 pictures =="
$PY tools/analysis/browse_dataset.py "$CFG" --split val --indices 0 10 --out work_dirs/browse 2>&1 | grep wrote
echo
echo "ground truth as predictions : $EXACT"
echo "ground truth shifted by 1 m : $SHIFTED"
echo "times: generate $((T1 - T0))s, convert $((T2 - T1))s, evaluate $((T3 - T2))s"
