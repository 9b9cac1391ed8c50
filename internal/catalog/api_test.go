package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/release"
)

const (
	testKey     = "s3cret-api-key"
	testProject = "proj123"
)

// fakeCatalog is shaped on the catalog API's documented endpoints: project images by
// digest filter, image create and read, test results list and create, GraphQL find_images.
// fail queues status codes to answer before serving a path normally.
type fakeCatalog struct {
	mu        sync.Mutex
	images    map[string]apiImage // by _id
	results   []testResults
	artifacts []artifact
	creates   int
	posts     int
	fail      map[string][]int
	retryAt   string
	// raceCreate makes the next create lose to a concurrent one: the record appears, 409 answers.
	raceCreate bool
	certified  map[string]bool
	seen       []string
}

func newFake() *fakeCatalog {
	return &fakeCatalog{images: map[string]apiImage{}, fail: map[string][]int{}, certified: map[string]bool{}}
}

func (f *fakeCatalog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Method + " " + r.URL.Path
	f.seen = append(f.seen, key)
	if r.Header.Get("X-API-KEY") != testKey {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"detail":"Unauthorized","status":401}`)
		return
	}
	if q := f.fail[key]; len(q) > 0 {
		f.fail[key] = q[1:]
		if q[0] == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", f.retryAt)
		}
		w.WriteHeader(q[0])
		fmt.Fprintf(w, `{"detail":"injected %d","status":%d}`, q[0], q[0])
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/projects/certification/id/"+testProject+"/images":
		digest := strings.TrimPrefix(r.URL.Query().Get("filter"), "docker_image_digest==")
		var data []apiImage
		for _, im := range f.images {
			if im.DockerImageDigest == digest {
				data = append(data, im)
			}
		}
		json.NewEncoder(w).Encode(page[apiImage]{Data: data, Total: len(data)})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/images":
		var im apiImage
		json.NewDecoder(r.Body).Decode(&im)
		id := fmt.Sprintf("img%d", len(f.images)+1)
		im.ID = id
		f.images[id] = im
		if f.raceCreate {
			f.raceCreate = false
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"detail":"Image with this digest already exists","status":409}`)
			return
		}
		f.creates++
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(im)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/images/id/"):
		im, ok := f.images[strings.TrimPrefix(r.URL.Path, "/v1/images/id/")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		im.Certified = f.certified[im.ID]
		json.NewEncoder(w).Encode(im)
	case r.URL.Path == "/v1/projects/certification/id/"+testProject+"/test-results":
		if r.Method == http.MethodPost {
			var tr testResults
			json.NewDecoder(r.Body).Decode(&tr)
			f.results = append(f.results, tr)
			f.posts++
			f.certified[tr.ImageID] = tr.Passed
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{}`)
			return
		}
		id := strings.TrimPrefix(r.URL.Query().Get("filter"), "image_id==")
		var data []testResults
		for _, tr := range f.results {
			if tr.ImageID == id {
				data = append(data, tr)
			}
		}
		json.NewEncoder(w).Encode(page[testResults]{Data: data, Total: len(data)})
	case r.URL.Path == "/v1/projects/certification/id/"+testProject+"/artifacts":
		if r.Method == http.MethodPost {
			var a artifact
			json.NewDecoder(r.Body).Decode(&a)
			f.artifacts = append(f.artifacts, a)
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{}`)
			return
		}
		var data []artifact
		for _, a := range f.artifacts {
			if "image_id=="+a.ImageID+";filename=="+a.Filename == r.URL.Query().Get("filter") {
				data = append(data, a)
			}
		}
		json.NewEncoder(w).Encode(page[artifact]{Data: data, Total: len(data)})
	case r.Method == http.MethodPost && r.URL.Path == "/graphql/":
		var req struct {
			Query     string `json:"query"`
			Variables struct {
				IDs []string `json:"ids"`
			} `json:"variables"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		type d struct {
			ID string `json:"uncompressed_top_layer_id"`
		}
		var data []d
		for _, id := range req.Variables.IDs {
			if id == "sha256:ubi" {
				data = append(data, d{id})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"find_images": map[string]any{"error": nil, "data": data}}})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/projects/certification/id/"):
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"detail":"The requested URL was not found","status":404}`)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func newTestAPI(t *testing.T, f *fakeCatalog, key string) (*API, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	a, err := NewAPI(APIConfig{BaseURL: srv.URL + "/v1/", GraphQLURL: srv.URL + "/graphql/", ProjectID: testProject, APIKey: key, MaxAttempts: 4})
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
	assert.Equal(t, 1, f.creates, "one image record")
	assert.Equal(t, 1, f.posts, "one set of test results")
	require.Len(t, f.artifacts, 1, "one results artifact")
	assert.Equal(t, "results.json", f.artifacts[0].Filename)
	found, err := a.FindByDigest(ctx, "sha256:aa")
	require.NoError(t, err)
	require.NotNil(t, found)
	assert.Equal(t, "img1", found.ID)
	none, err := a.FindByDigest(ctx, "sha256:bb")
	require.NoError(t, err)
	assert.Nil(t, none)
}

func TestAPIConcurrentCreateReadsTheWinner(t *testing.T) {
	f := newFake()
	f.raceCreate = true
	a, _ := newTestAPI(t, f, testKey)
	got, err := a.Record(context.Background(), Image{DockerImageDigest: "sha256:cc"})
	require.NoError(t, err)
	assert.Equal(t, "img1", got.ID, "409 on create is answered with the record that exists")
	assert.Len(t, f.images, 1)
}

func TestAPIWaitsOutRateLimitsAndRetries5xx(t *testing.T) {
	f := newFake()
	f.retryAt = "7"
	f.fail["GET /v1/projects/certification/id/"+testProject+"/images"] = []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable}
	a, waits := newTestAPI(t, f, testKey)
	_, err := a.FindByDigest(context.Background(), "sha256:aa")
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{7 * time.Second, 2 * time.Second, 4 * time.Second}, *waits, "Retry-After is honoured, then backoff doubles")

	f.fail["POST /v1/images"] = []int{500, 500, 500, 500}
	_, err = a.Record(context.Background(), Image{DockerImageDigest: "sha256:dd"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after 4 attempts")
	var ae *APIError
	require.True(t, errors.As(err, &ae))
	assert.False(t, ae.Permanent(), "a 5xx may pass: the activity retries later")
	assert.Empty(t, f.images, "nothing was created")
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
	assert.Len(t, f.seen, 1)

	a2, err := NewAPI(APIConfig{BaseURL: "http://127.0.0.1:1/v1/", ProjectID: "other", APIKey: testKey})
	require.NoError(t, err)
	srv := httptest.NewServer(f)
	defer srv.Close()
	a2.base, _ = a2.base.Parse(srv.URL + "/v1/")
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
