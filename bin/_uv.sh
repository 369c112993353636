# Sourced by bin/*: provides $UV, a pinned uv installed into .venvs/tools on first use.
# The version and hashes live in locks/build.txt, which the image builds install uv from too.
UV_VERSION=$(sed -n 's/^uv==\([^ ]*\).*/\1/p' locks/build.txt)
TOOLS=".venvs/tools"
if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "[bootstrap] installing uv $UV_VERSION into $TOOLS" >&2
  python3.11 -m venv "$TOOLS" 2>/dev/null || python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r locks/build.txt
fi
UV="$PWD/$TOOLS/bin/uv"
export UV_LINK_MODE=copy
