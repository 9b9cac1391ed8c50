package forge

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"dgpu-release/docker"
	"dgpu-release/internal/release"
)

// fakeGitHub is shaped on GitHub's REST API for the calls the forge uses: commits, refs,
// contents, pulls, issues with labels and comments, tags; list calls paginate with Link
// headers, and rate limits answer as GitHub does (403 with X-RateLimit-Remaining: 0,
// secondary 403/429 with Retry-After).
type fakeGitHub struct {
	mu       sync.Mutex
	branches map[string]map[string]string // branch -> path -> content
	heads    map[string]string            // branch -> head sha
	pulls    []map[string]any
	issues   []map[string]any
	comments map[int][]string
	tags     []string
	inject   map[string][]func(w http.ResponseWriter) // "METHOD path-prefix" -> answers to give first
	calls    []string
	n        int
}

func newFakeGitHub() *fakeGitHub {
	f := &fakeGitHub{branches: map[string]map[string]string{"main": {
		docker.DriverDockerfilePath: string(docker.DriverDockerfile),
	}}, heads: map[string]string{}, comments: map[int][]string{}, inject: map[string][]func(http.ResponseWriter){}}
	f.heads["main"] = f.sha("main")
	return f
}

func (f *fakeGitHub) sha(seed string) string {
	f.n++
	return fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprint(seed, f.n))))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeGitHub) paginate(w http.ResponseWriter, r *http.Request, items []any, per int) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page < 1 {
		page = 1
	}
	start, end := (page-1)*per, page*per
	if start > len(items) {
		start = len(items)
	}
	if end > len(items) {
		end = len(items)
	}
	if end < len(items) {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(page+1))
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?%s>; rel="next"`, r.Host, r.URL.Path, q.Encode()))
	}
	writeJSON(w, 200, items[start:end])
}

var repoPath = regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/(.*)$`)

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer test-token" {
		writeJSON(w, 401, map[string]string{"message": "Bad credentials"})
		return
	}
	for k, q := range f.inject {
		if len(q) > 0 && strings.HasPrefix(r.Method+" "+r.URL.Path, k) {
			f.inject[k] = q[1:]
			q[0](w)
			return
		}
	}
	m := repoPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		writeJSON(w, 404, map[string]string{"message": "Not Found"})
		return
	}
	repo, rest := m[1]+"/"+m[2], m[3]
	switch {
	case r.Method == "GET" && strings.HasPrefix(rest, "commits/"):
		ref := strings.TrimPrefix(rest, "commits/")
		sha, ok := f.heads[ref]
		if !ok {
			for _, s := range f.heads {
				if s == ref {
					sha, ok = s, true
				}
			}
		}
		if !ok {
			writeJSON(w, 422, map[string]string{"message": "No commit found for SHA: " + ref})
			return
		}
		w.WriteHeader(200)
		fmt.Fprint(w, sha)
	case r.Method == "GET" && strings.HasPrefix(rest, "contents/"):
		path := strings.TrimPrefix(rest, "contents/")
		files := f.branchAt(r.URL.Query().Get("ref"))
		content, ok := files[path]
		if !ok {
			writeJSON(w, 404, map[string]string{"message": "Not Found"})
			return
		}
		writeJSON(w, 200, map[string]any{"type": "file", "encoding": "base64", "path": path, "content": base64.StdEncoding.EncodeToString([]byte(content)), "sha": fmt.Sprintf("%x", sha1.Sum([]byte(content)))})
	case r.Method == "PUT" && strings.HasPrefix(rest, "contents/"):
		path := strings.TrimPrefix(rest, "contents/")
		var body struct {
			Message, Content, SHA, Branch string
		}
		json.NewDecoder(r.Body).Decode(&body)
		files := f.branches[body.Branch]
		if old, ok := files[path]; ok && body.SHA != fmt.Sprintf("%x", sha1.Sum([]byte(old))) {
			writeJSON(w, 409, map[string]string{"message": "sha does not match"})
			return
		}
		b, _ := base64.StdEncoding.DecodeString(body.Content)
		files[path] = string(b)
		f.heads[body.Branch] = f.sha(body.Branch)
		writeJSON(w, 200, map[string]any{"commit": map[string]any{"sha": f.heads[body.Branch], "message": body.Message}})
	case r.Method == "GET" && strings.HasPrefix(rest, "git/ref/heads/"):
		b := strings.TrimPrefix(rest, "git/ref/heads/")
		sha, ok := f.heads[b]
		if !ok {
			writeJSON(w, 404, map[string]string{"message": "Not Found"})
			return
		}
		writeJSON(w, 200, map[string]any{"ref": "refs/heads/" + b, "object": map[string]string{"sha": sha, "type": "commit"}})
	case r.Method == "POST" && rest == "git/refs":
		var body struct{ Ref, SHA string }
		json.NewDecoder(r.Body).Decode(&body)
		b := strings.TrimPrefix(body.Ref, "refs/heads/")
		if _, ok := f.heads[b]; ok {
			writeJSON(w, 422, map[string]string{"message": "Reference already exists"})
			return
		}
		copied := map[string]string{}
		for k, v := range f.branchAt(body.SHA) {
			copied[k] = v
		}
		f.branches[b], f.heads[b] = copied, body.SHA
		writeJSON(w, 201, map[string]any{"ref": body.Ref, "object": map[string]string{"sha": body.SHA}})
	case r.Method == "GET" && rest == "pulls":
		var out []any
		for _, p := range f.pulls {
			if p["head_label"] == r.URL.Query().Get("head") && p["state"] == r.URL.Query().Get("state") {
				out = append(out, p)
			}
		}
		writeJSON(w, 200, out)
	case r.Method == "POST" && rest == "pulls":
		var body struct{ Title, Head, Base, Body string }
		json.NewDecoder(r.Body).Decode(&body)
		n := len(f.pulls) + len(f.issues) + 1
		p := map[string]any{"number": n, "state": "open", "title": body.Title, "head_label": strings.Split(repo, "/")[0] + ":" + body.Head, "html_url": fmt.Sprintf("https://github.com/%s/pull/%d", repo, n)}
		f.pulls = append(f.pulls, p)
		writeJSON(w, 201, p)
	case r.Method == "GET" && rest == "issues":
		var out []any
		for _, is := range f.issues {
			if is["repo"] == repo && is["state"] == r.URL.Query().Get("state") && strings.Contains(fmt.Sprint(is["labels"]), r.URL.Query().Get("labels")) {
				out = append(out, is)
			}
		}
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		if per == 0 || per > 2 {
			per = 2 // small pages, so pagination is exercised
		}
		f.paginate(w, r, out, per)
	case r.Method == "POST" && rest == "issues":
		var body struct {
			Title, Body string
			Labels      []string
		}
		json.NewDecoder(r.Body).Decode(&body)
		n := len(f.pulls) + len(f.issues) + 1
		is := map[string]any{"number": n, "state": "open", "title": body.Title, "body": body.Body, "repo": repo, "labels": labelsOf(body.Labels), "html_url": fmt.Sprintf("https://github.com/%s/issues/%d", repo, n)}
		f.issues = append(f.issues, is)
		writeJSON(w, 201, is)
	case r.Method == "POST" && strings.HasSuffix(rest, "/comments"):
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rest, "issues/"), "/comments"))
		var body struct{ Body string }
		json.NewDecoder(r.Body).Decode(&body)
		f.comments[n] = append(f.comments[n], body.Body)
		writeJSON(w, 201, map[string]any{"id": len(f.comments[n]), "body": body.Body})
	case r.Method == "PATCH" && strings.HasPrefix(rest, "issues/"):
		n, _ := strconv.Atoi(strings.TrimPrefix(rest, "issues/"))
		var body struct{ State string }
		json.NewDecoder(r.Body).Decode(&body)
		for _, is := range f.issues {
			if is["number"] == n {
				is["state"] = body.State
				writeJSON(w, 200, is)
				return
			}
		}
		writeJSON(w, 404, map[string]string{"message": "Not Found"})
	case r.Method == "GET" && rest == "tags":
		var out []any
		for _, t := range f.tags {
			out = append(out, map[string]any{"name": t})
		}
		f.paginate(w, r, out, 3)
	default:
		writeJSON(w, 404, map[string]string{"message": "Not Found: " + r.Method + " " + rest})
	}
}

