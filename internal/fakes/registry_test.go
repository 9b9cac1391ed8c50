package fakes_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/fakes"
	"dgpu-release/internal/registry"
)

// embeddedRegistry serves internal/registry's server and returns its host:port.
func embeddedRegistry(t *testing.T) string {
	t.Helper()
	h, err := registry.NewServer(t.TempDir(), nil)
	require.NoError(t, err)
	return strings.TrimPrefix(serve(t, h), "http://")
}

// faultedProxy puts Faults and a RegistryProxy in front of target and returns the
// proxy's host:port.
func faultedProxy(t *testing.T, target string) (string, *fakes.Faults) {
	t.Helper()
	f := fakes.NewFaults(fakes.RegistryProxy(target), fakes.WithErrorBody(fakes.RegistryError))
	return strings.TrimPrefix(serve(t, f), "http://"), f
}

func image(t *testing.T, content string) v1.Image {
	t.Helper()
	l, err := registry.Layer([]registry.File{{Path: "/opt/data", Content: []byte(content)}})
	require.NoError(t, err)
	img, err := registry.Assemble([]v1.Layer{l}, v1.Config{Labels: map[string]string{"name": "x"}})
	require.NoError(t, err)
	return img
}

func TestRegistryProxyPushAndPull(t *testing.T) {
	ctx := context.Background()
	target := embeddedRegistry(t)
	proxy, f := faultedProxy(t, target)
	c := registry.NewClient()

	d, err := c.Push(ctx, image(t, "through the proxy"), proxy+"/staging/driver:1")
	require.NoError(t, err)
	assert.Positive(t, f.On(http.MethodPut, "/v2/staging/driver/manifests/").Counts().Passed, "the push went through the proxy")

	got, ok, err := c.Digest(ctx, target+"/staging/driver:1")
	require.NoError(t, err)
	require.True(t, ok, "the image is in the registry behind the proxy")
	assert.Equal(t, d, got)

	img, err := c.Image(ctx, proxy+"/staging/driver@"+d)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Contains(t, string(b), "through the proxy", "the layer reads back through the proxy")
}

// go-containerregistry's remote wraps its transport in a retrying one: 408, 429, 500,
// 502, 503, 504 (and 499, 522) are retried, three attempts in all, 1s then 3s apart
// (blob uploads are retried as a whole, three times, instead). So two 503s in a row are
// absorbed by the client, and a third is not.
func TestRegistryClientRetries5xxThreeAttemptsInAll(t *testing.T) {
	t.Run("two 503s are retried", func(t *testing.T) {
		t.Parallel()
		target := embeddedRegistry(t)
		proxy, f := faultedProxy(t, target)
		f.FailNext(2, http.StatusServiceUnavailable)
		start := time.Now()
		d, err := registry.NewClient().Push(context.Background(), image(t, "two"), proxy+"/r/driver:2")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 3*time.Second, "backoff of about 1s then 3s")
		assert.Equal(t, 2, f.Counts().Failed)
		reqs := f.Requests()
		assert.Equal(t, []string{"/v2/", "/v2/", "/v2/"}, []string{reqs[0].Path, reqs[1].Path, reqs[2].Path}, "the first request, retried in place")
		got, ok, err := registry.NewClient().Digest(context.Background(), target+"/r/driver:2")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, d, got)
	})
	t.Run("a third 503 fails the push", func(t *testing.T) {
		t.Parallel()
		target := embeddedRegistry(t)
		proxy, f := faultedProxy(t, target)
		f.FailNext(3, http.StatusServiceUnavailable)
		_, err := registry.NewClient().Push(context.Background(), image(t, "three"), proxy+"/r/driver:3")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "UNAVAILABLE")
		assert.Equal(t, fakes.Counts{Seen: 3, Failed: 3}, f.Counts(), "three attempts, then the client gives up")
		_, ok, err := registry.NewClient().Digest(context.Background(), target+"/r/driver:3")
		require.NoError(t, err)
		assert.False(t, ok)
	})
}

func TestRegistryProxyRewritesLocationToItself(t *testing.T) {
	var backendHost string
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/r/blobs/uploads/":
			w.Header().Set("Location", "http://"+backendHost+"/v2/r/blobs/uploads/u1?_state=abc")
		case "/v2/r/blobs/sha256:aa":
			w.Header().Set("Location", "https://storage.example.com/blob?sig=1")
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	backendHost = strings.TrimPrefix(serve(t, backend), "http://")
	proxy := serve(t, fakes.RegistryProxy(backendHost))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	code, _, h := do(t, noRedirect, http.MethodPost, proxy+"/v2/r/blobs/uploads/")
	assert.Equal(t, http.StatusAccepted, code)
	assert.Equal(t, proxy+"/v2/r/blobs/uploads/u1?_state=abc", h.Get("Location"), "the upload session continues through the proxy")

	code, _, h = do(t, noRedirect, http.MethodGet, proxy+"/v2/r/blobs/sha256:aa")
	assert.Equal(t, http.StatusTemporaryRedirect, code)
	assert.Equal(t, "https://storage.example.com/blob?sig=1", h.Get("Location"), "a redirect elsewhere is left alone")
}
