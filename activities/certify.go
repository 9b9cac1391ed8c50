package activities

import (
	"context"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"dgpu-release/internal/certify"
	"dgpu-release/internal/release"
)

// Certifier runs step 2c: the certification checks on the staged image.
type Certifier struct {
	Registry Registry
	Config   Config
	// UBI says which layers are certified UBI layers (BasedOnUbi); nil makes that check an error.
	UBI certify.UBISource
	// Preflight, when set and installed, runs instead of the native checks.
	Preflight *certify.Preflight
}

// CertifyInput names the image to certify.
type CertifyInput struct {
	Image release.Image `json:"image"`
}

// CertifyImage runs the policy's checks. A failed check is a StepFailed error whose
// evidence carries the results document.
func (a *Certifier) CertifyImage(ctx context.Context, in CertifyInput) (release.CertificationResult, error) {
	ctx, done := alive(ctx)
	defer done()
	ref := in.Image.Ref()
	d, err := name.NewDigest(ref)
	if err != nil {
		return release.CertificationResult{}, invalid("certify: image %q must be a reference by digest: %v", ref, err)
	}
	policy := a.Config.Policy
	if policy == "" {
		policy = certify.PolicyRoot
	}
	var res release.CertificationResult
	if a.Preflight != nil && a.Preflight.Available() {
		heartbeat(ctx)("running " + a.Preflight.Binary + " on " + ref)
		p := *a.Preflight
		p.Policy = policy
		if res, err = p.Run(ctx, ref); err != nil {
			return release.CertificationResult{}, stepError(err)
		}
	} else {
		heartbeat(ctx)("reading " + ref)
		img, err := a.Registry.Image(ctx, ref)
		if err != nil {
			return release.CertificationResult{}, stepError(err)
		}
		tags, err := a.Registry.Tags(ctx, in.Image.Repository)
		if err != nil {
			return release.CertificationResult{}, stepError(err)
		}
		res, err = certify.Run(ctx, certify.Target{Ref: ref, Repository: d.Context().RepositoryStr(), Tags: tags, Image: img}, certify.Options{Policy: policy, UBI: a.UBI})
		if err != nil {
			return release.CertificationResult{}, stepError(err)
		}
	}
	if !res.Passed {
		var reasons []string
		for _, o := range append(res.Results.Failed, res.Results.Errors...) {
			reasons = append(reasons, o.Name+": "+o.Reason)
		}
		return res, stepError(&release.StepFailure{Evidence: release.Evidence{Step: release.StepCertify,
			Summary: certify.Summary(res), LogTail: strings.Join(reasons, "\n"),
			Details: map[string]string{"results": mustJSON(res)}}})
	}
	return res, nil
}
