package ocp

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"dgpu-release/internal/release"
)

// DefaultGraphURL is the OpenShift update graph.
const DefaultGraphURL = "https://api.openshift.com/api/upgrades_info/v1/graph"

// ImageReader fetches images lazily (manifest and config; layers when read).
type ImageReader interface {
	Image(ctx context.Context, ref string) (v1.Image, error)
}

// Graph lists OpenShift releases from the update graph and finds the kernel each ships,
// through its release payload's image-references and its Driver Toolkit image. Kernel
// lookups are cached by payload digest, in memory and in CacheFile when set.
type Graph struct {
	URL       string
	Channels  []string
	HTTP      *http.Client
	Images    ImageReader
	CacheFile string

	mu    sync.Mutex
	cache map[string]Release // by payload pull spec (by digest)
}

var channelRE = regexp.MustCompile(`^(stable|fast|candidate|eus)-4\.\d+$`)

// ValidateChannel checks a channel name.
func ValidateChannel(ch string) error {
	if !channelRE.MatchString(ch) {
		return &release.FieldError{Field: "channel", Value: ch, Accepted: "stable-4.y, fast-4.y, candidate-4.y or eus-4.y, such as stable-4.16"}
	}
	return nil
}

type graphDoc struct {
	Nodes []struct {
		Version string `json:"version"`
		Payload string `json:"payload"`
	} `json:"nodes"`
}

// Releases reads every configured channel and resolves each release's kernel.
func (g *Graph) Releases(ctx context.Context) ([]Release, error) {
	if len(g.Channels) == 0 {
		return nil, errors.New("update graph: no channel configured")
	}
	payloads := map[string]string{} // version -> payload
	for _, ch := range g.Channels {
		if err := ValidateChannel(ch); err != nil {
			return nil, err
		}
		doc, err := g.fetch(ctx, ch)
		if err != nil {
			return nil, err
		}
		for _, n := range doc.Nodes {
			if release.ValidateOpenShiftVersion("version", n.Version) != nil || !strings.Contains(n.Payload, "@sha256:") {
				continue // not a release this tool builds for, or a payload not pinned by digest
			}
			payloads[n.Version] = n.Payload
		}
	}
	versions := make([]string, 0, len(payloads))
	for v := range payloads {
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[i], versions[j]) })
	g.load()
	var out []Release
	for _, v := range versions {
		rel, err := g.lookup(ctx, v, payloads[v])
		if err != nil {
			return nil, fmt.Errorf("OpenShift %s: %w", v, err)
		}
		out = append(out, rel)
	}
	g.save()
	return out, nil
}

func (g *Graph) fetch(ctx context.Context, channel string) (graphDoc, error) {
	u, err := url.Parse(g.URL)
	if err != nil || u.Scheme == "" {
		return graphDoc{}, &release.FieldError{Field: "update graph URL", Value: g.URL, Accepted: "an absolute URL such as " + DefaultGraphURL}
	}
	q := u.Query()
	q.Set("channel", channel)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return graphDoc{}, err
	}
	req.Header.Set("Accept", "application/json")
	hc := g.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return graphDoc{}, fmt.Errorf("update graph %s: %w", channel, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return graphDoc{}, fmt.Errorf("update graph %s: %s: %s", channel, resp.Status, strings.TrimSpace(string(b)))
	}
	var doc graphDoc
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&doc); err != nil {
		return graphDoc{}, fmt.Errorf("update graph %s: %w", channel, err)
	}
	return doc, nil
}

func (g *Graph) lookup(ctx context.Context, version, payload string) (Release, error) {
	g.mu.Lock()
	if r, ok := g.cache[payload]; ok {
		g.mu.Unlock()
		return r, nil
	}
	g.mu.Unlock()
	r, err := ReleaseFromPayload(ctx, g.Images, version, payload)
	if err != nil {
		return Release{}, err
	}
	g.mu.Lock()
	if g.cache == nil {
		g.cache = map[string]Release{}
	}
	g.cache[payload] = r
	g.mu.Unlock()
	return r, nil
}

// ReleaseFromPayload finds the kernel an OpenShift release payload ships: its
// driver-toolkit image, and that image's release file.
func ReleaseFromPayload(ctx context.Context, images ImageReader, version, payload string) (Release, error) {
	dtkRef, err := DTKFromPayload(ctx, images, payload)
	if err != nil {
		return Release{}, err
	}
	img, err := images.Image(ctx, dtkRef)
	if err != nil {
		return Release{}, err
	}
	dtk, err := ReadDTKRelease(ctx, img)
	if err != nil {
		return Release{}, fmt.Errorf("Driver Toolkit %s: %w", dtkRef, err)
	}
	rhel := dtk.RHELVersion
	if rhel == "" {
		rhel, _ = release.RHELVersion(dtk.KernelVersion)
	}
	return Release{OpenShift: version, Kernel: dtk.KernelVersion, RHELVersion: rhel, DTKImage: dtkRef}, nil
}

// Union lists the releases of several sources, each (version, kernel) once.
type Union []Source

// Releases asks every source.
func (u Union) Releases(ctx context.Context) ([]Release, error) {
	seen := map[string]bool{}
	var out []Release
	for _, s := range u {
		rels, err := s.Releases(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range rels {
			if k := r.OpenShift + "/" + r.Kernel; !seen[k] {
				seen[k] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func (g *Graph) load() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cache != nil || g.CacheFile == "" {
		return
	}
	g.cache = map[string]Release{}
	if b, err := os.ReadFile(g.CacheFile); err == nil {
		_ = json.Unmarshal(b, &g.cache)
	}
}

func (g *Graph) save() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.CacheFile == "" {
		return
	}
	b, _ := json.MarshalIndent(g.cache, "", "  ")
	_ = os.MkdirAll(filepath.Dir(g.CacheFile), 0o755)
	tmp := g.CacheFile + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		_ = os.Rename(tmp, g.CacheFile)
	}
}

// ImageReferencesFile is where a release payload lists its component images.
const ImageReferencesFile = "release-manifests/image-references"

// DTKFromPayload reads the payload's image-references (an ImageStream) and returns the
// pull spec of its driver-toolkit tag. Layers are read from the top down and reading
// stops at the first that holds the file.
func DTKFromPayload(ctx context.Context, images ImageReader, payload string) (string, error) {
	img, err := images.Image(ctx, payload)
	if err != nil {
		return "", err
	}
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	for i := len(layers) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		b, found, err := fileInLayer(layers[i], ImageReferencesFile)
		if err != nil {
			return "", fmt.Errorf("payload %s layer %d: %w", payload, i, err)
		}
		if !found {
			continue
		}
		var is struct {
			Kind string `json:"kind"`
			Spec struct {
				Tags []struct {
					Name string `json:"name"`
					From struct {
						Name string `json:"name"`
					} `json:"from"`
				} `json:"tags"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(b, &is); err != nil {
			return "", fmt.Errorf("payload %s: /%s: %w", payload, ImageReferencesFile, err)
		}
		for _, t := range is.Spec.Tags {
			if t.Name == "driver-toolkit" && t.From.Name != "" {
				return t.From.Name, nil
			}
		}
		return "", fmt.Errorf("payload %s: /%s names no driver-toolkit image", payload, ImageReferencesFile)
	}
	return "", fmt.Errorf("payload %s: /%s not found: is this an OpenShift release image?", payload, ImageReferencesFile)
}

func fileInLayer(l v1.Layer, want string) ([]byte, bool, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if strings.TrimPrefix(path.Clean("/"+h.Name), "/") == want {
			b, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			return b, true, err
		}
	}
}
