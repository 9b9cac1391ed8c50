package activities_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"dgpu-release/activities"
	"dgpu-release/docker"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
	"dgpu-release/internal/wiring"
)

// The activities against real backends: a registry on loopback, a local git forge and a
// local catalog, as the embedded default wires them.
type fixture struct {
	set *wiring.Set
	env *testsuite.TestActivityEnvironment
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	h, err := registry.NewServer(t.TempDir(), nil)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	set, err := wiring.Rehearsal(context.Background(), wiring.Options{StateDir: t.TempDir(), RegistryHost: strings.TrimPrefix(srv.URL, "http://")})
	require.NoError(t, err)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	for _, a := range []any{set.Resolver, set.Builds, set.GPUTests, set.Certifier, set.Publisher, set.Tables, set.Issues, set.Debug} {
		env.RegisterActivity(a)
	}
	return &fixture{set: set, env: env}
}

func req() release.Request {
	return release.Request{Trigger: release.TriggerManual, OpenShiftVersion: "4.16.3", DockerfileRef: "main",
		Driver: release.DriverSet{I915Tag: "I915_A", FirmwareTag: "FW_A", DriverVersion: "1.2.0"}}
}

func appErrType(err error) string {
	var a *temporal.ApplicationError
	if errors.As(err, &a) {
		return a.Type()
	}
	return ""
}

func (f *fixture) resolve(t *testing.T, r release.Request) (activities.ResolveOutput, error) {
	v, err := f.env.ExecuteActivity(f.set.Resolver.Resolve, activities.ResolveInput{Request: r})
	var out activities.ResolveOutput
	if err == nil {
		require.NoError(t, v.Get(&out))
	}
	return out, err
}

func (f *fixture) releaseOnce(t *testing.T, r release.Request) (activities.ResolveOutput, activities.PublishOutput) {
	t.Helper()
	res, err := f.resolve(t, r)
	require.NoError(t, err)
	v, err := f.env.ExecuteActivity(f.set.Builds.BuildImage, activities.BuildInput{WorkflowID: "w", Round: 1, Resolved: res.Resolved})
	require.NoError(t, err)
	var built release.BuildOutput
	require.NoError(t, v.Get(&built))
	v, err = f.env.ExecuteActivity(f.set.GPUTests.TestImage, activities.TestInput{WorkflowID: "w", Round: 1, Kernel: res.Resolved.Kernel, Image: built.Image, BuildKey: res.Resolved.BuildKey})
	require.NoError(t, err)
	v, err = f.env.ExecuteActivity(f.set.Certifier.CertifyImage, activities.CertifyInput{Image: built.Image})
	require.NoError(t, err)
	var cert release.CertificationResult
	require.NoError(t, v.Get(&cert))
	require.True(t, cert.Passed)
	v, err = f.env.ExecuteActivity(f.set.Publisher.PublishImage, activities.PublishInput{Staged: built.Image, Resolved: res.Resolved, Driver: r.Driver, Certification: &cert})
	require.NoError(t, err)
	var pub activities.PublishOutput
	require.NoError(t, v.Get(&pub))
	return res, pub
}

func TestReleaseStepsAgainstRealBackends(t *testing.T) {
	f := newFixture(t)
	res, pub := f.releaseOnce(t, req())
	assert.Equal(t, "5.14.0-427.26.1.el9_4.x86_64", res.Resolved.Kernel)
	assert.Equal(t, "9.4", res.Resolved.RHELVersion)
	assert.Nil(t, res.Published)
	assert.NotEmpty(t, pub.CatalogID)

	// Resolve again: the release tag carries this build key, so it is published.
	again, err := f.resolve(t, req())
	require.NoError(t, err)
	require.NotNil(t, again.Published)
	assert.Equal(t, pub.Image.Digest, again.Published.Digest)
	assert.Equal(t, pub.CatalogID, again.CatalogID)

	// Table: the row is committed once.
	row := release.Row{Image: pub.Image.Repository + ":" + pub.Image.Tag, I915Tag: "I915_A", FirmwareTag: "FW_A", RHEL: "9.4", OpenShift: "4.16.3"}
	for i, changed := range []bool{true, false} {
		v, err := f.env.ExecuteActivity(f.set.Tables.UpdateTable, activities.TableInput{Row: row, Message: "m"})
		require.NoError(t, err, i)
		var up struct{ Changed bool }
		require.NoError(t, v.Get(&up))
		assert.Equal(t, changed, up.Changed)
	}
}

