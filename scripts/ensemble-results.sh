#!/bin/bash
# Ensembles of fold models (pulsekd eval --ensemble) against one model trained on every training
# recording, for the PULSE student alone fine-tuned from the released checkpoint, on the
# generalisation protocols of docs/results/generalisation.md. Needs ../shared; writes runs/ens/.
# Usage: scripts/ensemble-results.sh   (B, S, R, O override the binary, data, checkpoints, output)
set -e
cd "$(dirname "$0")/.."
B=${B:-build/pulsekd}; S=${S:-../shared/data/ieee-spc2015}; R=${R:-../shared/reference}; O=${O:-runs/ens}
mkdir -p "$O"
COMMON="--model student --init $R/pulse_student_fold1.pt --epochs 10 --patience 10 --batch 64 --augment --threads 2"
POST="--track viterbi --fuse-tracker --laplace 15"
run() {  # name train_subjects test_subjects
  local n=$1 tr=$2 te=$3
  /usr/bin/time -f "$n train loso %e s" $B train $COMMON --data "spc2015:$S?subjects=$tr" --loso --out $O/$n >$O/$n.loso.log 2>&1
  /usr/bin/time -f "$n train all %e s" $B train $COMMON --data "spc2015:$S?subjects=$tr" --all --out $O/$n >$O/$n.all.log 2>&1
  for mode in single ensemble; do
    local ck=$O/$n; local flag=""; [ $mode = ensemble ] && flag=--ensemble
    [ $mode = single ] && ck=$O/$n/all/best.safetensors
    $B eval --checkpoint $ck $flag --data "spc2015:$S?subjects=$te" --out $O/$n-$mode-raw > $O/$n-$mode-raw.txt 2>&1
    $B eval --checkpoint $ck $flag --data "spc2015:$S?subjects=$te" $POST --prior-data "spc2015:$S?subjects=$tr" --post --out $O/$n-$mode-post > $O/$n-$mode-post.txt 2>&1
    echo "$n $mode raw: $(grep 'mean subject MAE' $O/$n-$mode-raw.txt)  post: $(grep 'mean subject MAE' $O/$n-$mode-post.txt)"
  done
}
run loeo-t1 2-12 1,13
# LOEO the other way has 2 training recordings: no leave-one-out ensemble.
run logo1 4-12 1-3
run logo2 1-3,7-12 4-6
run logo3 1-6,10-12 7-9
run logo4 1-9 10-12
