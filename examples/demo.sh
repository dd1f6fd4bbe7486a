#!/usr/bin/env bash
# The Roost demo: the workshop's Lab 1 on real images, with Roost alone.
# Run through `make demo`, which creates .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
D=demo
rm -rf "$D"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "Real images: animal silhouettes (bird among them) from the animal-mnist package" \
  python examples/animal_shapes.py "$D/images" --per-class 60
step "Lab 1: explore the data set (counts, sizes, sample grid, warnings)" \
  roost explore "$D/images" --image-shape 3,28,28 --grid "$D/samples.png"
step "Lab 1: make the image lists, exactly as MXNet's im2rec.py --list does" \
  roost im2rec --list --recursive --train-ratio 0.8 "$D/animals" "$D/images"
step "Lab 1: pack the lists into RecordIO (.rec + .idx)" \
  roost im2rec --num-thread 2 "$D/animals" "$D/images"
step "Check what was packed" \
  roost explore "$D/animals_train.rec" --min-per-class 20
echo
echo "Demo done: $D/animals_train.rec and $D/animals_val.rec are ready for training; sample grid in $D/samples.png"
