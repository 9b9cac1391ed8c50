package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/fakes"
	"dgpu-release/internal/release"
)

const (
	testKey     = "s3cret-api-key"
	testProject = "proj123"
)

func newFake() *fakes.Catalog {
	f := fakes.NewCatalog(testKey, testProject)
	f.AddCertifiedLayers("sha256:ubi")
	return f
}

// newTestAPI serves h (the fake, or Faults in front of it) and returns a client of it
// whose waits are recorded, not slept.
func newTestAPI(t *testing.T, h http.Handler, key string) (*API, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	a, err := NewAPI(APIConfig{BaseURL: srv.URL + fakes.CatalogAPIPath, GraphQLURL: srv.URL + fakes.CatalogGraphQLPath, ProjectID: testProject, APIKey: key, MaxAttempts: 4})
	require.NoError(t, err)
	var waits []time.Duration
	a.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return a, &waits
}

func results(passed bool) *release.CertificationResult {
	return &release.CertificationResult{Passed: passed, TestLibrary: release.TestLibrary{Name: "dgpu-release/certify", Version: "0.1.0"}}
}

func TestAPIRecordIsIdempotent(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	a, _ := newTestAPI(t, f, testKey)
	img := Image{DockerImageDigest: "sha256:aa", Repositories: []Repository{{Registry: "quay.io", Repository: "intel/intel-dgpu-driver", Tags: []string{"1.2.0-k"}}}, TestResults: results(true)}
	got, err := a.Record(ctx, img)
	require.NoError(t, err)
	assert.Equal(t, "img1", got.ID)
	assert.True(t, got.Certified, "the certification state is read back")
	again, err := a.Record(ctx, img)
	require.NoError(t, err)
	assert.Equal(t, got.ID, again.ID)
	require.Len(t, f.ImagesByDigest("sha256:aa"), 1, "one image record")
	// The record has the catalog's shape: tags are objects with a name and the date added.
	var repos []struct {
		Registry, Repository string
		Digest               string `json:"manifest_schema2_digest"`
		Tags                 []struct {
			Name      string `json:"name"`
			AddedDate string `json:"added_date"`
		} `json:"tags"`
	}
	require.NoError(t, json.Unmarshal(f.ImagesByDigest("sha256:aa")[0].Repositories, &repos))
	require.Len(t, repos, 1)
	assert.Equal(t, "intel/intel-dgpu-driver", repos[0].Repository)
	assert.Equal(t, "sha256:aa", repos[0].Digest)
	require.Len(t, repos[0].Tags, 1)
	assert.Equal(t, "1.2.0-k", repos[0].Tags[0].Name)
	assert.Equal(t, []string{"1.2.0-k"}, found0(t, a).Repositories[0].Tags, "read back as names")
	assert.Len(t, f.TestResults(), 1, "one set of test results")
	require.Len(t, f.Artifacts(), 1, "one results artifact")
	assert.Equal(t, "results.json", f.Artifacts()[0].Filename)
	found, err := a.FindByDigest(ctx, "sha256:aa")
	require.NoError(t, err)
	require.NotNil(t, found)
	assert.Equal(t, "img1", found.ID)
	none, err := a.FindByDigest(ctx, "sha256:bb")
	require.NoError(t, err)
	assert.Nil(t, none)
}

// Creates whose answers are lost (504 after the catalog did the work) are not repeated:
// the retry finds the image, the test results and the artifact first.
func TestAPICreatesWithLostAnswersHappenOnce(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	faults := fakes.NewFaults(f, fakes.WithErrorBody(fakes.CatalogError))
	lost := faults.On(http.MethodPost, fakes.CatalogAPIPath).ServeThenFailNext(3, http.StatusGatewayTimeout)
	a, _ := newTestAPI(t, faults, testKey)
	img := Image{DockerImageDigest: "sha256:aa", Repositories: []Repository{{Registry: "quay.io", Repository: "intel/intel-dgpu-driver", Tags: []string{"1.2.0-k"}}}, TestResults: results(true)}
	got, err := a.Record(ctx, img)
	require.NoError(t, err)
	assert.Equal(t, "img1", got.ID)
	assert.Equal(t, 3, lost.Counts().Failed, "the image's, the results' and the artifact's answers were lost")
	assert.Len(t, f.ImagesByDigest("sha256:aa"), 1, "one image record")
	assert.Len(t, f.TestResults(), 1, "one set of test results")
	assert.Len(t, f.Artifacts(), 1, "one results artifact")
}

