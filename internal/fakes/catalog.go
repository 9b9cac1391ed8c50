package fakes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Paths the catalog fake serves, as the real catalog does under https://catalog.redhat.com.
// Point the adapter's base URL at server URL + CatalogAPIPath, and its GraphQL URL at
// server URL + CatalogGraphQLPath.
const (
	CatalogAPIPath     = "/api/containers/v1/"
	CatalogGraphQLPath = "/api/containers/graphql/"
)

// CatalogImage is an image record as the catalog fake holds it.
type CatalogImage struct {
	ID                string          `json:"_id"`
	DockerImageDigest string          `json:"docker_image_digest"`
	ImageID           string          `json:"image_id,omitempty"`
	Architecture      string          `json:"architecture,omitempty"`
	Certified         bool            `json:"certified"`
	Repositories      json.RawMessage `json:"repositories,omitempty"` // as the client sent them
	CreationDate      time.Time       `json:"creation_date"`
}

// CatalogTestResults is a test results record as the client sent it.
type CatalogTestResults struct {
	ImageID     string          `json:"image_id"`
	Passed      bool            `json:"passed"`
	TestLibrary json.RawMessage `json:"test_library,omitempty"`
	Results     json.RawMessage `json:"results,omitempty"`
	Version     string          `json:"version,omitempty"`
}

// CatalogArtifact is an artifact record as the client sent it (Content is base64).
type CatalogArtifact struct {
	ImageID     string `json:"image_id"`
	Filename    string `json:"filename"`
	Content     string `json:"content"`
	ContentType string `json:"content_type"`
	FileSize    int    `json:"file_size"`
}

