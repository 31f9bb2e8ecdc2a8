#!/usr/bin/env bash
# Leave-one-subject-out runs on the 12 IEEE SPC 2015 training recordings (one per subject).
# Writes run directories under ${RUNS:-runs/spc2015}; the tables are in docs/results/spc2015.md.
# Each run resumes if interrupted (running the script again skips nothing but loses nothing).
#
#   scripts/spc2015-results.sh [transfer] [binned] [authors]     (default: all three)
#
# transfer: start from the released PPG-DaLiA fold-1 checkpoints, augmentation, short training;
#           teacher, student alone, and students distilled with pulse, rkd, hard, fitnet.
# binned:   the same recipe with the binned head (64 bins, 30-210 BPM) on teacher and student,
#           so that soft and decoupled KD apply: teacher, student alone, soft, dkd. The fresh
#           binned output layer starts at the training HR prior (--init-output-mean) and the
#           runs are longer (BINNED_EPOCHS, default 25, no early stop before the end): the
#           classifier head learns more slowly than the regression output.
# authors:  the authors' hyper-parameters from scratch (PULSE.md section 4: Adam, teacher lr 5e-4,
#           student lr 1e-3 + weight decay 1e-6, batch 256, patience 150 / 100), up to
#           AUTHORS_EPOCHS epochs (500 in the paper); teacher, student alone, and the students
#           distilled with pulse, hard, rkd, fitnet; then the same with the binned head (64 bins,
#           from scratch, no prior start: the authors' recipe has none): binned teacher, binned
#           student alone, and the students distilled with soft and dkd.
# Environment: EPOCHS (transfer, default 15), BINNED_EPOCHS (default 25), THREADS (default 1), B (binary).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build/pulsekd}
REF=../shared/reference
DATA="spc2015:../shared/data/ieee-spc2015?extra=0"
RUNS=${RUNS:-runs/spc2015}
EPOCHS=${EPOCHS:-15}
THREADS=${THREADS:-1}
AUTHORS_EPOCHS=${AUTHORS_EPOCHS:-500}
COMMON=(--data "$DATA" --loso --batch 64 --epochs "$EPOCHS" --patience 8 --augment --threads "$THREADS")
BINNED_EPOCHS=${BINNED_EPOCHS:-25}
BINNED=(--head binned --bins 64 --init-output-mean --data "$DATA" --loso --batch 64 --epochs "$BINNED_EPOCHS"
        --patience "$BINNED_EPOCHS" --augment --threads "$THREADS")
AUTHORS=(--data "$DATA" --loso --batch 256 --epochs "$AUTHORS_EPOCHS" --threads "$THREADS")
AUTHORS_BINNED=(--head binned --bins 64 "${AUTHORS[@]}")
mkdir -p "$RUNS"
run() { local name=$1; shift; echo "== $name ($(date +%T))"; /usr/bin/time -f "wall %e s" "$B" "$@" --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1; tail -4 "$RUNS/$name.log"; }

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(transfer binned authors)
for stage in "${stages[@]}"; do
  case $stage in
    transfer)
      run teacher-transfer train --model teacher --init "$REF/pulse_teacher_fold1.pt" --lr 2e-4 "${COMMON[@]}"
      run student-alone-transfer train --model student --init "$REF/pulse_student_fold1.pt" "${COMMON[@]}"
      for kd in pulse rkd hard fitnet; do
        run "student-$kd-transfer" distill --teacher "$RUNS/teacher-transfer" --kd "$kd" --init "$REF/pulse_student_fold1.pt" "${COMMON[@]}"
      done ;;
    binned)
      run teacher-binned-transfer train --model teacher "${BINNED[@]}" --init "$REF/pulse_teacher_fold1.pt" --lr 2e-4
      run student-binned-alone-transfer train --model student "${BINNED[@]}" --init "$REF/pulse_student_fold1.pt"
      for kd in soft dkd; do
        run "student-binned-$kd-transfer" distill --teacher "$RUNS/teacher-binned-transfer" --kd "$kd" "${BINNED[@]}" \
          --init "$REF/pulse_student_fold1.pt"
      done ;;
    authors)
      run teacher-authors train --model teacher "${AUTHORS[@]}"
      run student-alone-authors train --model student "${AUTHORS[@]}"
      for kd in pulse hard rkd fitnet; do
        run "student-$kd-authors" distill --teacher "$RUNS/teacher-authors" --kd "$kd" "${AUTHORS[@]}"
      done
      run teacher-binned-authors train --model teacher "${AUTHORS_BINNED[@]}"
      run student-binned-alone-authors train --model student "${AUTHORS_BINNED[@]}"
      for kd in soft dkd; do
        run "student-binned-$kd-authors" distill --teacher "$RUNS/teacher-binned-authors" --kd "$kd" "${AUTHORS_BINNED[@]}"
      done ;;
    *) echo "spc2015-results.sh: unknown stage '$stage' (expected transfer, binned or authors)" >&2; exit 2 ;;
  esac
done
