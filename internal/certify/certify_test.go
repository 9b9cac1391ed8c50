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

func goodLabels() map[string]string {
	return map[string]string{"name": "intel-dgpu-driver", "vendor": "Intel Corporation", "version": "1.2.3", "release": "1", "summary": "s", "description": "d", "maintainer": "m"}
}

func image(t *testing.T, layers [][]registry.File, cfg v1.Config) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, files := range layers {
		l, err := registry.Layer(files)
		require.NoError(t, err)
		ls = append(ls, l)
	}
	img, err := registry.Assemble(ls, cfg)
	require.NoError(t, err)
	return img
}

func run(t *testing.T, tgt certify.Target, check string) release.CheckOutcome {
	t.Helper()
	res, err := certify.Run(context.Background(), tgt, certify.Options{Policy: certify.PolicyContainer, UBI: certify.ListFile{Path: "/nonexistent"}})
	require.NoError(t, err)
	for _, group := range []struct {
		name string
		list []release.CheckOutcome
	}{{"passed", res.Results.Passed}, {"failed", res.Results.Failed}, {"errors", res.Results.Errors}} {
		for _, o := range group.list {
			if o.Name == check {
				o.Help = group.name // smuggle the group out for the assertions
				return o
			}
		}
	}
	t.Fatalf("check %s did not run", check)
	return release.CheckOutcome{}
}

func TestEachCheckPassesAndFails(t *testing.T) {
	license := []registry.File{{Path: "/licenses/LICENSE", Content: []byte("MIT")}}
	good := certify.Target{Ref: "r@sha256:1", Repository: "intel/intel-dgpu-driver", Tags: []string{"1.2.3-k"},
		Image: image(t, [][]registry.File{license}, v1.Config{Labels: goodLabels(), User: "1001"})}
	for _, c := range []string{certify.HasLicense, certify.HasUniqueTag, certify.LayerCountAcceptable, certify.HasRequiredLabel, certify.HasNoProhibitedLabels, certify.RunAsNonRoot, certify.HasProhibitedContainerName} {
		assert.Equal(t, "passed", run(t, good, c).Help, c)
	}

	for _, tc := range []struct {
		name   string
		check  string
		mutate func(*certify.Target)
		reason string
	}{
		{"no licenses dir", certify.HasLicense, func(x *certify.Target) {
			x.Image = image(t, [][]registry.File{{{Path: "/etc/x", Content: []byte("x")}}}, v1.Config{Labels: goodLabels()})
		}, "does not exist"},
		{"empty license file", certify.HasLicense, func(x *certify.Target) {
			x.Image = image(t, [][]registry.File{{{Path: "/licenses/LICENSE"}}}, v1.Config{Labels: goodLabels()})
		}, "no non-empty"},
		{"license deleted by a whiteout", certify.HasLicense, func(x *certify.Target) {
			x.Image = image(t, [][]registry.File{license, {{Path: "/licenses/.wh.LICENSE"}}}, v1.Config{Labels: goodLabels()})
		}, "no non-empty"},
		{"only latest", certify.HasUniqueTag, func(x *certify.Target) { x.Tags = []string{"latest"} }, "latest"},
		{"no tags", certify.HasUniqueTag, func(x *certify.Target) { x.Tags = nil }, "no tags"},
		{"41 layers", certify.LayerCountAcceptable, func(x *certify.Target) {
			var ls [][]registry.File
			for i := 0; i < 41; i++ {
				ls = append(ls, license)
			}
			x.Image = image(t, ls, v1.Config{Labels: goodLabels()})
		}, "41 layers"},
		{"missing maintainer", certify.HasRequiredLabel, func(x *certify.Target) {
			l := goodLabels()
			delete(l, "maintainer")
			x.Image = image(t, [][]registry.File{license}, v1.Config{Labels: l})
		}, "maintainer"},
		{"Red Hat vendor", certify.HasNoProhibitedLabels, func(x *certify.Target) {
			l := goodLabels()
			l["vendor"] = "Red Hat, Inc."
			x.Image = image(t, [][]registry.File{license}, v1.Config{Labels: l})
		}, "vendor"},
		{"root user", certify.RunAsNonRoot, func(x *certify.Target) {
			x.Image = image(t, [][]registry.File{license}, v1.Config{Labels: goodLabels(), User: "0:0"})
		}, "root"},
		{"no user", certify.RunAsNonRoot, func(x *certify.Target) {
			x.Image = image(t, [][]registry.File{license}, v1.Config{Labels: goodLabels()})
		}, "no USER"},
		{"redhat in name", certify.HasProhibitedContainerName, func(x *certify.Target) { x.Repository = "intel/redhat-gpu-driver" }, "Red Hat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := good
			tc.mutate(&tgt)
			o := run(t, tgt, tc.check)
			assert.Equal(t, "failed", o.Help)
			assert.Contains(t, o.Reason, tc.reason)
		})
	}
}

func TestRootPolicyForDriverImages(t *testing.T) {
	base := baseLayer(t, []rpm.Package{bashPkg("5.1.8")})
	tgt := certify.Target{Ref: "r@sha256:1", Repository: "intel/intel-dgpu-driver", Tags: []string{"1.2.3-k"},
		Image: imageWith(t, []v1.Layer{base, layerOf(t, registry.File{Path: "/licenses/LICENSE", Content: []byte("GPL")})}, v1.Config{Labels: goodLabels()})}
	diffID, err := base.DiffID()
	require.NoError(t, err)
	opts := certify.Options{Policy: certify.PolicyRoot, UBI: listFile(t, diffID.String())}
	res, err := certify.Run(context.Background(), tgt, opts)
	require.NoError(t, err)
	assert.True(t, res.Passed, "a root driver image on a certified base passes under the root-exception policy: %+v", res.Results)
	assert.Len(t, res.Results.Passed, 9, "all nine checks of the root policy run")
	for _, o := range res.Results.Passed {
		assert.NotEqual(t, certify.RunAsNonRoot, o.Name, "the root policy drops RunAsNonRoot")
	}
	assert.Empty(t, res.NotRun)

	opts.Policy = certify.PolicyContainer
	res, err = certify.Run(context.Background(), tgt, opts)
	require.NoError(t, err)
	assert.False(t, res.Passed, "the same image fails the container policy: it runs as root")
	assert.Equal(t, certify.RunAsNonRoot, res.Results.Failed[0].Name)

	_, err = certify.ParsePolicy("strict")
	require.ErrorContains(t, err, "one of container, root, scratch-nonroot, scratch-root")
}