type catalogPage[T any] struct {
	Data     []T `json:"data"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
	Total    int `json:"total"`
}

// Catalog is a fake of the certification catalog API, for the endpoints the catalog
// adapter uses: the project's images filtered by docker_image_digest, image create and
// read by ID, the project's test results and artifacts (list filtered by image, create),
// and GraphQL find_images by uncompressed top layer. Requests need the X-API-KEY header.
//
// Creates are not deduplicated by digest, so a client that creates twice leaves two
// records, which ImagesByDigest counts. Posting passing test results for an image marks
// it certified, as the catalog does once certification passes.
type Catalog struct {
	mu        sync.Mutex
	key       string
	project   string
	images    []CatalogImage
	results   []CatalogTestResults
	artifacts []CatalogArtifact
	ubi       map[string]bool
	race      bool
	keys      []string
	calls     []string
}

// NewCatalog returns an empty catalog with one certification project, accepting apiKey.
func NewCatalog(apiKey, projectID string) *Catalog {
	return &Catalog{key: apiKey, project: projectID, ubi: map[string]bool{}}
}

// AddCertifiedLayers makes GraphQL find_images answer for these uncompressed top layer
// IDs, as for certified UBI images.
func (f *Catalog) AddCertifiedLayers(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.ubi[id] = true
	}
}

// RaceNextCreate makes the next image create lose to a concurrent one: the record is
// created, and the answer is 409 Conflict.
func (f *Catalog) RaceNextCreate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.race = true
}

// Images lists the image records in creation order.
func (f *Catalog) Images() []CatalogImage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CatalogImage(nil), f.images...)
}

// ImagesByDigest lists the image records of a digest: more than one is a duplicate.
func (f *Catalog) ImagesByDigest(digest string) []CatalogImage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byDigest(digest)
}

func (f *Catalog) byDigest(digest string) []CatalogImage {
	var out []CatalogImage
	for _, im := range f.images {
		if im.DockerImageDigest == digest {
			out = append(out, im)
		}
	}
	return out
}

// TestResults lists the test results records in creation order.
func (f *Catalog) TestResults() []CatalogTestResults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CatalogTestResults(nil), f.results...)
}

// Artifacts lists the artifact records in creation order.
func (f *Catalog) Artifacts() []CatalogArtifact {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CatalogArtifact(nil), f.artifacts...)
}

// APIKeys lists the distinct keys seen in X-API-KEY headers, in order of first use.
func (f *Catalog) APIKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

// Calls lists every request as "METHOD /path", in order.
func (f *Catalog) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func catalogError(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"detail": detail, "status": status, "title": http.StatusText(status), "type": "about:blank"})
}

func (f *Catalog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	key := r.Header.Get("X-API-KEY")
	if key != "" && !contains(f.keys, key) {
		f.keys = append(f.keys, key)
	}
	if key != f.key {
		catalogError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if r.Method == http.MethodPost && r.URL.Path == CatalogGraphQLPath {
		f.graphql(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, CatalogAPIPath)
	if !ok {
		catalogError(w, http.StatusNotFound, "The requested URL was not found on the server.")
		return
	}
	filter := r.URL.Query().Get("filter")
	project := "projects/certification/id/" + f.project + "/"
	switch {
	case r.Method == http.MethodGet && rest == project+"images":
		data := []CatalogImage{}
		if d, ok := strings.CutPrefix(filter, "docker_image_digest=="); ok {
			data = append(data, f.byDigest(d)...)
		} else if filter == "" {
			data = append(data, f.images...)
		}
		writeJSON(w, http.StatusOK, catalogPage[CatalogImage]{Data: data, PageSize: 100, Total: len(data)})

	case r.Method == http.MethodPost && rest == "images":
		var im CatalogImage
		if err := json.NewDecoder(r.Body).Decode(&im); err != nil || im.DockerImageDigest == "" {
			catalogError(w, http.StatusBadRequest, "docker_image_digest is required")
			return
		}
		im.ID, im.Certified, im.CreationDate = fmt.Sprintf("img%d", len(f.images)+1), false, time.Now().UTC()
		f.images = append(f.images, im)
		if f.race {
			f.race = false
			catalogError(w, http.StatusConflict, "Image with this digest already exists")
			return
		}
		writeJSON(w, http.StatusCreated, im)

	case r.Method == http.MethodGet && strings.HasPrefix(rest, "images/id/"):
		id := strings.TrimPrefix(rest, "images/id/")
		for _, im := range f.images {
			if im.ID == id {
				writeJSON(w, http.StatusOK, im)
				return
			}
		}
		catalogError(w, http.StatusNotFound, "Image "+id+" not found")

	case rest == project+"test-results" && r.Method == http.MethodPost:
		var tr CatalogTestResults
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil || tr.ImageID == "" {
			catalogError(w, http.StatusBadRequest, "image_id is required")
			return
		}
		f.results = append(f.results, tr)
		for i := range f.images {
			if f.images[i].ID == tr.ImageID {
				f.images[i].Certified = tr.Passed
			}
		}
		writeJSON(w, http.StatusCreated, tr)

	case rest == project+"test-results" && r.Method == http.MethodGet:
		data := []CatalogTestResults{}
		for _, tr := range f.results {
			if filter == "image_id=="+tr.ImageID {
				data = append(data, tr)
			}
		}
		writeJSON(w, http.StatusOK, catalogPage[CatalogTestResults]{Data: data, PageSize: 100, Total: len(data)})

	case rest == project+"artifacts" && r.Method == http.MethodPost:
		var a CatalogArtifact
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || a.ImageID == "" || a.Filename == "" {
			catalogError(w, http.StatusBadRequest, "image_id and filename are required")
			return
		}
		f.artifacts = append(f.artifacts, a)
		writeJSON(w, http.StatusCreated, a)

	case rest == project+"artifacts" && r.Method == http.MethodGet:
		data := []CatalogArtifact{}
		for _, a := range f.artifacts {
			if filter == "image_id=="+a.ImageID+";filename=="+a.Filename {
				data = append(data, a)
			}
		}
		writeJSON(w, http.StatusOK, catalogPage[CatalogArtifact]{Data: data, PageSize: 100, Total: len(data)})

	default:
		catalogError(w, http.StatusNotFound, "The requested URL was not found on the server.")
	}
}

func (f *Catalog) graphql(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Query     string `json:"query"`
		Variables struct {
			IDs []string `json:"ids"`
		} `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !strings.Contains(req.Query, "find_images") {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []map[string]string{{"message": "fake catalog: only find_images is served"}}})
		return
	}
	type layer struct {
		ID string `json:"uncompressed_top_layer_id"`
	}
	data := []layer{}
	for _, id := range req.Variables.IDs {
		if f.ubi[id] {
			data = append(data, layer{id})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"find_images": map[string]any{"error": nil, "data": data}}})
}
