// Package catalog records published images: the certification catalog (API) in
// production, JSON files in the state folder in the embedded default. Both keep the same
// record shape, keyed by image digest, and every write is idempotent.
package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"dgpu-release/internal/release"
)

// Repository is where an image is published, shaped like the catalog API's repositories[].
type Repository struct {
	Registry   string   `json:"registry"`
	Repository string   `json:"repository"`
	Tags       []string `json:"tags"`
}

// Image is a catalog image record.
type Image struct {
	ID                string                       `json:"_id"`
	DockerImageDigest string                       `json:"docker_image_digest"`
	Repositories      []Repository                 `json:"repositories"`
	Certified         bool                         `json:"certified"`
	BuildKey          release.BuildKey             `json:"build_key"`
	Kernel            string                       `json:"kernel"`
	DriverVersion     string                       `json:"driver_version"`
	OpenShift         string                       `json:"openshift_version"`
	TestResults       *release.CertificationResult `json:"test_results,omitempty"`
	CreationDate      time.Time                    `json:"creation_date"`
	// StandIn is set by the local catalog: the record was not sent to the real catalog.
	StandIn string `json:"stand_in,omitempty"`
}

// Catalog finds and records published images.
type Catalog interface {
	// FindByDigest returns the record of an image digest, or nil.
	FindByDigest(ctx context.Context, digest string) (*Image, error)
	// Record creates the record for img.DockerImageDigest, or updates it in place; the ID
	// is stable for a digest.
	Record(ctx context.Context, img Image) (Image, error)
}

// LocalStandInNote says plainly what the local catalog is.
const LocalStandInNote = "rehearsal stand-in: local catalog (JSON records in the state folder), not the certification catalog API"

// Local keeps records as JSON files in a folder.
type Local struct {
	dir string
	mu  sync.Mutex
}

// NewLocal returns a catalog in dir.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("local catalog folder: %w", err)
	}
	return &Local{dir: dir}, nil
}

func idFor(digest string) string {
	sum := sha256.Sum256([]byte(digest))
	return hex.EncodeToString(sum[:12])
}

// FindByDigest reads the record of a digest.
func (l *Local) FindByDigest(_ context.Context, digest string) (*Image, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(l.dir, idFor(digest)+".json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("catalog record of %s: %w", digest, err)
	}
	return &img, nil
}

// List returns every record, oldest first.
func (l *Local) List(context.Context) ([]Image, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.list()
}

func (l *Local) list() ([]Image, error) {
	paths, err := filepath.Glob(filepath.Join(l.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var img Image
		if err := json.Unmarshal(b, &img); err != nil {
			return nil, fmt.Errorf("catalog record %s: %w", p, err)
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationDate.Before(out[j].CreationDate) })
	return out, nil
}

// Record writes the record atomically; an existing record for the digest keeps its ID
// and creation date and gains the new repositories and tags.
func (l *Local) Record(_ context.Context, img Image) (Image, error) {
	if !strings.HasPrefix(img.DockerImageDigest, "sha256:") {
		return Image{}, errors.New("catalog record: docker_image_digest must be a sha256 digest")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	img.ID = idFor(img.DockerImageDigest)
	img.StandIn = LocalStandInNote
	path := filepath.Join(l.dir, img.ID+".json")
	if b, err := os.ReadFile(path); err == nil {
		var old Image
		if err := json.Unmarshal(b, &old); err != nil {
			return Image{}, fmt.Errorf("catalog record %s: %w", path, err)
		}
		img.CreationDate = old.CreationDate
		img.Repositories = mergeRepos(old.Repositories, img.Repositories)
	}
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return Image{}, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return Image{}, err
	}
	return img, os.Rename(tmp, path)
}

func mergeRepos(old, add []Repository) []Repository {
	out := append([]Repository(nil), old...)
	for _, a := range add {
		found := false
		for i := range out {
			if out[i].Registry == a.Registry && out[i].Repository == a.Repository {
				found = true
				for _, t := range a.Tags {
					if !containsString(out[i].Tags, t) {
						out[i].Tags = append(out[i].Tags, t)
					}
				}
			}
		}
		if !found {
			out = append(out, a)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
