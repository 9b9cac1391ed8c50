package catalog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"dgpu-release/internal/release"
	"dgpu-release/internal/waits"
)

// Defaults of the certification catalog API.
const (
	DefaultAPIBase    = "https://catalog.redhat.com/api/containers/v1/"
	DefaultGraphQLURL = "https://catalog.redhat.com/api/containers/graphql/"
	// EnvAPIKey holds the API key; it is read from the environment only, never from
	// workflow inputs, and never logged.
	EnvAPIKey = "DGPU_CATALOG_API_KEY"
)

// APIConfig configures the catalog API adapter.
type APIConfig struct {
	BaseURL    string // default DefaultAPIBase
	GraphQLURL string // default DefaultGraphQLURL
	ProjectID  string // the certification project of the driver image
	APIKey     string // default: $DGPU_CATALOG_API_KEY
	HTTPClient *http.Client
	// MaxAttempts bounds tries of one call on 429 and 5xx (default 5).
	MaxAttempts int
	// MaxWait bounds one wait for Retry-After or backoff (default 2 minutes).
	MaxWait time.Duration
}

// API is the certification catalog, through its REST API. Every write is idempotent:
// records are found by image digest before they are created, and a 409 from a
// concurrent create is answered by reading the record that won.
type API struct {
	base, graphql *url.URL
	project       string
	key           string
	hc            *http.Client
	attempts      int
	maxWait       time.Duration
	sleep         func(context.Context, time.Duration) error
}

// NewAPI checks the configuration.
func NewAPI(cfg APIConfig) (*API, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultAPIBase
	}
	if cfg.GraphQLURL == "" {
		cfg.GraphQLURL = DefaultGraphQLURL
	}
	if cfg.APIKey == "" {
		cfg.APIKey = os.Getenv(EnvAPIKey)
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("catalog API: no API key: set %s", EnvAPIKey)
	}
	if cfg.ProjectID == "" || strings.ContainsAny(cfg.ProjectID, "/?# ") {
		return nil, &release.FieldError{Field: "catalog project", Value: cfg.ProjectID, Accepted: "the certification project ID, such as 5f0c8d5e7a1b2c3d4e5f6a7b"}
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/") + "/")
	if err != nil || base.Scheme == "" {
		return nil, &release.FieldError{Field: "catalog API URL", Value: cfg.BaseURL, Accepted: "an absolute URL such as " + DefaultAPIBase}
	}
	gql, err := url.Parse(cfg.GraphQLURL)
	if err != nil || gql.Scheme == "" {
		return nil, &release.FieldError{Field: "catalog GraphQL URL", Value: cfg.GraphQLURL, Accepted: "an absolute URL such as " + DefaultGraphQLURL}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 2 * time.Minute
	}
	return &API{base: base, graphql: gql, project: cfg.ProjectID, key: cfg.APIKey, hc: cfg.HTTPClient, attempts: cfg.MaxAttempts, maxWait: cfg.MaxWait, sleep: waits.Sleep}, nil
}

