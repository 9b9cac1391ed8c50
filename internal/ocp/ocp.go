// Package ocp finds the kernels that OpenShift releases ship: for a release, its Driver
// Toolkit (DTK) image, and from that image's /etc/driver-toolkit-release.json the kernel
// and RHEL version.
package ocp

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"dgpu-release/internal/release"
)

// DTKReleaseFile is where the Driver Toolkit image describes its kernel.
const DTKReleaseFile = "etc/driver-toolkit-release.json"

// DTKRelease is the content of /etc/driver-toolkit-release.json.
type DTKRelease struct {
	KernelVersion   string `json:"KERNEL_VERSION"`
	RTKernelVersion string `json:"RT_KERNEL_VERSION,omitempty"`
	RHELVersion     string `json:"RHEL_VERSION"`
	OpenShift       string `json:"OCP_VERSION,omitempty"`
}

// Release is an OpenShift release and the kernel it ships.
type Release struct {
	OpenShift   string `json:"openshift"`
	Kernel      string `json:"kernel"`
	RHELVersion string `json:"rhel_version"`
	// DTKImage is the Driver Toolkit image, by digest.
	DTKImage string `json:"dtk_image"`
}

// ReadDTKRelease finds /etc/driver-toolkit-release.json in the image, reading layers from
// the top down and stopping at the first layer that holds (or deletes) it, so a large
// DTK image is mostly not read.
func ReadDTKRelease(ctx context.Context, img v1.Image) (DTKRelease, error) {
	layers, err := img.Layers()
	if err != nil {
		return DTKRelease{}, err
	}
	for i := len(layers) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return DTKRelease{}, err
		}
		rel, found, err := findInLayer(layers[i])
		if err != nil {
			return DTKRelease{}, fmt.Errorf("layer %d: %w", i, err)
		}
		if found {
			if err := release.ValidateKernel("KERNEL_VERSION", rel.KernelVersion); err != nil {
				return DTKRelease{}, fmt.Errorf("/%s: %w", DTKReleaseFile, err)
			}
			return rel, nil
		}
	}
	return DTKRelease{}, fmt.Errorf("/%s not found: is this a Driver Toolkit image?", DTKReleaseFile)
}

var errDeleted = errors.New("deleted")

func findInLayer(l v1.Layer) (DTKRelease, bool, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return DTKRelease{}, false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return DTKRelease{}, false, nil
		}
		if err != nil {
			return DTKRelease{}, false, err
		}
		p := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if p == "etc/.wh.driver-toolkit-release.json" {
			return DTKRelease{}, false, fmt.Errorf("/%s: %w by a whiteout", DTKReleaseFile, errDeleted)
		}
		if p != DTKReleaseFile {
			continue
		}
		var rel DTKRelease
		if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&rel); err != nil {
			return DTKRelease{}, false, fmt.Errorf("/%s: %w", DTKReleaseFile, err)
		}
		return rel, true, nil
	}
}

// Source lists OpenShift releases with their DTK image.
type Source interface {
	Releases(ctx context.Context) ([]Release, error)
}

// Newest returns the release with the highest OpenShift version.
func Newest(rels []Release) (Release, bool) {
	if len(rels) == 0 {
		return Release{}, false
	}
	sorted := append([]Release(nil), rels...)
	sort.Slice(sorted, func(i, j int) bool { return versionLess(sorted[i].OpenShift, sorted[j].OpenShift) })
	return sorted[len(sorted)-1], true
}

// Find picks the release for an OpenShift version and/or a kernel. With only a kernel,
// the newest OpenShift release that ships it is chosen.
func Find(rels []Release, openshift, kernel string) (Release, error) {
	var match []Release
	for _, r := range rels {
		if (openshift == "" || r.OpenShift == openshift) && (kernel == "" || r.Kernel == kernel) {
			match = append(match, r)
		}
	}
	if r, ok := Newest(match); ok {
		return r, nil
	}
	known := make([]string, 0, len(rels))
	for _, r := range rels {
		known = append(known, r.OpenShift+" ("+r.Kernel+")")
	}
	sort.Strings(known)
	switch {
	case openshift != "" && kernel != "":
		return Release{}, fmt.Errorf("no known OpenShift release %s ships kernel %s; known: %s", openshift, kernel, strings.Join(known, ", "))
	case openshift != "":
		return Release{}, fmt.Errorf("OpenShift release %s is not known to the kernel source; known: %s", openshift, strings.Join(known, ", "))
	default:
		return Release{}, fmt.Errorf("no known OpenShift release ships kernel %s; known: %s", kernel, strings.Join(known, ", "))
	}
}

func versionLess(a, b string) bool {
	an, apre, _ := strings.Cut(a, "-")
	bn, bpre, _ := strings.Cut(b, "-")
	pa, pb := strings.Split(an, "."), strings.Split(bn, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			fmt.Sscanf(pa[i], "%d", &x)
		}
		if i < len(pb) {
			fmt.Sscanf(pb[i], "%d", &y)
		}
		if x != y {
			return x < y
		}
	}
	// 4.17.0-rc.1 comes before 4.17.0.
	switch {
	case apre == bpre:
		return false
	case apre == "":
		return false
	case bpre == "":
		return true
	}
	return apre < bpre
}
