package release_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/internal/release"
)

func TestValidateKernel(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"5.14.0-427.13.1.el9_4.x86_64", true},
		{"5.14.0-284.73.1.el9_2.x86_64", true},
		{"4.18.0-372.9.1.el8.x86_64", true},
		{"5.14.0-570.12.1.el9_6.aarch64", true},
		{"", false},
		{"5.14.0", false},
		{"5.14.0-427.13.1.el9_4", false},             // no architecture
		{"5.14.0-427.13.1.el9_4.i686", false},        // unsupported architecture
		{"5.14.0-427.13.1.fc39.x86_64", false},       // Fedora, not RHEL
		{" 5.14.0-427.13.1.el9_4.x86_64", false},     // whitespace
		{"5.14.0-427.13.1.el9_4.x86_64\n", false},    // trailing newline
		{"5.14.0-427.13.1.el9_4.x86_64+rt", false},   // flavour suffix
		{"5.14.0-427.13.1.el9_4.x86_64/../x", false}, // path tricks
	} {
		err := release.ValidateKernel("kernel", tc.in)
		if tc.ok {
			assert.NoError(t, err, tc.in)
			continue
		}
		require.Error(t, err, tc.in)
		assert.Contains(t, err.Error(), "kernel")
		assert.Contains(t, err.Error(), "5.14.0-427.13.1.el9_4.x86_64", "the error shows the accepted form")
	}
}

func TestValidateVersionsAndTags(t *testing.T) {
	for _, tc := range []struct {
		field string
		fn    func(string, string) error
		in    string
		ok    bool
	}{
		{"openshift_version", release.ValidateOpenShiftVersion, "4.16.3", true},
		{"openshift_version", release.ValidateOpenShiftVersion, "4.17.0-rc.1", true},
		{"openshift_version", release.ValidateOpenShiftVersion, "4.16", false},
		{"openshift_version", release.ValidateOpenShiftVersion, "v4.16.3", false},
		{"openshift_version", release.ValidateOpenShiftVersion, "3.11.0", false},
		{"openshift_version", release.ValidateOpenShiftVersion, "4.016.3", false},
		{"driver_version", release.ValidateDriverVersion, "1.2.3", true},
		{"driver_version", release.ValidateDriverVersion, "24.10.0-rc.2", true},
		{"driver_version", release.ValidateDriverVersion, "1.2", false},
		{"driver_version", release.ValidateDriverVersion, "1.2.3+build5", false},
		{"driver_version", release.ValidateDriverVersion, "01.2.3", false},
		{"driver_version", release.ValidateDriverVersion, "", false},
		{"i915_tag", release.ValidateTag, "I915_24WW30.4_803.75_23.10.54_231129.76", true},
		{"i915_tag", release.ValidateTag, "20240801", true},
		{"i915_tag", release.ValidateTag, "", false},
		{"i915_tag", release.ValidateTag, "two words", false},
		{"i915_tag", release.ValidateTag, "tab\there", false},
		{"i915_tag", release.ValidateTag, "a:b", false},
	} {
		err := tc.fn(tc.field, tc.in)
		if tc.ok {
			assert.NoError(t, err, "%s=%q", tc.field, tc.in)
			continue
		}
		require.Error(t, err, "%s=%q", tc.field, tc.in)
		assert.True(t, strings.HasPrefix(err.Error(), tc.field), "error names the field: %v", err)
		assert.Contains(t, err.Error(), "accepted form is")
	}
}

func goodRequest() release.Request {
	return release.Request{
		Trigger: release.TriggerKernel,
		Kernel:  "5.14.0-427.13.1.el9_4.x86_64",
		Driver: release.DriverSet{
			I915Tag:       "I915_24WW30.4_803.75_23.10.54_231129.76",
			FirmwareTag:   "24WW20.5_881",
			DriverVersion: "1.2.3",
		},
		DockerfileRef: "main",
	}
}

func TestRequestValidate(t *testing.T) {
	require.NoError(t, goodRequest().Validate())

	r := goodRequest()
	r.Kernel, r.OpenShiftVersion = "", "4.16.3"
	require.NoError(t, r.Validate(), "an OpenShift version alone is enough: resolve finds the kernel")

	bad := release.Request{Trigger: "nightly", Driver: release.DriverSet{I915Tag: "a b"}, Rehearsal: release.RehearsalOptions{FailAt: "publish"}, HumanDeadline: -1}
	err := bad.Validate()
	require.Error(t, err)
	for _, field := range []string{"trigger \"nightly\"", "kernel is required", "driver.i915_tag", "driver.firmware_tag", "driver.driver_version", "dockerfile_ref", "human_deadline", "rehearsal.fail_at"} {
		assert.Contains(t, err.Error(), field, "every problem is reported at once")
	}
	assert.Contains(t, err.Error(), "one of driver, kernel, manual")
}

func TestNaming(t *testing.T) {
	assert.Equal(t, "release/5.14.0-427.13.1.el9_4.x86_64/1.2.3", release.WorkflowID("5.14.0-427.13.1.el9_4.x86_64", "1.2.3"))
	assert.Equal(t, "1.2.3-5.14.0-427.13.1.el9_4.x86_64", release.ImageTag("1.2.3", "5.14.0-427.13.1.el9_4.x86_64"))
	v, err := release.RHELVersion("5.14.0-427.13.1.el9_4.x86_64")
	require.NoError(t, err)
	assert.Equal(t, "9.4", v)
	v, err = release.RHELVersion("4.18.0-372.9.1.el8.x86_64")
	require.NoError(t, err)
	assert.Equal(t, "8", v)
}

func TestBuildKey(t *testing.T) {
	args := release.BuildArgs("5.14.0-427.13.1.el9_4.x86_64", "dtk@sha256:aa", goodRequest().Driver)
	k1 := release.ComputeBuildKey([]byte("FROM x"), args, "sha256:aa")
	assert.Equal(t, k1, release.ComputeBuildKey([]byte("FROM x"), args, "sha256:aa"), "same inputs, same key")
	assert.NotEqual(t, k1, release.ComputeBuildKey([]byte("FROM y"), args, "sha256:aa"), "the Dockerfile counts")
	assert.NotEqual(t, k1, release.ComputeBuildKey([]byte("FROM x"), args, "sha256:bb"), "the DTK digest counts")
	args2 := release.BuildArgs("5.14.0-427.13.1.el9_4.x86_64", "dtk@sha256:aa", release.DriverSet{I915Tag: "other", FirmwareTag: "24WW20.5_881", DriverVersion: "1.2.3"})
	assert.NotEqual(t, k1, release.ComputeBuildKey([]byte("FROM x"), args2, "sha256:aa"), "build args count")
	mirrored := release.BuildArgs("5.14.0-427.13.1.el9_4.x86_64", "mirror.example/dtk@sha256:aa", goodRequest().Driver)
	assert.Equal(t, k1, release.ComputeBuildKey([]byte("FROM x"), mirrored, "sha256:aa"), "the same DTK from another mirror builds the same image")
	assert.Len(t, k1.Short(), 12)
}

func TestSignalPayloads(t *testing.T) {
	require.NoError(t, release.RetryInput{}.Validate())
	require.ErrorContains(t, release.RetryInput{DockerfileRef: "bad ref"}.Validate(), "dockerfile_ref")
	require.ErrorContains(t, release.RetryInput{Driver: &release.DriverSet{}}.Validate(), "driver.i915_tag")
	require.ErrorContains(t, release.ReasonInput{}.Validate(release.ActionAbort), "reason is required")
	require.NoError(t, release.ReasonInput{}.Validate(release.ActionApprove))
}
