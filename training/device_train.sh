#!/usr/bin/env bash
# One device call of a training campaign on a lent GPU (issues 20-22): continue a shipped
# model for a few minutes and bring the checkpoint back under $OUT, to be measured and
# exported on the CPU like any other run (python -m training.export --checkpoint ...).
#
#   bash training/device_train.sh CONFIG WEIGHTS [SECONDS] [MINUTES]
#
# CONFIG: a run config (training/configs/*.yaml); WEIGHTS: the shipped .safetensors to
# start from; SECONDS: stop and checkpoint after this long (default 480, inside a call's
# 10 minutes); MINUTES: the cosine's budget over all calls (default: one call's).
# The first call on a machine needs the training photos, carried as runs/data-pack
# (python -m training.pack --out runs/data-pack), and PyAV staged in /tmp/site
# (../shared/tools/gpu-wheels.sh, part a). A later call on the same warm machine resumes
# the run kept in /tmp/runs. Tested on the CPU with a tiny budget:
#   PYTHON=.venv/bin/python OUT=/tmp/device-out bash training/device_train.sh \
#       training/configs/lcdnet-s-deblur.yaml models/weights/lcdnet-s-deblur.safetensors 20
set -euo pipefail
config=$1 weights=$2 seconds=${3:-480}
minutes=${4:-$(python3 -c "print($seconds / 60)")}
: "${OUT:?set OUT to the folder that comes back}"
if [ -d runs/data-pack ]; then
    mkdir -p /tmp/data && cp -rn runs/data-pack/. /tmp/data/
fi
if [ -z "${RESTORE_DATA:-}" ] && [ -d /tmp/data ]; then
    export RESTORE_DATA=/tmp/data
fi
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
run=/tmp/runs/$(basename "$config" .yaml)
if [ -f "$run/last.pt" ]; then
    start=(--resume)
else
    start=(--init "$weights")
fi
${PYTHON:-python3} -m training.train -c "$config" "${start[@]}" --out "$run" \
    --time-limit "$seconds" --minutes "$minutes"
mkdir -p "$OUT"
cp "$run/last.pt" "$run/log.jsonl" "$OUT/"
