package activities

import (
	"context"
	"fmt"

	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
)

// Builds runs step 2a: build the image and push it to the staging repository.
type Builds struct {
	Builder Builder
	Forge   forge.Forge
	Config  Config
}

// BuildInput names what to build.
type BuildInput struct {
	WorkflowID string                   `json:"workflow_id"`
	Round      int                      `json:"round"`
	Resolved   release.Resolved         `json:"resolved"`
	Rehearsal  release.RehearsalOptions `json:"rehearsal,omitempty"`
}

// BuildName is the deterministic name of a build object for a release and round.
func BuildName(key release.BuildKey, round int) string {
	return fmt.Sprintf("intel-dgpu-driver-%s-r%d", key.Short(), round)
}

// BuildImage builds from the Dockerfile at the resolved commit.
func (a *Builds) BuildImage(ctx context.Context, in BuildInput) (release.BuildOutput, error) {
	ctx, done := alive(ctx)
	defer done()
	df, commit, err := a.Forge.Dockerfile(ctx, in.Resolved.DockerfileCommit)
	if err != nil {
		return release.BuildOutput{}, stepError(err)
	}
	spec := release.BuildSpec{
		Name: BuildName(in.Resolved.BuildKey, in.Round), WorkflowID: in.WorkflowID, Round: in.Round, BuildKey: in.Resolved.BuildKey,
		Dockerfile: df, DockerfileCommit: commit, Args: in.Resolved.BuildArgs,
		StagingRepo: a.Config.StagingRepo, Tag: in.Resolved.ImageTag + "-" + in.Resolved.BuildKey.Short(),
		Rehearsal: in.Rehearsal,
	}
	out, err := a.Builder.Build(ctx, spec, heartbeat(ctx))
	return out, stepError(err)
}

// GPUTests runs step 2b: the GPU test of the staged image.
type GPUTests struct {
	Tester Tester
}

// TestInput names the image to test.
type TestInput struct {
	WorkflowID string                   `json:"workflow_id"`
	Round      int                      `json:"round"`
	Kernel     string                   `json:"kernel"`
	Image      release.Image            `json:"image"`
	BuildKey   release.BuildKey         `json:"build_key"`
	Rehearsal  release.RehearsalOptions `json:"rehearsal,omitempty"`
}

// TestImage runs the test.
func (a *GPUTests) TestImage(ctx context.Context, in TestInput) (release.TestOutput, error) {
	ctx, done := alive(ctx)
	defer done()
	out, err := a.Tester.Test(ctx, release.TestSpec{
		Name: fmt.Sprintf("dgpu-test-%s-r%d", in.BuildKey.Short(), in.Round), WorkflowID: in.WorkflowID, Round: in.Round,
		Kernel: in.Kernel, Image: in.Image.Ref(), Rehearsal: in.Rehearsal,
	}, heartbeat(ctx))
	return out, stepError(err)
}
