package ocp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/ocp"
	"dgpu-release/internal/registry"
)

type countingReader struct {
	c     *registry.Client
	reads int32
}

func (r *countingReader) Image(ctx context.Context, ref string) (v1.Image, error) {
	atomic.AddInt32(&r.reads, 1)
	return r.c.Image(ctx, ref)
}

// pushPayload pushes a DTK image for the kernel and a release payload whose
// image-references names it, and returns the payload's pull spec by digest.
func pushPayload(t *testing.T, host, version, kernel, rhel string) string {
	t.Helper()
	ctx := context.Background()
	c := registry.NewClient()
	dtk, err := ocp.DTKStandIn(ocp.DTKRelease{KernelVersion: kernel, RHELVersion: rhel, OpenShift: version})
	require.NoError(t, err)
	dtkDigest, err := c.Push(ctx, dtk, host+"/ocp-release/dtk:"+version)
	require.NoError(t, err)
	refs, _ := json.Marshal(map[string]any{
		"kind": "ImageStream", "apiVersion": "image.openshift.io/v1",
		"spec": map[string]any{"tags": []any{
			map[string]any{"name": "cli", "from": map[string]any{"kind": "DockerImage", "name": host + "/ocp-release/cli@sha256:" + strings.Repeat("1", 64)}},
			map[string]any{"name": "driver-toolkit", "from": map[string]any{"kind": "DockerImage", "name": host + "/ocp-release/dtk@" + dtkDigest}},
		}},
	})
	bottom, err := registry.Layer([]registry.File{{Path: "/usr/bin/cluster-version-operator", Content: []byte("cvo")}})
	require.NoError(t, err)
	top, err := registry.Layer([]registry.File{{Path: "/release-manifests/image-references", Content: refs}, {Path: "/release-manifests/release-metadata", Content: []byte(`{"version":"` + version + `"}`)}})
	require.NoError(t, err)
	payload, err := registry.Assemble([]v1.Layer{bottom, top}, v1.Config{})
	require.NoError(t, err)
	d, err := c.Push(ctx, payload, host+"/ocp-release/release:"+version+"-x86_64")
	require.NoError(t, err)
	return host + "/ocp-release/release@" + d
}

func TestGraphFindsKernelsThroughPayloads(t *testing.T) {
	h, err := registry.NewServer(t.TempDir(), nil)
	require.NoError(t, err)
	reg := httptest.NewServer(h)
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	p1 := pushPayload(t, host, "4.16.3", "5.14.0-427.26.1.el9_4.x86_64", "9.4")
	p2 := pushPayload(t, host, "4.16.10", "5.14.0-427.33.1.el9_4.x86_64", "9.4")
	p3 := pushPayload(t, host, "4.17.0", "5.14.0-427.37.1.el9_4.x86_64", "9.4")

	var asked []string
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Query().Get("channel"))
		if r.Header.Get("Accept") != "application/json" {
			http.Error(w, "want Accept: application/json", http.StatusNotAcceptable)
			return
		}
		nodes := map[string][]map[string]any{
			"stable-4.16": {{"version": "4.16.3", "payload": p1, "metadata": map[string]string{}}, {"version": "4.16.10", "payload": p2}},
			"fast-4.17":   {{"version": "4.17.0", "payload": p3}, {"version": "4.16.10", "payload": p2}, {"version": "4.17.0-nightly", "payload": "x"}},
		}[r.URL.Query().Get("channel")]
		if nodes == nil {
			http.Error(w, "unknown channel", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"nodes": nodes, "edges": [][]int{{0, 1}}})
	}))
	defer graph.Close()

	reader := &countingReader{c: registry.NewClient()}
	cache := filepath.Join(t.TempDir(), "kernels.json")
	g := &ocp.Graph{URL: graph.URL, Channels: []string{"stable-4.16", "fast-4.17"}, Images: reader, CacheFile: cache}
	rels, err := g.Releases(context.Background())
	require.NoError(t, err)
	require.Len(t, rels, 3)
	assert.Equal(t, "4.16.3", rels[0].OpenShift)
	assert.Equal(t, "5.14.0-427.26.1.el9_4.x86_64", rels[0].Kernel)
	assert.Equal(t, "9.4", rels[0].RHELVersion)
	assert.Contains(t, rels[0].DTKImage, "/ocp-release/dtk@sha256:")
	assert.Equal(t, "4.17.0", rels[2].OpenShift)
	assert.EqualValues(t, 6, reader.reads, "one payload and one DTK read per release")
	assert.ElementsMatch(t, []string{"stable-4.16", "fast-4.17"}, asked)

	// A second reader with the same cache file reads no image.
	reader2 := &countingReader{c: registry.NewClient()}
	g2 := &ocp.Graph{URL: graph.URL, Channels: []string{"stable-4.16", "fast-4.17"}, Images: reader2, CacheFile: cache}
	rels2, err := g2.Releases(context.Background())
	require.NoError(t, err)
	assert.Equal(t, rels, rels2)
	assert.Zero(t, reader2.reads, "kernels are cached by payload digest")

	_, err = (&ocp.Graph{URL: graph.URL, Channels: []string{"nightly-4.16"}, Images: reader}).Releases(context.Background())
	require.ErrorContains(t, err, "stable-4.y")
	_, err = (&ocp.Graph{URL: graph.URL, Channels: []string{"stable-4.99"}, Images: reader}).Releases(context.Background())
	require.ErrorContains(t, err, "400")

	bad := registry.NewClient()
	l, _ := registry.Layer([]registry.File{{Path: "/etc/x", Content: []byte("x")}})
	img, _ := registry.Assemble([]v1.Layer{l}, v1.Config{})
	d, err := bad.Push(context.Background(), img, host+"/ocp-release/release:broken")
	require.NoError(t, err)
	_, err = ocp.DTKFromPayload(context.Background(), bad, host+"/ocp-release/release@"+d)
	require.ErrorContains(t, err, "image-references not found")
}
