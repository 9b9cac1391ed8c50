package certify_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/certify"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/rpm"
	"dgpu-release/internal/testenv"
)

// The checks and the publish copy against Debian's docker-registry (the CNCF distribution
// server), a registry that is not ours.
func TestAgainstThirdPartyRegistry(t *testing.T) {
	host := testenv.ThirdPartyRegistry(t)
	ctx := context.Background()
	c := registry.NewClient()
	base := baseLayer(t, []rpm.Package{bashPkg("5.1.8")})
	img := imageWith(t, []v1.Layer{base, layerOf(t, registry.File{Path: "/licenses/LICENSE", Content: []byte("GPL-2.0")})}, v1.Config{Labels: goodLabels()})
	d, err := c.Push(ctx, img, host+"/intel/intel-dgpu-driver-staging:1.2.0-k-build1")
	require.NoError(t, err)

	ref := host + "/intel/intel-dgpu-driver-staging@" + d
	remoteImg, err := c.Image(ctx, ref)
	require.NoError(t, err)
	tags, err := c.Tags(ctx, host+"/intel/intel-dgpu-driver-staging")
	require.NoError(t, err)
	diffID, _ := base.DiffID()
	res, err := certify.Run(ctx, certify.Target{Ref: ref, Repository: "intel/intel-dgpu-driver-staging", Tags: tags, Image: remoteImg},
		certify.Options{Policy: certify.PolicyRoot, UBI: listFile(t, diffID.String())})
	require.NoError(t, err)
	assert.True(t, res.Passed, "%+v", res.Results)
	assert.Len(t, res.Results.Passed, 9)

	// Publish through a counting proxy: within one registry every blob is mounted, none sent.
	target, _ := url.Parse("http://" + host)
	var mu sync.Mutex
	var mounts, sent int
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if strings.Contains(r.URL.Path, "/blobs/uploads") {
			if r.Method == http.MethodPost && r.URL.Query().Has("mount") {
				mounts++
			}
			if r.Method == http.MethodPatch || (r.Method == http.MethodPut && r.ContentLength > 0) {
				sent++
			}
		}
		mu.Unlock()
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	phost := strings.TrimPrefix(proxy.URL, "http://")
	out, err := c.Copy(ctx, phost+"/intel/intel-dgpu-driver-staging@"+d, phost+"/intel/intel-dgpu-driver", "1.2.0-k")
	require.NoError(t, err)
	assert.Equal(t, 3, mounts, "two layers and the config are mounted from the staging repository")
	assert.Zero(t, sent, "no blob content crosses the network")
	assert.Equal(t, d, out.Digest)
	got, ok, err := c.Digest(ctx, host+"/intel/intel-dgpu-driver:1.2.0-k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, d, got)
	again, err := c.Copy(ctx, ref, host+"/intel/intel-dgpu-driver", "1.2.0-k")
	require.NoError(t, err)
	assert.True(t, again.AlreadyPresent)

	other := imageWith(t, []v1.Layer{base}, v1.Config{Labels: map[string]string{"name": "other"}})
	od, err := c.Push(ctx, other, host+"/intel/intel-dgpu-driver-staging:other")
	require.NoError(t, err)
	_, err = c.Copy(ctx, host+"/intel/intel-dgpu-driver-staging@"+od, host+"/intel/intel-dgpu-driver", "1.2.0-k")
	require.ErrorIs(t, err, registry.ErrTagConflict)
}
