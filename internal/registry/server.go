// Package registry talks to OCI registries with go-containerregistry: it reads digests,
// copies images by digest, assembles images, and serves the embedded registry of the
// embedded default.
package registry

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// NewServer returns the handler of an OCI registry whose state lives in dir: blobs on
// disk (dir/blobs, uploads streamed to dir/uploads), and manifests in a journal (dir/manifests.jsonl and dir/manifests/)
// replayed at start, so a stopped embedded default resumes with its images.
// go-containerregistry's registry keeps manifests in memory only; the journal wraps it.
func NewServer(dir string, logger *log.Logger) (http.Handler, error) {
	blobs := filepath.Join(dir, "blobs")
	bodies := filepath.Join(dir, "manifests")
	for _, d := range []string{blobs, bodies} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("registry state folder: %w", err)
		}
	}
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	inner := ggcrregistry.New(ggcrregistry.WithBlobHandler(diskBlobs{dir: blobs}), ggcrregistry.Logger(logger))
	j := &journal{inner: inner, path: filepath.Join(dir, "manifests.jsonl"), bodies: bodies}
	if err := j.replay(); err != nil {
		return nil, err
	}
	// Upload sessions do not survive a restart (a client starts a new one); drop their files.
	sessions := filepath.Join(dir, "uploads")
	if err := os.RemoveAll(sessions); err != nil {
		return nil, fmt.Errorf("registry state folder: %w", err)
	}
	return &uploads{next: j, dir: sessions, blobs: diskBlobs{dir: blobs}}, nil
}

type journalEntry struct {
	Op          string `json:"op"` // put or delete
	Path        string `json:"path"`
	ContentType string `json:"content_type,omitempty"`
	Body        string `json:"body,omitempty"` // sha256 hex of the body under manifests/
}

type journal struct {
	inner  http.Handler
	path   string
	bodies string
	mu     sync.Mutex
}

func isManifestPath(p string) bool {
	parts := strings.Split(p, "/")
	return len(parts) >= 5 && parts[1] == "v2" && parts[len(parts)-2] == "manifests"
}

func (j *journal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isManifestPath(r.URL.Path) || (r.Method != http.MethodPut && r.Method != http.MethodDelete) {
		j.inner.ServeHTTP(w, r)
		return
	}
	var body []byte
	if r.Method == http.MethodPut {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	rec := httptest.NewRecorder()
	j.inner.ServeHTTP(rec, r)
	if rec.Code/100 == 2 {
		entry := journalEntry{Op: "delete", Path: r.URL.Path}
		if r.Method == http.MethodPut {
			sum := sha256.Sum256(body)
			entry = journalEntry{Op: "put", Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Body: hex.EncodeToString(sum[:])}
		}
		if err := j.append(entry, body); err != nil {
			// The manifest is served but would be lost on restart: say so rather than pretend.
			http.Error(w, "registry journal: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (j *journal) append(e journalEntry, body []byte) error {
	if e.Op == "put" {
		p := filepath.Join(j.bodies, e.Body)
		if _, err := os.Stat(p); err != nil {
			if err := os.WriteFile(p, body, 0o644); err != nil {
				return err
			}
		}
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(e)
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (j *journal) replay() error {
	f, err := os.Open(j.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("registry journal %s line %d: %w", j.path, n, err)
		}
		var req *http.Request
		switch e.Op {
		case "put":
			body, err := os.ReadFile(filepath.Join(j.bodies, e.Body))
			if err != nil {
				return fmt.Errorf("registry journal %s line %d: %w", j.path, n, err)
			}
			req = httptest.NewRequest(http.MethodPut, e.Path, bytes.NewReader(body))
			req.Header.Set("Content-Type", e.ContentType)
		case "delete":
			req = httptest.NewRequest(http.MethodDelete, e.Path, nil)
		default:
			return fmt.Errorf("registry journal %s line %d: unknown op %q", j.path, n, e.Op)
		}
		rec := httptest.NewRecorder()
		j.inner.ServeHTTP(rec, req)
		if rec.Code/100 != 2 && e.Op == "put" {
			return fmt.Errorf("registry journal %s line %d: replaying %s gave %d: %s", j.path, n, e.Path, rec.Code, rec.Body.String())
		}
	}
	return sc.Err()
}

// diskBlobs keeps blobs as files named by digest (<dir>/sha256/<hex>). A blob is written
// to a temporary file while the registry checks its digest and size, and renamed into
// place only when they match, so a file under its digest's name is that blob: Stat reads
// the file's size instead of hashing the whole blob again on every HEAD and GET, which
// go-containerregistry's own disk handler does (seconds per GiB).
type diskBlobs struct{ dir string }

func (d diskBlobs) path(h v1.Hash) string { return filepath.Join(d.dir, h.Algorithm, h.Hex) }

func (d diskBlobs) Stat(_ context.Context, _ string, h v1.Hash) (int64, error) {
	fi, err := os.Stat(d.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return 0, ggcrregistry.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d diskBlobs) Get(_ context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	f, err := os.Open(d.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ggcrregistry.ErrNotFound
	}
	return f, err
}

func (d diskBlobs) Put(_ context.Context, _ string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	if err := os.MkdirAll(filepath.Join(d.dir, h.Algorithm), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.dir, "upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())                 // after a successful rename this finds nothing
	if _, err := io.Copy(tmp, rc); err != nil { // rc fails on a digest or size mismatch
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), d.path(h))
}

func (d diskBlobs) Delete(_ context.Context, _ string, h v1.Hash) error {
	err := os.Remove(d.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return ggcrregistry.ErrNotFound
	}
	return err
}
