#!/usr/bin/env bash
# Builds the NIAH training corpus into model/.data/ (ignored by git):
#   train.txt      fortunes of most categories (cleaned, shuffled, separated by blank lines)
#   heldout.txt    fortunes of whole held-out categories (for the unseen-text evaluation)
#   keys_train.txt training KEY words ("word corpus-count" per line)
#   cache-*.pkl    the trained tokenizer and the tokenized corpora (rebuilt by the trainer if stale)
# and, if it is missing, the committed held-out KEY list model/niah-keys.txt.
# Installs the Debian packages it needs when they are absent.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="$HERE/.data"

missing=()
for p in fortunes fortunes-min wamerican python3-torch libopenblas0-openmp; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "prepare_data: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
mkdir -p "$DATA"
"$PY" "$HERE/niah_data.py" prepare --fortunes /usr/share/games/fortunes \
  --words /usr/share/dict/american-english --data "$DATA" --keys "$HERE/niah-keys.txt"
"$PY" "$HERE/niah_data.py" cache --data "$DATA"
ls -l "$DATA"