func labelsOf(names []string) []map[string]string {
	var out []map[string]string
	for _, n := range names {
		out = append(out, map[string]string{"name": n})
	}
	return out
}

func (f *fakeGitHub) branchAt(ref string) map[string]string {
	if ref == "" {
		ref = "main"
	}
	if b, ok := f.branches[ref]; ok {
		return b
	}
	for b, s := range f.heads {
		if s == ref {
			return f.branches[b]
		}
	}
	return nil
}

func newTestGitHub(t *testing.T, f *fakeGitHub, tablePR bool) (*GitHub, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(f)
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
	assert.Equal(t, f.heads["main"], commit)

	d := release.DriverSet{I915Tag: "I915_25WW02.1_1000.1_25.1.1_250101.1", FirmwareTag: "25WW01.3_900", DriverVersion: "1.3.0"}
	pr, err := g.BumpDockerfile(ctx, d)
	require.NoError(t, err)
	assert.True(t, pr.Created)
	assert.Equal(t, BumpBranch(d), pr.Branch)
	bumped, err := docker.Parse([]byte(f.branches[pr.Branch][docker.DriverDockerfilePath]))
	require.NoError(t, err)
	i915, fw, v := bumped.PinnedDriver()
	assert.Equal(t, []string{d.I915Tag, d.FirmwareTag, d.DriverVersion}, []string{i915, fw, v})
	assert.Equal(t, string(docker.DriverDockerfile), f.branches["main"][docker.DriverDockerfilePath], "main is untouched until the pull request merges")

	again, err := g.BumpDockerfile(ctx, d)
	require.NoError(t, err)
	assert.False(t, again.Created, "a second run finds the open pull request")
	assert.Equal(t, pr.Number, again.Number)
	assert.Len(t, f.pulls, 1)
}

