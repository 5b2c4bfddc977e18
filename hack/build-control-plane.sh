#!/usr/bin/env bash
# build-control-plane.sh builds kube-apiserver, etcd (and optionally kubectl) from source
# through the Go module proxy into a folder usable as KUBEBUILDER_ASSETS.
#
# Usage: hack/build-control-plane.sh <out-dir> <kubernetes-version> <etcd-version> [kubectl]
#
# Nothing is downloaded from outside the module proxy: setup-envtest's prebuilt binaries are
# unreachable on air-gapped builders, while every Go module is.
set -euo pipefail

out=$1 k8s=$2 etcd=$3 extra=${4:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
staging=v0${k8s#v1}   # k8s.io/kubernetes v1.37.2 pairs with staging modules v0.37.2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_kube() {
  local bin=$1 pkg=$2
  [ -x "$out/$bin" ] && return 0
  echo ">> building $bin $k8s from source (a few minutes)"
  local dir=$work/kube
  if [ ! -f "$dir/go.mod" ]; then
    mkdir -p "$dir"
    (
      cd "$dir"
      go mod init controlplane.local/kube >/dev/null 2>&1
      # Fails loudly when the proxy refuses the version (it does for some patch releases).
      go mod download "k8s.io/kubernetes@$k8s"
      gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
      {
        echo "require k8s.io/kubernetes $k8s"
        echo "replace ("
        sed -n '/^replace (/,/^)/p' "$gomod" | grep -o 'k8s.io/[a-z0-9-]* =>' | sed "s/ =>//" |
          while read -r m; do echo "  $m => $m $staging"; done
        echo ")"
      } >>go.mod
    )
  fi
  # -mod=mod fills in the rest of the requirements from k8s.io/kubernetes's own go.mod.
  (cd "$dir" && GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$out/$bin" "$pkg")
}

build_etcd() {
  [ -x "$out/etcd" ] && return 0
  echo ">> building etcd $etcd from source"
  local dir=$work/etcd
  mkdir -p "$dir"
  (
    cd "$dir"
    go mod init controlplane.local/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$etcd" >/dev/null
    GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$out/etcd" go.etcd.io/etcd/server/v3
  )
}

build_etcd
build_kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
if [ "$extra" = kubectl ]; then
  build_kube kubectl k8s.io/kubernetes/cmd/kubectl
fi
echo ">> control plane binaries in $out"
