package cluster_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"dgpu-release/debug"
	"dgpu-release/internal/cluster"
	"dgpu-release/internal/release"
)

func TestBuildObject(t *testing.T) {
	b := &cluster.Builder{Cfg: cluster.BuilderConfig{Namespace: "dgpu-build", GitURI: "https://github.com/intel/dgpu-release.git", PushSecret: "staging-push"}}
	spec := release.BuildSpec{Name: "intel-dgpu-driver-abc-r1", WorkflowID: "release/k/1.2.0", Round: 1, BuildKey: "sha256:abc",
		DockerfileCommit: "c0ffee", StagingRepo: "quay.io/intel/staging", Tag: "1.2.0-k-abc",
		Args: release.BuildArgs("5.14.0-427.26.1.el9_4.x86_64", "quay.io/dtk@sha256:d", release.DriverSet{I915Tag: "I", FirmwareTag: "F", DriverVersion: "1.2.0"})}
	o := b.BuildObject(spec)
	assert.Equal(t, "Build", o.GetKind())
	assert.Equal(t, "intel-dgpu-driver-abc-r1", o.GetName(), "the name is the spec's deterministic name")
	strategy, _, _ := unstructured.NestedString(o.Object, "spec", "strategy", "type")
	assert.Equal(t, "Docker", strategy)
	path, _, _ := unstructured.NestedString(o.Object, "spec", "strategy", "dockerStrategy", "dockerfilePath")
	assert.Equal(t, "docker/intel-dgpu-driver.Dockerfile", path)
	ref, _, _ := unstructured.NestedString(o.Object, "spec", "source", "git", "ref")
	assert.Equal(t, "c0ffee", ref)
	args, _, _ := unstructured.NestedSlice(o.Object, "spec", "strategy", "dockerStrategy", "buildArgs")
	got := map[string]string{}
	for _, a := range args {
		m := a.(map[string]any)
		got[m["name"].(string)] = m["value"].(string)
	}
	assert.Equal(t, spec.Args, got)
	to, _, _ := unstructured.NestedString(o.Object, "spec", "output", "to", "name")
	assert.Equal(t, "quay.io/intel/staging:1.2.0-k-abc", to)
	labels, _, _ := unstructured.NestedSlice(o.Object, "spec", "output", "imageLabels")
	assert.Equal(t, map[string]any{"name": release.LabelBuildKey, "value": "sha256:abc"}, labels[0])
}

func TestModuleObject(t *testing.T) {
	m := cluster.ModuleObject("dgpu-test-abc-r1", "dgpu-test", "5.14.0-427.26.1.el9_4.x86_64", "quay.io/intel/staging@sha256:s", map[string]string{"dgpu-release/canary": "true"})
	assert.Equal(t, "kmm.sigs.x-k8s.io/v1beta1", m.GetAPIVersion())
	name, _, _ := unstructured.NestedString(m.Object, "spec", "moduleLoader", "container", "modprobe", "moduleName")
	assert.Equal(t, "i915", name)
	fw, _, _ := unstructured.NestedString(m.Object, "spec", "moduleLoader", "container", "modprobe", "firmwarePath")
	assert.Equal(t, "/firmware", fw)
	remove, _, _ := unstructured.NestedStringSlice(m.Object, "spec", "moduleLoader", "container", "inTreeModulesToRemove")
	assert.Equal(t, []string{"i915", "intel_vsec", "mei_gsc", "mei_me"}, remove)
	maps, _, _ := unstructured.NestedSlice(m.Object, "spec", "moduleLoader", "container", "kernelMappings")
	require.Len(t, maps, 1)
	assert.Equal(t, map[string]any{"literal": "5.14.0-427.26.1.el9_4.x86_64", "containerImage": "quay.io/intel/staging@sha256:s"}, maps[0])
	assert.Equal(t, "kmm.node.kubernetes.io/dgpu-test.dgpu-test-abc-r1.ready", cluster.ReadyLabel("dgpu-test", "dgpu-test-abc-r1"))
}

func TestDebugObjects(t *testing.T) {
	objs, err := cluster.Objects(debug.Spec{WorkflowID: "release/k/1.2.0", Step: "gpu-test", Kernel: "k", Image: "img@sha256:1", NodeName: "gpu-1"})
	require.NoError(t, err)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	assert.Equal(t, []string{"Namespace", "ServiceAccount", "RoleBinding", "Pod"}, kinds)
	priv, _, _ := unstructured.NestedSlice(objs[3].Object, "spec", "containers")
	assert.Equal(t, true, priv[0].(map[string]any)["securityContext"].(map[string]any)["privileged"])
	node, _, _ := unstructured.NestedString(objs[3].Object, "spec", "nodeName")
	assert.Equal(t, "gpu-1", node)
}

func schemaGVR(g, v, r string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: g, Version: v, Resource: r}
}
