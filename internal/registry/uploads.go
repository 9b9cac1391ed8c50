package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// uploads serves blob upload sessions (POST, then PATCH chunks, then PUT with the digest)
// with the bytes in a file, not in memory: go-containerregistry's registry holds every
// session's bytes in a map until the final PUT, which costs a GiB of memory per GiB
// pushed. Monolithic uploads (POST with a digest), mounts of a blob the registry has, and
// everything else go to next.
type uploads struct {
	next  http.Handler
	dir   string // session files
	blobs diskBlobs
}

const uploadsSegment = "/blobs/uploads/"

// split returns the repository and session ID of an upload path.
func splitUpload(p string) (repo, id string, ok bool) {
	i := strings.Index(p, uploadsSegment)
	if !strings.HasPrefix(p, "/v2/") || i < len("/v2/") {
		return "", "", false
	}
	return p[len("/v2/"):i], p[i+len(uploadsSegment):], true
}

func (u *uploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	repo, id, ok := splitUpload(r.URL.Path)
	if !ok {
		u.next.ServeHTTP(w, r)
		return
	}
	if id == "" {
		if r.Method != http.MethodPost || r.URL.Query().Get("digest") != "" || u.canMount(r) {
			u.next.ServeHTTP(w, r)
			return
		}
		u.start(w, repo)
		return
	}
	path, known := u.session(id)
	if !known {
		u.next.ServeHTTP(w, r) // a session of the inner registry
		return
	}
	switch r.Method {
	case http.MethodPatch:
		u.patch(w, r, repo, id, path)
	case http.MethodPut:
		u.finish(w, r, repo, path)
	case http.MethodGet:
		u.progress(w, http.StatusNoContent, repo, id, path)
	case http.MethodDelete:
		_ = os.Remove(path)
		w.WriteHeader(http.StatusNoContent)
	default:
		regErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method "+r.Method+" on an upload")
	}
}

// canMount says whether a POST asks to mount a blob the registry already has.
func (u *uploads) canMount(r *http.Request) bool {
	d := r.URL.Query().Get("mount")
	if d == "" {
		return false
	}
	h, err := v1.NewHash(d)
	if err != nil {
		return true // let the inner registry refuse it
	}
	_, err = u.blobs.Stat(r.Context(), "", h)
	return err == nil
}

func (u *uploads) session(id string) (string, bool) {
	if id == "" || strings.ContainsAny(id, "/.") {
		return "", false
	}
	p := filepath.Join(u.dir, id)
	_, err := os.Stat(p)
	return p, err == nil
}

func (u *uploads) start(w http.ResponseWriter, repo string) {
	if err := os.MkdirAll(u.dir, 0o755); err != nil {
		regErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := "f" + hex.EncodeToString(b)
	if err := os.WriteFile(filepath.Join(u.dir, id), nil, 0o644); err != nil {
		regErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	u.progress(w, http.StatusAccepted, repo, id, filepath.Join(u.dir, id))
}

func (u *uploads) progress(w http.ResponseWriter, code int, repo, id, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		regErr(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "upload "+id+" is gone")
		return
	}
	w.Header().Set("Location", "/v2/"+repo+uploadsSegment+id)
	w.Header().Set("Docker-Upload-UUID", id)
	end := fi.Size() - 1
	if end < 0 {
		end = 0
	}
	w.Header().Set("Range", "0-"+strconv.FormatInt(end, 10))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}

func (u *uploads) appendBody(r *http.Request, path string) (int, string, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", err
	}
	defer f.Close()
	if cr := r.Header.Get("Content-Range"); cr != "" {
		fi, err := f.Stat()
		if err != nil {
			return http.StatusInternalServerError, "UNKNOWN", err
		}
		var start, end int64
		if _, err := fmt.Sscanf(cr, "%d-%d", &start, &end); err != nil || start != fi.Size() {
			return http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", fmt.Errorf("Content-Range %q does not continue the %d bytes received", cr, fi.Size())
		}
	}
	if _, err := io.Copy(f, r.Body); err != nil {
		return http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err
	}
	if err := f.Close(); err != nil {
		return http.StatusInternalServerError, "UNKNOWN", err
	}
	return 0, "", nil
}

func (u *uploads) patch(w http.ResponseWriter, r *http.Request, repo, id, path string) {
	if code, reg, err := u.appendBody(r, path); err != nil {
		regErr(w, code, reg, err.Error())
		return
	}
	u.progress(w, http.StatusAccepted, repo, id, path)
}

// finish appends the last bytes, checks the digest, and moves the file into place.
func (u *uploads) finish(w http.ResponseWriter, r *http.Request, repo, path string) {
	want, err := v1.NewHash(r.URL.Query().Get("digest"))
	if err != nil || want.Algorithm != "sha256" {
		regErr(w, http.StatusBadRequest, "DIGEST_INVALID", "digest: accepted form is sha256:<64 hex>")
		return
	}
	if code, reg, err := u.appendBody(r, path); err != nil {
		regErr(w, code, reg, err.Error())
		return
	}
	f, err := os.Open(path)
	if err != nil {
		regErr(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", err.Error())
		return
	}
	sum := sha256.New()
	_, err = io.Copy(sum, f)
	f.Close()
	if err != nil {
		regErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want.Hex {
		_ = os.Remove(path)
		regErr(w, http.StatusBadRequest, "DIGEST_INVALID", "the uploaded bytes have digest sha256:"+got+", not "+want.String())
		return
	}
	dst := u.blobs.path(want)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		regErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if err := os.Rename(path, dst); err != nil && !errors.Is(err, os.ErrExist) {
		regErr(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+want.String())
	w.Header().Set("Docker-Content-Digest", want.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func regErr(w http.ResponseWriter, code int, reg, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": reg, "message": msg}}})
}
