package forge

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/docker"
	"dgpu-release/internal/fakes"
	"dgpu-release/internal/release"
	ctxwait "dgpu-release/internal/waits"
)

const testRepo = "intel/dgpu-release"

// newFakeGitHub is the shared GitHub fake with the project's Dockerfile on main.
func newFakeGitHub() *fakes.GitHub {
	f := fakes.NewGitHub("test-token")
	f.SetFile(testRepo, "main", docker.DriverDockerfilePath, string(docker.DriverDockerfile))
	return f
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// newTestGitHub serves h (the fake, or Faults in front of it) and returns a client of it
// whose waits are recorded, not slept.
func newTestGitHub(t *testing.T, h http.Handler, tablePR bool) (*GitHub, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	g, err := NewGitHub(GitHubConfig{ProjectRepo: "intel/dgpu-release", Token: "test-token", APIURL: srv.URL + "/", TableByPullRequest: tablePR})
	require.NoError(t, err)
	var waits []time.Duration
	g.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return g, &waits
}

func TestGitHubDockerfileBumpOpensOnePullRequest(t *testing.T) {
	ctx := context.Background()
	f := newFakeGitHub()
	g, _ := newTestGitHub(t, f, false)
	content, commit, err := g.Dockerfile(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, string(docker.DriverDockerfile), string(content))
	assert.Equal(t, f.Head(testRepo, "main"), commit)

	d := release.DriverSet{I915Tag: "I915_25WW02.1_1000.1_25.1.1_250101.1", FirmwareTag: "25WW01.3_900", DriverVersion: "1.3.0"}
	pr, err := g.BumpDockerfile(ctx, d)
	require.NoError(t, err)
	assert.True(t, pr.Created)
	assert.Equal(t, BumpBranch(d), pr.Branch)
	onBranch, ok := f.File(testRepo, pr.Branch, docker.DriverDockerfilePath)
	require.True(t, ok)
	bumped, err := docker.Parse([]byte(onBranch))
	require.NoError(t, err)
	i915, fw, v := bumped.PinnedDriver()
	assert.Equal(t, []string{d.I915Tag, d.FirmwareTag, d.DriverVersion}, []string{i915, fw, v})
	onMain, _ := f.File(testRepo, "main", docker.DriverDockerfilePath)
	assert.Equal(t, string(docker.DriverDockerfile), onMain, "main is untouched until the pull request merges")

	again, err := g.BumpDockerfile(ctx, d)
	require.NoError(t, err)
	assert.False(t, again.Created, "a second run finds the open pull request")
	assert.Equal(t, pr.Number, again.Number)
	assert.Len(t, f.PullRequests(""), 1)
}

func TestGitHubTableUpdate(t *testing.T) {
	ctx := context.Background()
	row := release.Row{Image: "quay.io/intel/intel-dgpu-driver:1.2.0-5.14.0-427.26.1.el9_4.x86_64", I915Tag: "I", FirmwareTag: "F", RHEL: "9.4", OpenShift: "4.16.3"}

	f := newFakeGitHub()
	g, _ := newTestGitHub(t, f, false)
	up, err := g.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.True(t, up.Changed)
	table, _ := f.File(testRepo, "main", release.TablePath)
	assert.Contains(t, table, "| `"+row.Image+"` |")
	up2, err := g.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.False(t, up2.Changed, "the same row twice is no second commit")
	assert.Equal(t, up.Commit, up2.Commit)

	fp := newFakeGitHub()
	gp, _ := newTestGitHub(t, fp, true)
	upPR, err := gp.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.Contains(t, upPR.URL, "/pull/")
	_, onMain := fp.File(testRepo, "main", release.TablePath)
	assert.False(t, onMain, "by pull request, main is untouched")
	_, err = gp.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.Len(t, fp.PullRequests(""), 1)
}

func TestGitHubIssuesAreFoundByMarkerAcrossPages(t *testing.T) {
	ctx := context.Background()
	f := newFakeGitHub()
	f.SetPageLimit(2) // small pages, so pagination is exercised
	f.AddRepo("intel-gpu/intel-gpu-i915-backports")
	g, _ := newTestGitHub(t, f, false)
	in := Issue{Repo: testRepo, Marker: "release/k/1.2.0", Title: "gpu-test failed", Body: "evidence"}
	a, err := g.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.True(t, a.Created)
	// Newer open issues of ours fill the first pages (GitHub lists newest first).
	for i := 0; i < 5; i++ {
		_, err := g.FileIssue(ctx, Issue{Repo: testRepo, Marker: fmt.Sprintf("release/k%d/1.0.0", i), Title: "t", Body: "b"})
		require.NoError(t, err)
	}
	b, err := g.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.False(t, b.Created, "found on the last page by its marker")
	assert.Equal(t, a.Number, b.Number)
	// The same report again (a retried call) says nothing new; the next round's does.
	round2 := in
	round2.Title = "gpu-test failed (round 2)"
	_, err = g.FileIssue(ctx, round2)
	require.NoError(t, err)
	_, err = g.FileIssue(ctx, round2)
	require.NoError(t, err)
	_, err = g.Comment(ctx, in.Repo, in.Marker, "reminder")
	require.NoError(t, err)
	require.NoError(t, g.CloseIssue(ctx, in.Repo, in.Marker, "released"))
	issues := f.Issues(testRepo)
	require.Len(t, issues, 6, "one issue per marker")
	assert.Equal(t, a.Number, issues[0].Number)
	assert.Equal(t, "closed", issues[0].State)
	assert.Equal(t, []string{IssueLabel}, issues[0].Labels)
	assert.Contains(t, issues[0].Body, MarkerComment(in.Marker))
	assert.Equal(t, []string{"**gpu-test failed (round 2)**\n\nevidence", "reminder", "released"}, issues[0].Comments)
	c, err := g.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.True(t, c.Created, "a closed issue is not reused")

	esc, err := g.FileIssue(ctx, Issue{Repo: "intel-gpu/intel-gpu-i915-backports", Marker: "release/k/1.2.0#driver-bug", Title: "i915 fails", Body: "b"})
	require.NoError(t, err)
	assert.Contains(t, esc.URL, "intel-gpu/intel-gpu-i915-backports")
	assert.Len(t, f.Issues("intel-gpu/intel-gpu-i915-backports"), 1)
}

func TestGitHubRateLimitsAreWaitedOut(t *testing.T) {
	ctx := context.Background()
	f := newFakeGitHub()
	faults := fakes.NewFaults(f, fakes.WithErrorBody(fakes.GitHubError))
	g, _ := newTestGitHub(t, faults, false)
	// go-github remembers a limit and refuses to send until it resets, so this test
	// waits for real, for short limits.
	var waits []time.Duration
	g.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctxwait.Sleep(ctx, d)
	}
	commits := faults.On(http.MethodGet, "/repos/intel/dgpu-release/commits/")
	commits.RespondNext(1, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, 403, map[string]string{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#secondary-rate-limits"})
	}).RespondNext(1, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, 429, map[string]string{"message": "Too Many Requests"})
	}).FailNext(1, http.StatusBadGateway).RespondNext(1, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
		writeJSON(w, 403, map[string]string{"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"})
	})
	_, commit, err := g.Dockerfile(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, f.Head(testRepo, "main"), commit)
	require.Len(t, waits, 4)
	assert.Equal(t, time.Second, waits[0], "the secondary limit waits for Retry-After")
	assert.Equal(t, time.Second, waits[1], "a 429 waits for Retry-After")
	assert.Equal(t, 3*time.Second, waits[2], "a 5xx backs off, a second more each attempt")
	assert.GreaterOrEqual(t, waits[3], time.Second, "the primary limit waits for its reset")
	assert.LessOrEqual(t, waits[3], 3*time.Second)
	assert.Equal(t, 5, commits.Counts().Seen, "four limited answers, then the commit")

	// A reset further off than the call may wait fails with a clear message instead.
	g.maxWait = time.Minute
	commits.RespondNext(1, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
		writeJSON(w, 403, map[string]string{"message": "API rate limit exceeded"})
	})
	_, _, err = g.Dockerfile(ctx, "main")
	require.ErrorContains(t, err, "longer than the 1m0s this call waits")
}