func TestGitHubTableUpdate(t *testing.T) {
	ctx := context.Background()
	row := release.Row{Image: "quay.io/intel/intel-dgpu-driver:1.2.0-5.14.0-427.26.1.el9_4.x86_64", I915Tag: "I", FirmwareTag: "F", RHEL: "9.4", OpenShift: "4.16.3"}

	f := newFakeGitHub()
	g, _ := newTestGitHub(t, f, false)
	up, err := g.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.True(t, up.Changed)
	assert.Contains(t, f.branches["main"][release.TablePath], "| `"+row.Image+"` |")
	up2, err := g.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.False(t, up2.Changed, "the same row twice is no second commit")
	assert.Equal(t, up.Commit, up2.Commit)

	fp := newFakeGitHub()
	gp, _ := newTestGitHub(t, fp, true)
	upPR, err := gp.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.Contains(t, upPR.URL, "/pull/")
	assert.NotContains(t, fp.branches["main"], release.TablePath, "by pull request, main is untouched")
	_, err = gp.UpdateTable(ctx, row, "Release table: 1.2.0")
	require.NoError(t, err)
	assert.Len(t, fp.pulls, 1)
}

func TestGitHubIssuesAreFoundByMarkerAcrossPages(t *testing.T) {
	ctx := context.Background()
	f := newFakeGitHub()
	g, _ := newTestGitHub(t, f, false)
	// Other open issues of ours fill the first pages.
	for i := 0; i < 5; i++ {
		_, err := g.FileIssue(ctx, Issue{Repo: "intel/dgpu-release", Marker: fmt.Sprintf("release/k%d/1.0.0", i), Title: "t", Body: "b"})
		require.NoError(t, err)
	}
	in := Issue{Repo: "intel/dgpu-release", Marker: "release/k/1.2.0", Title: "gpu-test failed", Body: "evidence"}
	a, err := g.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.True(t, a.Created)
	b, err := g.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.False(t, b.Created, "found on the last page by its marker")
	assert.Equal(t, a.Number, b.Number)
	_, err = g.Comment(ctx, in.Repo, in.Marker, "reminder")
	require.NoError(t, err)
	require.NoError(t, g.CloseIssue(ctx, in.Repo, in.Marker, "released"))
	assert.Equal(t, []string{"**gpu-test failed**\n\nevidence", "reminder", "released"}, f.comments[a.Number])
	c, err := g.FileIssue(ctx, in)
	require.NoError(t, err)
	assert.True(t, c.Created, "a closed issue is not reused")

	esc, err := g.FileIssue(ctx, Issue{Repo: "intel-gpu/intel-gpu-i915-backports", Marker: "release/k/1.2.0#driver-bug", Title: "i915 fails", Body: "b"})
	require.NoError(t, err)
	assert.Contains(t, esc.URL, "intel-gpu/intel-gpu-i915-backports")
}

