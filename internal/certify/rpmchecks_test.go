package certify_test

import (
	"context"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/certify"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
	"dgpu-release/internal/rpm"
)

func outcome(t *testing.T, img v1.Image, check string, ubi certify.UBISource) (string, release.CheckOutcome) {
	t.Helper()
	res, err := certify.Run(context.Background(), certify.Target{Ref: "r@sha256:1", Repository: "intel/x", Tags: []string{"1"}, Image: img},
		certify.Options{Policy: certify.PolicyRoot, UBI: ubi})
	require.NoError(t, err)
	for group, list := range map[string][]release.CheckOutcome{"pass": res.Results.Passed, "fail": res.Results.Failed, "error": res.Results.Errors} {
		for _, o := range list {
			if o.Name == check {
				return group, o
			}
		}
	}
	t.Fatalf("%s did not run", check)
	return "", release.CheckOutcome{}
}

func TestProhibitedPackages(t *testing.T) {
	ok := imageWith(t, []v1.Layer{baseLayer(t, []rpm.Package{bashPkg("5.1.8"), {Name: "kmod", Version: "28", Release: "9.el9", Arch: "x86_64"}})}, v1.Config{})
	g, o := outcome(t, ok, certify.HasNoProhibitedPackages, nil)
	assert.Equal(t, "pass", g, o.Reason)
	assert.Contains(t, o.Reason, "2 packages")

	for _, name := range []string{"kernel-core", "kernel", "grub2-tools", "kpatch-patch-5_14", "kmod-kvdo", "linux-firmware"} {
		bad := imageWith(t, []v1.Layer{baseLayer(t, []rpm.Package{bashPkg("5.1.8")}), layerOf(t, rpmdbFile(t, []rpm.Package{bashPkg("5.1.8"), {Name: name, Version: "1", Release: "1", Arch: "x86_64"}}))}, v1.Config{})
		g, o = outcome(t, bad, certify.HasNoProhibitedPackages, nil)
		assert.Equal(t, "fail", g, name)
		assert.Contains(t, o.Reason, name)
	}
	// kmod (not kmod-kvdo) is what the driver image needs, and is allowed.
	none := imageWith(t, []v1.Layer{layerOf(t, registry.File{Path: "/etc/x", Content: []byte("x")})}, v1.Config{})
	g, o = outcome(t, none, certify.HasNoProhibitedPackages, nil)
	assert.Equal(t, "error", g, "no rpm database is an error, never a pass")
	assert.Contains(t, o.Reason, "no rpm database")
}

func TestModifiedFiles(t *testing.T) {
	base := baseLayer(t, []rpm.Package{bashPkg("5.1.8")})
	for _, tc := range []struct {
		name   string
		layer  v1.Layer
		want   string
		reason string
	}{
		{"a new file", layerOf(t, registry.File{Path: "/opt/x", Content: []byte("x")}), "pass", ""},
		{"an rpm-owned binary rewritten", layerOf(t, registry.File{Path: "/usr/bin/bash", Content: []byte("patched")}), "fail", "/usr/bin/bash (bash-5.1.8-6.el9.x86_64) in layer 2"},
		{"a %config file changed", layerOf(t, registry.File{Path: "/etc/skel/.bashrc", Content: []byte("alias x=y")}), "pass", ""},
		{"an owned directory touched", layerOf(t, registry.File{Path: "/usr/share/doc/bash", Dir: true}), "pass", ""},
		{"the package updated through rpm", layerOf(t, registry.File{Path: "/usr/bin/bash", Content: []byte("new")}, rpmdbFile(t, []rpm.Package{bashPkg("5.1.9")})), "pass", ""},
		{"a file deleted", layerOf(t, registry.File{Path: "/usr/bin/.wh.bash"}), "pass", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := imageWith(t, []v1.Layer{base, tc.layer}, v1.Config{})
			g, o := outcome(t, img, certify.HasModifiedFiles, nil)
			assert.Equal(t, tc.want, g, o.Reason)
			assert.Contains(t, o.Reason, tc.reason)
		})
	}
}

func TestBasedOnUBI(t *testing.T) {
	base := baseLayer(t, []rpm.Package{bashPkg("5.1.8")})
	img := imageWith(t, []v1.Layer{base, layerOf(t, registry.File{Path: "/opt/x", Content: []byte("x")})}, v1.Config{})
	diffID, err := base.DiffID()
	require.NoError(t, err)
	digest, err := base.Digest()
	require.NoError(t, err)

	g, o := outcome(t, img, certify.BasedOnUbi, listFile(t, diffID.String()))
	assert.Equal(t, "pass", g, o.Reason)
	g, o = outcome(t, img, certify.BasedOnUbi, listFile(t, digest.String()))
	assert.Equal(t, "pass", g, "a compressed digest is recognised too: %s", o.Reason)
	g, o = outcome(t, img, certify.BasedOnUbi, listFile(t, "sha256:"+string(make([]byte, 0))+"0000000000000000000000000000000000000000000000000000000000000000"))
	assert.Equal(t, "fail", g)
	assert.Contains(t, o.Reason, "none of the 2 layers")
	g, o = outcome(t, img, certify.BasedOnUbi, nil)
	assert.Equal(t, "error", g, "no source is an error, never a pass")
	assert.Contains(t, o.Reason, "no source of certified UBI layers")
	g, o = outcome(t, img, certify.BasedOnUbi, listFile(t, "not-a-digest"))
	assert.Equal(t, "error", g)
	assert.Contains(t, o.Reason, "line 2")
}

func TestEachLayerIsReadOnce(t *testing.T) {
	var opens int32
	layers := []v1.Layer{
		countingLayer(t, baseLayer(t, []rpm.Package{bashPkg("5.1.8")}), &opens),
		countingLayer(t, layerOf(t, registry.File{Path: "/licenses/L", Content: []byte("l")}), &opens),
		countingLayer(t, layerOf(t, registry.File{Path: "/usr/bin/bash", Content: []byte("x")}), &opens),
	}
	img := imageWith(t, layers, v1.Config{Labels: goodLabels()})
	opens = 0
	_, err := certify.Run(context.Background(), certify.Target{Ref: "r@sha256:1", Repository: "intel/x", Tags: []string{"1"}, Image: img}, certify.Options{Policy: certify.PolicyContainer})
	require.NoError(t, err)
	assert.EqualValues(t, 3, opens, "every check together reads each layer once")
}
