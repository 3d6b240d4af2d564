#!/usr/bin/env bash
# Install video2dataset 1.3.0 (the baseline of the benchmarks) into its own venv, per DESIGN.md:
# CPU torch 2.13 first, video2dataset without its CUDA torch pin, its other requirements pinned so they
# fit together (numpy<2, pyarrow<26, ...), CUDA-linked torchaudio libraries removed, Debian ffmpeg.
# Idempotent: a venv that already imports video2dataset with ffmpeg/ffprobe on PATH is left as it is
# (FORCE=1 reinstalls).  Usage: bash benchmarks/setup_video2dataset.sh [VENV]   (default /tmp/v2d-venv)
set -euo pipefail

VENV="${1:-/tmp/v2d-venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3

have_ffmpeg() { command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; }
ready() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import video2dataset" 2>/dev/null && have_ffmpeg; }

if [ "${FORCE:-0}" != 1 ] && ready; then
    echo "video2dataset 1.3.0 is ready in $VENV"
    exit 0
fi

if ! have_ffmpeg; then
    echo "installing Debian ffmpeg (video2dataset calls the ffmpeg and ffprobe binaries)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# pip here warns once per package about this machine's absent local indexes: drop those lines.
pipi() { "$VENV/bin/python" -m pip install -q "$@" 2>&1 | { grep -v "is neither a file nor a directory" || true; }; }
CONSTRAINTS="$VENV/v2d-constraints.txt"
printf 'torch==2.13.0\nnumpy<2\npyarrow<26\n' > "$CONSTRAINTS"

# 1. CPU torch from local disk (an unpinned torch may pull a multi-GB CUDA build).
pipi torch==2.13.0
# 2. video2dataset without its torch==2.1.2 pin; torchaudio 2.11 is only imported, never used for downloading.
pipi --no-deps video2dataset==1.3.0 torchdata==0.7.1 torchaudio==2.11.0
# 3. Its other requirements (wheel METADATA of 1.3.0, less torch/torchdata/torchaudio), pinned to fit together.
pipi -c "$CONSTRAINTS" \
    "numpy<2" "pyarrow<26" "fire<0.6" "transformers==4.37.1" "scenedetect[opencv]==0.6.2" \
    "requests<3,>=2.27.1" ffmpeg-python yt-dlp fsspec webdataset webvtt-py wandb pandas tqdm \
    timeout-decorator decord langdetect soundfile omegaconf einops Pillow accelerate bitsandbytes scipy
# 4. torchaudio's libraries are CUDA-linked and fail to load next to CPU torch: remove them.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -f "$SITE"/torchaudio/lib/*.so

"$VENV/bin/python" -c "import video2dataset, torch, numpy; print('video2dataset ok; torch', torch.__version__, \
'numpy', numpy.__version__)"
ffmpeg -hide_banner -version | head -1
echo "video2dataset 1.3.0 is ready in $VENV"