// APIError is an answer of the catalog API that is not a success.
type APIError struct {
	Op     string
	Status int
	Detail string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("catalog API %s: %d %s", e.Op, e.Status, http.StatusText(e.Status))
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += ": the API key in " + EnvAPIKey + " was refused"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Permanent reports errors that retrying cannot fix.
func (e *APIError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusConflict && e.Status != http.StatusRequestTimeout
}

// do sends one request, waiting out 429 (Retry-After) and retrying 5xx and transport
// errors with backoff, up to the attempt limit. out may be nil.
func (a *API) do(ctx context.Context, op, method string, u *url.URL, body, out any) error {
	return a.send(ctx, op, method, u, body, out, nil)
}

// create is do for a POST that makes something: an attempt that failed with a 5xx or a
// lost connection may still have landed, so before sending again it asks landed, and a
// true answer ends the call without a second record.
func (a *API) create(ctx context.Context, op string, u *url.URL, body, out any, landed func() (bool, error)) error {
	return a.send(ctx, op, http.MethodPost, u, body, out, landed)
}

func (a *API) send(ctx context.Context, op, method string, u *url.URL, body, out any, landed func() (bool, error)) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	backoff := time.Second
	var last error
	maybeLanded := false
	for attempt := 1; attempt <= a.attempts; attempt++ {
		if maybeLanded && landed != nil {
			done, err := landed()
			if err != nil {
				return fmt.Errorf("catalog API %s: checking whether the last attempt landed: %w", op, err)
			}
			if done {
				return nil
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("X-API-KEY", a.key)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := a.hc.Do(req)
		wait := backoff
		maybeLanded = err != nil || resp.StatusCode >= 500
		if err != nil {
			last = fmt.Errorf("catalog API %s: %w", op, err)
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
			resp.Body.Close()
			switch {
			case resp.StatusCode >= 200 && resp.StatusCode < 300:
				if out == nil || len(b) == 0 {
					return nil
				}
				if err := json.Unmarshal(b, out); err != nil {
					return fmt.Errorf("catalog API %s: unexpected answer: %w", op, err)
				}
				return nil
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				last = &APIError{Op: op, Status: resp.StatusCode, Detail: detail(b)}
				if ra := retryAfter(resp.Header.Get("Retry-After")); ra > 0 {
					wait = ra
				}
			default:
				return &APIError{Op: op, Status: resp.StatusCode, Detail: detail(b)}
			}
		}
		if attempt == a.attempts {
			break
		}
		if wait > a.maxWait {
			wait = a.maxWait
		}
		if err := a.sleep(ctx, wait); err != nil {
			return err
		}
		backoff *= 2
	}
	return fmt.Errorf("after %d attempts: %w", a.attempts, last)
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

func detail(b []byte) string {
	var e struct {
		Detail string `json:"detail"`
		Title  string `json:"title"`
	}
	if json.Unmarshal(b, &e) == nil && (e.Detail != "" || e.Title != "") {
		return strings.TrimSpace(e.Title + " " + e.Detail)
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func (a *API) url(path string, q url.Values) *url.URL {
	u := a.base.ResolveReference(&url.URL{Path: path})
	u.RawQuery = q.Encode()
	return u
}

// apiImage is the catalog's image record, the fields this adapter uses.
type apiImage struct {
	ID                string          `json:"_id,omitempty"`
	DockerImageDigest string          `json:"docker_image_digest"`
	ImageID           string          `json:"image_id,omitempty"`
	Architecture      string          `json:"architecture,omitempty"`
	Certified         bool            `json:"certified"`
	Repositories      []apiRepository `json:"repositories,omitempty"`
	CreationDate      *time.Time      `json:"creation_date,omitempty"`
}

// apiRepository is a repository of an image as the catalog API has it: tags are objects
// with the date they were added, and the repository names the manifest digest.
type apiRepository struct {
	Registry              string     `json:"registry"`
	Repository            string     `json:"repository"`
	Published             bool       `json:"published"`
	PushDate              *time.Time `json:"push_date,omitempty"`
	ManifestSchema2Digest string     `json:"manifest_schema2_digest,omitempty"`
	Tags                  []apiTag   `json:"tags"`
}

type apiTag struct {
	Name      string     `json:"name"`
	AddedDate *time.Time `json:"added_date,omitempty"`
}

func toAPIRepositories(img Image) []apiRepository {
	var when *time.Time
	if !img.CreationDate.IsZero() {
		t := img.CreationDate.UTC()
		when = &t
	}
	out := make([]apiRepository, 0, len(img.Repositories))
	for _, r := range img.Repositories {
		ar := apiRepository{Registry: r.Registry, Repository: r.Repository, PushDate: when, ManifestSchema2Digest: img.DockerImageDigest, Tags: []apiTag{}}
		for _, t := range r.Tags {
			ar.Tags = append(ar.Tags, apiTag{Name: t, AddedDate: when})
		}
		out = append(out, ar)
	}
	return out
}

func fromAPIRepositories(rs []apiRepository) []Repository {
	var out []Repository
	for _, r := range rs {
		rep := Repository{Registry: r.Registry, Repository: r.Repository}
		for _, t := range r.Tags {
			rep.Tags = append(rep.Tags, t.Name)
		}
		out = append(out, rep)
	}
	return out
}

type page[T any] struct {
	Data  []T `json:"data"`
	Total int `json:"total"`
}

// FindByDigest looks the image up in the project.
func (a *API) FindByDigest(ctx context.Context, digest string) (*Image, error) {
	var p page[apiImage]
	q := url.Values{"filter": {"docker_image_digest==" + digest}, "page_size": {"1"}}
	if err := a.do(ctx, "find image "+digest, http.MethodGet, a.url("projects/certification/id/"+url.PathEscape(a.project)+"/images", q), nil, &p); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, &APIError{Op: "find image", Status: http.StatusNotFound, Detail: "certification project " + a.project + " not found"}
		}
		return nil, err
	}
	if len(p.Data) == 0 {
		return nil, nil
	}
	im := p.Data[0]
	out := &Image{ID: im.ID, DockerImageDigest: im.DockerImageDigest, Repositories: fromAPIRepositories(im.Repositories), Certified: im.Certified}
	if im.CreationDate != nil {
		out.CreationDate = *im.CreationDate
	}
	return out, nil
}

type testResults struct {
	ImageID     string               `json:"image_id"`
	Passed      bool                 `json:"passed"`
	TestLibrary release.TestLibrary  `json:"test_library"`
	Results     release.CheckResults `json:"results"`
	Version     string               `json:"version,omitempty"`
}

// Record finds or creates the image record, attaches the certification results (once
// per image and test library), and reads back the certification state.
func (a *API) Record(ctx context.Context, img Image) (Image, error) {
	existing, err := a.FindByDigest(ctx, img.DockerImageDigest)
	if err != nil {
		return Image{}, err
	}
	if existing == nil {
		var created apiImage
		err := a.create(ctx, "create image", a.url("images", nil), apiImage{
			DockerImageDigest: img.DockerImageDigest, Architecture: "amd64", Repositories: toAPIRepositories(img),
		}, &created, func() (bool, error) {
			found, err := a.FindByDigest(ctx, img.DockerImageDigest)
			existing = found
			return found != nil, err
		})
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			existing, err = a.FindByDigest(ctx, img.DockerImageDigest) // created concurrently: read the winner
			if err == nil && existing == nil {
				err = fmt.Errorf("catalog API create image: 409 Conflict, but no record for %s", img.DockerImageDigest)
			}
		} else if err == nil && existing == nil {
			existing = &Image{ID: created.ID, DockerImageDigest: img.DockerImageDigest, Repositories: img.Repositories}
		}
		if err != nil {
			return Image{}, err
		}
	}
	if img.TestResults != nil {
		var have page[testResults]
		q := url.Values{"filter": {"image_id==" + existing.ID}}
		results := a.url("projects/certification/id/"+url.PathEscape(a.project)+"/test-results", q)
		if err := a.do(ctx, "list test results", http.MethodGet, results, nil, &have); err != nil {
			return Image{}, err
		}
		found := false
		for _, r := range have.Data {
			found = found || r.TestLibrary == img.TestResults.TestLibrary
		}
		if !found {
			list := *results
			results.RawQuery = ""
			if err := a.create(ctx, "attach test results", results, testResults{
				ImageID: existing.ID, Passed: img.TestResults.Passed, TestLibrary: img.TestResults.TestLibrary, Results: img.TestResults.Results,
			}, nil, func() (bool, error) {
				var now page[testResults]
				if err := a.do(ctx, "list test results", http.MethodGet, &list, nil, &now); err != nil {
					return false, err
				}
				for _, r := range now.Data {
					if r.TestLibrary == img.TestResults.TestLibrary {
						return true, nil
					}
				}
				return false, nil
			}); err != nil {
				return Image{}, err
			}
		}
	}
	if img.TestResults != nil {
		if err := a.attachArtifact(ctx, existing.ID, "results.json", img.TestResults); err != nil {
			return Image{}, err
		}
	}
	var state apiImage
	if err := a.do(ctx, "read certification state", http.MethodGet, a.url("images/id/"+url.PathEscape(existing.ID), nil), nil, &state); err != nil {
		return Image{}, err
	}
	out := img
	out.ID, out.Certified = existing.ID, state.Certified
	return out, nil
}

type artifact struct {
	ImageID     string `json:"image_id"`
	Filename    string `json:"filename"`
	Content     string `json:"content"` // base64
	ContentType string `json:"content_type"`
	FileSize    int    `json:"file_size"`
}

// attachArtifact uploads a JSON document once per image and file name.
func (a *API) attachArtifact(ctx context.Context, imageID, name string, doc any) error {
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	u := a.url("projects/certification/id/"+url.PathEscape(a.project)+"/artifacts", url.Values{"filter": {"image_id==" + imageID + ";filename==" + name}})
	var have page[artifact]
	if err := a.do(ctx, "list artifacts", http.MethodGet, u, nil, &have); err != nil {
		return err
	}
	if len(have.Data) > 0 {
		return nil
	}
	list := *u
	u.RawQuery = ""
	return a.create(ctx, "attach artifact "+name, u, artifact{
		ImageID: imageID, Filename: name, Content: base64.StdEncoding.EncodeToString(raw), ContentType: "application/json", FileSize: len(raw),
	}, nil, func() (bool, error) {
		var now page[artifact]
		err := a.do(ctx, "list artifacts", http.MethodGet, &list, nil, &now)
		return len(now.Data) > 0, err
	})
}

// UBILayers answers BasedOnUbi from the catalog's GraphQL endpoint: which of the given
// uncompressed layer IDs are the top layer of a certified image.
type UBILayers struct{ API *API }

const ubiQuery = `query ($ids: [String]) {
  find_images(filter: {and: [{certified: {eq: true}}, {deleted: {eq: false}}, {uncompressed_top_layer_id: {in: $ids}}]}, page_size: 100) {
    error { status detail }
    data { uncompressed_top_layer_id repositories { repository } }
  }
}`

// CertifiedLayers asks the catalog.
func (u UBILayers) CertifiedLayers(ctx context.Context, ids []string) ([]string, error) {
	var resp struct {
		Data struct {
			FindImages struct {
				Error *struct {
					Status int    `json:"status"`
					Detail string `json:"detail"`
				} `json:"error"`
				Data []struct {
					UncompressedTopLayerID string `json:"uncompressed_top_layer_id"`
				} `json:"data"`
			} `json:"find_images"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	body := map[string]any{"query": ubiQuery, "variables": map[string]any{"ids": ids}}
	if err := u.API.do(ctx, "find certified layers", http.MethodPost, u.API.graphql, body, &resp); err != nil {
		return nil, err
	}
	if len(resp.Errors) > 0 {
		return nil, fmt.Errorf("catalog GraphQL: %s", resp.Errors[0].Message)
	}
	if e := resp.Data.FindImages.Error; e != nil {
		return nil, fmt.Errorf("catalog GraphQL find_images: %d %s", e.Status, e.Detail)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, d := range resp.Data.FindImages.Data {
		if id := d.UncompressedTopLayerID; want[id] && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// Describe names the source.
func (u UBILayers) Describe() string { return "catalog API at " + u.API.graphql.Host }
