#!/usr/bin/env bash
# Protocols that expose generalisation on the IEEE SPC 2015 recordings (docs/results/generalisation.md):
#   loso  leave-one-subject-out over the 12 training recordings (all treadmill running);
#   loeo  leave-one-exercise-type-out: train on TYPE02 (recordings 2-12), test on TYPE01 (1) and
#         the extra recording S04_T01 (13); and the reverse, train on 1 + 13, test on 2-12;
#   logo  leave-one-group-out: the 12 recordings in 4 groups of 3 (1-3, 4-6, 7-9, 10-12); train
#         on 9, test on the other 3;
#   shift synthetic shift: train on the 13 recordings (treadmill running), test on synthetic
#         non-running motion with known truth (datasets/motion.h: arm swing, wrist rotation,
#         punches; 2 seeds).
# Every protocol runs the same `pulsekd pipeline` (teacher, student alone, distilled, int8 student,
# classical tracker), so each line of the tables is one command. Run directories under
# ${RUNS:-runs/generalisation}; each pipeline's report.json holds its per-recording MAEs.
#   scripts/generalisation-results.sh [loso] [loeo] [logo] [shift]   (default: all four)
# Environment: B (binary), THREADS (default 2), EPOCHS (default 10), PIPE (extra pipeline flags),
# TEACHER_INIT / STUDENT_INIT (starting checkpoints; default the released PPG-DaLiA fold-1 ones).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build/pulsekd}
REF=../shared/reference
SPC=../shared/data/ieee-spc2015
RUNS=${RUNS:-runs/generalisation}
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-10}
# The documented best pipeline (docs/results/generalisation.md): transfer from the released
# PPG-DaLiA checkpoints, augmentation, HMM (Viterbi) over each network's likelihood fused with the
# WFPV tracker's estimate (a Laplace of 2 BPM around it), the networks' estimates read as a
# Laplace of 15 BPM (their error on unseen exercise types is 10-25 BPM: a narrower one lets a
# network that is far off outvote the tracker), the prior fitted to the training labels.
# TEACHER_INIT / STUDENT_INIT: other starting checkpoints (e.g. pretrained ones).
BEST=(--teacher-init "${TEACHER_INIT:-$REF/pulse_teacher_fold1.pt}" --student-init "${STUDENT_INIT:-$REF/pulse_student_fold1.pt}" --teacher-lr 2e-4
      --teacher-epochs "$EPOCHS" --student-epochs "$EPOCHS" --batch 64 --augment --threads "$THREADS"
      --track viterbi --fuse-tracker --laplace 15 --mcu none)
read -r -a EXTRA <<<"${PIPE:-}"
mkdir -p "$RUNS"
pipe() {  # name train-spec [test-spec]
  local name=$1 train=$2 test=${3:-}
  echo "== $name ($(date +%T))"
  local args=(pipeline --data "$train" "${BEST[@]}" "${EXTRA[@]}" --out "$RUNS/$name")
  if [ -n "$test" ]; then args+=(--test-data "$test"); else args+=(--loso); fi
  /usr/bin/time -f "wall %e s, user %U s" "$B" "${args[@]}" >"$RUNS/$name.log" 2>&1
  grep -E "^(teacher|student|classical|MAE)|wall" "$RUNS/$name.log" || tail -5 "$RUNS/$name.log"
}
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(loso loeo logo shift)
for s in "${stages[@]}"; do
  case "$s" in
    loso) pipe loso "spc2015:$SPC?extra=0" ;;
    loeo)
      pipe loeo-test-type01 "spc2015:$SPC?subjects=2-12" "spc2015:$SPC?subjects=1,13"
      pipe loeo-test-type02 "spc2015:$SPC?subjects=1,13" "spc2015:$SPC?subjects=2-12" ;;
    logo)
      for g in 1-3 4-6 7-9 10-12; do
        lo=${g%-*}; hi=${g#*-}
        rest=$(seq 1 12 | awk -v lo="$lo" -v hi="$hi" '$1 < lo || $1 > hi' | paste -sd, -)
        pipe "logo-test-$g" "spc2015:$SPC?subjects=$rest" "spc2015:$SPC?subjects=$g"
      done ;;
    shift) pipe shift-motion "spc2015:$SPC" "motion?seeds=2" ;;
    *) echo "unknown protocol '$s' (loso, loeo, logo, shift)" >&2; exit 2 ;;
  esac
done