func TestGitHubPermanentErrorsNameRepoAndOperation(t *testing.T) {
	ctx := context.Background()
	f := newFakeGitHub()
	g, waits := newTestGitHub(t, f, false)
	_, _, err := g.Dockerfile(ctx, "no-such-branch")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "GitHub resolve no-such-branch in intel/dgpu-release")
	var p interface{ Permanent() bool }
	require.ErrorAs(t, err, &p)
	assert.True(t, p.Permanent(), "a 422 is not retried")
	assert.Empty(t, *waits)

	bad, err := NewGitHub(GitHubConfig{ProjectRepo: "intel/dgpu-release", Token: "wrong", APIURL: strings.TrimSuffix(g.c.BaseURL.String(), "/")})
	require.NoError(t, err)
	_, _, err = bad.Dockerfile(ctx, "main")
	require.ErrorContains(t, err, "401")
	assert.NotContains(t, err.Error(), "wrong", "the token never appears in errors")
	assert.Equal(t, []string{"test-token", "wrong"}, f.Tokens(), "the fake saw the bad token, and answered 401 to it")

	_, err = NewGitHub(GitHubConfig{ProjectRepo: "nope", Token: "x"})
	require.ErrorContains(t, err, "owner/name")
}

func TestLatestTagByWorkWeek(t *testing.T) {
	f := newFakeGitHub()
	f.SetPageLimit(3)
	f.SetTags("intel-gpu/intel-gpu-i915-backports", "I915_23WW51.5_736.25_23.4.15_230728.15", "backup", "I915_24WW30.4_803.75_23.10.54_231129.76", "I915_24WW12.1_800.1", "I915_22WW40.1_1", "I915_24WW30.4_803.70_23.10.50", "v1.0")
	g, _ := newTestGitHub(t, f, false)
	tag, err := g.LatestTag(context.Background(), "intel-gpu/intel-gpu-i915-backports")
	require.NoError(t, err)
	assert.Equal(t, "I915_24WW30.4_803.75_23.10.54_231129.76", tag, "newest work week, read across pages")
	f.SetTags("intel-gpu/intel-gpu-firmware", "v1", "v2")
	_, err = g.LatestTag(context.Background(), "intel-gpu/intel-gpu-firmware")
	require.ErrorContains(t, err, "WW")
}

