#!/usr/bin/env bash
# Build and install FLARE (mir-flare 1.4.0) offline into the active venv; same as `tm23 install-flare`.
# The installer and its CMake include file ship with the package: baselines/data/flare/.
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/baselines/data/flare/install_flare.sh" "$@"
