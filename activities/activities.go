// Package activities holds the side effects of a release, one struct per concern, each
// with its ports injected by the worker. Workflows refer to the methods through nil
// pointers of these structs; only the worker builds real ones.
//
// Every activity is idempotent: a retried call finds what its first attempt did (the
// same build by name, the same tag by digest, the same catalog record, the same table
// row, the same issue by marker) instead of doing it twice.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"dgpu-release/internal/certify"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
)

// Config is what the activities need to know about where things go. No secrets: those
// stay in the adapters' own credential sources.
type Config struct {
	// StagingRepo receives built images (by digest) before they are tested.
	StagingRepo string `json:"staging_repo"`
	// ReleaseRepo receives published images under <driver-version>-<kernel>.
	ReleaseRepo string `json:"release_repo"`
	// ProjectRepo (owner/name) gets issues about failed releases.
	ProjectRepo string `json:"project_repo"`
	// DriverRepo (owner/name) gets escalated driver bugs.
	DriverRepo string `json:"driver_repo"`
	// Policy is the certification policy; driver images run as root, so "root".
	Policy certify.Policy `json:"policy"`
}

// Registry is the port to OCI registries.
type Registry interface {
	Digest(ctx context.Context, ref string) (string, bool, error)
	Image(ctx context.Context, ref string) (v1.Image, error)
	Tags(ctx context.Context, repo string) ([]string, error)
	Copy(ctx context.Context, src, dstRepo, tag string) (registry.CopyResult, error)
}

// Builder builds an image and pushes it to the staging repository.
type Builder interface {
	Build(ctx context.Context, spec release.BuildSpec, progress release.Progress) (release.BuildOutput, error)
}

// Tester runs the GPU test of a staged image.
type Tester interface {
	Test(ctx context.Context, spec release.TestSpec, progress release.Progress) (release.TestOutput, error)
}

// DebugDeployer deploys and removes the debug workload.
type DebugDeployer interface {
	Deploy(ctx context.Context, spec release.DebugSpec) (release.DebugWorkload, error)
	Remove(ctx context.Context, name string) error
}

// LivenessTimeout is the heartbeat timeout of every activity: a worker that dies (a
// killed process, a lost node) is noticed this long after its last heartbeat, and the
// activity is retried on another worker, instead of after the step's whole
// start-to-close timeout (hours for a build).
const LivenessTimeout = 30 * time.Second

// pulseEvery is how often a running activity heartbeats; the SDK throttles the calls to
// what the server needs.
const pulseEvery = 5 * time.Second

type pulseKey struct{}

// pulse holds the last progress message, so that liveness heartbeats repeat it instead
// of wiping it from the Temporal UI.
type pulse struct {
	mu   sync.Mutex
	last string
}

// alive heartbeats every pulseEvery until done is called, so that every activity can
// run under LivenessTimeout however long its adapter goes without reporting progress.
// Outside an activity (direct calls in tests) it does nothing.
func alive(ctx context.Context) (context.Context, func()) {
	if !activity.IsActivity(ctx) {
		return ctx, func() {}
	}
	p := &pulse{}
	ctx = context.WithValue(ctx, pulseKey{}, p)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(pulseEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				p.mu.Lock()
				last := p.last
				p.mu.Unlock()
				if last == "" {
					activity.RecordHeartbeat(ctx)
				} else {
					activity.RecordHeartbeat(ctx, last)
				}
			}
		}
	}()
	return ctx, func() {
		close(stop)
		wg.Wait()
	}
}

// heartbeat turns adapter progress into Temporal heartbeats (and log lines).
func heartbeat(ctx context.Context) release.Progress {
	return func(msg string) {
		if activity.IsActivity(ctx) {
			if p, ok := ctx.Value(pulseKey{}).(*pulse); ok {
				p.mu.Lock()
				p.last = msg
				p.mu.Unlock()
			}
			activity.RecordHeartbeat(ctx, msg)
			activity.GetLogger(ctx).Info(msg)
		}
	}
}

// stepError converts adapter errors for Temporal: a StepFailure becomes a non-retryable
// application error of type StepFailed carrying the evidence; a FieldError becomes a
// non-retryable InvalidInput; a permanent adapter error (bad credentials, a refused
// request) and a registry's 401 or 403 become non-retryable Permanent, so they fail in
// seconds with their message instead of after the step's retries; anything else stays
// retryable.
func stepError(err error) error {
	if err == nil {
		return nil
	}
	var sf *release.StepFailure
	if errors.As(err, &sf) {
		return temporal.NewNonRetryableApplicationError(sf.Error(), release.ErrTypeStepFailed, nil, sf.Evidence)
	}
	var fe *release.FieldError
	if errors.As(err, &fe) {
		return temporal.NewNonRetryableApplicationError(err.Error(), release.ErrTypeInvalidInput, nil)
	}
	var perm interface{ Permanent() bool }
	if errors.As(err, &perm) && perm.Permanent() {
		return temporal.NewNonRetryableApplicationError(err.Error(), release.ErrTypePermanent, nil)
	}
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return temporal.NewNonRetryableApplicationError(err.Error()+": the registry refused the credentials; check the registry's entry in the docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json)",
			release.ErrTypePermanent, nil)
	}
	if errors.Is(err, registry.ErrTagConflict) {
		return temporal.NewNonRetryableApplicationError(err.Error(), release.ErrTypeTagConflict, nil,
			release.Evidence{Step: release.StepPublish, Summary: err.Error()})
	}
	return err
}

// invalid is a non-retryable input error.
func invalid(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), release.ErrTypeInvalidInput, nil)
}

// EvidenceOf extracts the evidence an activity error carries, if any.
func EvidenceOf(err error) (release.Evidence, bool) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() {
		var ev release.Evidence
		if appErr.Details(&ev) == nil && ev.Summary != "" {
			return ev, true
		}
	}
	return release.Evidence{}, false
}

func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
