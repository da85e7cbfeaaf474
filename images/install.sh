#!/bin/sh
# Installs this project into an image at the versions of requirements/lock.txt, the lock the
# tests install too (images/*.Containerfile run it from the build context's copy).
#
#   images/install.sh TORCH EXTRAS
#
# TORCH says where the stack's torch comes from: "lock" (PyPI, the lock's build: CUDA, with the
# lock's NVIDIA libraries), an index URL (PyTorch's CPU, ROCm or XPU index), or "base" (the base
# image's, which must be the lock's version). EXTRAS: the project's extras ("" or "gpu").
set -eu

lock=requirements/lock.txt
torch_pin=$(grep -E '^torch==' "$lock")
torch_version=${torch_pin#torch==}

case "$1" in
  lock) python3 -m pip install --no-cache-dir -c "$lock" "$torch_pin" ;;
  base) ;;
  *) python3 -m pip install --no-cache-dir --index-url "$1" "$torch_pin" ;;
esac

# The stack's build (2.13.0+rocm…, +xpu, +cpu) satisfies the lock's torch==2.13.0; pinning the
# installed one keeps anything below from replacing it with PyPI's CUDA build.
installed=$(python3 -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null \
  || echo "missing")
case "$installed" in
  "$torch_version" | "$torch_version"+*) ;;
  *)
    echo "install.sh: this image's torch is $installed; the lock needs $torch_pin" >&2
    exit 1
    ;;
esac
echo "torch==$installed" > /tmp/torch-installed.txt

target=.
if [ -n "$2" ]; then
  target=".[$2]"
fi
python3 -m pip install --no-cache-dir -c "$lock" -c /tmp/torch-installed.txt "$target"
# What the Makefile installs beside the project, the same way (see each file's comment).
python3 -m pip install --no-cache-dir --no-deps -r requirements/no-deps.txt
python3 -m pip install --no-cache-dir --no-deps ./packaging/en_core_web_sm
rm /tmp/torch-installed.txt