// A write whose answer is lost (the proxy answers 502 after GitHub did the work) is not
// done twice: the retry looks first and finds the commit, the issue, the pull request.
func TestGitHubWritesWithLostAnswersHappenOnce(t *testing.T) {
	ctx := context.Background()
	row := release.Row{Image: "quay.io/intel/intel-dgpu-driver:1.2.0-5.14.0-427.26.1.el9_4.x86_64", I915Tag: "I", FirmwareTag: "F", RHEL: "9.4", OpenShift: "4.16.3"}
	f := newFakeGitHub()
	faults := fakes.NewFaults(f, fakes.WithErrorBody(fakes.GitHubError))
	put := faults.On(http.MethodPut, "/repos/"+testRepo+"/contents/").ServeThenFailNext(1, http.StatusBadGateway)
	post := faults.On(http.MethodPost, "/repos/"+testRepo+"/").ServeThenFailNext(2, http.StatusBadGateway)
	g, _ := newTestGitHub(t, faults, true)

	up, err := g.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.True(t, up.Changed)
	assert.Contains(t, up.URL, "/pull/")
	var commits int
	for _, c := range f.Commits(testRepo) {
		if c.Path == release.TablePath {
			commits++
		}
	}
	assert.Equal(t, 1, commits, "one table commit")
	assert.Len(t, f.PullRequests(testRepo), 1, "one pull request")

	_, err = g.FileIssue(ctx, Issue{Repo: testRepo, Marker: "release/k/1.2.0", Title: "t", Body: "b"})
	require.NoError(t, err)
	assert.Len(t, f.Issues(testRepo), 1, "one issue")
	assert.Equal(t, 1, put.Counts().Failed)
	assert.Equal(t, 2, post.Counts().Failed, "the pull request's and the issue's answers were lost")
}