func TestResolveRefusesATagHoldingAnotherBuild(t *testing.T) {
	f := newFixture(t)
	f.releaseOnce(t, req())
	// A Dockerfile change under the same driver version: a different build key.
	path := filepath.Join(f.set.Forge.RepoDir(), docker.DriverDockerfilePath)
	require.NoError(t, os.WriteFile(path, append(append([]byte{}, docker.DriverDockerfile...), "# changed\n"...), 0o644))
	out, err := exec.Command("git", "-C", f.set.Forge.RepoDir(), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "change").CombinedOutput()
	require.NoError(t, err, string(out))
	_, err = f.resolve(t, req())
	require.Error(t, err)
	assert.Equal(t, release.ErrTypeStepFailed, appErrType(err))
	ev, ok := activities.EvidenceOf(err)
	require.True(t, ok)
	assert.Contains(t, ev.Summary, "built from other inputs")
}

func TestPublishRefusesAConflictingTag(t *testing.T) {
	f := newFixture(t)
	res, pub := f.releaseOnce(t, req())
	// Another build meant for the same tag (resolve would already refuse it; publish
	// must refuse it on its own too).
	r2 := req()
	r2.Driver.I915Tag = "I915_B"
	other := res.Resolved
	other.BuildArgs = release.BuildArgs(other.Kernel, other.DTKImage, r2.Driver)
	other.BuildKey = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	v, err := f.env.ExecuteActivity(f.set.Builds.BuildImage, activities.BuildInput{WorkflowID: "w", Round: 1, Resolved: other})
	require.NoError(t, err)
	var built release.BuildOutput
	require.NoError(t, v.Get(&built))
	require.NotEqual(t, pub.Image.Digest, built.Image.Digest)
	_, err = f.env.ExecuteActivity(f.set.Publisher.PublishImage, activities.PublishInput{Staged: built.Image, Resolved: res.Resolved, Driver: r2.Driver})
	require.Error(t, err)
	assert.Equal(t, release.ErrTypeTagConflict, appErrType(err))
	assert.Contains(t, err.Error(), pub.Image.Digest)
	assert.Contains(t, err.Error(), built.Image.Digest)
}

func TestResolveUnknownReleaseIsInvalidInput(t *testing.T) {
	f := newFixture(t)
	r := req()
	r.OpenShiftVersion = "4.99.0"
	_, err := f.resolve(t, r)
	require.Error(t, err)
	assert.Equal(t, release.ErrTypeInvalidInput, appErrType(err))
	assert.Contains(t, err.Error(), "4.99.0 is not known")
}

func TestBuildFailsOnAnUndeclaredBuildArg(t *testing.T) {
	f := newFixture(t)
	res, err := f.resolve(t, req())
	require.NoError(t, err)
	// A Dockerfile fix gone wrong: the DRIVER_VERSION ARG was dropped.
	path := filepath.Join(f.set.Forge.RepoDir(), docker.DriverDockerfilePath)
	content := strings.ReplaceAll(string(docker.DriverDockerfile), "ARG DRIVER_VERSION", "ARG DRIVER_VERSION_TYPO")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	out, err := exec.Command("git", "-C", f.set.Forge.RepoDir(), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "typo").CombinedOutput()
	require.NoError(t, err, string(out))
	res2, err := f.resolve(t, req())
	require.NoError(t, err)
	require.NotEqual(t, res.Resolved.BuildKey, res2.Resolved.BuildKey)
	_, err = f.env.ExecuteActivity(f.set.Builds.BuildImage, activities.BuildInput{WorkflowID: "w", Round: 1, Resolved: res2.Resolved})
	require.Error(t, err)
	assert.Equal(t, release.ErrTypeStepFailed, appErrType(err))
	ev, ok := activities.EvidenceOf(err)
	require.True(t, ok)
	assert.Contains(t, ev.Summary, "does not declare build args DRIVER_VERSION")
	assert.NotEmpty(t, ev.StandIn)
}
