#!/usr/bin/env bash
# Leave-one-subject-out runs on the 12 IEEE SPC 2015 training recordings (one per subject),
# the "transfer" recipe: start from the released PPG-DaLiA fold-1 checkpoints, augmentation,
# short training. Writes run directories under ${RUNS:-runs/spc2015}; the tables go to
# docs/results/spc2015.md (scripts/spc2015-table.sh). Each stage resumes if interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/pulsekd
REF=../shared/reference
DATA="spc2015:../shared/data/ieee-spc2015?extra=0"
RUNS=${RUNS:-runs/spc2015}
EPOCHS=${EPOCHS:-15}
COMMON=(--data "$DATA" --loso --batch 64 --epochs "$EPOCHS" --patience 8 --augment --threads "${THREADS:-1}")
mkdir -p "$RUNS"
run() { local name=$1; shift; echo "== $name ($(date +%T))"; /usr/bin/time -f "wall %e s" "$B" "$@" --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1; tail -4 "$RUNS/$name.log"; }
run teacher-transfer train --model teacher --init "$REF/pulse_teacher_fold1.pt" --lr 2e-4 "${COMMON[@]}"
run student-alone-transfer train --model student --init "$REF/pulse_student_fold1.pt" "${COMMON[@]}"
for kd in pulse rkd hard fitnet; do
  run "student-$kd-transfer" distill --teacher "$RUNS/teacher-transfer" --kd "$kd" --init "$REF/pulse_student_fold1.pt" "${COMMON[@]}"
done
