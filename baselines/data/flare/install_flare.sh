#!/usr/bin/env bash
# Build and install FLARE (PyPI mir-flare 1.4.0) into the active Python environment, without internet
# during the build: CMake's downloads (googletest, nlohmann json, pybind11, Eigen) are replaced by Debian
# packages and the build venv's pybind11 via flare_offline.cmake (see baselines/README.md).
#
#   . .venv/bin/activate && bash scripts/install_flare.sh        (or: tm23 install-flare)
#
# Needs: a venv (or PYTHON=...), the Debian packages below (installed with apt-get when missing and run as
# root, or via sudo), and the mir-flare sdist: from the package index (pip's usual configuration, e.g.
# PIP_INDEX_URL / PIP_FIND_LINKS for a mirror) or FLARE_SDIST=/path/to/mir_flare-1.4.0.tar.gz.
# Idempotent: exits at once when `import flare` already gives mir-flare 1.4.0 with its C++ module; the
# built wheel is cached in $TM23_FLARE_CACHE (default ~/.cache/tm23data/flare) and reused.
# Environment: FLARE_FORCE=1 rebuild and reinstall; FLARE_WITH_LAPACK=1 link LAPACK (default: Eigen only,
# which was faster than Debian's reference LAPACK here); FLARE_NO_APT=1 never call apt-get. (0, false, no
# and off count as unset.)
set -euo pipefail

FLARE_VERSION=1.4.0
APT_PACKAGES=(g++ cmake ninja-build libeigen3-dev nlohmann-json3-dev)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CMAKE_INCLUDE="$HERE/flare_offline.cmake"

say() { printf '[install-flare] %s\n' "$*" >&2; }
on() { case "${1:-}" in "" | 0 | false | no | off) return 1 ;; *) return 0 ;; esac; }

if on "${FLARE_WITH_LAPACK:-}"; then
  APT_PACKAGES+=(libblas-dev liblapack-dev liblapacke-dev)  # FLARE defines EIGEN_USE_LAPACKE
  VARIANT=lapack
else
  VARIANT=eigen
fi
CACHE_DIR="${TM23_FLARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tm23data/flare}/$VARIANT"
die() { printf '[install-flare] ERROR: %s\n' "$*" >&2; exit 1; }

# --- the runtime Python ------------------------------------------------------------------------------
if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PY="$VIRTUAL_ENV/bin/python"
else
  die "no virtual environment is active: activate the project's venv first (. .venv/bin/activate) or set PYTHON=/path/to/python"
fi
[[ -x "$PY" ]] || command -v "$PY" >/dev/null || die "python not found: $PY"
[[ -f "$CMAKE_INCLUDE" ]] || die "missing $CMAKE_INCLUDE (it ships next to this script)"

flare_ok() {
  "$PY" - "$FLARE_VERSION" <<'PYEOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("mir-flare") == sys.argv[1]
from flare.bffs.sgp._C_flare import B2, NormalizedDotProduct, SparseGP, Structure  # noqa: F401
PYEOF
}

if ! on "${FLARE_FORCE:-}" && flare_ok; then
  say "mir-flare $FLARE_VERSION is already installed in $("$PY" -c 'import sys; print(sys.prefix)'); nothing to do (FLARE_FORCE=1 rebuilds)"
  exit 0
fi

# --- system packages -----------------------------------------------------------------------------------
if command -v dpkg-query >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    ! on "${FLARE_NO_APT:-}" || die "missing Debian packages: ${missing[*]} (FLARE_NO_APT is set: install them yourself)"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
      die "missing Debian packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    fi
    say "installing Debian packages: ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  for tool in g++ cmake; do command -v "$tool" >/dev/null || die "$tool not found (needed to build FLARE)"; done
  say "not a Debian system: make sure Eigen 3 headers and nlohmann_json (CMake config) are installed"
fi

# --- the wheel (cached) ---------------------------------------------------------------------------------
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
mkdir -p "$CACHE_DIR"
shopt -s nullglob
cached=("$CACHE_DIR"/mir_flare-"$FLARE_VERSION"-"$PYTAG"-*.whl)
shopt -u nullglob
if on "${FLARE_FORCE:-}" || ((${#cached[@]} == 0)); then
  WORK="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  say "build venv in $WORK/venv (setuptools>=70.1,<81, pybind11>=2.12)"
  "$PY" -m venv "$WORK/venv"
  "$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check "setuptools>=70.1,<81" "pybind11>=2.12" \
    || die "could not install setuptools/pybind11 into the build venv (package index reachable? PIP_FIND_LINKS?)"
  src="mir-flare==$FLARE_VERSION"
  if [[ -n "${FLARE_SDIST:-}" ]]; then [[ -f "$FLARE_SDIST" ]] || die "FLARE_SDIST=$FLARE_SDIST does not exist"; src="$FLARE_SDIST"; fi
  if [[ $VARIANT == eigen ]]; then export NO_LAPACK=1; else unset NO_LAPACK; fi
  # FLARE's setup.py splits these with shlex: quote the paths (they may hold spaces)
  export FLARE_CMAKE_FLAGS="-DCMAKE_PROJECT_flare_INCLUDE='$CMAKE_INCLUDE' -DPython_EXECUTABLE='$WORK/venv/bin/python' -DCMAKE_BUILD_TYPE=Release"
  say "building $src (a few minutes; log: $WORK/build.log)"
  start=$SECONDS
  if ! "$WORK/venv/bin/python" -m pip wheel -v --no-deps --no-build-isolation --no-binary mir-flare \
        --disable-pip-version-check -w "$WORK/wheel" "$src" >"$WORK/build.log" 2>&1; then
    tail -n 60 "$WORK/build.log" >&2
    cp "$WORK/build.log" "$CACHE_DIR/last-failed-build.log" 2>/dev/null || true
    die "building mir-flare failed (full log: $CACHE_DIR/last-failed-build.log)"
  fi
  built=("$WORK"/wheel/mir_flare-"$FLARE_VERSION"-*.whl)
  [[ -f "${built[0]}" ]] || die "pip wheel produced no mir-flare wheel in $WORK/wheel"
  mv -f "${built[0]}" "$CACHE_DIR/$(basename "${built[0]}")"   # same filesystem: atomic
  wheel="$CACHE_DIR/$(basename "${built[0]}")"
  say "built $(basename "$wheel") in $((SECONDS - start)) s"
else
  wheel="${cached[0]}"
  say "using the cached wheel $wheel"
fi

# --- install into the runtime environment (no dependencies: FLARE pins numpy<1.23 and ase==3.22, but the
# sparse GP needs only numpy, scipy and ase, which the project already has) -----------------------------
"$PY" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
flare_ok || die "mir-flare installed but \`import flare.bffs.sgp._C_flare\` fails in $PY"
say "mir-flare $FLARE_VERSION installed into $("$PY" -c 'import sys; print(sys.prefix)')"
