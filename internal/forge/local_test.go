package forge_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/docker"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
)

func TestLocalForgeTableAndDockerfile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, err := forge.NewLocal(ctx, dir, "intel/dgpu-release")
	require.NoError(t, err)

	content, commit, err := f.Dockerfile(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, string(docker.DriverDockerfile), string(content))
	assert.Len(t, commit, 40)
	_, _, err = f.Dockerfile(ctx, "no-such-branch")
	require.ErrorContains(t, err, "no such revision")

	row := release.Row{Image: "reg/intel-dgpu-driver:1.2.0-k", I915Tag: "I", FirmwareTag: "F", RHEL: "9.4", OpenShift: "4.16.3"}
	up, err := f.UpdateTable(ctx, row, "Release 1.2.0 for k")
	require.NoError(t, err)
	assert.True(t, up.Changed)
	assert.NotEqual(t, commit, up.Commit)
	again, err := f.UpdateTable(ctx, row, "Release 1.2.0 for k")
	require.NoError(t, err)
	assert.False(t, again.Changed, "the same row twice makes no second commit")
	assert.Equal(t, up.Commit, again.Commit)

	table, err := f.ReadTable(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(table, "reg/intel-dgpu-driver:1.2.0-k"))
	out, err := exec.Command("git", "-C", f.RepoDir(), "rev-list", "--count", "HEAD").Output()
	require.NoError(t, err)
	assert.Equal(t, "2\n", string(out), "seed commit + one table commit")

	// A Dockerfile fix committed by a person is found by its revision.
	path := filepath.Join(f.RepoDir(), docker.DriverDockerfilePath)
	require.NoError(t, os.WriteFile(path, append(content, []byte("# fix\n")...), 0o644))
	require.NoError(t, exec.Command("git", "-C", f.RepoDir(), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "fix").Run())
	fixed, fixCommit, err := f.Dockerfile(ctx, "HEAD")
	require.NoError(t, err)
	assert.Contains(t, string(fixed), "# fix")
	assert.NotEqual(t, commit, fixCommit)

	reopened, err := forge.NewLocal(ctx, dir, "intel/dgpu-release")
	require.NoError(t, err)
	table2, err := reopened.ReadTable(ctx)
	require.NoError(t, err)
	assert.Equal(t, table, table2, "reopening keeps the repository")
}

func TestLocalForgeIssuesAreNotDuplicated(t *testing.T) {
	ctx := context.Background()
	f, err := forge.NewLocal(ctx, t.TempDir(), "intel/dgpu-release")
	require.NoError(t, err)
	in := forge.Issue{Repo: "intel/dgpu-release", Marker: "release/k/1.2.0#gpu-test", Title: "gpu-test failed", Body: "evidence"}
	a, err := f.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.True(t, a.Created)
	b, err := f.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.False(t, b.Created, "a second filing finds the open issue")
	assert.Equal(t, a.Number, b.Number)
	round2 := in
	round2.Title = "gpu-test failed (round 2)"
	_, err = f.FileIssue(ctx, round2)
	require.NoError(t, err)
	_, err = f.FileIssue(ctx, round2)
	require.NoError(t, err)
	_, err = f.Comment(ctx, in.Repo, in.Marker, "reminder")
	require.NoError(t, err)
	require.NoError(t, f.CloseIssue(ctx, in.Repo, in.Marker, "released"))
	c, err := f.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.True(t, c.Created, "after closing, a new failure files a new issue")
	assert.Equal(t, a.Number+1, c.Number)

	body, err := os.ReadFile(strings.TrimPrefix(a.URL, "file://"))
	require.NoError(t, err)
	assert.Contains(t, string(body), "state: closed")
	assert.Contains(t, string(body), "reminder")
	assert.Equal(t, 1, strings.Count(string(body), "gpu-test failed\n"), "the same report is not added twice")
	assert.Equal(t, 1, strings.Count(string(body), "gpu-test failed (round 2)"), "the next round's report is added once")
	assert.Contains(t, string(body), forge.MarkerComment(in.Marker))
	assert.Contains(t, string(body), "stand-in")

	list, err := f.Issues("intel/dgpu-release")
	require.NoError(t, err)
	assert.Len(t, list, 2)

	_, err = f.FileIssue(ctx, forge.Issue{Repo: "no-slash"})
	require.ErrorContains(t, err, "owner/name")
}
