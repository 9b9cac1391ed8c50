package activities

import (
	"context"
	"fmt"
	"strings"

	"dgpu-release/internal/catalog"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/release"
)

// Resolver finds what a release builds from: the kernel and its Driver Toolkit, the
// Dockerfile at its revision, and the build key; and whether that key is published.
type Resolver struct {
	Kernels  ocp.Source
	Forge    forge.Forge
	Registry Registry
	Catalog  catalog.Catalog
	Config   Config
}

// ResolveInput is the request of a release.
type ResolveInput struct {
	Request release.Request `json:"request"`
}

// ResolveOutput is what resolve found.
type ResolveOutput struct {
	Resolved release.Resolved `json:"resolved"`
	// Published is set when an image with the same build key is already published.
	Published *release.Image   `json:"published,omitempty"`
	CatalogID string           `json:"catalog_id,omitempty"`
	Evidence  release.Evidence `json:"evidence"`
}

// Resolve is step 1.
func (a *Resolver) Resolve(ctx context.Context, in ResolveInput) (ResolveOutput, error) {
	ctx, done := alive(ctx)
	defer done()
	req := in.Request
	rels, err := a.Kernels.Releases(ctx)
	if err != nil {
		return ResolveOutput{}, stepError(fmt.Errorf("list OpenShift releases: %w", err))
	}
	rel, err := ocp.Find(rels, req.OpenShiftVersion, req.Kernel)
	if err != nil {
		return ResolveOutput{}, invalid("%v", err)
	}
	img, err := a.Registry.Image(ctx, rel.DTKImage)
	if err != nil {
		return ResolveOutput{}, stepError(fmt.Errorf("Driver Toolkit of OpenShift %s: %w", rel.OpenShift, err))
	}
	dtk, err := ocp.ReadDTKRelease(ctx, img)
	if err != nil {
		return ResolveOutput{}, invalid("Driver Toolkit %s: %v", rel.DTKImage, err)
	}
	if dtk.KernelVersion != rel.Kernel {
		return ResolveOutput{}, invalid("Driver Toolkit %s is for kernel %s, but OpenShift %s is listed with kernel %s", rel.DTKImage, dtk.KernelVersion, rel.OpenShift, rel.Kernel)
	}
	dtkDigest := rel.DTKImage[strings.LastIndex(rel.DTKImage, "@")+1:]
	df, commit, err := a.Forge.Dockerfile(ctx, req.DockerfileRef)
	if err != nil {
		return ResolveOutput{}, stepError(err)
	}
	rhel := dtk.RHELVersion
	if rhel == "" {
		rhel, _ = release.RHELVersion(rel.Kernel)
	}
	args := release.BuildArgs(rel.Kernel, rel.DTKImage, req.Driver)
	out := ResolveOutput{Resolved: release.Resolved{
		Kernel: rel.Kernel, RHELVersion: rhel, OpenShiftVersion: rel.OpenShift, DTKImage: rel.DTKImage,
		DockerfileRef: req.DockerfileRef, DockerfileCommit: commit, BuildArgs: args,
		BuildKey: release.ComputeBuildKey(df, args, dtkDigest),
		ImageTag: release.ImageTag(req.Driver.DriverVersion, rel.Kernel),
	}}
	out.Evidence = release.Evidence{Step: release.StepResolve,
		Summary: fmt.Sprintf("OpenShift %s ships kernel %s (RHEL %s); build key %s", rel.OpenShift, rel.Kernel, rhel, out.Resolved.BuildKey.Short()),
		Details: map[string]string{"dtk_image": rel.DTKImage, "dockerfile_commit": commit, "build_key": string(out.Resolved.BuildKey)}}

	// Published means: the release tag holds an image built from this key.
	ref := a.Config.ReleaseRepo + ":" + out.Resolved.ImageTag
	digest, ok, err := a.Registry.Digest(ctx, ref)
	if err != nil || !ok {
		return out, stepError(err)
	}
	pub, err := a.Registry.Image(ctx, ref)
	if err != nil {
		return ResolveOutput{}, stepError(err)
	}
	cf, err := pub.ConfigFile()
	if err != nil {
		return ResolveOutput{}, stepError(fmt.Errorf("read %s: %w", ref, err))
	}
	if got := cf.Config.Labels[release.LabelBuildKey]; got != string(out.Resolved.BuildKey) {
		ev := out.Evidence
		ev.Summary = fmt.Sprintf("%s already holds %s, built from other inputs (build key %q, not %s): a changed Dockerfile or Driver Toolkit needs a new driver version, or a human to decide",
			ref, digest, got, out.Resolved.BuildKey.Short())
		return ResolveOutput{}, stepError(&release.StepFailure{Evidence: ev})
	}
	out.Published = &release.Image{Repository: a.Config.ReleaseRepo, Tag: out.Resolved.ImageTag, Digest: digest}
	out.Evidence.Summary += "; already published as " + out.Published.Ref()
	if rec, err := a.Catalog.FindByDigest(ctx, digest); err != nil {
		return ResolveOutput{}, stepError(fmt.Errorf("catalog lookup of %s: %w", digest, err))
	} else if rec != nil {
		out.CatalogID = rec.ID
	}
	return out, nil
}
