package ocp

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"dgpu-release/internal/registry"
)

// StandInNote says plainly what the rehearsal kernel source is.
const StandInNote = "rehearsal stand-in: sample OpenShift releases with stand-in Driver Toolkit images in the embedded registry (not the OpenShift update graph)"

// RehearsalReleases is sample data for the embedded default: OpenShift versions and the
// RHEL kernels of their generation. It is not read from Red Hat; the update-graph source
// replaces it when configured.
var RehearsalReleases = []DTKRelease{
	{OpenShift: "4.14.30", KernelVersion: "5.14.0-284.73.1.el9_2.x86_64", RHELVersion: "9.2"},
	{OpenShift: "4.15.20", KernelVersion: "5.14.0-284.74.1.el9_2.x86_64", RHELVersion: "9.2"},
	{OpenShift: "4.16.3", KernelVersion: "5.14.0-427.26.1.el9_4.x86_64", RHELVersion: "9.4"},
	{OpenShift: "4.17.0", KernelVersion: "5.14.0-427.37.1.el9_4.x86_64", RHELVersion: "9.4"},
}

// StaticSource serves a fixed list of releases.
type StaticSource []Release

// Releases returns the list.
func (s StaticSource) Releases(context.Context) ([]Release, error) { return s, nil }

// DTKStandIn builds a stand-in Driver Toolkit image: only its release file and a label
// that says it is a stand-in.
func DTKStandIn(rel DTKRelease) (v1.Image, error) {
	b, err := json.MarshalIndent(rel, "", "  ")
	if err != nil {
		return nil, err
	}
	l, err := registry.Layer([]registry.File{{Path: "/" + DTKReleaseFile, Content: b}})
	if err != nil {
		return nil, err
	}
	return registry.Assemble([]v1.Layer{l}, v1.Config{Labels: map[string]string{
		"name":                     "driver-toolkit",
		"io.dgpu-release.stand-in": StandInNote,
	}})
}

// SeedRehearsal pushes a stand-in DTK image for each sample release to
// <registryHost>/openshift/driver-toolkit:<version> and returns the releases with their
// DTK images by digest.
func SeedRehearsal(ctx context.Context, c *registry.Client, registryHost string) (StaticSource, error) {
	var out StaticSource
	for _, r := range RehearsalReleases {
		img, err := DTKStandIn(r)
		if err != nil {
			return nil, err
		}
		repo := registryHost + "/openshift/driver-toolkit"
		d, err := c.Push(ctx, img, repo+":"+r.OpenShift)
		if err != nil {
			return nil, fmt.Errorf("seed stand-in DTK for %s: %w", r.OpenShift, err)
		}
		out = append(out, Release{OpenShift: r.OpenShift, Kernel: r.KernelVersion, RHELVersion: r.RHELVersion, DTKImage: repo + "@" + d})
	}
	return out, nil
}

// RehearsalKernels lists the sample releases without their DTK images, for callers that
// only need to pick a kernel (the starter, to name a release before it starts).
func RehearsalKernels() StaticSource {
	out := make(StaticSource, 0, len(RehearsalReleases))
	for _, r := range RehearsalReleases {
		out = append(out, Release{OpenShift: r.OpenShift, Kernel: r.KernelVersion, RHELVersion: r.RHELVersion})
	}
	return out
}
