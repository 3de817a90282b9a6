#!/usr/bin/env bash
# Install the real helm v3 once, the way the Kafka broker's jars are installed: built from its
# Go module (helm.sh/helm/v3/cmd/helm) through the Go module proxy, cached, then reused.
#
#   deploy/install-helm.sh [CACHE_DIR]     prints the path of the helm binary (last line)
#
# CACHE_DIR defaults to the suite's cache folder (npusuite.platform.settings.PathSettings:
# $NPUSUITE_HOME/cache, else $XDG_CACHE_HOME/npusuite, else ~/.cache/npusuite); helm lands in
# CACHE_DIR/helm/<version>/bin/helm.  The first run builds it (about 3 minutes on 2 cores with
# an empty Go module cache); later runs print the cached path at once.  Concurrent runs wait on
# a lock and build once.  Needs Go >= 1.24 (older Go cannot build helm v3.22).
set -euo pipefail
HELM_VERSION=v3.22.0
# The Kubernetes minor helm v3.22.0 is built against (its go.mod requires k8s.io/client-go
# v0.37.0): helm's Makefile stamps it, and the version, with -ldflags; so does this script, or
# `helm version` says "v3.22" and the default kube version is 1.20.
K8S_MINOR=37
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ $# -ge 1 ]; then
  cache=$1
else
  cache=$("$VENV/bin/python" -c 'from npusuite.platform.settings import PathSettings; print(PathSettings().cache_dir())')
fi
dir="$cache/helm/$HELM_VERSION"
helm="$dir/bin/helm"
if [ -x "$helm" ]; then
  echo "$helm"
  exit 0
fi
go=$(command -v go || echo /usr/local/go/bin/go)
if ! [ -x "$go" ]; then
  echo "helm $HELM_VERSION is built from its Go module, and Go (>= 1.24) is missing: install it first" >&2
  exit 1
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if ! [ -x "$helm" ]; then
  echo "building helm $HELM_VERSION from helm.sh/helm/v3 into $dir (once; a few minutes) ..." >&2
  tmp=$(mktemp -d "$dir/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  start=$(date +%s)
  ldflags="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$K8S_MINOR"
  done
  GOBIN="$tmp" GOFLAGS="-buildvcs=false -trimpath" CGO_ENABLED=0 \
    "$go" install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  mkdir -p "$dir/bin"
  mv "$tmp/helm" "$helm"
  echo "built helm $HELM_VERSION in $(( $(date +%s) - start )) s" >&2
fi
echo "$helm"
