package forge_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/docker"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
)

func TestLocalDriverTagsAndBumpPullRequest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, err := forge.NewLocal(ctx, dir, "intel/dgpu-release")
	require.NoError(t, err)
	require.NoError(t, f.SeedTags("intel-gpu/intel-gpu-i915-backports", "I915_24WW30.4_803.75_23.10.54_231129.76"))
	tag, err := f.LatestTag(ctx, "intel-gpu/intel-gpu-i915-backports")
	require.NoError(t, err)
	assert.Equal(t, "I915_24WW30.4_803.75_23.10.54_231129.76", tag)

	// A new tag is published.
	tf := filepath.Join(dir, "driver-tags", "intel-gpu", "intel-gpu-i915-backports.txt")
	b, _ := os.ReadFile(tf)
	require.NoError(t, os.WriteFile(tf, append(b, "I915_25WW02.1_900.1_25.1.1_250110.1\n"...), 0o644))
	tag, err = f.LatestTag(ctx, "intel-gpu/intel-gpu-i915-backports")
	require.NoError(t, err)
	assert.Equal(t, "I915_25WW02.1_900.1_25.1.1_250110.1", tag)

	d := release.DriverSet{I915Tag: tag, FirmwareTag: "25WW01.2_900", DriverVersion: "1.3.0"}
	pr, err := f.BumpDockerfile(ctx, d)
	require.NoError(t, err)
	assert.True(t, pr.Created)
	again, err := f.BumpDockerfile(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, pr.Number, again.Number, "a second run finds the pull request")

	content, commit, err := f.Dockerfile(ctx, pr.Commit)
	require.NoError(t, err)
	assert.Equal(t, pr.Commit, commit)
	parsed, err := docker.Parse(content)
	require.NoError(t, err)
	i915, fw, v := parsed.PinnedDriver()
	assert.Equal(t, []string{d.I915Tag, d.FirmwareTag, "1.3.0"}, []string{i915, fw, v})
	main, _, err := f.Dockerfile(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, string(docker.DriverDockerfile), string(main), "main is untouched until the merge")

	merged, err := f.PullRequestMerged(ctx, pr.Number)
	require.NoError(t, err)
	assert.False(t, merged)
	out, err := exec.Command("git", "-C", f.RepoDir(), "-c", "user.name=t", "-c", "user.email=t@t", "merge", "-q", "--no-edit", pr.Branch).CombinedOutput()
	require.NoError(t, err, string(out))
	merged, err = f.PullRequestMerged(ctx, pr.Number)
	require.NoError(t, err)
	assert.True(t, merged)
}
