package ocp_test

import (
	"context"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/ocp"
	"dgpu-release/internal/registry"
)

func TestReadDTKReleaseTopLayerWins(t *testing.T) {
	old, err := registry.Layer([]registry.File{{Path: "/etc/driver-toolkit-release.json", Content: []byte(`{"KERNEL_VERSION":"5.14.0-284.73.1.el9_2.x86_64","RHEL_VERSION":"9.2"}`)}})
	require.NoError(t, err)
	newer, err := registry.Layer([]registry.File{{Path: "/etc/driver-toolkit-release.json", Content: []byte(`{"KERNEL_VERSION":"5.14.0-427.26.1.el9_4.x86_64","RT_KERNEL_VERSION":"5.14.0-427.26.1.el9_4.x86_64+rt","RHEL_VERSION":"9.4"}`)}})
	require.NoError(t, err)
	other, err := registry.Layer([]registry.File{{Path: "/usr/bin/x", Content: []byte("x")}})
	require.NoError(t, err)
	img, err := registry.Assemble([]v1.Layer{old, newer, other}, v1.Config{})
	require.NoError(t, err)
	rel, err := ocp.ReadDTKRelease(context.Background(), img)
	require.NoError(t, err)
	assert.Equal(t, "5.14.0-427.26.1.el9_4.x86_64", rel.KernelVersion)
	assert.Equal(t, "9.4", rel.RHELVersion)

	img, err = registry.Assemble([]v1.Layer{other}, v1.Config{})
	require.NoError(t, err)
	_, err = ocp.ReadDTKRelease(context.Background(), img)
	require.ErrorContains(t, err, "not found")

	bad, err := registry.Layer([]registry.File{{Path: "/etc/driver-toolkit-release.json", Content: []byte(`{"KERNEL_VERSION":"garbage"}`)}})
	require.NoError(t, err)
	img, err = registry.Assemble([]v1.Layer{bad}, v1.Config{})
	require.NoError(t, err)
	_, err = ocp.ReadDTKRelease(context.Background(), img)
	require.ErrorContains(t, err, "KERNEL_VERSION")
}

func TestFind(t *testing.T) {
	rels := []ocp.Release{
		{OpenShift: "4.16.3", Kernel: "k1"},
		{OpenShift: "4.16.10", Kernel: "k1"},
		{OpenShift: "4.17.0-rc.1", Kernel: "k2"},
		{OpenShift: "4.17.0", Kernel: "k2"},
	}
	r, err := ocp.Find(rels, "", "k1")
	require.NoError(t, err)
	assert.Equal(t, "4.16.10", r.OpenShift, "newest release that ships the kernel")
	r, ok := ocp.Newest(rels)
	require.True(t, ok)
	assert.Equal(t, "4.17.0", r.OpenShift, "a release candidate is older than its release")
	_, err = ocp.Find(rels, "4.18.0", "")
	require.ErrorContains(t, err, "4.18.0 is not known")
	require.ErrorContains(t, err, "4.16.3 (k1)")
}
