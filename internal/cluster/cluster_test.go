package cluster_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"dgpu-release/internal/cluster"
	"dgpu-release/internal/kubetest"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
)

const (
	kernelA = "5.14.0-427.26.1.el9_4.x86_64"
	kernelB = "5.14.0-427.37.1.el9_4.x86_64"
)

// One control plane for all the cluster tests of this package: it takes seconds to start.
var (
	once    sync.Once
	shared  *kubetest.Cluster
	sharedC *cluster.Client
)

func start(t *testing.T) (*kubetest.Cluster, *cluster.Client) {
	t.Helper()
	once.Do(func() {
		kc := kubetest.Start(&keepAlive{T: t})
		c, err := cluster.New(kc.Config)
		require.NoError(t, err)
		shared, sharedC = kc, c
	})
	if shared == nil {
		t.Skip("no control plane (see the first test's message)")
	}
	return shared, sharedC
}

// keepAlive lets the control plane outlive the first test: its cleanups run at exit.
type keepAlive struct{ *testing.T }

func (k *keepAlive) Cleanup(f func()) { cleanups = append(cleanups, f) }
func (k *keepAlive) TempDir() string {
	d, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		k.T.Fatal(err)
	}
	cleanups = append(cleanups, func() { os.RemoveAll(d) })
	return d
}

var cleanups []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

func fakeNode(t *testing.T, _ *cluster.Client, name, kernel string, labels map[string]string, gpus int64) {
	shared.AddNode(t, name, kernel, labels, gpus)
}

func namespace(t *testing.T, _ *cluster.Client, name string) { shared.Namespace(t, name) }

func TestKernelsFromGPUNodesAndClusterVersion(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	gpu := map[string]string{"intel.feature.node.kubernetes.io/gpu": "true"}
	fakeNode(t, c, "gpu-a1", kernelA, gpu, 1)
	fakeNode(t, c, "gpu-a2", kernelA, gpu, 1)
	fakeNode(t, c, "gpu-b1", kernelB, gpu, 1)
	fakeNode(t, c, "cpu-1", "5.14.0-1.el9_4.x86_64", nil, 0)
	got, err := c.GPUNodeKernels(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []cluster.NodeKernel{{Kernel: kernelA, Nodes: []string{"gpu-a1", "gpu-a2"}}, {Kernel: kernelB, Nodes: []string{"gpu-b1"}}}, got)

	cv := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion", "metadata": map[string]any{"name": "version"},
		"spec":   map[string]any{"channel": "stable-4.16"},
		"status": map[string]any{"desired": map[string]any{"version": "4.16.10"}, "history": []any{map[string]any{"version": "4.16.10", "state": "Completed"}, map[string]any{"version": "4.16.3", "state": "Completed"}}}}}
	_, err = c.Dynamic.Resource(cluster.ClusterVersionGVR).Create(ctx, cv, metav1.CreateOptions{})
	require.NoError(t, err)
	v, err := c.OpenShiftVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, cluster.ClusterVersion{Desired: "4.16.10", History: []string{"4.16.10", "4.16.3"}}, v)

	require.NoError(t, c.RequireAPIs(ctx, cluster.BuildGVR, cluster.ModuleGVR, cluster.ClusterVersionGVR))
	err = c.RequireAPIs(ctx, schemaGVR("image.openshift.io", "v1", "imagestreams"))
	require.ErrorContains(t, err, "does not serve image.openshift.io/v1 imagestreams")
}

func buildSpec(name string) release.BuildSpec {
	return release.BuildSpec{Name: name, WorkflowID: "release/" + kernelA + "/1.2.0", Round: 1, BuildKey: "sha256:0123456789ab",
		DockerfileCommit: "c0ffee", StagingRepo: "quay.io/intel/staging", Tag: "1.2.0-" + kernelA + "-0123456789ab",
		Args: release.BuildArgs(kernelA, "quay.io/dtk@sha256:d", release.DriverSet{I915Tag: "I", FirmwareTag: "F", DriverVersion: "1.2.0"})}
}