func TestGitHubRateLimitsAreWaitedOut(t *testing.T) {
	ctx := context.Background()
	f := newFakeGitHub()
	g, _ := newTestGitHub(t, f, false)
	// go-github remembers a limit and refuses to send until it resets, so this test
	// waits for real, for short limits.
	var waits []time.Duration
	g.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return sleepCtx(ctx, d) }
	f.inject["GET /repos/intel/dgpu-release/commits/"] = []func(http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 403, map[string]string{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#secondary-rate-limits"})
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, map[string]string{"message": "Too Many Requests"})
		},
		func(w http.ResponseWriter) { writeJSON(w, 502, map[string]string{"message": "Server Error"}) },
		func(w http.ResponseWriter) {
			w.Header().Set("X-RateLimit-Limit", "5000")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
			writeJSON(w, 403, map[string]string{"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"})
		},
	}
	_, commit, err := g.Dockerfile(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, f.heads["main"], commit)
	require.Len(t, waits, 4)
	assert.Equal(t, time.Second, waits[0], "the secondary limit waits for Retry-After")
	assert.Equal(t, time.Second, waits[1], "a 429 waits for Retry-After")
	assert.Equal(t, 3*time.Second, waits[2], "a 5xx backs off, a second more each attempt")
	assert.GreaterOrEqual(t, waits[3], time.Second, "the primary limit waits for its reset")
	assert.LessOrEqual(t, waits[3], 3*time.Second)

	// A reset further off than the call may wait fails with a clear message instead.
	g.maxWait = time.Minute
	f.inject["GET /repos/intel/dgpu-release/commits/"] = []func(http.ResponseWriter){func(w http.ResponseWriter) {
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
		writeJSON(w, 403, map[string]string{"message": "API rate limit exceeded"})
	}}
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

	_, err = NewGitHub(GitHubConfig{ProjectRepo: "nope", Token: "x"})
	require.ErrorContains(t, err, "owner/name")
}

func TestLatestTagByWorkWeek(t *testing.T) {
	f := newFakeGitHub()
	f.tags = []string{"I915_23WW51.5_736.25_23.4.15_230728.15", "backup", "I915_24WW30.4_803.75_23.10.54_231129.76", "I915_24WW12.1_800.1", "I915_22WW40.1_1", "I915_24WW30.4_803.70_23.10.50", "v1.0"}
	g, _ := newTestGitHub(t, f, false)
	tag, err := g.LatestTag(context.Background(), "intel-gpu/intel-gpu-i915-backports")
	require.NoError(t, err)
	assert.Equal(t, "I915_24WW30.4_803.75_23.10.54_231129.76", tag, "newest work week, read across pages")
	f.tags = []string{"v1", "v2"}
	_, err = g.LatestTag(context.Background(), "intel-gpu/intel-gpu-firmware")
	require.ErrorContains(t, err, "WW")
}
