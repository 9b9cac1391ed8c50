// Package deploy_test builds every kustomization with the kustomize Go API and applies
// the result, as a server-side dry run, to the loopback control plane.
package deploy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"dgpu-release/internal/kubetest"
)

var kustomizations = []string{"base", "overlays/in-cluster-temporal", "overlays/hosted-temporal"}

func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, dir)
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		m, err := r.Map()
		require.NoError(t, err)
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func TestKustomizationsBuild(t *testing.T) {
	for _, k := range kustomizations {
		objs := build(t, k)
		for _, want := range []struct{ kind, name string }{
			{"Deployment", "dgpu-release-worker"}, {"ServiceAccount", "dgpu-release-worker"}, {"ClusterRole", "dgpu-release-worker"},
			{"Role", "dgpu-release-worker"}, {"ConfigMap", "dgpu-release-config"}, {"Namespace", "intel-dgpu-debug"},
		} {
			assert.NotNil(t, find(objs, want.kind, want.name), "%s: %s %s", k, want.kind, want.name)
		}
	}
	hosted := build(t, "overlays/hosted-temporal")
	cm := find(hosted, "ConfigMap", "dgpu-release-config")
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	assert.Equal(t, "/var/run/secrets/temporal/tls.crt", data["TEMPORAL_TLS_CERT"])
	assert.Equal(t, "cluster", data["DGPU_BACKEND"], "the overlay merges into the base configuration")
	vols, _, _ := unstructured.NestedSlice(find(hosted, "Deployment", "dgpu-release-worker").Object, "spec", "template", "spec", "volumes")
	assert.Len(t, vols, 3, "the mTLS secret is mounted")
	inCluster := build(t, "overlays/in-cluster-temporal")
	data, _, _ = unstructured.NestedStringMap(find(inCluster, "ConfigMap", "dgpu-release-config").Object, "data")
	assert.Contains(t, data["TEMPORAL_ADDRESS"], "temporal-frontend")
}

// Every rendered object passes the API server's validation and admission (dry run).
func TestServerSideDryRun(t *testing.T) {
	kc := kubetest.Start(t)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(kc.Config)
	require.NoError(t, err)
	dc, err := discovery.NewDiscoveryClientForConfig(kc.Config)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	for _, k := range kustomizations {
		objs := build(t, k)
		// Namespaces for real first: a dry run creates nothing to put the rest in.
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				kc.Namespace(t, o.GetName())
			}
		}
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				continue
			}
			m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
			require.NoError(t, err, "%s: %s", k, o.GetKind())
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if o.GetNamespace() != "" {
				ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
			}
			_, err = ri.Create(ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
			require.NoError(t, err, "%s: %s %s", k, o.GetKind(), o.GetName())
		}
	}
}
