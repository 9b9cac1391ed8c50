package activities

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.temporal.io/sdk/activity"

	"dgpu-release/internal/catalog"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
)

// Publisher runs step 3: copy the certified image by digest to the release repository
// and record it in the catalog.
type Publisher struct {
	Registry Registry
	Catalog  catalog.Catalog
	Config   Config
}

// PublishInput is a certified staged image.
type PublishInput struct {
	Staged        release.Image                `json:"staged"`
	Resolved      release.Resolved             `json:"resolved"`
	Driver        release.DriverSet            `json:"driver"`
	Certification *release.CertificationResult `json:"certification,omitempty"`
}

// PublishOutput is the published image.
type PublishOutput struct {
	Image          release.Image    `json:"image"`
	CatalogID      string           `json:"catalog_id"`
	AlreadyPresent bool             `json:"already_present"`
	Evidence       release.Evidence `json:"evidence"`
}

// PublishImage checks that the catalog answers, copies, then records. The copy comes
// before the record: a catalog record never names an image the registry lacks. Both are idempotent, so a retry after a crash between them
// finishes the job.
func (a *Publisher) PublishImage(ctx context.Context, in PublishInput) (PublishOutput, error) {
	ctx, done := alive(ctx)
	defer done()
	if in.Staged.Digest == "" {
		return PublishOutput{}, invalid("publish: the staged image has no digest")
	}
	// Ask the catalog first: a catalog that refuses us (a bad API key) fails the step
	// before anything is copied, so nothing is left half-published.
	if _, err := a.Catalog.FindByDigest(ctx, in.Staged.Digest); err != nil {
		return PublishOutput{}, stepError(fmt.Errorf("catalog lookup of %s before publishing: %w", in.Staged.Digest, err))
	}
	res, err := a.Registry.Copy(ctx, in.Staged.Ref(), a.Config.ReleaseRepo, in.Resolved.ImageTag)
	if err != nil {
		return PublishOutput{}, stepError(err)
	}
	out := PublishOutput{Image: release.Image{Repository: a.Config.ReleaseRepo, Tag: in.Resolved.ImageTag, Digest: res.Digest}, AlreadyPresent: res.AlreadyPresent}
	repo, err := name.NewRepository(a.Config.ReleaseRepo)
	if err != nil {
		return PublishOutput{}, invalid("release repository %q: %v", a.Config.ReleaseRepo, err)
	}
	rec, err := a.Catalog.Record(ctx, catalog.Image{
		DockerImageDigest: res.Digest,
		Repositories:      []catalog.Repository{{Registry: repo.RegistryStr(), Repository: repo.RepositoryStr(), Tags: []string{in.Resolved.ImageTag}}},
		Certified:         in.Certification != nil && in.Certification.Passed,
		BuildKey:          in.Resolved.BuildKey, Kernel: in.Resolved.Kernel, DriverVersion: in.Driver.DriverVersion, OpenShift: in.Resolved.OpenShiftVersion,
		TestResults:  in.Certification,
		CreationDate: activity.GetInfo(ctx).StartedTime,
	})
	if err != nil {
		return PublishOutput{}, stepError(fmt.Errorf("catalog record for %s: %w", out.Image.Ref(), err))
	}
	out.CatalogID = rec.ID
	verb := "published"
	if res.AlreadyPresent {
		verb = "already published (nothing copied)"
	}
	out.Evidence = release.Evidence{Step: release.StepPublish, Summary: fmt.Sprintf("%s %s:%s (%s)", verb, out.Image.Repository, out.Image.Tag, out.Image.Digest),
		Details: map[string]string{"catalog_id": rec.ID}, StandIn: rec.StandIn}
	return out, nil
}

// Tables runs step 4: the release table.
type Tables struct {
	Forge forge.Forge
}

// TableInput is the row to upsert.
type TableInput struct {
	Row     release.Row `json:"row"`
	Message string      `json:"message"`
}

// UpdateTable upserts the row.
func (a *Tables) UpdateTable(ctx context.Context, in TableInput) (forge.TableUpdate, error) {
	ctx, done := alive(ctx)
	defer done()
	if strings.TrimSpace(in.Row.Image) == "" {
		return forge.TableUpdate{}, invalid("table row: image is required")
	}
	up, err := a.Forge.UpdateTable(ctx, in.Row, in.Message)
	return up, stepError(err)
}
