package debug_test

import (
	"flag"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/debug"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRenderGolden(t *testing.T) {
	got, err := debug.Render(debug.Spec{WorkflowID: "release/5.14.0-427.13.1.el9_4.x86_64/1.2.3", Step: "gpu-test", Kernel: "5.14.0-427.13.1.el9_4.x86_64", Image: "quay.io/intel/staging@sha256:abc", NodeName: "gpu-node-1"})
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile("testdata/debug.yaml", got, 0o644))
	}
	want, err := os.ReadFile("testdata/debug.yaml")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
}

func TestPodNameIsDeterministicAndValid(t *testing.T) {
	a := debug.PodName("release/5.14.0-427.13.1.el9_4.x86_64/1.2.3")
	assert.Equal(t, a, debug.PodName("release/5.14.0-427.13.1.el9_4.x86_64/1.2.3"))
	assert.NotEqual(t, a, debug.PodName("release/5.14.0-427.13.1.el9_4.x86_64/1.2.4"))
	assert.LessOrEqual(t, len(a), 63)
	assert.Regexp(t, `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, a)
	assert.Equal(t, "oc rsh -n intel-dgpu-debug pod/"+a, debug.AttachCommand(debug.Spec{WorkflowID: "release/5.14.0-427.13.1.el9_4.x86_64/1.2.3"}))
	_, err := debug.Render(debug.Spec{})
	require.Error(t, err)
}