func found0(t *testing.T, a *API) *Image {
	t.Helper()
	im, err := a.FindByDigest(context.Background(), "sha256:aa")
	require.NoError(t, err)
	require.NotNil(t, im)
	return im
}

func TestAPIConcurrentCreateReadsTheWinner(t *testing.T) {
	f := newFake()
	f.RaceNextCreate()
	a, _ := newTestAPI(t, f, testKey)
	got, err := a.Record(context.Background(), Image{DockerImageDigest: "sha256:cc"})
	require.NoError(t, err)
	assert.Equal(t, "img1", got.ID, "409 on create is answered with the record that exists")
	assert.Len(t, f.Images(), 1)
}

func TestAPIWaitsOutRateLimitsAndRetries5xx(t *testing.T) {
	f := newFake()
	faults := fakes.NewFaults(f, fakes.WithErrorBody(fakes.CatalogError), fakes.WithRetryAfter(7*time.Second))
	faults.On(http.MethodGet, fakes.CatalogAPIPath+"projects/certification/id/"+testProject+"/images").
		FailNext(1, http.StatusTooManyRequests).FailNext(1, http.StatusBadGateway).FailNext(1, http.StatusServiceUnavailable)
	a, waits := newTestAPI(t, faults, testKey)
	_, err := a.FindByDigest(context.Background(), "sha256:aa")
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{7 * time.Second, 2 * time.Second, 4 * time.Second}, *waits, "Retry-After is honoured, then backoff doubles")

	faults.On(http.MethodPost, fakes.CatalogAPIPath+"images").FailNext(4, http.StatusInternalServerError)
	_, err = a.Record(context.Background(), Image{DockerImageDigest: "sha256:dd"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after 4 attempts")
	var ae *APIError
	require.True(t, errors.As(err, &ae))
	assert.False(t, ae.Permanent(), "a 5xx may pass: the activity retries later")
	assert.Empty(t, f.Images(), "nothing was created")
	assert.Equal(t, 4, faults.On(http.MethodPost, fakes.CatalogAPIPath+"images").Counts().Failed)
}

func TestAPIPermanentErrorsFailFast(t *testing.T) {
	f := newFake()
	a, waits := newTestAPI(t, f, "wrong-key")
	_, err := a.FindByDigest(context.Background(), "sha256:aa")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	assert.Contains(t, err.Error(), EnvAPIKey)
	assert.NotContains(t, err.Error(), "wrong-key", "the key never appears in errors")
	var ae *APIError
	require.True(t, errors.As(err, &ae))
	assert.True(t, ae.Permanent())
	assert.Empty(t, *waits, "no retry on 401")
	assert.Len(t, f.Calls(), 1)
	assert.Equal(t, []string{"wrong-key"}, f.APIKeys())

	a2, err := NewAPI(APIConfig{BaseURL: "http://127.0.0.1:1/v1/", ProjectID: "other", APIKey: testKey})
	require.NoError(t, err)
	srv := httptest.NewServer(f)
	defer srv.Close()
	a2.base, _ = a2.base.Parse(srv.URL + fakes.CatalogAPIPath)
	_, err = a2.FindByDigest(context.Background(), "sha256:aa")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certification project other not found")

	_, err = NewAPI(APIConfig{ProjectID: "p"})
	if err != nil {
		assert.Contains(t, err.Error(), EnvAPIKey)
	}
	_, err = NewAPI(APIConfig{ProjectID: "a/b", APIKey: "k"})
	require.ErrorContains(t, err, "catalog project")
}

func TestGraphQLUBILayers(t *testing.T) {
	f := newFake()
	a, _ := newTestAPI(t, f, testKey)
	got, err := UBILayers{API: a}.CertifiedLayers(context.Background(), []string{"sha256:mine", "sha256:ubi"})
	require.NoError(t, err)
	assert.Equal(t, []string{"sha256:ubi"}, got)
	assert.Contains(t, UBILayers{API: a}.Describe(), "catalog API")
}
