package registry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/registry"
)

// blobTraffic counts what a registry is asked to do with blobs.
type blobTraffic struct {
	mu       sync.Mutex
	mounts   int // POST .../blobs/uploads/?mount= (a mount attempt)
	uploads  int // blob contents sent: PATCH, or a monolithic PUT with a body
	bytesIn  int64
	requests []string
}

func (b *blobTraffic) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		if strings.Contains(r.URL.Path, "/blobs/uploads") {
			switch {
			case r.Method == http.MethodPost && r.URL.Query().Has("mount"):
				b.mounts++
			case r.Method == http.MethodPatch, r.Method == http.MethodPut && r.ContentLength > 0:
				b.uploads++
			}
			if r.ContentLength > 0 {
				b.bytesIn += r.ContentLength
			}
		}
		b.requests = append(b.requests, r.Method+" "+r.URL.RequestURI())
		b.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (b *blobTraffic) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mounts, b.uploads, b.bytesIn, b.requests = 0, 0, 0, nil
}

func threeLayerImage(t *testing.T, top string) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, c := range []string{"base", "middle", top} {
		l, err := registry.Layer([]registry.File{{Path: "/data/" + c, Content: []byte(strings.Repeat(c, 1000))}})
		require.NoError(t, err)
		ls = append(ls, l)
	}
	img, err := registry.Assemble(ls, v1.Config{Labels: map[string]string{"name": top}})
	require.NoError(t, err)
	return img
}

func TestPublishMountsWithinARegistryAndSendsNothingTwice(t *testing.T) {
	ctx := context.Background()
	h, err := registry.NewServer(t.TempDir(), nil)
	require.NoError(t, err)
	traffic := &blobTraffic{}
	srv := httptest.NewServer(traffic.wrap(h))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := registry.NewClient()

	d, err := c.Push(ctx, threeLayerImage(t, "top"), host+"/staging/driver:build")
	require.NoError(t, err)
	traffic.reset()

	res, err := c.Copy(ctx, host+"/staging/driver@"+d, host+"/release/driver", "1.0.0-k")
	require.NoError(t, err)
	assert.False(t, res.AlreadyPresent)
	// This registry stores blobs by content for every repository, so the target already
	// has them all: nothing is mounted or sent. (A registry that links blobs per
	// repository gets mounts: see the third-party registry test.)
	assert.Zero(t, traffic.uploads+traffic.mounts, "no blob is sent within one registry: %v", traffic.requests)
	assert.Zero(t, traffic.bytesIn)

	traffic.reset()
	res, err = c.Copy(ctx, host+"/staging/driver@"+d, host+"/release/driver", "1.0.0-k")
	require.NoError(t, err)
	assert.True(t, res.AlreadyPresent)
	assert.Zero(t, traffic.uploads+traffic.mounts, "re-publishing transfers no blob")
	for _, r := range traffic.requests {
		assert.NotContains(t, r, "PUT", "re-publishing writes nothing")
	}
}

func TestPublishAcrossRegistriesSendsOnlyMissingBlobs(t *testing.T) {
	ctx := context.Background()
	src, err := registry.NewServer(t.TempDir(), nil)
	require.NoError(t, err)
	srcSrv := httptest.NewServer(src)
	defer srcSrv.Close()
	dst, err := registry.NewServer(t.TempDir(), nil)
	require.NoError(t, err)
	traffic := &blobTraffic{}
	dstSrv := httptest.NewServer(traffic.wrap(dst))
	defer dstSrv.Close()
	srcHost, dstHost := strings.TrimPrefix(srcSrv.URL, "http://"), strings.TrimPrefix(dstSrv.URL, "http://")
	c := registry.NewClient()

	// The target already holds an image that shares the base and middle layers.
	_, err = c.Push(ctx, threeLayerImage(t, "other"), dstHost+"/release/driver:old")
	require.NoError(t, err)
	d, err := c.Push(ctx, threeLayerImage(t, "top"), srcHost+"/staging/driver:build")
	require.NoError(t, err)
	traffic.reset()

	_, err = c.Copy(ctx, srcHost+"/staging/driver@"+d, dstHost+"/release/driver", "1.0.0-k")
	require.NoError(t, err)
	assert.Equal(t, 2, traffic.uploads, "only the new top layer and the config are sent: %v", traffic.requests)
}
