package activities

import (
	"context"
	"fmt"
	"sort"

	"dgpu-release/docker"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/release"
)

// DriverForge is where the driver's tags and the Dockerfile bump pull requests live.
type DriverForge interface {
	LatestTag(ctx context.Context, repo string) (string, error)
	BumpDockerfile(ctx context.Context, d release.DriverSet) (forge.PullRequest, error)
	PullRequestMerged(ctx context.Context, number int) (bool, error)
}

// Watch holds the activities of the triggers (KernelWatch, DriverWatch).
type Watch struct {
	Kernels  ocp.Source
	Forge    forge.Forge
	Drivers  DriverForge
	Registry Registry
	Config   Config
	// I915Repo and FirmwareRepo are the driver repositories (owner/name).
	I915Repo     string
	FirmwareRepo string
}

// KernelsOutput lists the kernels of the supported OpenShift releases.
type KernelsOutput struct {
	Targets []release.KernelTarget `json:"targets"`
}

// ListKernels reads the kernel sources: one target per kernel, with the newest
// OpenShift release that ships it.
func (a *Watch) ListKernels(ctx context.Context) (KernelsOutput, error) {
	ctx, done := alive(ctx)
	defer done()
	rels, err := a.Kernels.Releases(ctx)
	if err != nil {
		return KernelsOutput{}, stepError(err)
	}
	byKernel := map[string]ocp.Release{}
	for _, r := range rels {
		if cur, ok := byKernel[r.Kernel]; !ok || newer(r.OpenShift, cur.OpenShift) {
			byKernel[r.Kernel] = r
		}
	}
	var out KernelsOutput
	for k, r := range byKernel {
		out.Targets = append(out.Targets, release.KernelTarget{Kernel: k, OpenShiftVersion: r.OpenShift})
	}
	sort.Slice(out.Targets, func(i, j int) bool { return out.Targets[i].Kernel < out.Targets[j].Kernel })
	return out, nil
}

func newer(a, b string) bool {
	r, _ := ocp.Newest([]ocp.Release{{OpenShift: b}, {OpenShift: a}})
	return r.OpenShift == a && a != b
}

// PinnedInput names the Dockerfile revision.
type PinnedInput struct {
	Ref string `json:"ref"`
}

// PinnedOutput is the driver set the Dockerfile pins at that revision.
type PinnedOutput struct {
	Driver release.DriverSet `json:"driver"`
	Commit string            `json:"commit"`
}

// PinnedDriver reads the driver set the Dockerfile pins.
func (a *Watch) PinnedDriver(ctx context.Context, in PinnedInput) (PinnedOutput, error) {
	ctx, done := alive(ctx)
	defer done()
	content, commit, err := a.Forge.Dockerfile(ctx, in.Ref)
	if err != nil {
		return PinnedOutput{}, stepError(err)
	}
	d, err := docker.Parse(content)
	if err != nil {
		return PinnedOutput{}, invalid("Dockerfile at %s: %v", in.Ref, err)
	}
	i915, fw, v := d.PinnedDriver()
	set := release.DriverSet{I915Tag: i915, FirmwareTag: fw, DriverVersion: v}
	if err := set.Validate("pinned "); err != nil {
		return PinnedOutput{}, invalid("Dockerfile at %s: %v", in.Ref, err)
	}
	return PinnedOutput{Driver: set, Commit: commit}, nil
}

// UnreleasedInput asks which targets lack an image of the driver version.
type UnreleasedInput struct {
	Targets       []release.KernelTarget `json:"targets"`
	DriverVersion string                 `json:"driver_version"`
}

// UnreleasedOutput splits the targets.
type UnreleasedOutput struct {
	Missing  []release.KernelTarget `json:"missing"`
	Released []string               `json:"released"`
}

// Unreleased looks each target's tag up in the release repository.
func (a *Watch) Unreleased(ctx context.Context, in UnreleasedInput) (UnreleasedOutput, error) {
	ctx, done := alive(ctx)
	defer done()
	var out UnreleasedOutput
	for _, t := range in.Targets {
		_, ok, err := a.Registry.Digest(ctx, a.Config.ReleaseRepo+":"+release.ImageTag(in.DriverVersion, t.Kernel))
		if err != nil {
			return UnreleasedOutput{}, stepError(err)
		}
		if ok {
			out.Released = append(out.Released, t.Kernel)
		} else {
			out.Missing = append(out.Missing, t)
		}
	}
	return out, nil
}

// LatestDriverInput carries the pinned set to compare with.
type LatestDriverInput struct {
	Pinned release.DriverSet `json:"pinned"`
}

// LatestDriverOutput is the newest driver set, and whether it differs from the pinned one.
type LatestDriverOutput struct {
	Latest release.DriverSet `json:"latest"`
	New    bool              `json:"new"`
}

// LatestDriver reads the newest tags of the driver repositories. A changed tag makes a
// new driver version: the next minor version of the pinned one.
func (a *Watch) LatestDriver(ctx context.Context, in LatestDriverInput) (LatestDriverOutput, error) {
	ctx, done := alive(ctx)
	defer done()
	i915, err := a.Drivers.LatestTag(ctx, a.I915Repo)
	if err != nil {
		return LatestDriverOutput{}, stepError(err)
	}
	fw, err := a.Drivers.LatestTag(ctx, a.FirmwareRepo)
	if err != nil {
		return LatestDriverOutput{}, stepError(err)
	}
	out := LatestDriverOutput{Latest: release.DriverSet{I915Tag: i915, FirmwareTag: fw, DriverVersion: in.Pinned.DriverVersion}}
	if i915 == in.Pinned.I915Tag && fw == in.Pinned.FirmwareTag {
		return out, nil
	}
	v, err := release.NextDriverVersion(in.Pinned.DriverVersion)
	if err != nil {
		return LatestDriverOutput{}, stepError(err)
	}
	out.Latest.DriverVersion, out.New = v, true
	return out, nil
}

// OpenBump opens (or finds) the Dockerfile bump pull request.
func (a *Watch) OpenBump(ctx context.Context, d release.DriverSet) (forge.PullRequest, error) {
	ctx, done := alive(ctx)
	defer done()
	pr, err := a.Drivers.BumpDockerfile(ctx, d)
	if err != nil {
		return forge.PullRequest{}, stepError(fmt.Errorf("bump pull request: %w", err))
	}
	return pr, nil
}

// MergedInput names a pull request.
type MergedInput struct {
	Number int `json:"number"`
}

// BumpMerged reports whether the bump pull request is merged.
func (a *Watch) BumpMerged(ctx context.Context, in MergedInput) (bool, error) {
	ctx, done := alive(ctx)
	defer done()
	m, err := a.Drivers.PullRequestMerged(ctx, in.Number)
	return m, stepError(err)
}
