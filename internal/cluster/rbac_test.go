package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"dgpu-release/internal/cluster"
	"dgpu-release/internal/release"
)

// The adapters run as a service account bound to exactly cluster.Rules: a verb an
// adapter uses and the rules do not grant makes this test fail with Forbidden.
func TestAdaptersNeedNoMoreThanTheirRules(t *testing.T) {
	kc, admin := start(t)
	ctx := context.Background()
	for _, ns := range []string{"dgpu-release-sys", "dgpu-work"} {
		namespace(t, admin, ns)
	}
	_, err := admin.Kube.CoreV1().ServiceAccounts("dgpu-release-sys").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "dgpu-release-worker"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The debug namespace holds the worker's Role, so it exists before the worker runs (as
	// the deploy manifests create it); the role OpenShift ships for the privileged SCC too.
	namespace(t, admin, "intel-dgpu-debug")
	scc := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
		"metadata": map[string]any{"name": "system:openshift:scc:privileged"},
		"rules":    []any{map[string]any{"apiGroups": []any{"security.openshift.io"}, "resources": []any{"securitycontextconstraints"}, "resourceNames": []any{"privileged"}, "verbs": []any{"use"}}}}}
	_, err = admin.Dynamic.Resource(gvr("rbac.authorization.k8s.io", "v1", "clusterroles")).Create(ctx, scc, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, o := range cluster.RBAC("dgpu-release-sys", "dgpu-release-worker", "dgpu-work", "intel-dgpu-debug") {
		res := strings.ToLower(o.GetKind()) + "s"
		var err error
		if o.GetNamespace() == "" {
			_, err = admin.Dynamic.Resource(gvr("rbac.authorization.k8s.io", "v1", res)).Create(ctx, o, metav1.CreateOptions{})
		} else {
			_, err = admin.Dynamic.Resource(gvr("rbac.authorization.k8s.io", "v1", res)).Namespace(o.GetNamespace()).Create(ctx, o, metav1.CreateOptions{})
		}
		require.NoError(t, err, o.GetKind())
	}
	cfg := rest.CopyConfig(kc.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:dgpu-release-sys:dgpu-release-worker"}
	sa, err := cluster.New(cfg)
	require.NoError(t, err)

	// Kernels and the cluster version.
	_, err = sa.GPUNodeKernels(ctx, "")
	require.NoError(t, err)
	if _, err := admin.Dynamic.Resource(cluster.ClusterVersionGVR).Get(ctx, "version", metav1.GetOptions{}); err != nil {
		cv := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion", "metadata": map[string]any{"name": "version"},
			"status": map[string]any{"desired": map[string]any{"version": "4.16.3"}}}}
		_, err = admin.Dynamic.Resource(cluster.ClusterVersionGVR).Create(ctx, cv, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err = sa.OpenShiftVersion(ctx)
	require.NoError(t, err)

	// A build, completed by the stand-in build controller.
	b := &cluster.Builder{C: sa, Cfg: cluster.BuilderConfig{Namespace: "dgpu-work", GitURI: "https://example.com/x.git", Poll: time.Second}}
	spec := buildSpec("intel-dgpu-driver-rbac-r1")
	controller(t, admin, "dgpu-work", spec.Name, map[string]any{"phase": "Complete", "output": map[string]any{"to": map[string]any{"imageDigest": "sha256:" + strings.Repeat("cd", 32)}}})
	_, err = b.Build(ctx, spec, func(string) {})
	require.NoError(t, err)

	// A GPU test on a canary node, with the stand-in KMM.
	fakeNode(t, admin, "canary-rbac", kernelA, map[string]string{"intel.feature.node.kubernetes.io/gpu": "true", "dgpu-release/canary": "rbac"}, 1)
	writeLog(t, kc, "Number of platforms                               1")
	tester := &cluster.Tester{C: sa, Cfg: cluster.TesterConfig{Namespace: "dgpu-work", CanarySelector: "dgpu-release/canary=rbac", Image: "example.com/gpu-test:ok", Poll: 300 * time.Millisecond, ReadyTimeout: time.Minute, TestTimeout: 2 * time.Minute}}
	tspec := release.TestSpec{Name: "dgpu-test-rbac-r1", WorkflowID: "w", Round: 1, Kernel: kernelA, Image: "quay.io/intel/staging@sha256:s"}
	kmm(t, admin, "dgpu-work", tspec.Name, "canary-rbac")
	var cleanupNotes []string
	_, err = tester.Test(ctx, tspec, func(m string) {
		if strings.Contains(m, "could not delete") {
			cleanupNotes = append(cleanupNotes, m)
		}
	})
	require.NoError(t, err)
	assert.Empty(t, cleanupNotes, "clean-up is within the rules too")

	// The debug workload.
	d := &cluster.Debug{C: sa}
	w, err := d.Deploy(ctx, release.DebugSpec{WorkflowID: "release/rbac/1.0.0", Step: release.StepGPUTest, Kernel: kernelA, Image: "img@sha256:1", Node: "canary-rbac"})
	require.NoError(t, err)
	require.NoError(t, d.Remove(ctx, w.Name))
}

func gvr(g, v, r string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: g, Version: v, Resource: r}
}
