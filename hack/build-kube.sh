#!/usr/bin/env bash
# Builds what the cluster tests run on loopback, once per version set, from the Go module
# proxy: kube-apiserver, kube-controller-manager and kube-scheduler (Kubernetes), etcd and
# kwok (simulated nodes and pods). Prints the folder that holds the binaries.
# A cold build takes about 18 minutes on 2 cores; later runs reuse the cache.
set -euo pipefail
KUBE=v1.36.3
STAGING=v0.36.3
ETCD=v3.6.8
KWOK=v0.8.0
cache=${XDG_CACHE_HOME:-$HOME/.cache}
out=${DGPU_KUBE_BIN:-$cache/dgpu-release/kube/kube-$KUBE-etcd-$ETCD-kwok-$KWOK}
bins=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)
have=1
for b in "${bins[@]}"; do [ -x "$out/$b" ] || have=0; done
if [ $have = 1 ]; then echo "$out"; exit 0; fi
export PATH="/usr/local/go/bin:$PATH" GOFLAGS=-mod=mod
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "building Kubernetes $KUBE, etcd $ETCD and kwok $KWOK into $out (about 18 minutes cold on 2 cores)" >&2
mkdir -p "$work/kube"
cd "$work/kube"
{
  echo "module dgpu-release/kube-tools"
  echo "go 1.26"
  echo "require k8s.io/kubernetes $KUBE"
  echo "replace ("
  for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap \
    code-generator component-base component-helpers controller-manager cri-api cri-client cri-streaming \
    csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator \
    kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils \
    pod-security-admission sample-apiserver sample-controller streaming; do
    echo "  k8s.io/$m => k8s.io/$m $STAGING"
  done
  echo ")"
} > go.mod
ver="-X k8s.io/component-base/version.gitVersion=$KUBE -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36"
ver="$ver -X k8s.io/client-go/pkg/version.gitVersion=$KUBE -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=36"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  go get "k8s.io/kubernetes/cmd/$b@$KUBE" >&2
done
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  echo "  $b" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ver" -o "$out/$b" "k8s.io/kubernetes/cmd/$b"
done

mkdir -p "$work/etcd"
cd "$work/etcd"
printf 'module dgpu-release/etcd-tool\ngo 1.26\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD" > go.mod
printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
go mod tidy >&2
echo "  etcd" >&2
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" .

echo "  kwok" >&2
GOBIN="$out" CGO_ENABLED=0 go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK"
echo "$out"
