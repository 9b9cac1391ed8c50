package registry_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/registry"
)

func startRegistry(t *testing.T, dir string) (host string, stop func()) {
	t.Helper()
	h, err := registry.NewServer(dir, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	return strings.TrimPrefix(srv.URL, "http://"), srv.Close
}

func testImage(t *testing.T, content string) v1.Image {
	t.Helper()
	l1, err := registry.Layer([]registry.File{{Path: "/licenses/LICENSE", Content: []byte("license")}})
	require.NoError(t, err)
	l2, err := registry.Layer([]registry.File{{Path: "/opt/data", Content: []byte(content)}})
	require.NoError(t, err)
	img, err := registry.Assemble([]v1.Layer{l1, l2}, v1.Config{Labels: map[string]string{"name": "x"}})
	require.NoError(t, err)
	return img
}

func TestCopyIsIdempotentAndRefusesConflicts(t *testing.T) {
	ctx := context.Background()
	host, stop := startRegistry(t, t.TempDir())
	defer stop()
	c := registry.NewClient()

	d1, err := c.Push(ctx, testImage(t, "one"), host+"/staging/driver:build-1")
	require.NoError(t, err)
	d2, err := c.Push(ctx, testImage(t, "two"), host+"/staging/driver:build-2")
	require.NoError(t, err)
	require.NotEqual(t, d1, d2)

	res, err := c.Copy(ctx, host+"/staging/driver@"+d1, host+"/release/driver", "1.2.3-k")
	require.NoError(t, err)
	assert.Equal(t, d1, res.Digest)
	assert.False(t, res.AlreadyPresent)

	got, ok, err := c.Digest(ctx, host+"/release/driver:1.2.3-k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, d1, got)

	res, err = c.Copy(ctx, host+"/staging/driver@"+d1, host+"/release/driver", "1.2.3-k")
	require.NoError(t, err)
	assert.True(t, res.AlreadyPresent, "re-publishing the same digest is a no-op")

	_, err = c.Copy(ctx, host+"/staging/driver@"+d2, host+"/release/driver", "1.2.3-k")
	require.ErrorIs(t, err, registry.ErrTagConflict)
	assert.Contains(t, err.Error(), d1)
	assert.Contains(t, err.Error(), d2)
	got, _, err = c.Digest(ctx, host+"/release/driver:1.2.3-k")
	require.NoError(t, err)
	assert.Equal(t, d1, got, "a conflict changes nothing")

	_, err = c.Copy(ctx, host+"/staging/driver:build-1", host+"/release/driver", "x")
	require.ErrorContains(t, err, "by digest")

	_, ok, err = c.Digest(ctx, host+"/release/driver:missing")
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestEmbeddedRegistryKeepsImagesAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	host, stop := startRegistry(t, dir)
	c := registry.NewClient()
	d, err := c.Push(ctx, testImage(t, "kept"), host+"/release/driver:1.0.0-k")
	require.NoError(t, err)
	stop()

	host, stop = startRegistry(t, dir)
	defer stop()
	got, ok, err := c.Digest(ctx, host+"/release/driver:1.0.0-k")
	require.NoError(t, err)
	require.True(t, ok, "the manifest survives a restart")
	assert.Equal(t, d, got)
	img, err := c.Image(ctx, host+"/release/driver@"+d)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 2)
	rc, err := layers[1].Uncompressed()
	require.NoError(t, err, "blobs survive a restart")
	rc.Close()
	tags, err := c.Tags(ctx, host+"/release/driver")
	require.NoError(t, err)
	assert.Equal(t, []string{"1.0.0-k"}, tags)
}

// The embedded registry stores a blob only when its bytes match its digest, and answers
// HEAD with the stored size.
func TestEmbeddedRegistryKeepsOnlyVerifiedBlobs(t *testing.T) {
	dir := t.TempDir()
	h, err := registry.NewServer(dir, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := "the blob's bytes"
	good := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256([]byte(body)))}
	bad := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	put := func(d v1.Hash) int {
		resp, err := http.Post(srv.URL+"/v2/x/y/blobs/uploads/?digest="+d.String(), "application/octet-stream", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusBadRequest, put(bad), "a digest that does not match is refused")
	_, err = os.Stat(filepath.Join(dir, "blobs", "sha256", bad.Hex))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing is stored under the wrong digest")
	assert.Equal(t, http.StatusCreated, put(good))
	resp, err := http.Head(srv.URL + "/v2/x/y/blobs/" + good.String())
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(len(body)), resp.ContentLength)
	resp, err = http.Head(srv.URL + "/v2/x/y/blobs/" + bad.String())
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	left, _ := filepath.Glob(filepath.Join(dir, "blobs", "upload-*"))
	assert.Empty(t, left, "no temporary file is left behind")
}

// A chunked upload (POST, PATCH, PATCH, PUT) streams to a file in the state folder and
// lands under its digest; a chunk that does not continue the upload is refused.
func TestEmbeddedRegistryStreamsChunkedUploadsToDisk(t *testing.T) {
	dir := t.TempDir()
	h, err := registry.NewServer(dir, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, url, contentRange, body string) *http.Response {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		require.NoError(t, err)
		if contentRange != "" {
			req.Header.Set("Content-Range", contentRange)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := do(http.MethodPost, srv.URL+"/v2/a/b/blobs/uploads/", "", "")
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	loc := srv.URL + resp.Header.Get("Location")
	sessions, _ := os.ReadDir(filepath.Join(dir, "uploads"))
	assert.Len(t, sessions, 1, "the session is a file")
	resp = do(http.MethodPatch, loc, "0-4", "hello")
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, "0-4", resp.Header.Get("Range"))
	assert.Equal(t, http.StatusRequestedRangeNotSatisfiable, do(http.MethodPatch, loc, "0-4", "again").StatusCode, "a chunk must continue the upload")
	resp = do(http.MethodPatch, loc, "5-10", " world")
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	d := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("hello world!")))
	resp = do(http.MethodPut, loc+"?digest="+d, "", "!")
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, d, resp.Header.Get("Docker-Content-Digest"))
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
	require.NoError(t, err)
	assert.Equal(t, "hello world!", string(b))
	sessions, _ = os.ReadDir(filepath.Join(dir, "uploads"))
	assert.Empty(t, sessions, "the session file became the blob")

	// A wrong digest at the end is refused and stores nothing.
	resp = do(http.MethodPost, srv.URL+"/v2/a/b/blobs/uploads/", "", "")
	loc = srv.URL + resp.Header.Get("Location")
	assert.Equal(t, http.StatusBadRequest, do(http.MethodPut, loc+"?digest=sha256:"+strings.Repeat("1", 64), "", "data").StatusCode)
	_, err = os.Stat(filepath.Join(dir, "blobs", "sha256", strings.Repeat("1", 64)))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
