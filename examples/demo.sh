#!/usr/bin/env bash
# The Roost demo: the workshop's Lab 1 (explore and pack) and Lab 2 (train) on real
# images, with Roost alone. Run through `make demo`, which creates .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
D=demo
rm -rf "$D"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "Real images: animal silhouettes (bird among them) from the animal-mnist package" \
  roost sample-data "$D/images" --per-class 150
step "Lab 1: explore the data set (counts, sizes, sample grid, warnings)" \
  roost explore "$D/images" --image-shape 3,28,28 --grid "$D/samples.png"
step "Lab 1: make the image lists, exactly as MXNet's im2rec.py --list does" \
  roost im2rec --list --recursive --train-ratio 0.8 "$D/animals" "$D/images"
step "Lab 1: pack the lists into RecordIO (.rec + .idx)" \
  roost im2rec "$D/animals" "$D/images"
step "Check what was packed" \
  roost explore "$D/animals_train.rec" --min-per-class 20
N=$(wc -l < "$D/animals_train.lst")
step "Lab 2: train SageMaker's image-classification algorithm (ResNet-20, SageMaker's hyperparameters and log)" \
  roost train --train "$D/animals_train.rec" --validation "$D/animals_val.rec" --output "$D/job" \
    num_classes=10 num_training_samples="$N" epochs=10 mini_batch_size=32 num_layers=20 \
    image_shape=3,28,28 learning_rate=0.1 lr_scheduler_step=7 augmentation_type=crop top_k=2
step "Lab 2: accuracy by epoch" \
  roost plot "$D/job"
step "Beyond SageMaker: per-class results of the model that ships" \
  roost report "$D/job"
mapfile -t SAMPLES < <(head -n 5 "$D/animals_val.lst" | cut -f3 | sed "s|^|$D/images/|")
step "Lab 3: classify validation images with the trained model" \
  roost predict "$D/job" "${SAMPLES[@]}"
echo
echo "Demo done. Model: $D/job/model.tar.gz   curve: $D/job/accuracy.png   samples: $D/samples.png"
