package docker_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/docker"
	"dgpu-release/internal/release"
)

func TestDriverDockerfile(t *testing.T) {
	d, err := docker.ReadFile("intel-dgpu-driver.Dockerfile")
	require.NoError(t, err)
	require.Len(t, d.Stages, 2, "builder stage on the DTK, final stage on UBI minimal")
	assert.Equal(t, "builder", d.Stages[0].Name)
	assert.Equal(t, "${DTK_AUTO}", d.Stages[0].From)
	assert.Equal(t, "${BASE_IMAGE}", d.Final().From)

	for _, arg := range []string{release.ArgKernel, release.ArgDTK, release.ArgI915, release.ArgFirmware, release.ArgDriverVersion} {
		assert.Contains(t, d.BuildArgNames(), arg, "the release passes %s, so the Dockerfile must declare it", arg)
	}

	labels := d.ExpandLabels(map[string]string{release.ArgDriverVersion: "1.2.3", release.ArgKernel: "5.14.0-427.13.1.el9_4.x86_64", release.ArgI915: "I915_A", release.ArgFirmware: "FW_A"})
	for _, l := range []string{"name", "vendor", "version", "release", "summary", "description", "maintainer"} {
		assert.NotEmpty(t, labels[l], "certification requires label %q", l)
	}
	assert.Equal(t, "1.2.3", labels["version"])
	assert.Equal(t, "5.14.0-427.13.1.el9_4.x86_64", labels["release"])
	assert.Contains(t, labels["description"], "I915_A")
	assert.Equal(t, "Intel Corporation", labels["vendor"])
}

func TestParseErrors(t *testing.T) {
	_, err := docker.Parse([]byte("LABEL a=b\n"))
	require.Error(t, err)
	_, err = docker.Parse([]byte("# only a comment\n"))
	require.Error(t, err)
}

func TestPinnedDriverIsValid(t *testing.T) {
	d, err := docker.Parse(docker.DriverDockerfile)
	require.NoError(t, err)
	i915, fw, v := d.PinnedDriver()
	require.NoError(t, release.DriverSet{I915Tag: i915, FirmwareTag: fw, DriverVersion: v}.Validate(""), "the Dockerfile pins a valid driver set")
}

func TestPinDriver(t *testing.T) {
	out, err := docker.PinDriver(docker.DriverDockerfile, "I915_25WW01.1_1", "25WW01.2_2", "2.0.0")
	require.NoError(t, err)
	d, err := docker.Parse(out)
	require.NoError(t, err)
	a, b, c := d.PinnedDriver()
	assert.Equal(t, []string{"I915_25WW01.1_1", "25WW01.2_2", "2.0.0"}, []string{a, b, c})
	assert.Equal(t, len(strings.Split(string(docker.DriverDockerfile), "\n")), len(strings.Split(string(out), "\n")), "only the three lines change")
	_, err = docker.PinDriver([]byte("FROM x\nARG I915_RELEASE=a\n"), "a", "b", "1.0.0")
	require.ErrorContains(t, err, "FIRMWARE_RELEASE")
}
