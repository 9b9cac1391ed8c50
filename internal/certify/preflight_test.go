package certify_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/certify"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
	"dgpu-release/internal/rpm"
)

// A stand-in preflight executable: it writes, as preflight does, artifacts/results.json
// for the image it is given, from a results document the test prepared, and exits 1 when
// the checks did not pass.
func fakePreflight(t *testing.T, doc []byte, passed bool) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "doc.json"), doc, 0o644))
	exit := "0"
	if !passed {
		exit = "1"
	}
	script := `#!/bin/sh
# usage: preflight check container REF --artifacts DIR [--docker-config FILE]
[ "$1" = check ] && [ "$2" = container ] || { echo "unexpected args: $*" >&2; exit 2; }
art=""
while [ $# -gt 0 ]; do [ "$1" = --artifacts ] && art="$2"; shift; done
mkdir -p "$art" && cp "` + filepath.Join(dir, "doc.json") + `" "$art/results.json"
exit ` + exit + "\n"
	bin := filepath.Join(dir, "preflight")
	require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))
	return bin
}

// preflightDoc renders a native result the way preflight writes its results.json.
func preflightDoc(t *testing.T, r release.CertificationResult) []byte {
	t.Helper()
	conv := func(in []release.CheckOutcome) []map[string]any {
		out := []map[string]any{}
		for _, o := range in {
			out = append(out, map[string]any{"name": o.Name, "elapsed_time": o.ElapsedTime, "description": o.Description, "help": o.Help, "suggestion": o.Reason})
		}
		return out
	}
	b, err := json.Marshal(map[string]any{
		"image": r.Image, "passed": r.Passed,
		"test_library": map[string]any{"name": "github.com/redhat-openshift-ecosystem/openshift-preflight", "version": "1.9.0", "commit": "abc"},
		"results":      map[string]any{"passed": conv(r.Results.Passed), "failed": conv(r.Results.Failed), "errors": conv(r.Results.Errors)},
	})
	require.NoError(t, err)
	return b
}

func TestPreflightBinaryGivesTheSameRecord(t *testing.T) {
	base := baseLayer(t, []rpm.Package{bashPkg("5.1.8")})
	img := imageWith(t, []v1.Layer{base, layerOf(t, registry.File{Path: "/licenses/L", Content: []byte("l")})}, v1.Config{Labels: goodLabels()})
	diffID, _ := base.DiffID()
	native, err := certify.Run(context.Background(), certify.Target{Ref: "reg/x@sha256:1", Repository: "intel/x", Tags: []string{"1"}, Image: img},
		certify.Options{Policy: certify.PolicyRoot, UBI: listFile(t, diffID.String())})
	require.NoError(t, err)

	for _, passed := range []bool{true, false} {
		want := native
		if !passed {
			want.Passed = false
			want.Results.Failed = []release.CheckOutcome{want.Results.Passed[0]}
			want.Results.Passed = want.Results.Passed[1:]
		}
		p := certify.Preflight{Binary: fakePreflight(t, preflightDoc(t, want), passed), Policy: certify.PolicyRoot}
		require.True(t, p.Available())
		got, err := p.Run(context.Background(), "reg/x@sha256:1")
		require.NoError(t, err, "a failing check is a result, not an error")
		assert.Equal(t, want.Passed, got.Passed)
		assert.Equal(t, want.Results, got.Results, "the two paths produce the same record")
		assert.Equal(t, want.Image, got.Image)
		assert.Equal(t, "root", got.Policy)
		assert.Equal(t, "1.9.0", got.TestLibrary.Version)
	}

	broken := filepath.Join(t.TempDir(), "preflight")
	require.NoError(t, os.WriteFile(broken, []byte("#!/bin/sh\necho 'Error: cannot pull image' >&2\nexit 1\n"), 0o755))
	_, err = certify.Preflight{Binary: broken}.Run(context.Background(), "reg/x@sha256:1")
	require.ErrorContains(t, err, "cannot pull image")
	assert.False(t, certify.Preflight{Binary: "no-such-preflight-binary"}.Available())
}
