#!/usr/bin/env bash
# Reproduce models/reach_64px from scratch on this machine's CPU:
#   1. explorer (motor babbling) data from the MuJoCo sim, 2. training with config/train.yaml,
#   3. eval-model on held-out episodes, 4. copy the checkpoint into models/reach_64px/.
#
#   bash scripts/train_shipped_model.sh                  # DATA, VAL, RUN and PY may be overridden from the environment
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/reach_babble}
VAL=${VAL:-data/reach_val}
RUN=${RUN:-runs/reach_64px}
JEPA="$PY -m jepa_agent.cli"

# Idealized stepping (one ArmEnv.step per frame, setpoints jumped): its motions span the velocity range evenly, and
# the model trained on it plans better than one trained on the nodes' pipeline (collect-sim's default), while
# predicting recordings made through the nodes as well (models/reach_64px/MODEL_CARD.md).
COLLECT="data collect-sim --image-size 64 --mode steps --controller rate_limited --steps 200"
[ -d "$DATA" ] || $JEPA $COLLECT --out "$DATA" --episodes 150 --seed 0
[ -d "$VAL" ] || $JEPA $COLLECT --out "$VAL" --episodes 10 --seed 100000
$JEPA train --data "$DATA" --out "$RUN" --config config/train.yaml
$JEPA eval-model --checkpoint "$RUN" --data "$VAL" --json "$RUN/eval_model.json"
mkdir -p models/reach_64px
cp "$RUN/model.safetensors" "$RUN/config.json" models/reach_64px/
echo "models/reach_64px updated; metrics in $RUN/eval_model.json (copy them into models/reach_64px/MODEL_CARD.md)"