// controller plays OpenShift's build controller: it finishes the named build once it exists.
func controller(t *testing.T, c *cluster.Client, ns, name string, status map[string]any) {
	t.Helper()
	go func() {
		res := c.Dynamic.Resource(cluster.BuildGVR).Namespace(ns)
		for i := 0; i < 300; i++ {
			b, err := res.Get(context.Background(), name, metav1.GetOptions{})
			if err == nil {
				_ = unstructured.SetNestedField(b.Object, "Running", "status", "phase")
				if b, err = res.Update(context.Background(), b, metav1.UpdateOptions{}); err == nil {
					time.Sleep(300 * time.Millisecond)
					b.Object["status"] = status
					if _, err := res.Update(context.Background(), b, metav1.UpdateOptions{}); err == nil {
						return
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

func TestBuildIsWatchedToItsDigestAndReusedOnRetry(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	namespace(t, c, "dgpu-build")
	b := &cluster.Builder{C: c, Cfg: cluster.BuilderConfig{Namespace: "dgpu-build", GitURI: "https://example.com/dgpu-release.git", Poll: time.Second}}
	spec := buildSpec("intel-dgpu-driver-0123456789ab-r1")
	digest := "sha256:" + strings.Repeat("ab", 32)
	controller(t, c, "dgpu-build", spec.Name, map[string]any{"phase": "Complete", "output": map[string]any{"to": map[string]any{"imageDigest": digest}}})
	var progress []string
	out, err := b.Build(ctx, spec, func(m string) { progress = append(progress, m) })
	require.NoError(t, err)
	assert.Equal(t, digest, out.Image.Digest)
	assert.Equal(t, "quay.io/intel/staging", out.Image.Repository)
	assert.Contains(t, strings.Join(progress, "\n"), "created build "+spec.Name)
	assert.Contains(t, strings.Join(progress, "\n"), "Running", "the watch reports phase changes")

	obj, err := c.Dynamic.Resource(cluster.BuildGVR).Namespace("dgpu-build").Get(ctx, spec.Name, metav1.GetOptions{})
	require.NoError(t, err)
	args, _, _ := unstructured.NestedSlice(obj.Object, "spec", "strategy", "dockerStrategy", "buildArgs")
	assert.Len(t, args, 5)

	// A retried activity finds its own build instead of starting a second one.
	progress = nil
	again, err := b.Build(ctx, spec, func(m string) { progress = append(progress, m) })
	require.NoError(t, err)
	assert.Equal(t, digest, again.Image.Digest)
	assert.Contains(t, strings.Join(progress, "\n"), "found build")
	list, err := c.Dynamic.Resource(cluster.BuildGVR).Namespace("dgpu-build").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, list.Items, 1)

	failing := buildSpec("intel-dgpu-driver-0123456789ab-r2")
	controller(t, c, "dgpu-build", failing.Name, map[string]any{"phase": "Failed", "reason": "DockerBuildFailed", "message": "Docker build strategy has failed.",
		"logSnippet": "drivers/gpu/drm/i915/i915_driver.c:1: error: unknown type name\nmake: *** [Makefile:243] Error 1"})
	_, err = b.Build(ctx, failing, func(string) {})
	require.Error(t, err)
	var sf *release.StepFailure
	require.ErrorAs(t, err, &sf)
	assert.Contains(t, sf.Evidence.Summary, "ended Failed: DockerBuildFailed")
	assert.Contains(t, sf.Evidence.LogTail, "i915_driver.c:1: error")
}

func writeLog(t *testing.T, kc *kubetest.Cluster, lines ...string) {
	kc.ContainerLog(t, "gpu-test", lines...)
}

// kmm plays the KMM operator: once the Module exists, it labels the canary node ready.
func kmm(t *testing.T, c *cluster.Client, ns, module, node string) {
	t.Helper()
	go func() {
		for i := 0; i < 300; i++ {
			if _, err := c.Dynamic.Resource(cluster.ModuleGVR).Namespace(ns).Get(context.Background(), module, metav1.GetOptions{}); err == nil {
				n, err := c.Kube.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
				if err == nil {
					n.Labels[cluster.ReadyLabel(ns, module)] = ""
					if _, err := c.Kube.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err == nil {
						return
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

func TestGPUTestRunsOnTheCanaryAndCleansUp(t *testing.T) {
	kc, c := start(t)
	ctx := context.Background()
	namespace(t, c, "dgpu-test")
	fakeNode(t, c, "canary-1", kernelA, map[string]string{"intel.feature.node.kubernetes.io/gpu": "true", "dgpu-release/canary": "true"}, 1)
	writeLog(t, kc, "Number of platforms                               1", "  Platform Name                                   Intel(R) OpenCL Graphics")

	tester := &cluster.Tester{C: c, Cfg: cluster.TesterConfig{Namespace: "dgpu-test", Image: "example.com/gpu-test:ok", Poll: 300 * time.Millisecond, ReadyTimeout: time.Minute, TestTimeout: 2 * time.Minute}}
	spec := release.TestSpec{Name: "dgpu-test-0123456789ab-r1", WorkflowID: "w", Round: 1, Kernel: kernelA, Image: "quay.io/intel/staging@sha256:s"}
	kmm(t, c, "dgpu-test", spec.Name, "canary-1")
	out, err := tester.Test(ctx, spec, func(string) {})
	require.NoError(t, err)
	assert.Equal(t, "canary-1", out.Node)
	assert.Contains(t, out.Evidence.LogTail, "Intel(R) OpenCL Graphics", "the Job's logs are the evidence")

	_, err = c.Dynamic.Resource(cluster.ModuleGVR).Namespace("dgpu-test").Get(ctx, spec.Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the Module is removed after the test")
	require.Eventually(t, func() bool {
		_, err := c.Kube.BatchV1().Jobs("dgpu-test").Get(ctx, spec.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 200*time.Millisecond, "the Job is removed after the test")

	// A failing test tool: evidence, and everything removed too.
	failing := spec
	failing.Name = "dgpu-test-0123456789ab-r2"
	tester.Cfg.Image = "example.com/gpu-test:fail"
	writeLog(t, kc, "Number of platforms                               0", "clinfo: no OpenCL platform found")
	kmm(t, c, "dgpu-test", failing.Name, "canary-1")
	_, err = tester.Test(ctx, failing, func(string) {})
	var sf *release.StepFailure
	require.ErrorAs(t, err, &sf)
	assert.Contains(t, sf.Evidence.Summary, "the GPU test Job failed on canary-1")
	assert.Contains(t, sf.Evidence.LogTail, "no OpenCL platform found")
	_, err = c.Dynamic.Resource(cluster.ModuleGVR).Namespace("dgpu-test").Get(ctx, failing.Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err))
}

func TestDebugWorkloadIsAppliedAndRemoved(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	d := &cluster.Debug{C: c}
	in := release.DebugSpec{WorkflowID: "release/" + kernelA + "/1.2.0", Step: release.StepGPUTest, Kernel: kernelA, Image: "quay.io/intel/staging@sha256:s", Node: "gpu-a1"}
	w, err := d.Deploy(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, "oc rsh -n intel-dgpu-debug pod/"+w.Name, w.Attach)
	pod, err := c.Kube.CoreV1().Pods("intel-dgpu-debug").Get(ctx, w.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "gpu-a1", pod.Spec.NodeName)
	assert.True(t, *pod.Spec.Containers[0].SecurityContext.Privileged)
	_, err = d.Deploy(ctx, in)
	require.NoError(t, err, "deploying twice is harmless (server-side apply)")
	rb, err := c.Kube.RbacV1().RoleBindings("intel-dgpu-debug").Get(ctx, "intel-dgpu-debug-privileged", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "system:openshift:scc:privileged", rb.RoleRef.Name)

	require.NoError(t, d.Remove(ctx, w.Name))
	require.Eventually(t, func() bool {
		_, err := c.Kube.CoreV1().Pods("intel-dgpu-debug").Get(ctx, w.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 200*time.Millisecond)
	require.NoError(t, d.Remove(ctx, w.Name), "removing twice is no error")
}

// The cluster as a kernel source: its ClusterVersion's payload names the Driver Toolkit,
// whose release file gives the kernel.
func TestClusterKernelSource(t *testing.T) {
	_, c := start(t)
	ctx := context.Background()
	h, err := registry.NewServer(t.TempDir(), nil)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	rc := registry.NewClient()
	dtk, err := ocp.DTKStandIn(ocp.DTKRelease{KernelVersion: kernelB, RHELVersion: "9.4"})
	require.NoError(t, err)
	dtkDigest, err := rc.Push(ctx, dtk, host+"/ocp/dtk:4.17.0")
	require.NoError(t, err)
	refs := fmt.Sprintf(`{"kind":"ImageStream","spec":{"tags":[{"name":"driver-toolkit","from":{"kind":"DockerImage","name":"%s/ocp/dtk@%s"}}]}}`, host, dtkDigest)
	l, err := registry.Layer([]registry.File{{Path: "/release-manifests/image-references", Content: []byte(refs)}})
	require.NoError(t, err)
	payload, err := registry.Assemble([]v1.Layer{l}, v1.Config{})
	require.NoError(t, err)
	pd, err := rc.Push(ctx, payload, host+"/ocp/release:4.17.0")
	require.NoError(t, err)

	cv := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion", "metadata": map[string]any{"name": "version"},
		"status": map[string]any{"desired": map[string]any{"version": "4.17.0", "image": host + "/ocp/release@" + pd}}}}
	res := c.Dynamic.Resource(cluster.ClusterVersionGVR)
	if old, err := res.Get(ctx, "version", metav1.GetOptions{}); err == nil {
		cv.SetResourceVersion(old.GetResourceVersion())
		_, err = res.Update(ctx, cv, metav1.UpdateOptions{})
		require.NoError(t, err)
	} else {
		_, err = res.Create(ctx, cv, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	rels, err := cluster.KernelSource{C: c, Images: rc}.Releases(ctx)
	require.NoError(t, err)
	require.Len(t, rels, 1)
	assert.Equal(t, "4.17.0", rels[0].OpenShift)
	assert.Equal(t, kernelB, rels[0].Kernel)
	assert.Equal(t, host+"/ocp/dtk@"+dtkDigest, rels[0].DTKImage)
}
